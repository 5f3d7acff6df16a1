//! `.htaccess` Basic authentication, end to end: password files made by the real `htpasswd`
//! (apache2-utils) with every hash it writes, credentials sent by the real `curl`, a CGI
//! script behind the protection told who logged in; a password file outside the customer's
//! home refused, and a protected directory with a line the server does not know refused
//! rather than opened.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::support::{Server, Site, curl, give_to_test_user, have};

const PROTECT: &str =
    "AuthType Basic\nAuthName \"Members only\"\nAuthUserFile .htpasswd\nRequire valid-user\n";

/// Prints who the server says logged in, and whether the password reached the script.
const WHO: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\necho \"REMOTE_USER=$REMOTE_USER\"\necho \"AUTH_TYPE=$AUTH_TYPE\"\necho \"HTTP_AUTHORIZATION=$HTTP_AUTHORIZATION\"\n";

/// Adds `user` with `password` to the htpasswd file `file`, hashed as `flag` says.
fn htpasswd(file: &Path, flag: &str, user: &str, password: &str) {
    let mut cmd = Command::new("htpasswd");
    cmd.arg("-b");
    if !file.exists() {
        cmd.arg("-c");
    }
    let out = cmd
        .arg(flag)
        .arg(file)
        .args([user, password])
        .output()
        .expect("htpasswd");
    assert!(
        out.status.success(),
        "htpasswd {flag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A site whose `/private/` is protected by `htaccess`, with an index and [`WHO`] in it, and
/// a password file `.htpasswd` in the home (the document root) with `users` (flag, name).
fn protected(htaccess: &str, users: &[(&str, &str)]) -> Site {
    let site = Site::new();
    site.file("private/index.html", "members' page\n", 0o644);
    site.file("private/who.cgi", WHO, 0o755);
    site.file("private/.htaccess", htaccess, 0o644);
    let file = site.path(".htpasswd");
    for (flag, user) in users {
        htpasswd(&file, flag, user, &format!("pw-{user}"));
    }
    if !users.is_empty() {
        site.own(&file);
        site.chmod(".htpasswd", 0o644);
    }
    site
}

fn user(name: &str) -> String {
    format!("{name}:pw-{name}")
}

#[test]
fn htaccess_basic_auth_with_every_htpasswd_hash() {
    if !have("htpasswd") || !have("curl") {
        return;
    }
    let hashes = [
        ("-B", "bcrypt"),
        ("-m", "apr1"),
        ("-s", "sha1"),
        ("-2", "sha256"),
        ("-5", "sha512"),
    ];
    let site = protected(PROTECT, &hashes);
    let written = std::fs::read_to_string(site.path(".htpasswd")).expect("read");
    for prefix in [
        "bcrypt:$2y$",
        "apr1:$apr1$",
        "sha1:{SHA}",
        "sha256:$5$",
        "sha512:$6$",
    ] {
        assert!(written.contains(prefix), "{prefix} missing in {written}");
    }
    let server = site.start();

    let r = curl(&server, &[], "/private/");
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"Members only\""),
        "{}",
        r.head
    );
    for (_, name) in hashes {
        let r = curl(&server, &["-u", &user(name)], "/private/");
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        assert_eq!(r.body, "members' page\n", "{name}");
        let r = curl(&server, &["-u", &format!("{name}:wrong")], "/private/");
        assert_eq!(r.status, 401, "{name} with a wrong password: {}", r.body);
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Basic realm=")),
            "{name}: {}",
            r.head
        );
        assert!(!r.body.contains("members' page"), "{name}");
    }
    // Outside the protected directory nothing is asked; the password file itself is hidden.
    site.file("open.html", "open\n", 0o644);
    assert_eq!(curl(&server, &[], "/open.html").status, 200);
    assert_eq!(curl(&server, &[], "/.htpasswd").status, 403);
}

#[test]
fn htaccess_basic_auth_tells_the_script_who_logged_in() {
    if !have("htpasswd") || !have("curl") {
        return;
    }
    let site = protected(PROTECT, &[("-B", "alice")]);
    let server = site.start();
    let r = curl(&server, &["-u", &user("alice")], "/private/who.cgi");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("REMOTE_USER=alice\n"), "{}", r.body);
    assert!(r.body.contains("AUTH_TYPE=Basic\n"), "{}", r.body);
    // The password itself stays with the server (no CGIPassAuth).
    assert!(r.body.contains("HTTP_AUTHORIZATION=\n"), "{}", r.body);
    let r = curl(&server, &[], "/private/who.cgi");
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(!r.body.contains("REMOTE_USER"), "{}", r.body);
    // A client cannot claim a user by itself.
    let r = curl(&server, &["-H", "Remote-User: alice"], "/private/who.cgi");
    assert_eq!(r.status, 401, "{}", r.body);
}

#[test]
fn htaccess_require_user_lets_only_that_user_in() {
    if !have("htpasswd") || !have("curl") {
        return;
    }
    let htaccess =
        "AuthType Basic\nAuthName \"Bob's room\"\nAuthUserFile .htpasswd\nRequire user bob\n";
    let site = protected(htaccess, &[("-B", "alice"), ("-B", "bob")]);
    let server = site.start();
    let r = curl(&server, &["-u", &user("bob")], "/private/who.cgi");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("REMOTE_USER=bob\n"), "{}", r.body);
    let r = curl(&server, &["-u", &user("alice")], "/private/who.cgi");
    assert_eq!(r.status, 401, "alice is not bob: {}", r.body);
    assert!(!r.body.contains("REMOTE_USER"), "{}", r.body);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"Bob's room\"")
    );
}

