//! What a container orchestrator relies on (issue 18), on the real binary: the health check
//! fails at SIGTERM while the server serves on for its stop delay (so a load balancer moves
//! away before the listeners close); it fails when the state directory cannot be written; the
//! configuration and addresses come from the environment; and an image's deploy version is
//! reported in `--version`, the banner and `SERVER_SOFTWARE`. The stack itself (image, swarm,
//! rolling updates under load) is tested by scripts/swarm-test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;

use crate::metrics::admin;
use crate::support::sftp::text;
use crate::support::{PATIENCE, Server, Site, bin, eventually, raw_body, raw_status};

/// `GET /healthz` on the admin listener: status and body.
fn health(addr: SocketAddr) -> (u16, String) {
    crate::metrics::get(addr, "/healthz")
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

/// A relay for `ssh -o ProxyCommand`: connects to the port given, sends a PROXY v1 header
/// naming 203.0.113.9 as the client (as a load balancer does), then copies both ways.
const PROXY_RELAY: &str = r#"
import os, socket, sys, threading
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 22\r\n")
def up():
    while True:
        d = os.read(0, 65536)
        if not d:
            s.shutdown(socket.SHUT_WR)
            return
        s.sendall(d)
threading.Thread(target=up, daemon=True).start()
while True:
    d = s.recv(65536)
    if not d:
        break
    os.write(1, d)
"#;

#[test]
fn behind_a_balancer_the_proxy_header_names_the_client_everywhere() {
    use crate::support::sftp::{SftpSite, ssh_options};
    let s = SftpSite::new("[server]\nproxy_protocol = true");
    s.site.file(
        "cgi-bin/addr.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s %s\\n' \"$REMOTE_ADDR\" \"$REMOTE_PORT\"\n",
        0o755,
    );
    let running = s.start();
    let server = &running.server;
    let exchange = |bytes: &[u8]| {
        let mut c = TcpStream::connect(server.http).expect("connect");
        c.set_read_timeout(Some(PATIENCE)).expect("timeout");
        c.write_all(bytes).expect("send");
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        out
    };
    // v1 and v2 headers: the script, and the access log, see the client they name.
    let request = b"GET /cgi-bin/addr.cgi HTTP/1.0\r\nHost: x\r\n\r\n";
    let mut v1 = b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 80\r\n".to_vec();
    v1.extend_from_slice(request);
    let out = exchange(&v1);
    assert_eq!(raw_status(&out), 200, "{}", String::from_utf8_lossy(&out));
    assert_eq!(raw_body(&out), b"203.0.113.9 40000\n");
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend_from_slice(&[0x21, 0x21, 0, 36]);
    let mut source = [0u8; 16];
    source[..2].copy_from_slice(&[0x20, 0x01]);
    source[2..4].copy_from_slice(&[0x0d, 0xb8]);
    source[15] = 7;
    v2.extend_from_slice(&source);
    v2.extend_from_slice(&[0u8; 15]);
    v2.push(1);
    v2.extend_from_slice(&[0xc3, 0x50, 0, 80]);
    v2.extend_from_slice(request);
    let out = exchange(&v2);
    assert_eq!(
        raw_body(&out),
        b"2001:db8::7 50000\n",
        "{}",
        String::from_utf8_lossy(&out)
    );
    server.wait_for("203.0.113.9 - -");
    // The shortest header (a balancer that does not know the client): the connection's own
    // address stands, and not a byte of the request is lost.
    let mut unknown = b"PROXY UNKNOWN\r\n".to_vec();
    unknown.extend_from_slice(request);
    let out = exchange(&unknown);
    assert_eq!(raw_status(&out), 200, "{}", String::from_utf8_lossy(&out));
    assert!(
        raw_body(&out).starts_with(b"127.0.0.1 "),
        "{}",
        String::from_utf8_lossy(&out)
    );

    // A connection without the header is refused, with a log line saying why.
    let out = exchange(request);
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    server.wait_for("did not start with a PROXY protocol header");

    // SFTP through a relay that speaks for the balancer: the login is the client's.
    let relay = s.site.file("relay.py", PROXY_RELAY, 0o644);
    let o = Command::new("sftp")
        .args(ssh_options(running.addr.port()))
        .arg("-o")
        .arg(format!(
            "ProxyCommand=python3 {} {}",
            relay.display(),
            running.addr.port()
        ))
        .arg("-i")
        .arg(&s.key)
        .args(["-o", "BatchMode=yes", "-b", "-", "demo@127.0.0.1"])
        .stdin(std::process::Stdio::piped())
        .output()
        .expect("sftp");
    assert!(o.status.success(), "{}\n{}", text(&o), server.output());
    let login = server.wait_for("sftp login (key)");
    assert!(login.contains("203.0.113.9"), "{login}");
    // Straight to the SFTP port, without the header: refused.
    let mut c = TcpStream::connect(running.addr).expect("connect");
    c.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let _ = c.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
}

#[test]
fn a_peer_outside_proxy_protocol_from_is_refused_even_with_a_header() {
    let site = Site::new()
        .config("[server]\nproxy_protocol = true\nproxy_protocol_from = [\"10.0.0.0/8\"]");
    site.file("index.html", "hello\n", 0o644);
    let server = site.start();
    let mut c = TcpStream::connect(server.http).expect("connect");
    c.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let _ =
        c.write_all(b"PROXY TCP4 10.1.2.3 127.0.0.1 40000 80\r\nGET /index.html HTTP/1.0\r\n\r\n");
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    server.wait_for("not a peer of server.proxy_protocol_from");
    // A bad network in the list stops the start, naming the key.
    let bad = Site::new()
        .config("[server]\nproxy_protocol = true\nproxy_protocol_from = [\"10.0.0.0/40\"]");
    bad.write_config();
    let o = Command::new("timeout")
        .args(["20", bin(), "--config"])
        .arg(bad.config_path())
        .output()
        .expect("start");
    assert!(!o.status.success());
    assert!(text(&o).contains("proxy_protocol_from"), "{}", text(&o));
}
