//! Many customers on one server: a request reaches a customer's web root by its domain (exact
//! or `*.` wildcard, any case, any port) or at `/~name/` on any host; every other host gets
//! the default site. Scripts are told the site they run in, as Apache tells them.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{Server, raw_body, raw_status};

const ENV: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nprintf '%s\\n' \"SERVER_NAME=$SERVER_NAME\" \"DOCUMENT_ROOT=$DOCUMENT_ROOT\" \"CONTEXT_PREFIX=$CONTEXT_PREFIX\" \"CONTEXT_DOCUMENT_ROOT=$CONTEXT_DOCUMENT_ROOT\" \"SCRIPT_NAME=$SCRIPT_NAME\"\n";

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

struct Host {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    server: Server,
}

fn start() -> Host {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for (site, text) in [("htdocs", "default"), ("alice", "alice"), ("bob", "bob")] {
        write(&root.join(site).join("index.html"), text, 0o644);
        std::fs::set_permissions(root.join(site), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    write(&root.join("alice/cgi-bin/env.cgi"), ENV, 0o755);
    std::fs::set_permissions(
        root.join("alice/cgi-bin"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let config = root.join("y.toml");
    std::fs::write(
        &config,
        "[server]\ndocument_root = \"htdocs\"\nhttp = \"127.0.0.1:0\"\nsftp = \"127.0.0.1:0\"\n\
         [[users]]\nname = \"alice\"\nsite = \"alice\"\ndomains = [\"alice.example\"]\n\
         [[users]]\nname = \"bob\"\nsite = \"bob\"\ndomains = [\"*.bob.example\", \"bob.example\"]\n",
    )
    .expect("config");
    let server = Server::spawn(&["--config", config.to_str().expect("utf-8")]);
    Host {
        _dir: dir,
        root,
        server,
    }
}

fn get(server: &Server, host: &str, path: &str) -> (u16, String) {
    let raw = server.raw(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    (
        raw_status(&raw),
        String::from_utf8_lossy(raw_body(&raw)).into_owned(),
    )
}

#[test]
fn hosts_and_userdirs_reach_the_right_web_root() {
    let h = start();
    let s = &h.server;
    assert_eq!(get(s, "alice.example", "/"), (200, "alice".into()));
    assert_eq!(get(s, "ALICE.EXAMPLE:8080", "/"), (200, "alice".into()));
    assert_eq!(get(s, "www.bob.example", "/"), (200, "bob".into()));
    assert_eq!(get(s, "bob.example", "/"), (200, "bob".into()));
    assert_eq!(get(s, "unknown.example", "/"), (200, "default".into()));
    assert_eq!(get(s, "unknown.example", "/~alice/"), (200, "alice".into()));
    assert_eq!(
        get(s, "bob.example", "/~alice/index.html"),
        (200, "alice".into())
    );
    assert_eq!(get(s, "unknown.example", "/~nobody/").0, 404);
    let raw = s.raw(b"GET /~alice HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(raw_status(&raw), 301);
    assert!(String::from_utf8_lossy(&raw).contains("/~alice/"));
}

#[test]
fn scripts_are_told_the_site_they_run_in() {
    let h = start();
    let alice = h.root.join("alice");
    let (status, body) = get(&h.server, "alice.example", "/cgi-bin/env.cgi");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("SERVER_NAME=alice.example"), "{body}");
    assert!(
        body.contains(&format!("DOCUMENT_ROOT={}\n", alice.display())),
        "{body}"
    );
    assert!(body.contains("CONTEXT_PREFIX=\n"), "{body}");
    assert!(body.contains("SCRIPT_NAME=/cgi-bin/env.cgi"), "{body}");

    let (status, body) = get(&h.server, "unknown.example", "/~alice/cgi-bin/env.cgi");
    assert_eq!(status, 200, "{body}");
    let htdocs = h.root.join("htdocs");
    assert!(
        body.contains(&format!("DOCUMENT_ROOT={}\n", htdocs.display())),
        "{body}"
    );
    assert!(body.contains("CONTEXT_PREFIX=/~alice\n"), "{body}");
    assert!(
        body.contains(&format!("CONTEXT_DOCUMENT_ROOT={}\n", alice.display())),
        "{body}"
    );
    assert!(
        body.contains("SCRIPT_NAME=/~alice/cgi-bin/env.cgi"),
        "{body}"
    );
}

#[test]
fn explain_knows_the_users_sites() {
    let h = start();
    let explain = |what: &str| {
        let out = std::process::Command::new(crate::support::bin())
            .args(["explain", "--config"])
            .arg(h.root.join("y.toml"))
            .arg(what)
            .output()
            .expect("explain");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = explain("/~alice/cgi-bin/env.cgi");
    assert!(said.contains("runs as a CGI script"), "{said}");
    let file = h.root.join("alice/index.html");
    let said = explain(file.to_str().expect("utf-8"));
    assert!(
        said.contains("served as a static file (index.html)"),
        "{said}"
    );
    let said = explain("/~nobody/x");
    assert!(!said.contains("verdict"), "{said}");
}
