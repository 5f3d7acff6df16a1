//! `yadokari explain` and the SFTP transfer log's verdict go through the `.htaccess` files as a
//! request does, and name the file and line that decided.

use std::process::Command;

use crate::support::sftp::{SftpSite, local, text};
use crate::support::{Site, bin, have};

const OK_CGI: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nok'\n";

fn explain(site: &Site, what: &str) -> String {
    site.write_config();
    let out = Command::new(bin())
        .args(["explain", "--config"])
        .arg(site.config_path())
        .arg(what)
        .output()
        .expect("explain");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn access_rules_are_named_with_their_file_and_line() {
    let site = Site::new();
    site.file(
        "private/.htaccess",
        "# staff only\nAuthName \"Staff\"\nRequire all denied\n",
        0o644,
    );
    site.file("private/notes.html", "n", 0o644);
    site.file("old/.htaccess", "Order deny,allow\nDeny from all\n", 0o644);
    site.file("old/data.txt", "d", 0o644);
    let said = explain(&site, "/private/notes.html");
    assert!(said.contains("refused (403)"), "{said}");
    assert!(
        said.contains(".htaccess in /private/ (line 3: `Require all denied`) closes"),
        "{said}"
    );
    let said = explain(&site, "/old/data.txt");
    assert!(said.contains("refused (403)"), "{said}");
    assert!(said.contains("(line 2: `Deny from all`)"), "{said}");
    assert!(said.contains("depends on the visitor's address"), "{said}");
    // The request agrees.
    let server = site.start();
    assert_eq!(server.get("/private/notes.html").status, 403);
}

#[test]
fn a_broken_file_is_named_with_its_line_and_directive() {
    let site = Site::new();
    site.file("broken/.htaccess", "Options -Indexes\nFoo bar\n", 0o644);
    site.file("broken/a.html", "a", 0o644);
    let said = explain(&site, "/broken/a.html");
    assert!(said.contains("refused (500)"), "{said}");
    assert!(said.contains("line 2"), "{said}");
    assert!(
        said.contains("`Foo` is not a directive this server implements"),
        "{said}"
    );
}

#[test]
fn handlers_exec_cgi_redirects_rewrites_and_logins_are_named() {
    let site = Site::new();
    site.file(".htaccess", "AddHandler cgi-script .pl\n", 0o644);
    site.file("board.pl", OK_CGI, 0o755);
    site.file("cgi-bin/.htaccess", "Options -ExecCGI\n", 0o644);
    site.file("cgi-bin/off.cgi", OK_CGI, 0o755);
    site.file(
        "moved/.htaccess",
        "Redirect 301 /moved/old.html /new.html\n",
        0o644,
    );
    site.file(
        "app/.htaccess",
        "RewriteEngine On\nRewriteCond %{REQUEST_FILENAME} !-f\nRewriteRule . /app/index.cgi [L]\n",
        0o644,
    );
    site.file("app/index.cgi", OK_CGI, 0o755);
    site.file("app/style.css", "css", 0o644);
    site.file(
        "members/.htaccess",
        "AuthType Basic\nAuthName \"Members\"\nAuthUserFile .htpasswd\nRequire valid-user\n",
        0o644,
    );
    site.file("members/page.html", "m", 0o644);

    let said = explain(&site, "/board.pl");
    assert!(said.contains("runs as a CGI script"), "{said}");
    assert!(
        said.contains("the .htaccess in / (line 1: `AddHandler cgi-script .pl`)"),
        "{said}"
    );
    let said = explain(&site, "/cgi-bin/off.cgi");
    assert!(said.contains("refused (403)"), "{said}");
    assert!(
        said.contains("the .htaccess in /cgi-bin/ (line 1: `Options -ExecCGI`) turns scripts off"),
        "{said}"
    );
    let said = explain(&site, "/moved/old.html");
    assert!(said.contains("redirected (301) to"), "{said}");
    assert!(said.contains("/new.html"), "{said}");
    assert!(said.contains("the .htaccess in /moved/ (line 1"), "{said}");
    let said = explain(&site, "/app/some/pretty/url");
    assert!(said.contains("rewritten to /app/index.cgi"), "{said}");
    assert!(said.contains("(line 3: `RewriteRule"), "{said}");
    assert!(
        said.contains("runs as a CGI script (app/index.cgi)"),
        "{said}"
    );
    let said = explain(&site, "/app/style.css");
    assert!(said.contains("served as a static file"), "{said}");
    let said = explain(&site, "/members/page.html");
    assert!(
        said.contains("asks for a login first (401, realm \"Members\")"),
        "{said}"
    );
    assert!(said.contains("(line 4: `Require valid-user`)"), "{said}");
    assert!(said.contains("served as a static file"), "{said}");
}

#[test]
fn the_transfer_log_names_the_htaccess_line_that_decided() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("");
    let r = s.start();
    let work = tempfile::tempdir().expect("tempdir");
    let closed = local(work.path(), "closed", b"# data\nRequire all denied\n");
    let broken = local(work.path(), "broken", b"Options -Indexes\nFoo bar\n");
    let data = local(work.path(), "data.txt", b"secret");
    let o = r.batch(
        &s.key,
        format!(
            "mkdir data\nput {} data/.htaccess\nput {} data/list.txt\n",
            closed.display(),
            data.display()
        ),
    );
    assert!(o.status.success(), "{}", text(&o));
    let line = r.server.wait_for("data/list.txt");
    let line = if line.contains("refused") {
        line
    } else {
        r.server.wait_for("closes")
    };
    assert!(line.contains("refused (403)"), "{line}");
    assert!(
        line.contains(".htaccess in /data/ (line 2: `Require all denied`)"),
        "{line}"
    );
    assert_eq!(r.server.get("/data/list.txt").status, 403);

    let o = r.batch(
        &s.key,
        format!("mkdir odd\nput {} odd/.htaccess\n", broken.display()),
    );
    assert!(o.status.success(), "{}", text(&o));
    let line = r
        .server
        .wait_for("is not a directive this server implements");
    assert!(
        line.contains("refused (500)") && line.contains("line 2"),
        "{line}"
    );
}
