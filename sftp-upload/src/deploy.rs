//! The SSH `exec` requests a customer may make: the server sides of push deploys (`rsync
//! --server`, legacy `scp -t`/`scp -f`, `git-receive-pack`/`git-upload-pack`), and nothing
//! else. A command line is split as a POSIX shell would split it (quotes and backslashes), but
//! no shell ever runs it: anything a shell would give a meaning to beyond words (`;`, `|`,
//! `&`, `$`, backticks, redirections, globs, ...) is refused, as are options the program's own
//! client never sends its server side (`rsync --log-file=/x`, `--rsync-path`, `--daemon`...).
//! Path arguments are read as the SFTP jail reads them ([`SitePath`]: `/` and `~` are the
//! home, `..` stops there) and handed to the program as paths inside the home.
//!
//! Written by hand: the three programs' server command lines are small fixed grammars, and a
//! general shell-words crate would accept (and have to be taught to refuse) far more.

use std::path::Path;

use yadokari_site::LogText;

use crate::path::SitePath;

/// What every refusal says first (to the client's stderr).
pub const ONLY: &str = "this host accepts sftp, rsync, scp and git push; it gives no shell";

/// A deploy program's run, checked: the program (a name the server maps to its binary) and
/// its arguments, paths already made absolute inside the home.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deploy {
    /// `rsync`, `scp`, `git-receive-pack` or `git-upload-pack`.
    pub program: &'static str,
    /// `argv[1..]`.
    pub args: Vec<Vec<u8>>,
}

impl Deploy {
    /// Whether it writes into the home (an upload, a push), so the quota must admit it.
    pub fn writes(&self) -> bool {
        match self.program {
            "git-receive-pack" => true,
            "rsync" => !self.args.iter().any(|a| a == b"--sender"),
            "scp" => self
                .args
                .iter()
                .take_while(|a| a.as_slice() != b"--")
                .any(|a| a.starts_with(b"-") && a.contains(&b't')),
            _ => false,
        }
    }
}

/// Why a command is refused: said after [`ONLY`].
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

/// Checks `command` (an exec request's bytes) for a customer whose home is `home`.
pub fn check(command: &[u8], home: &Path) -> Result<Deploy, Refusal> {
    let words = split(command)?;
    let Some(first) = words.first() else {
        return Err(Refusal("an empty command".into()));
    };
    match first.as_slice() {
        b"rsync" => rsync(&words[1..], home),
        b"scp" => scp(&words[1..], home),
        b"git-receive-pack" | b"git-upload-pack" => git(first, &words[1..], home),
        b"git"
            if matches!(
                words.get(1).map(Vec::as_slice),
                Some(b"receive-pack" | b"upload-pack")
            ) =>
        {
            let mut name = b"git-".to_vec();
            name.extend_from_slice(&words[1]);
            git(&name, &words[2..], home)
        }
        _ => Err(Refusal(format!("`{}` is not one of them", LogText(first)))),
    }
}

/// Splits like a POSIX shell's words: blanks separate, '...' is literal, "..." keeps `\"`
/// and `\\` escapes, a backslash outside quotes escapes the next byte. A byte a shell would
/// act on outside quotes is refused.
fn split(command: &[u8]) -> Result<Vec<Vec<u8>>, Refusal> {
    let mut words = Vec::new();
    let mut word: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < command.len() {
        let b = command[i];
        match b {
            b' ' | b'\t' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            b'\'' => {
                let end = command[i + 1..]
                    .iter()
                    .position(|&c| c == b'\'')
                    .ok_or_else(|| Refusal("an unterminated quote".into()))?;
                word.get_or_insert_with(Vec::new)
                    .extend_from_slice(&command[i + 1..i + 1 + end]);
                i += end + 1;
            }
            b'"' => {
                let w = word.get_or_insert_with(Vec::new);
                i += 1;
                loop {
                    match command.get(i) {
                        None => return Err(Refusal("an unterminated quote".into())),
                        Some(b'"') => break,
                        Some(b'\\') if matches!(command.get(i + 1), Some(b'"' | b'\\')) => {
                            w.push(command[i + 1]);
                            i += 2;
                        }
                        Some(b'$' | b'`') => {
                            return Err(Refusal("shell syntax (`$` or a backtick)".into()));
                        }
                        Some(&c) => {
                            w.push(c);
                            i += 1;
                        }
                    }
                }
            }
            b'\\' => {
                let next = command
                    .get(i + 1)
                    .ok_or_else(|| Refusal("a trailing backslash".into()))?;
                word.get_or_insert_with(Vec::new).push(*next);
                i += 1;
            }
            b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')' | b'$' | b'`' | b'*' | b'?' | b'['
            | b'{' | b'}' | b'\n' | b'\r' | b'#' | 0 => {
                return Err(Refusal(format!("shell syntax (`{}`)", LogText(&[b]))));
            }
            _ => word.get_or_insert_with(Vec::new).push(b),
        }
        i += 1;
    }
    if let Some(w) = word {
        words.push(w);
    }
    Ok(words)
}

