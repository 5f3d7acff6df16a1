//! What the directives may ask about the request they judge: server variables, request
//! headers, environment variables, and tests on files. The request path answers through this
//! trait, so that the directive families stay pure (tests answer with a fake) and so that every
//! file test goes through the caller's jail, never through a path a `.htaccess` wrote.

use std::path::Path;

use yadokari_site::{FileKind, Jail};

/// The kinds of file test a `RewriteCond` can make (`-f`, `-d`, `-s`, `-l`, `-x`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileTest {
    /// `-f`: a regular file (symlinks followed).
    File,
    /// `-d`: a directory (symlinks followed).
    Directory,
    /// `-s`: a regular file larger than zero bytes.
    NonEmptyFile,
    /// `-l`, `-L`, `-h`: a symbolic link (not followed).
    Symlink,
    /// `-x`: a file with any execute bit set.
    Executable,
}

/// The request as the directives see it.
pub trait Context {
    /// A server variable by its Apache name, one of [`VARIABLES`]; `None` reads as empty.
    ///
    /// `REQUEST_URI` is the decoded URL path without the query string (as in mod_rewrite,
    /// not as in CGI), `REQUEST_FILENAME` the filesystem path the URL maps to (without its
    /// path info), `HTTPS` is `on` or `off`, `THE_REQUEST` the raw request line.
    fn variable(&self, name: &str) -> Option<String>;

    /// A request header by name (any case), repeated ones joined as the CGI side joins them.
    fn header(&self, name: &str) -> Option<String>;

    /// An environment variable already set for this request (by `SetEnv`, or by an `[E=]` of
    /// an earlier rewrite pass).
    fn env(&self, _name: &str) -> Option<String> {
        None
    }

    /// Whether `path` (a filesystem path, as the test string expanded to, usually
    /// `%{REQUEST_FILENAME}`) passes `test`. The implementation keeps the test inside the
    /// site: a path outside it, or one it cannot read, fails every test.
    fn file_test(&self, path: &str, test: FileTest) -> bool;
}

/// The server variables [`Context::variable`] answers. mod_rewrite reads the `HTTP_*` ones
/// (`HTTP_HOST`, `HTTP_USER_AGENT`...) from the headers, `QUERY_STRING` and `IS_SUBREQ` from
/// its own state; every other name is a problem when the file is read, never an empty string
/// at run time, so that a typo cannot quietly switch a condition.
pub const VARIABLES: &[&str] = &[
    "AUTH_TYPE",
    "CONN_REMOTE_ADDR",
    "CONTEXT_DOCUMENT_ROOT",
    "CONTEXT_PREFIX",
    "DOCUMENT_ROOT",
    "HTTPS",
    "PATH_INFO",
    "REMOTE_ADDR",
    "REMOTE_HOST",
    "REMOTE_PORT",
    "REMOTE_USER",
    "REQUEST_FILENAME",
    "REQUEST_METHOD",
    "REQUEST_SCHEME",
    "REQUEST_URI",
    "SCRIPT_FILENAME",
    "SERVER_ADDR",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "SERVER_SOFTWARE",
    "THE_REQUEST",
];

/// The `HTTP_*` variables mod_rewrite knows, and the header each one reads.
pub const HEADER_VARIABLES: &[(&str, &str)] = &[
    ("HTTP_ACCEPT", "Accept"),
    ("HTTP_COOKIE", "Cookie"),
    ("HTTP_FORWARDED", "Forwarded"),
    ("HTTP_HOST", "Host"),
    ("HTTP_PROXY_CONNECTION", "Proxy-Connection"),
    ("HTTP_REFERER", "Referer"),
    ("HTTP_USER_AGENT", "User-Agent"),
];

/// `test` on `path` (a filesystem path, as a test string expanded to) in the site held by
/// `jail`, whose root is `root`.
///
/// SECURITY: only paths in the site are looked at, through its jail: a `.htaccess` can write
/// any path into a test string, and `-f /etc/passwd` must not tell a customer what exists
/// outside their site. A path outside it, or one that cannot be read, fails every test.
pub fn test_in_site(jail: &Jail, root: &Path, path: &str, test: FileTest) -> bool {
    let Ok(rel) = Path::new(path).strip_prefix(root) else {
        return false;
    };
    let looked = match test {
        FileTest::Symlink => jail.lstat(rel),
        _ => jail.stat(rel),
    };
    let Ok(st) = looked else { return false };
    let kind = FileKind::from_mode(st.st_mode);
    match test {
        FileTest::File => kind == FileKind::Regular,
        FileTest::Directory => kind == FileKind::Directory,
        FileTest::NonEmptyFile => kind == FileKind::Regular && st.st_size > 0,
        FileTest::Symlink => kind == FileKind::Symlink,
        FileTest::Executable => kind == FileKind::Regular && st.st_mode & 0o111 != 0,
    }
}
