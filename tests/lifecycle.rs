//! Start-up, configuration errors, `explain`, SIGHUP reload and graceful shutdown.

use std::io::{Read, Write};
use std::process::Command;

use nix::sys::signal::Signal;

use crate::support::{Site, bin, raw_status};

/// Starts the server with `toml` added to its config; asserts it refuses to start and returns
/// what it said.
fn refused_start(toml: &str) -> String {
    let site = Site::new().config(toml);
    site.write_config();
    let out = Command::new(bin())
        .args(["--config"])
        .arg(site.config_path())
        .output()
        .expect("run");
    assert!(!out.status.success(), "started with {toml:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_bad_config_names_the_file_and_key_and_exits_non_zero() {
    let err = refused_start("[limits]\nmax_conections = 3");
    assert!(err.contains("yadokari.toml"), "{err}");
    assert!(err.contains("max_conections"), "{err}");

    let err = refused_start("[server]\nhttp = \"not an address\"");
    assert!(err.contains("key `server.http`"), "{err}");
}

#[test]
fn root_flag_serves_any_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("index.html"), "plain dir").expect("write");
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        dir.path(),
        nix::sys::stat::Mode::from_bits_truncate(0o755),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .expect("chmod");
    let empty_conf = tempfile::tempdir().expect("tempdir");
    let conf = empty_conf.path().join("none.toml");
    std::fs::write(&conf, "").expect("write");
    let server = crate::support::Server::spawn(&[
        "--config",
        conf.to_str().expect("utf-8"),
        "--root",
        dir.path().to_str().expect("utf-8"),
        "--http",
        "127.0.0.1:0",
    ]);
    assert_eq!(server.get("/").text(), "plain dir");
}

#[test]
fn explain_prints_the_verdict_reason_and_fix() {
    let site = Site::new();
    site.file("cgi-bin/bbs.cgi", "#!/bin/sh\n", 0o775);
    site.file("page.html", "x", 0o644);
    site.file("cgi-bin/crlf.cgi", "#!/usr/bin/perl\r\nprint 1;\r\n", 0o755);
    site.file("cgi-bin/ok.cgi", "#!/bin/sh\necho\n", 0o755);
    site.write_config();
    let run = |rel: &str| {
        Command::new(bin())
            .args(["explain", "--config"])
            .arg(site.config_path())
            .arg(site.path(rel))
            .output()
            .expect("run")
    };
    let out = run("cgi-bin/bbs.cgi");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("refused (500)"), "{text}");
    assert!(
        text.contains("`cgi-bin/bbs.cgi` is 0775: the group can write it"),
        "{text}"
    );
    assert!(text.contains("fix: chmod 755 cgi-bin/bbs.cgi"), "{text}");

    let out = run("cgi-bin/crlf.cgi");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("the system looks for the interpreter `/usr/bin/perl\\r`"),
        "{text}"
    );

    let out = run("cgi-bin/ok.cgi");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("runs as a CGI script"));

    let out = run("page.html");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("served as a static file"));
}

#[test]
fn sighup_reloads_and_a_bad_new_config_keeps_the_old_one() {
    let site = Site::new().config("[server]\nindex_files = [\"first.html\"]");
    site.file("first.html", "first", 0o644);
    site.file("second.html", "second", 0o644);
    let server = site.start();
    assert_eq!(server.get("/").text(), "first");
    let mut keep = server.connect();
    keep.write_all(b"GET /first.html HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");

    let config = std::fs::read_to_string(site.config_path()).expect("read");
    std::fs::write(
        site.config_path(),
        config.replace("first.html", "second.html"),
    )
    .expect("write");
    server.signal(Signal::SIGHUP);
    server.wait_for("configuration reloaded");
    assert_eq!(server.get("/").text(), "second");

    std::fs::write(site.config_path(), "[server]\nnonsense = 1\n").expect("write");
    server.signal(Signal::SIGHUP);
    server.wait_for("configuration not reloaded");
    assert_eq!(server.get("/").text(), "second");

    // The connection opened before the reloads is still served.
    keep.write_all(b"GET /first.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut buf = Vec::new();
    keep.read_to_end(&mut buf).expect("read");
    assert_eq!(String::from_utf8_lossy(&buf).matches("200 OK").count(), 2);
}

#[test]
fn sigterm_lets_an_in_flight_download_finish_and_exits_zero() {
    let site = Site::new();
    let content = vec![b'y'; 64 << 20];
    site.file("big.bin", &content, 0o644);
    let mut server = site.start();
    let mut s = server.connect();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut first = [0u8; 4096];
    let n = s.read(&mut first).expect("start of the response");
    assert!(n > 0);

    server.signal(Signal::SIGTERM);
    server.wait_for("shutting down");
    // New connections are refused once shutdown began.
    let refused = std::net::TcpStream::connect(server.http).and_then(|mut c| {
        c.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut b = [0u8; 16];
        c.read(&mut b)
    });
    assert!(
        matches!(refused, Err(_) | Ok(0)),
        "a new connection was served after SIGTERM"
    );

    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("the download goes on");
    let mut all = first[..n].to_vec();
    all.extend_from_slice(&rest);
    assert_eq!(raw_status(&all), 200);
    let body = crate::support::raw_body(&all);
    assert_eq!(body.len(), content.len(), "the in-flight download was cut");
    assert_eq!(server.wait_exit(), Some(0));
}

#[test]
fn a_mistyped_log_level_or_fallback_user_stops_the_start_and_a_missing_handler_is_warned() {
    for level in ["verbose", "warning", "debg"] {
        let err = refused_start(&format!("[server]\nlog_level = \"{level}\""));
        assert!(err.contains("server.log_level"), "{err}");
        assert!(err.contains("error, warn, info, debug, trace"), "{err}");
    }
    let err = refused_start("[cgi]\nfallback_user = \"no-such-account\"");
    assert!(err.contains("cgi.fallback_user"), "{err}");
    let site = Site::new().config("[cgi.handlers]\n\".xyz\" = \"/no/such/interpreter\"");
    let server = site.start();
    let line = server.wait_for("is not installed");
    assert!(line.contains("/no/such/interpreter"), "{line}");
}