/// A path argument, read as the jail reads it, as a path inside `home` (a trailing `/` kept:
/// rsync gives it a meaning).
fn inside(raw: &[u8], home: &Path) -> Result<Vec<u8>, Refusal> {
    use std::os::unix::ffi::OsStrExt;
    let site = SitePath::parse(raw).map_err(|_| Refusal("a path with a NUL byte".into()))?;
    let mut out = home.as_os_str().as_bytes().to_vec();
    if !site.is_root() {
        out.push(b'/');
        out.extend_from_slice(site.rel().as_os_str().as_bytes());
    }
    if raw.ends_with(b"/") || site.is_root() {
        out.push(b'/');
    }
    Ok(out)
}

/// rsync's long options its client may send the server side, by name (`--name` or
/// `--name=value`). Not here, so refused: those that name files outside the transfer
/// (`--log-file`, `--write-batch`, `--temp-dir`, `--backup-dir`, `--partial-dir`, the
/// `--*-dest` family), run programs (`--rsh`, `--rsync-path`) or change its role (`--daemon`).
const RSYNC_LONG: &[&str] = &[
    "server",
    "sender",
    "delete",
    "delete-before",
    "delete-during",
    "delete-delay",
    "delete-after",
    "delete-excluded",
    "force",
    "partial",
    "inplace",
    "append",
    "numeric-ids",
    "safe-links",
    "munge-links",
    "size-only",
    "ignore-times",
    "ignore-existing",
    "existing",
    "remove-source-files",
    "no-implied-dirs",
    "compress-level",
    "compress-choice",
    "checksum-choice",
    "checksum-seed",
    "max-size",
    "min-size",
    "max-delete",
    "timeout",
    "bwlimit",
    "modify-window",
    "chmod",
    "log-format",
    "out-format",
    "info",
    "debug",
    "fake-super",
    "omit-dir-times",
    "omit-link-times",
    "no-r",
    "no-relative",
    "no-W",
    "no-whole-file",
    "ignore-errors",
    "stats",
    "human-readable",
    "mkpath",
];

/// rsync's short options that take no value and name no file, as its client sends them in one
/// cluster. Not here, so refused: `s` (`--protect-args`: the server would read a second,
/// unchecked argument list from the connection), `T` (a temporary directory), `f` (a filter
/// rule), `M` (a remote option), `B` (a block size), and anything unknown.
const RSYNC_SHORT: &[u8] = b"vqcrlLKkHpEAXUNogDtOJSnWxdRbuzCmyhiIPF8";

/// A short-option cluster (`vlogDtpre.iLsfxCIvu` after the `-`): each letter known, until an
/// `e` that starts the client's capability string (`e.` then letters; it names no remote
/// shell in a server's arguments).
fn rsync_cluster(cluster: &[u8]) -> bool {
    let mut letters = cluster.iter();
    while let Some(&b) = letters.next() {
        if b == b'e' {
            let rest = letters.as_slice();
            return rest.first() == Some(&b'.')
                && rest[1..].iter().all(|c| c.is_ascii_alphanumeric());
        }
        if !RSYNC_SHORT.contains(&b) {
            return false;
        }
    }
    !cluster.is_empty()
}

