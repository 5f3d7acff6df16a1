//! The `.htaccess` file itself: one uploaded with the OpenSSH `sftp` client applies to the very
//! next request, one deleted stops applying, one with a syntax error is a 500 naming the file
//! and the line; something that is not a plain file planted under that name (a symlink, a
//! FIFO, a directory) is refused, never ignored and never waited on.

use crate::support::sftp::{SftpSite, local, text};
use crate::support::{Site, have};

#[test]
fn htaccess_uploaded_over_sftp_applies_to_the_next_request() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("");
    s.site.file("members/index.html", "members\n", 0o644);
    s.site.file("members/notes.txt", "notes\n", 0o644);
    let running = s.start();
    let server = &running.server;
    assert_eq!(server.get("/members/").text(), "members\n");

    let scratch = tempfile::tempdir().expect("tempdir");
    let closed = local(scratch.path(), "closed", b"Require all denied\n");
    let o = running.batch(
        &s.key,
        format!("put {} /members/.htaccess\n", closed.display()),
    );
    assert!(o.status.success(), "{}", text(&o));
    for path in ["/members/", "/members/notes.txt"] {
        assert_eq!(server.get(path).status, 403, "{path}");
    }

    // An edit (a new upload over it) applies at once too.
    let header = local(scratch.path(), "header", b"Header set X-Members yes\n");
    let o = running.batch(
        &s.key,
        format!("put {} /members/.htaccess\n", header.display()),
    );
    assert!(o.status.success(), "{}", text(&o));
    let r = server.get("/members/notes.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-members"), Some("yes"));

    // Broken: a 500 naming the file and the line, for everything under it.
    let broken = local(
        scratch.path(),
        "broken",
        b"# protect the members\n<Files \"notes.txt\">\nRequire all denied\n",
    );
    let o = running.batch(
        &s.key,
        format!("put {} /members/.htaccess\n", broken.display()),
    );
    assert!(o.status.success(), "{}", text(&o));
    for path in ["/members/", "/members/notes.txt"] {
        let r = server.get(path);
        assert_eq!(r.status, 500, "{path}: {}", r.text());
        assert!(
            r.text().contains("members/.htaccess, line 2"),
            "{}",
            r.text()
        );
        assert!(!r.text().contains("notes\n"));
    }
    // The error log names it too (waited for: the log line may follow the response).
    server.wait_for("members/.htaccess, line 2");

    // Deleted: the directory is as it was.
    let o = running.batch(&s.key, "rm /members/.htaccess\n");
    assert!(o.status.success(), "{}", text(&o));
    let r = server.get("/members/notes.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "notes\n");
    assert_eq!(r.header("x-members"), None);
}

#[test]
fn htaccess_syntax_errors_name_the_file_and_line() {
    // The last one: a bad address in `Allow from` is an error too, never an open door.
    let cases = [
        ("a", "RewriteEngine On\nRewriteRule \"^x$ /y\n", 2),
        (
            "b",
            "<FilesMatch \"\\.txt$\">\nRequire all denied\n</Files>\n",
            3,
        ),
        (
            "c",
            "Options +ExecCGI\n\nRewriteEngine On\nRewriteRule ^(x /y\n",
            4,
        ),
        (
            "d",
            "Require all granted\nOrder allow,deny\nAllow from nowhere..example\n",
            3,
        ),
    ];
    let site = Site::new();
    for (dir, text, _) in cases {
        site.file(&format!("{dir}/.htaccess"), text, 0o644);
        site.file(&format!("{dir}/page.html"), "page\n", 0o644);
    }
    let server = site.start();
    for (dir, _, line) in cases {
        let r = server.get(&format!("/{dir}/page.html"));
        assert_eq!(r.status, 500, "{dir}: {}", r.text());
        let at = format!("{dir}/.htaccess, line {line}");
        assert!(r.text().contains(&at), "{at}: {}", r.text());
        assert!(!r.text().contains("page\n"));
    }
}

#[test]
fn htaccess_that_is_not_a_plain_file_is_refused() {
    let site = Site::new();
    site.file("real-rules", "Require all granted\n", 0o644);
    for dir in ["link", "fifo", "folder"] {
        site.file(&format!("{dir}/page.html"), "page\n", 0o644);
    }
    std::os::unix::fs::symlink("../real-rules", site.path("link/.htaccess")).expect("symlink");
    site.own(&site.path("link/.htaccess"));
    nix::unistd::mkfifo(
        &site.path("fifo/.htaccess"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .expect("mkfifo");
    site.own(&site.path("fifo/.htaccess"));
    site.dir("folder/.htaccess", 0o755);
    let server = site.start();
    for dir in ["link", "fifo", "folder"] {
        for path in [format!("/{dir}/page.html"), format!("/{dir}/")] {
            let r = server.get(&path);
            assert_eq!(r.status, 500, "{path}: {}", r.text());
            assert!(
                r.text().contains(&format!("{dir}/.htaccess")),
                "{path}: {}",
                r.text()
            );
            assert!(r.text().contains("not a regular file"), "{}", r.text());
        }
    }
    // Directories beside them are not affected.
    site.file("plain/page.html", "page\n", 0o644);
    assert_eq!(server.get("/plain/page.html").status, 200);
}

#[test]
fn htaccess_follow_symlinks_off_refuses_links_on_the_path() {
    let site = Site::new();
    site.file("target.html", "the target\n", 0o644);
    site.file("open/.htaccess", "Options +FollowSymLinks\n", 0o644);
    site.file("closed/.htaccess", "Options -FollowSymLinks\n", 0o644);
    site.file(
        "owners/.htaccess",
        "Options -FollowSymLinks +SymLinksIfOwnerMatch\n",
        0o644,
    );
    for dir in ["open", "closed", "owners"] {
        let link = site.path(&format!("{dir}/link.html"));
        std::os::unix::fs::symlink("../target.html", &link).expect("symlink");
        site.own(&link);
    }
    let server = site.start();
    assert_eq!(server.get("/open/link.html").text(), "the target\n");
    let r = server.get("/closed/link.html");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("FollowSymLinks"), "{}", r.text());
    // The link and its target have one owner: followed.
    assert_eq!(server.get("/owners/link.html").text(), "the target\n");
    if nix::unistd::Uid::effective().is_root() {
        // A link that is not its target's owner's is not.
        std::os::unix::fs::lchown(site.path("owners/link.html"), Some(0), Some(0)).expect("lchown");
        assert_eq!(server.get("/owners/link.html").status, 403);
    }
}
