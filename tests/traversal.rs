//! Nothing outside the document root is ever returned: encoded dots, slashes, NUL, backslashes,
//! symlinks pointing out, and generated paths.

use std::os::unix::fs::symlink;

use proptest::prelude::*;

use crate::support::{Server, Site, raw_status};

const SECRET: &str = "TOP-SECRET-OUTSIDE-THE-ROOT";

/// A site whose parent directory holds a secret file, with symlinks pointing at it.
fn site_with_secret() -> Site {
    let site = Site::new();
    std::fs::write(site.dir.path().join("secret.txt"), SECRET).expect("write");
    site.file("inside.txt", "inside", 0o644);
    symlink(
        site.dir.path().join("secret.txt"),
        site.path("abs-link.txt"),
    )
    .expect("symlink");
    symlink("../secret.txt", site.path("rel-link.txt")).expect("symlink");
    symlink("inside.txt", site.path("inner-link.txt")).expect("symlink");
    site.dir("sub", 0o755);
    symlink("..", site.path("sub/up")).expect("symlink");
    site
}

fn fetch_raw(server: &Server, target: &str) -> Vec<u8> {
    server.raw(format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
}

#[test]
fn hostile_paths_never_leave_the_root() {
    let site = site_with_secret();
    let server = site.start();
    let targets = [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/%252e%252e/secret.txt",
        "/..%2fsecret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/inside.txt%00.html",
        "/..\\secret.txt",
        "/sub\\..\\..\\secret.txt",
        "/sub/up/../secret.txt",
        "/sub/up/up/secret.txt",
        "/abs-link.txt",
        "/rel-link.txt",
        "//../secret.txt",
        "/./../secret.txt",
    ];
    for target in targets {
        let raw = fetch_raw(&server, target);
        let text = String::from_utf8_lossy(&raw);
        assert!(
            !text.contains(SECRET),
            "{target} leaked the secret:\n{text}"
        );
        assert_ne!(raw_status(&raw), 200, "{target}");
    }
    // `%252e%252e` decodes once, to a literal name: a 404, not a climb.
    assert_eq!(
        raw_status(&fetch_raw(&server, "/%252e%252e/secret.txt")),
        404
    );
    // A symlink that leaves the site is refused with a reason.
    let r = server.get("/abs-link.txt");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("leads outside the site"), "{}", r.text());
    // A symlink that stays inside is followed.
    assert_eq!(server.get("/inner-link.txt").text(), "inside");
}

#[test]
fn generated_paths_never_reach_outside() {
    let site = site_with_secret();
    let server = site.start();
    let segment = prop_oneof![
        Just("..".to_string()),
        Just("%2e%2e".to_string()),
        Just("%2e".to_string()),
        Just(".".to_string()),
        Just("sub".to_string()),
        Just("up".to_string()),
        Just("secret.txt".to_string()),
        Just("rel-link.txt".to_string()),
        Just("abs-link.txt".to_string()),
        Just("%2f".to_string()),
        Just("%5c".to_string()),
        Just("".to_string()),
        "[a-z%0-9.]{1,6}",
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(segment, 1..7), |segments| {
            let target = format!("/{}", segments.join("/"));
            let raw = fetch_raw(&server, &target);
            let text = String::from_utf8_lossy(&raw);
            prop_assert!(!text.contains(SECRET), "{} leaked the secret", target);
            Ok(())
        })
        .expect("no generated path escapes");
}

#[test]
fn a_name_with_a_newline_cannot_forge_a_log_line() {
    let site = crate::support::Site::new();
    site.file(".ht\nERROR forged line", "x", 0o644);
    let server = site.start();
    let r = server.get("/.ht%0AERROR%20forged%20line");
    assert_eq!(r.status, 403);
    let line = server.wait_for("reason=\"hidden\"");
    assert!(line.contains("\\nERROR forged line"), "{line}");
    assert!(
        !server
            .output()
            .lines()
            .any(|l| l.starts_with("ERROR forged")),
        "{}",
        server.output()
    );
}