/// `rsync --server [--sender] OPTIONS . PATH...`, as rsync's client runs it on the other end.
fn rsync(args: &[Vec<u8>], home: &Path) -> Result<Deploy, Refusal> {
    if args.first().map(Vec::as_slice) != Some(b"--server") {
        return Err(Refusal(
            "rsync runs here only as `rsync --server` (from an rsync client)".into(),
        ));
    }
    let dot = args
        .iter()
        .position(|a| a == b".")
        .ok_or_else(|| Refusal("rsync --server without its `.` argument".into()))?;
    let mut out = Vec::with_capacity(args.len());
    for opt in &args[..dot] {
        let ok = match opt.strip_prefix(b"--") {
            Some(long) => {
                let name = long.split(|&b| b == b'=').next().unwrap_or(long);
                RSYNC_LONG.iter().any(|allowed| allowed.as_bytes() == name)
            }
            None => opt.strip_prefix(b"-").is_some_and(rsync_cluster),
        };
        if !ok {
            return Err(Refusal(format!(
                "the rsync option `{}` is not accepted here",
                LogText(opt)
            )));
        }
        out.push(opt.clone());
    }
    out.push(b".".to_vec());
    let paths = &args[dot + 1..];
    if paths.is_empty() {
        return Err(Refusal("rsync --server without a path".into()));
    }
    for p in paths {
        out.push(inside(p, home)?);
    }
    Ok(Deploy {
        program: "rsync",
        args: out,
    })
}

/// `scp [-v] [-r] [-p] [-d] [-q] -t|-f [--] PATH`, as the legacy protocol's client runs it.
fn scp(args: &[Vec<u8>], home: &Path) -> Result<Deploy, Refusal> {
    let mut out = Vec::new();
    let mut direction = None;
    let mut rest = args;
    while let Some(arg) = rest.first() {
        if arg == b"--" {
            rest = &rest[1..];
            break;
        }
        if !arg.starts_with(b"-") || arg.len() < 2 {
            break;
        }
        for &flag in &arg[1..] {
            match flag {
                b't' | b'f' => direction = Some(flag),
                b'r' | b'p' | b'd' | b'v' | b'q' => {}
                _ => {
                    return Err(Refusal(format!(
                        "the scp option `-{}` is not accepted here",
                        flag as char
                    )));
                }
            }
        }
        out.push(arg.clone());
        rest = &rest[1..];
    }
    if direction.is_none() {
        return Err(Refusal(
            "scp runs here only as `scp -t` or `scp -f` (from an scp client)".into(),
        ));
    }
    let [path] = rest else {
        return Err(Refusal("scp takes exactly one path here".into()));
    };
    out.push(b"--".to_vec());
    out.push(inside(path, home)?);
    Ok(Deploy {
        program: "scp",
        args: out,
    })
}

