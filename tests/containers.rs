//! What a container orchestrator relies on (issue 18), on the real binary: the health check
//! fails at SIGTERM while the server serves on for its stop delay (so a load balancer moves
//! away before the listeners close); it fails when the state directory cannot be written; the
//! configuration and addresses come from the environment; and an image's deploy version is
//! reported in `--version`, the banner and `SERVER_SOFTWARE`. The stack itself (image, swarm,
//! rolling updates under load) is tested by scripts/swarm-test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;

use crate::support::sftp::text;
use crate::support::{PATIENCE, Server, Site, bin, eventually, raw_body, raw_status};

/// The `listening admin=` address.
fn admin(server: &Server) -> SocketAddr {
    let line = server.wait_for("listening admin=");
    line.trim()
        .trim_start_matches("listening admin=")
        .parse()
        .unwrap_or_else(|_| panic!("bad line {line:?}"))
}

/// `GET /healthz` on the admin listener: status and body (status 0: nothing answered).
fn health(addr: SocketAddr) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    (
        raw_status(&out),
        String::from_utf8_lossy(raw_body(&out)).into_owned(),
    )
}

#[test]
fn at_sigterm_health_fails_at_once_and_the_server_serves_on_for_its_stop_delay() {
    let site = Site::new().config(
        "[server]\nadmin = \"127.0.0.1:0\"\n[limits]\nstop_delay_secs = 600\nshutdown_grace_secs = 5",
    );
    site.file("index.html", "hello\n", 0o644);
    let mut server = site.start();
    let addr = admin(&server);
    assert_eq!(health(addr), (200, "ready\n".into()));

    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(
        eventually(|| health(addr).0 == 503),
        "health still {:?} after SIGTERM",
        health(addr)
    );
    let (_, why) = health(addr);
    assert!(why.contains("stopping"), "{why}");
    let o = Command::new(bin())
        .args(["health", "--admin", &addr.to_string(), "--config"])
        .arg(site.config_path())
        .output()
        .expect("yadokari health");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("stopping"), "{}", text(&o));
    // Within the stop delay the listeners still take new connections and answer them.
    let r = server.get("/index.html");
    assert_eq!((r.status, r.text()), (200, "hello\n".into()));
    server.wait_for("serving on for the stop delay");

    // A second SIGTERM ends the delay at once: the server stops and exits 0.
    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(server.wait_exit(), Some(0), "{}", server.output());
}

#[test]
fn health_fails_when_the_state_directory_cannot_be_written_and_says_which() {
    let site = Site::new().config("[server]\nadmin = \"127.0.0.1:0\"");
    let server = site.start();
    let addr = admin(&server);
    assert_eq!(health(addr).0, 200);
    // The directory that holds the configuration (a container's state volume) goes away.
    let dir = site.config_path().parent().expect("dir").to_path_buf();
    let moved = dir.with_extension("moved");
    std::fs::rename(&dir, &moved).expect("move the state directory away");
    let (status, why) = health(addr);
    std::fs::rename(&moved, &dir).expect("move it back");
    assert_eq!(status, 503, "{why}");
    assert!(why.contains("cannot be written"), "{why}");
    assert!(why.contains(&dir.display().to_string()), "{why}");
    assert!(eventually(|| health(addr).0 == 200));
}

#[test]
fn the_environment_gives_the_configuration_addresses_and_deploy_version() {
    let site = Site::new().config("[server]\nhttp = \"127.0.0.1:1\"");
    site.file(
        "cgi-bin/software.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s\\n' \"$SERVER_SOFTWARE\"\n",
        0o755,
    );
    site.write_config();
    let version = Command::new(bin())
        .arg("--version")
        .env("YADOKARI_DEPLOY_VERSION", "v7")
        .output()
        .expect("--version");
    assert!(text(&version).contains("(deploy v7)"), "{}", text(&version));

    // No flag at all: the configuration file and the HTTP address (overriding the file's
    // unusable port 1) come from the environment, as in a container.
    let mut cmd = Command::new(bin());
    cmd.env("YADOKARI_CONFIG", site.config_path())
        .env("YADOKARI_HTTP", "127.0.0.1:0")
        .env("YADOKARI_ADMIN", "127.0.0.1:0")
        .env("YADOKARI_DEPLOY_VERSION", "v7");
    let server = Server::spawn_command(cmd);
    server.wait_for("(deploy v7) serving");
    let r = server.get("/cgi-bin/software.cgi");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().starts_with("yadokari/") && r.text().trim_end().ends_with("(deploy v7)"),
        "{}",
        r.text()
    );
    // `yadokari health` finds the admin listener through the same environment.
    let o = Command::new(bin())
        .arg("health")
        .env("YADOKARI_CONFIG", site.config_path())
        .env("YADOKARI_ADMIN", admin(&server).to_string())
        .output()
        .expect("health");
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn customers_added_at_once_through_two_replicas_all_land_with_identities_of_their_own() {
    use crate::support::host::{Host, as_root};
    if !as_root() {
        return;
    }
    // Replicas share one state volume; operators may `docker exec` into either at the same
    // moment. Each edit holds the file's lock, so none loses another's entry or identity.
    let h = Host::new("[hosting]\nhomes = \"homes\"\nuid_range = [24000, 24999]\n");
    let names: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
    let running: Vec<_> = names
        .iter()
        .map(|n| {
            Command::new(bin())
                .args(["user", "--config"])
                .arg(h.config())
                .args(["add", n, "--domain", &format!("{n}.example")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("user add")
        })
        .collect();
    for child in running {
        let o = child.wait_with_output().expect("wait");
        assert!(o.status.success(), "{}", text(&o));
    }
    let config = std::fs::read_to_string(h.config()).expect("config");
    let doc: toml_edit::DocumentMut = config.parse().expect("toml");
    let users = doc["users"].as_array_of_tables().expect("users");
    let mut uids: Vec<i64> = users
        .iter()
        .map(|u| u["uid"].as_integer().expect("uid"))
        .collect();
    let mut listed: Vec<String> = users
        .iter()
        .map(|u| u["name"].as_str().expect("name").to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, names, "{config}");
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), names.len(), "one identity each: {config}");
}