#[test]
fn htaccess_user_file_outside_the_home_is_refused() {
    if !have("curl") {
        return;
    }
    for (written, why) in [
        ("/etc/passwd", "outside your home"),
        ("../yadokari.toml", "outside your home"),
    ] {
        let htaccess = PROTECT.replace(".htpasswd", written);
        let site = protected(&htaccess, &[]);
        let server = site.start();
        // Refused before any password is tried, and with one too: nothing is checked against
        // a file that is not the customer's.
        for args in [&[][..], &["-u", "root:x"][..]] {
            let r = curl(&server, args, "/private/");
            assert_eq!(r.status, 500, "{written}: {}", r.body);
            assert!(r.body.contains(why), "{written}: {}", r.body);
            assert!(r.body.contains(written), "{written}: {}", r.body);
            assert!(!r.body.contains("members' page"), "{}", r.body);
        }
    }
}

/// Another customer's password file, by absolute path and by a relative path climbing out.
#[test]
fn htaccess_user_file_of_another_customer_is_refused() {
    if !have("htpasswd") || !have("curl") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for name in ["htdocs", "alice/public_html/private", "bob/public_html"] {
        std::fs::create_dir_all(root.join(name)).expect("mkdir");
    }
    std::fs::write(
        root.join("alice/public_html/private/index.html"),
        "alice's\n",
    )
    .expect("w");
    htpasswd(&root.join("alice/.htpasswd"), "-B", "alice", "pw-alice");
    htpasswd(&root.join("bob/.htpasswd"), "-B", "bob", "pw-bob");
    give_to_test_user(&root.join("alice"));
    give_to_test_user(&root.join("bob"));
    let config = root.join("y.toml");
    std::fs::write(
        &config,
        "[server]\ndocument_root = \"htdocs\"\nhttp = \"127.0.0.1:0\"\nsftp = \"127.0.0.1:0\"\nexplain_errors = true\n\
         [[users]]\nname = \"alice\"\nhome = \"alice\"\n[[users]]\nname = \"bob\"\nhome = \"bob\"\n",
    )
    .expect("config");
    let server = Server::spawn(&["--config", config.to_str().expect("utf-8")]);
    let htaccess = root.join("alice/public_html/private/.htaccess");
    let bobs = root.join("bob/.htpasswd");
    // Her own file, outside her web root, named relative to her home: works.
    std::fs::write(&htaccess, PROTECT).expect("write");
    give_to_test_user(&htaccess);
    let r = curl(&server, &["-u", &user("alice")], "/~alice/private/");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "alice's\n");
    for written in [bobs.to_str().expect("utf-8"), "../bob/.htpasswd"] {
        std::fs::write(&htaccess, PROTECT.replace(".htpasswd", written)).expect("write");
        for args in [&[][..], &["-u", "bob:pw-bob"][..]] {
            let r = curl(&server, args, "/~alice/private/");
            assert_eq!(r.status, 500, "{written}: {}", r.body);
            assert!(
                r.body.contains("outside your home"),
                "{written}: {}",
                r.body
            );
        }
    }
}

#[test]
fn htaccess_protected_directory_with_an_unknown_directive_stays_closed() {
    if !have("htpasswd") || !have("curl") {
        return;
    }
    let htaccess = format!("{PROTECT}SSLRequireSSL\n");
    let site = protected(&htaccess, &[("-B", "alice")]);
    let server = site.start();
    for args in [&[][..], &["-u", &user("alice")][..]] {
        for path in ["/private/", "/private/who.cgi", "/private/index.html"] {
            let r = curl(&server, args, path);
            assert_eq!(r.status, 500, "{path} {args:?}: {}", r.body);
            assert!(
                r.body.contains("private/.htaccess, line 5"),
                "{path}: {}",
                r.body
            );
            assert!(r.body.contains("SSLRequireSSL"), "{path}: {}", r.body);
            assert!(!r.body.contains("members' page"), "{}", r.body);
            assert!(!r.body.contains("REMOTE_USER"), "{}", r.body);
        }
    }
    // The error log names it too (waited for: the log line may follow the response).
    server.wait_for("SSLRequireSSL");
}

/// The customer's `ErrorDocument 401` page keeps the challenge, so the browser still asks for
/// the password; `Header always` lines reach refusals too.
#[test]
fn htaccess_error_document_for_a_login_keeps_the_challenge() {
    if !have("htpasswd") || !have("curl") {
        return;
    }
    let htaccess =
        format!("{PROTECT}ErrorDocument 401 /login-help.html\nHeader always set X-Protected yes\n");
    let site = protected(&htaccess, &[("-B", "alice")]);
    site.file(
        "login-help.html",
        "Ask the webmaster for a password.\n",
        0o644,
    );
    let server = site.start();
    for args in [&[][..], &["-u", "alice:wrong"][..]] {
        let r = curl(&server, args, "/private/");
        assert_eq!(r.status, 401, "{args:?}: {}", r.body);
        assert_eq!(r.body, "Ask the webmaster for a password.\n");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"Members only\""),
            "{}",
            r.head
        );
    }
    let r = curl(&server, &["-u", &user("alice")], "/private/");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-protected"), Some("yes"));

    // A quoted-text ErrorDocument for 401 too.
    std::fs::write(
        site.path("private/.htaccess"),
        format!("{PROTECT}ErrorDocument 401 \"Members only, sorry\"\n"),
    )
    .expect("write");
    let r = curl(&server, &[], "/private/");
    assert_eq!(r.status, 401);
    assert_eq!(r.body, "Members only, sorry");
    assert!(r.header("www-authenticate").is_some(), "{}", r.head);
}