/// `git-receive-pack 'REPO'` / `git-upload-pack 'REPO'`.
fn git(name: &[u8], args: &[Vec<u8>], home: &Path) -> Result<Deploy, Refusal> {
    let program = if name == b"git-receive-pack" {
        "git-receive-pack"
    } else {
        "git-upload-pack"
    };
    let [repo] = args else {
        return Err(Refusal(format!("{program} takes exactly one repository")));
    };
    if repo.starts_with(b"-") {
        return Err(Refusal(format!("{program} takes no options here")));
    }
    let mut path = inside(repo, home)?;
    if path.len() > 1 && path.ends_with(b"/") {
        path.pop();
    }
    Ok(Deploy {
        program,
        args: vec![path],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(command: &str) -> (&'static str, Vec<String>) {
        let d = check(command.as_bytes(), Path::new("/h/alice")).expect(command);
        (
            d.program,
            d.args
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect(),
        )
    }

    fn refused(command: &str) -> String {
        check(command.as_bytes(), Path::new("/h/alice"))
            .expect_err(command)
            .0
    }

    #[test]
    fn the_clients_own_command_lines_are_accepted_with_paths_inside_the_home() {
        assert_eq!(
            ok("rsync --server -vlogDtpre.iLsfxCIvu --delete . public_html/"),
            (
                "rsync",
                vec![
                    "--server".into(),
                    "-vlogDtpre.iLsfxCIvu".into(),
                    "--delete".into(),
                    ".".into(),
                    "/h/alice/public_html/".into()
                ]
            )
        );
        assert_eq!(
            ok("rsync --server --sender -logDtpre.iLsfxCIvu . /public_html/a.cgi").1[4],
            "/h/alice/public_html/a.cgi"
        );
        assert_eq!(
            ok("scp -t -- public_html/").1,
            ["-t", "--", "/h/alice/public_html/"]
        );
        assert_eq!(
            ok("scp -r -p -f ~/site").1,
            ["-r", "-p", "-f", "--", "/h/alice/site"]
        );
        assert_eq!(
            ok("git-receive-pack '/repos/site.git'"),
            ("git-receive-pack", vec!["/h/alice/repos/site.git".into()])
        );
        assert_eq!(
            ok("git upload-pack 'repos/site.git'"),
            ("git-upload-pack", vec!["/h/alice/repos/site.git".into()])
        );
    }

    #[test]
    fn uploads_and_pushes_write_downloads_and_fetches_do_not() {
        let writes = |c: &str| check(c.as_bytes(), Path::new("/h")).expect(c).writes();
        assert!(writes("rsync --server -logDtpre.iLsfxCIvu . x/"));
        assert!(!writes("rsync --server --sender -logDtpre.iLsfxCIvu . x/"));
        assert!(writes("scp -r -t x"));
        assert!(!writes("scp -f x"));
        assert!(writes("git-receive-pack 'r.git'"));
        assert!(!writes("git-upload-pack 'r.git'"));
    }

    #[test]
    fn paths_cannot_leave_the_home() {
        assert_eq!(ok("scp -t ../../etc/passwd").1[2], "/h/alice/etc/passwd");
        assert_eq!(ok("scp -t /h/bob/x").1[2], "/h/alice/h/bob/x");
        assert_eq!(ok("rsync --server -e.LsfxCIvu . ..").1[3], "/h/alice/");
    }

    #[test]
    fn shells_other_programs_and_foreign_options_are_refused() {
        for (command, why) in [
            ("", "empty"),
            ("id", "`id` is not one of them"),
            ("ls -la", "`ls` is not one of them"),
            ("rsync --server; rm -rf ~", "shell syntax"),
            ("rsync --server . x && id", "shell syntax"),
            ("scp -t $(id)", "shell syntax"),
            ("scp -t `id`", "shell syntax"),
            ("scp -t x > y", "shell syntax"),
            ("scp -t \"$HOME\"", "shell syntax"),
            ("scp -t 'unterminated", "unterminated"),
            ("rsync --daemon", "only as `rsync --server`"),
            (
                "rsync --server --log-file=/etc/x . y",
                "`--log-file=/etc/x`",
            ),
            ("rsync --server --rsync-path=/bin/sh . y", "--rsync-path"),
            ("rsync --server -vl y", "without its `.`"),
            ("rsync --server -vlogs . y", "`-vlogs`"),
            ("rsync --server -vT.. . y", "`-vT..`"),
            ("rsync --server -vf- . y", "`-vf-`"),
            ("rsync --server -ve.Lsfx/ . y", "`-ve.Lsfx/`"),
            ("rsync --server -M--log-file=/x . y", "`-M--log-file=/x`"),
            ("scp -S /bin/sh -t x", "`-S`"),
            ("scp x", "only as `scp -t`"),
            ("scp -t a b", "exactly one path"),
            ("git-upload-pack --help", "no options"),
            ("git status", "`git` is not one of them"),
            ("'id\nINFO forged' x", "`id\\nINFO forged`"),
        ] {
            let said = refused(command);
            assert!(said.contains(why), "{command:?}: {said}");
        }
    }
}
