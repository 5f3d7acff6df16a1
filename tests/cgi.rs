//! CGI end to end: real scripts run by the real binary, checked with a real HTTP client and raw
//! bytes.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::support::{Site, eventually, process_gone, raw_body, raw_status, wait_file};

const ENV_SCRIPT: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nenv\n";

/// A directory every script may write pid files into.
fn run_dir(site: &Site) -> PathBuf {
    let dir = site.dir.path().join("run");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    dir
}

fn env_lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn the_environment_is_rfc_3875_and_nothing_else() {
    let site = Site::new();
    site.file("cgi-bin/env.cgi", ENV_SCRIPT, 0o755);
    let server = site.start();
    let r = server.request(
        "GET",
        "/cgi-bin/env.cgi/some%20where/x?a=%41&b=%2F",
        &[
            ("Host", "example.test:8080"),
            ("Cookie", "a=1"),
            ("X-Custom", "yes"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let env = env_lines(&text);
    let port = server.http.port();
    for want in [
        "GATEWAY_INTERFACE=CGI/1.1".to_string(),
        "SERVER_PROTOCOL=HTTP/1.1".into(),
        "REQUEST_METHOD=GET".into(),
        "QUERY_STRING=a=%41&b=%2F".into(),
        "PATH_INFO=/some where/x".into(),
        format!(
            "PATH_TRANSLATED={}/some where/x",
            site.htdocs().canonicalize().expect("path").display()
        ),
        "SCRIPT_NAME=/cgi-bin/env.cgi".into(),
        format!(
            "SCRIPT_FILENAME={}/cgi-bin/env.cgi",
            site.htdocs().canonicalize().expect("path").display()
        ),
        "REQUEST_URI=/cgi-bin/env.cgi/some%20where/x?a=%41&b=%2F".into(),
        "SERVER_NAME=example.test".into(),
        format!("SERVER_PORT={port}"),
        "SERVER_ADDR=127.0.0.1".into(),
        "REMOTE_ADDR=127.0.0.1".into(),
        "REMOTE_HOST=127.0.0.1".into(),
        "REQUEST_SCHEME=http".into(),
        "HTTP_HOST=example.test:8080".into(),
        "HTTP_COOKIE=a=1".into(),
        "HTTP_X_CUSTOM=yes".into(),
        "PATH=/usr/local/bin:/usr/bin:/bin".into(),
        format!(
            "DOCUMENT_ROOT={}",
            site.htdocs().canonicalize().expect("path").display()
        ),
    ] {
        assert!(env.contains(&want.as_str()), "missing {want:?} in\n{text}");
    }
    let remote_port = env
        .iter()
        .find_map(|l| l.strip_prefix("REMOTE_PORT="))
        .and_then(|p| p.parse::<u16>().ok());
    assert!(remote_port.is_some_and(|p| p > 0), "{text}");
    assert!(
        !text.contains("YADOKARI_TEST_SERVER_SECRET"),
        "the server's environment leaked:\n{text}"
    );
    assert!(
        !text.contains("CARGO"),
        "the server's environment leaked:\n{text}"
    );
}

#[test]
fn header_hygiene() {
    let site = Site::new();
    site.file("cgi-bin/env.cgi", ENV_SCRIPT, 0o755);
    let server = site.start();
    let raw = server.raw(
        b"GET /cgi-bin/env.cgi HTTP/1.1\r\nHost: x\r\nProxy: http://evil.example/\r\nX_Foo: underscore\r\nX-Foo: dash\r\n\
Accept: a\r\nAccept: b\r\nCookie: c=1\r\nCookie: d=2\r\nAuthorization: Basic c2VjcmV0\r\nX-Bash: () { :; }; echo pwned\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(raw_body(&raw)).into_owned();
    let env = env_lines(&text);
    assert!(!text.contains("HTTP_PROXY"), "{text}");
    assert!(env.contains(&"HTTP_X_FOO=dash"), "{text}");
    assert!(!text.contains("underscore"), "{text}");
    assert!(env.contains(&"HTTP_ACCEPT=a, b"), "{text}");
    assert!(env.contains(&"HTTP_COOKIE=c=1; d=2"), "{text}");
    assert!(!text.contains("HTTP_AUTHORIZATION"), "{text}");
    assert!(!text.contains("pwned"), "{text}");
    assert!(!text.contains("REMOTE_USER"), "{text}");

    let site = Site::new().config("[cgi]\npass_authorization = true");
    site.file("cgi-bin/env.cgi", ENV_SCRIPT, 0o755);
    let server = site.start();
    let r = server.request(
        "GET",
        "/cgi-bin/env.cgi",
        &[("Authorization", "Basic c2VjcmV0")],
    );
    assert!(
        env_lines(&r.text()).contains(&"HTTP_AUTHORIZATION=Basic c2VjcmV0"),
        "{}",
        r.text()
    );
}

#[test]
fn ipv6_clients_get_their_address() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI needs IPv6 loopback"
        );
        eprintln!("skipping: no IPv6 loopback");
        return;
    }
    let site = Site::new();
    site.file("cgi-bin/env.cgi", ENV_SCRIPT, 0o755);
    let server = site.start_with(&["--http", "[::1]:0"]);
    let r = server.get("/cgi-bin/env.cgi");
    let text = r.text();
    assert!(env_lines(&text).contains(&"REMOTE_ADDR=::1"), "{text}");
    assert!(env_lines(&text).contains(&"SERVER_NAME=[::1]"), "{text}");
}

#[test]
fn the_gate_decides_which_scripts_run() {
    let site = Site::new();
    let hello = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nran\\n'\n";
    for mode in [0o755, 0o705, 0o700, 0o711, 0o750, 0o500] {
        site.file(&format!("cgi-bin/m{mode:o}.cgi"), hello, mode);
    }
    site.file("cgi-bin/m644.cgi", hello, 0o644);
    site.file("cgi-bin/m775.cgi", hello, 0o775);
    site.file("cgi-bin/m777.cgi", hello, 0o777);
    site.file("cgi-bin/m4755.cgi", hello, 0o4755);
    site.dir("open", 0o777);
    site.file("open/in-777-dir.cgi", hello, 0o755);
    site.chmod("open", 0o777);
    site.file("cgi-bin/target.cgi", hello, 0o755);
    std::os::unix::fs::symlink("target.cgi", site.path("cgi-bin/link.cgi")).expect("symlink");
    site.own(&site.path("cgi-bin/link.cgi"));
    site.file(
        "cgi-bin/crlf.cgi",
        "#!/bin/sh\r\nprintf 'Content-Type: text/plain\\r\\n\\r\\nran'\r\n",
        0o755,
    );
    site.file("cgi-bin/bom.cgi", format!("\u{feff}{hello}"), 0o755);
    site.file(
        "cgi-bin/nointerp.cgi",
        "#!/usr/bin/no-such-perl\nprint 1;\n",
        0o755,
    );
    site.file("cgi-bin/noshebang.cgi", "echo hi\n", 0o755);
    let server = site.start();

    for mode in [0o755, 0o705, 0o700, 0o711, 0o750, 0o500] {
        let r = server.get(&format!("/cgi-bin/m{mode:o}.cgi"));
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "ran\n"),
            "mode {mode:o}"
        );
    }
    let refused = [
        (
            "/cgi-bin/m644.cgi",
            "is 0644: nobody may execute it",
            "chmod 755 cgi-bin/m644.cgi",
        ),
        (
            "/cgi-bin/m775.cgi",
            "is 0775: the group can write it",
            "chmod 755 cgi-bin/m775.cgi",
        ),
        (
            "/cgi-bin/m777.cgi",
            "the group and everyone else can write it",
            "chmod 755",
        ),
        ("/cgi-bin/m4755.cgi", "setuid or setgid", "chmod 755"),
        (
            "/open/in-777-dir.cgi",
            "The directory `open` is 0777",
            "chmod 755 open",
        ),
        (
            "/cgi-bin/link.cgi",
            "is a symbolic link",
            "upload the script itself",
        ),
        (
            "/cgi-bin/crlf.cgi",
            "`/bin/sh\\r`",
            "LF (Unix) line endings",
        ),
        ("/cgi-bin/bom.cgi", "byte-order mark", "without BOM"),
        (
            "/cgi-bin/nointerp.cgi",
            "/usr/bin/no-such-perl does not exist",
            "Correct the first line",
        ),
        ("/cgi-bin/noshebang.cgi", "has no `#!` line", "#!/bin/sh"),
    ];
    for (path, why, fix) in refused {
        let r = server.get(path);
        let text = r.text();
        assert_eq!(r.status, 500, "{path}: {text}");
        assert!(text.contains(why), "{path}: expected {why:?} in\n{text}");
        assert!(text.contains(fix), "{path}: expected {fix:?} in\n{text}");
        assert!(!text.contains("printf"), "{path}: the source leaked");
    }
    server.wait_for("reason=\"not_executable\"");
    server.wait_for("reason=\"crlf_shebang\"");
}

#[test]
fn a_chmod_takes_effect_on_the_next_request() {
    let site = Site::new();
    site.file(
        "hello.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello'\n",
        0o644,
    );
    let server = site.start();
    assert_eq!(server.get("/hello.cgi").status, 500);
    site.chmod("hello.cgi", 0o755);
    let r = server.get("/hello.cgi");
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
}

#[test]
fn request_bodies_reach_stdin() {
    let site = Site::new().config("[limits]\nmax_request_body_bytes = 8000000");
    site.file(
        "cgi-bin/sum.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\necho \"len=$CONTENT_LENGTH\"\nsha256sum | cut -d' ' -f1\n",
        0o755,
    );
    site.file(
        "cgi-bin/ignore.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nignored'\n",
        0o755,
    );
    let server = site.start();

    let small = server.send(
        "POST",
        "/cgi-bin/sum.cgi",
        &[("Content-Type", "text/plain")],
        b"hello",
    );
    assert_eq!(
        small.text(),
        format!("len=5\n{}\n", hex(&Sha256::digest(b"hello")))
    );

    let big: Vec<u8> = (0..5u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let r = server.send("POST", "/cgi-bin/sum.cgi", &[], &big);
    assert_eq!(
        r.text(),
        format!("len={}\n{}\n", big.len(), hex(&Sha256::digest(&big)))
    );

    // Chunked: spooled, and CONTENT_LENGTH is set.
    let r = server.send_chunked("POST", "/cgi-bin/sum.cgi", b"hello world");
    assert_eq!(
        r.text(),
        format!("len=11\n{}\n", hex(&Sha256::digest(b"hello world")))
    );

    // A script that ignores its body still answers.
    let r = server.send("POST", "/cgi-bin/ignore.cgi", &[], &big);
    assert_eq!((r.status, r.text().as_str()), (200, "ignored"));
}

#[test]
fn output_before_input_does_not_deadlock() {
    let site = Site::new();
    // Writes 300 KB (more than any pipe buffer) before reading its 300 KB body.
    site.file(
        "cgi-bin/echo.cgi",
        "#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\n\\n'\nhead -c 300000 /dev/zero\nwc -c\n",
        0o755,
    );
    let server = site.start();
    let body = vec![b'x'; 300_000];
    let r = server.send("POST", "/cgi-bin/echo.cgi", &[], &body);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 300_000 + "300000\n".len());
    assert!(r.body.ends_with(b"300000\n"));
}

#[test]
fn bodies_over_the_limit_get_413_without_running_anything() {
    let site = Site::new().config("[limits]\nmax_request_body_bytes = 1000");
    let run = run_dir(&site);
    site.file(
        "cgi-bin/mark.cgi",
        format!(
            "#!/bin/sh\ntouch {}/ran\nprintf 'Content-Type: text/plain\\n\\nx'\n",
            run.display()
        ),
        0o755,
    );
    let server = site.start();
    let r = server.send("POST", "/cgi-bin/mark.cgi", &[], &[b'x'; 2000]);
    assert_eq!(r.status, 413);
    let raw = server.raw(
        format!(
            "POST /cgi-bin/mark.cgi HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n7d0\r\n{}\r\n0\r\n\r\n",
            "y".repeat(2000)
        )
        .as_bytes(),
    );
    assert_eq!(raw_status(&raw), 413);
    assert!(
        !run.join("ran").exists(),
        "the script ran for an oversized body"
    );
}

#[test]
fn status_location_and_header_handling() {
    let site = Site::new();
    let script = |body: &str| format!("#!/bin/sh\n{body}\n");
    site.file(
        "cgi-bin/status.cgi",
        script("printf 'Status: 404 Not Here\\nContent-Type: text/plain\\n\\nmissing'"),
        0o755,
    );
    site.file(
        "cgi-bin/badstatus.cgi",
        script("printf 'Status: abc\\n\\n'"),
        0o755,
    );
    site.file(
        "cgi-bin/abs.cgi",
        script("printf 'Location: http://example.org/elsewhere\\n\\n'"),
        0o755,
    );
    site.file(
        "cgi-bin/local.cgi",
        script("printf 'Location: /cgi-bin/target.cgi?from=local\\n\\n'"),
        0o755,
    );
    site.file(
        "cgi-bin/target.cgi",
        script("printf 'Content-Type: text/plain\\n\\n'; echo \"$REQUEST_METHOD $QUERY_STRING $REDIRECT_URL $REDIRECT_STATUS\""),
        0o755,
    );
    site.file(
        "cgi-bin/loop.cgi",
        script("printf 'Location: /cgi-bin/loop.cgi\\n\\n'"),
        0o755,
    );
    site.file(
        "cgi-bin/headeronly.cgi",
        script("printf 'Content-Type: text/plain\\nX-Only: 1\\n\\n'"),
        0o755,
    );
    site.file("cgi-bin/silent.cgi", script("exit 3"), 0o755);
    site.file("cgi-bin/nohead.cgi", script("echo 'hello world'"), 0o755);
    site.file(
        "cgi-bin/badname.cgi",
        script("printf 'Bad Name: x\\n\\n'"),
        0o755,
    );
    site.file(
        "cgi-bin/cookies.cgi",
        script(&format!(
            "printf 'Set-Cookie: a=1\\r\\nSet-Cookie: b={}\\r\\nTransfer-Encoding: chunked\\r\\nConnection: close\\r\\nContent-Type: text/plain\\r\\n\\r\\nok'",
            "x".repeat(4096)
        )),
        0o755,
    );
    site.file("static.txt", "static", 0o644);
    let server = site.start();

    let r = server.get("/cgi-bin/status.cgi");
    assert_eq!((r.status, r.text().as_str()), (404, "missing"));
    let r = server.get("/cgi-bin/badstatus.cgi");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("invalid Status header"), "{}", r.text());
    let r = server.get("/cgi-bin/abs.cgi");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://example.org/elsewhere"));
    let r = server.send("POST", "/cgi-bin/local.cgi", &[], b"body");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "GET from=local /cgi-bin/local.cgi 200\n");
    let r = server.get("/cgi-bin/loop.cgi");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("internal redirects"), "{}", r.text());
    let r = server.get("/cgi-bin/headeronly.cgi");
    assert_eq!(
        (r.status, r.header("x-only"), r.body.len()),
        (200, Some("1"), 0)
    );
    let r = server.get("/cgi-bin/silent.cgi");
    assert_eq!(r.status, 500);
    assert!(
        r.text()
            .contains("exited with status 3 without printing anything"),
        "{}",
        r.text()
    );
    let r = server.get("/cgi-bin/nohead.cgi");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("hello world"), "{}", r.text());
    let r = server.get("/cgi-bin/badname.cgi");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("malformed header line"), "{}", r.text());
    let r = server.get("/cgi-bin/cookies.cgi");
    assert_eq!(r.status, 200);
    let cookies = r.headers_named("set-cookie");
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    assert_eq!(cookies[1].len(), 4098);
    assert_eq!(r.text(), "ok");
}

#[test]
fn binary_output_is_byte_exact_and_head_sends_no_body() {
    let site = Site::new();
    let run = run_dir(&site);
    site.file(
        "cgi-bin/bin.cgi",
        format!("#!/bin/sh\ntouch {}/head-ran\nprintf 'Content-Type: application/octet-stream\\r\\n\\r\\n'\nhead -c 1048576 /dev/urandom | tee {}/sent\n", run.display(), run.display()),
        0o755,
    );
    let server = site.start();
    let r = server.get("/cgi-bin/bin.cgi");
    let sent = std::fs::read(run.join("sent")).expect("sent");
    assert_eq!(r.body.len(), 1 << 20);
    assert_eq!(hex(&Sha256::digest(&r.body)), hex(&Sha256::digest(&sent)));

    std::fs::remove_file(run.join("head-ran")).expect("rm");
    let raw = server.raw(b"HEAD /cgi-bin/bin.cgi HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(raw_status(&raw), 200);
    assert!(raw_body(&raw).is_empty());
    assert!(run.join("head-ran").exists(), "HEAD did not run the script");
}

#[test]
fn output_streams_before_the_script_ends() {
    let site = Site::new();
    let run = run_dir(&site);
    let go = run.join("go");
    site.file(
        "cgi-bin/slow.cgi",
        format!(
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nfirst line\\n'\nwhile [ ! -e {} ]; do sleep 0.05; done\necho second line\n",
            go.display()
        ),
        0o755,
    );
    let server = site.start();
    let mut s = server.connect();
    s.write_all(b"GET /cgi-bin/slow.cgi HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut reader = BufReader::new(s);
    let mut seen = String::new();
    while !seen.contains("first line") {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).expect("read") > 0,
            "ended early: {seen}"
        );
        seen.push_str(&line);
    }
    // The first line arrived while the script is still waiting for `go`.
    std::fs::write(&go, "").expect("go");
    let mut rest = String::new();
    reader.read_to_string(&mut rest).expect("read");
    assert!(rest.contains("second line"), "{rest}");
}

#[test]
fn nph_scripts_send_their_own_status_line() {
    let site = Site::new();
    site.file(
        "cgi-bin/nph-raw.cgi",
        "#!/bin/sh\nprintf 'HTTP/1.1 201 Created\\r\\nContent-Type: text/plain\\r\\nX-Nph: yes\\r\\n\\r\\nmade'\n",
        0o755,
    );
    let server = site.start();
    let r = server.get("/cgi-bin/nph-raw.cgi");
    assert_eq!(
        (r.status, r.header("x-nph"), r.text().as_str()),
        (201, Some("yes"), "made")
    );
}

/// A script that starts a grandchild and records both pids, then does `rest`.
fn family_script(run: &std::path::Path, name: &str, rest: &str) -> String {
    format!(
        "#!/bin/sh\nsleep 1000 &\necho $! > {dir}/{name}.child.tmp\necho $$ > {dir}/{name}.self.tmp\nmv {dir}/{name}.child.tmp {dir}/{name}.child\nmv {dir}/{name}.self.tmp {dir}/{name}.self\n{rest}\n",
        dir = run.display()
    )
}

fn pids(run: &std::path::Path, name: &str) -> (i32, i32) {
    let read = |suffix: &str| {
        wait_file(&run.join(format!("{name}.{suffix}")))
            .trim()
            .parse::<i32>()
            .expect("pid")
    };
    (read("self"), read("child"))
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let site = Site::new().config("[cgi]\nheader_timeout_secs = 1\nrun_timeout_secs = 2");
    let run = run_dir(&site);
    site.file(
        "cgi-bin/silent.cgi",
        family_script(&run, "silent", "sleep 1000"),
        0o755,
    );
    site.file(
        "cgi-bin/long.cgi",
        family_script(
            &run,
            "long",
            "printf 'Content-Type: text/plain\\n\\nstarted\\n'\nsleep 1000",
        ),
        0o755,
    );
    let server = site.start();
    let r = server.get("/cgi-bin/silent.cgi");
    assert_eq!(r.status, 504);
    let (script, grandchild) = pids(&run, "silent");
    assert!(
        eventually(|| process_gone(script) && process_gone(grandchild)),
        "silent script left running"
    );

    // Past the run limit, the response ends (cut) and the group is killed.
    let raw = server.raw(b"GET /cgi-bin/long.cgi HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(String::from_utf8_lossy(&raw).contains("started"));
    let (script, grandchild) = pids(&run, "long");
    assert!(
        eventually(|| process_gone(script) && process_gone(grandchild)),
        "long script left running"
    );
}

#[test]
fn the_run_limit_holds_even_when_the_client_stops_reading() {
    let site = Site::new().config("[cgi]\nrun_timeout_secs = 2");
    let run = run_dir(&site);
    site.file(
        "cgi-bin/flood.cgi",
        family_script(
            &run,
            "flood",
            "printf 'Content-Type: text/plain\\n\\n'\nexec yes",
        ),
        0o755,
    );
    let server = site.start();
    let mut s = server.connect();
    s.write_all(b"GET /cgi-bin/flood.cgi HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 64];
    assert!(s.read(&mut buf).expect("read") > 0);
    // Stop reading: the script blocks on a full pipe and hyper stops polling its output.
    let (script, grandchild) = pids(&run, "flood");
    assert!(
        eventually(|| process_gone(script) && process_gone(grandchild)),
        "the script outlived its run limit behind a stalled client"
    );
    drop(s);
}

#[test]
fn a_client_that_goes_away_kills_the_group() {
    let site = Site::new();
    let run = run_dir(&site);
    site.file(
        "cgi-bin/quiet.cgi",
        family_script(&run, "quiet", "sleep 1000"),
        0o755,
    );
    site.file(
        "cgi-bin/talky.cgi",
        family_script(
            &run,
            "talky",
            "printf 'Content-Type: text/plain\\n\\nhello\\n'\nsleep 1000",
        ),
        0o755,
    );
    let server = site.start();
    for name in ["quiet", "talky"] {
        let mut s = server.connect();
        s.write_all(format!("GET /cgi-bin/{name}.cgi HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .expect("write");
        let (script, grandchild) = pids(&run, name);
        if name == "talky" {
            let mut buf = [0u8; 256];
            assert!(s.read(&mut buf).expect("read") > 0);
        }
        drop(s);
        assert!(
            eventually(|| process_gone(script) && process_gone(grandchild)),
            "{name}: the script or its child survived the client"
        );
    }
}

#[test]
fn a_background_child_does_not_hold_the_response() {
    let site = Site::new();
    let run = run_dir(&site);
    site.file(
        "cgi-bin/bg.cgi",
        format!(
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\ndone\\n'\nsleep 1000 &\necho $! > {dir}/bg.tmp\nmv {dir}/bg.tmp {dir}/bg\nexit 0\n",
            dir = run.display()
        ),
        0o755,
    );
    let server = site.start();
    let r = server.get("/cgi-bin/bg.cgi");
    assert_eq!((r.status, r.text().as_str()), (200, "done\n"));
    let leftover: i32 = wait_file(&run.join("bg")).trim().parse().expect("pid");
    assert!(
        eventually(|| process_gone(leftover)),
        "the background child was left running"
    );
}

#[test]
fn no_zombies_after_many_concurrent_requests() {
    let site = Site::new();
    site.file(
        "cgi-bin/hi.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhi'\n",
        0o755,
    );
    let server = site.start();
    let url = server.url("/cgi-bin/hi.cgi");
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(crate::support::PATIENCE)
                    .build();
                for _ in 0..25 {
                    let r = agent.get(&url).call().expect("request");
                    assert_eq!(r.into_string().expect("body"), "hi");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let server_pid = server.pid();
    let children = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
            .filter(|stat| {
                stat.rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().nth(1))
                    .is_some_and(|ppid| ppid == server_pid.to_string())
            })
            .collect()
    };
    assert!(
        eventually(|| children().is_empty()),
        "children left: {:?}",
        children()
    );
}

#[test]
fn over_the_script_cap_requests_get_503() {
    let site = Site::new().config("[cgi]\nmax_concurrent = 1\nqueue_wait_ms = 200");
    let run = run_dir(&site);
    let go = run.join("go");
    site.file(
        "cgi-bin/hold.cgi",
        format!("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\ntouch {dir}/holding\nwhile [ ! -e {go} ]; do sleep 0.05; done\necho released\n", dir = run.display(), go = go.display()),
        0o755,
    );
    let server = site.start();
    let mut first = server.connect();
    first
        .write_all(b"GET /cgi-bin/hold.cgi HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    assert!(eventually(|| run.join("holding").exists()));
    let r = server.get("/cgi-bin/hold.cgi");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    std::fs::write(&go, "").expect("go");
    let mut rest = String::new();
    first.read_to_string(&mut rest).expect("read");
    assert!(rest.contains("released"));
    assert_eq!(server.get("/cgi-bin/hold.cgi").status, 200);
}

#[test]
fn as_root_scripts_run_as_their_owner_or_the_fallback_user() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let id = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nid -u; id -G\n";
    let site = Site::new();
    site.file("cgi-bin/id.cgi", id, 0o755);
    let server = site.start();
    let text = server.get("/cgi-bin/id.cgi").text();
    let (uid, _) = crate::support::test_user().expect("test user");
    let group = nix::unistd::Group::from_name(crate::support::TEST_GROUP)
        .expect("group")
        .expect("group");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(uid.to_string().as_str()), "{text}");
    assert!(
        lines
            .next()
            .is_some_and(|g| g.split(' ').any(|g| g == group.gid.to_string())),
        "{text}"
    );

    let site = Site::owned_by(None);
    site.file("cgi-bin/id.cgi", id, 0o755);
    let server = site.start();
    let text = server.get("/cgi-bin/id.cgi").text();
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("nobody")
        .expect("nobody");
    assert_eq!(
        text.lines().next(),
        Some(nobody.uid.to_string().as_str()),
        "{text}"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn reason_phrases_are_kept_and_informational_statuses_refused() {
    let site = Site::new();
    site.file(
        "cgi-bin/nph-custom.cgi",
        "#!/bin/sh\nprintf 'HTTP/1.1 299 Custom Thing\\r\\nContent-Type: text/plain\\r\\n\\r\\nnph'\n",
        0o755,
    );
    site.file(
        "cgi-bin/custom.cgi",
        "#!/bin/sh\nprintf 'Status: 299 Custom Thing\\nContent-Type: text/plain\\n\\nparsed'\n",
        0o755,
    );
    site.file(
        "cgi-bin/info.cgi",
        "#!/bin/sh\nprintf 'Status: %s\\nContent-Type: text/plain\\n\\nx' \"$QUERY_STRING\"\n",
        0o755,
    );
    site.file(
        "cgi-bin/nph-switch.cgi",
        "#!/bin/sh\nprintf 'HTTP/1.1 101 Switching Protocols\\r\\n\\r\\n'\n",
        0o755,
    );
    let server = site.start();
    let status_line = |path: &str| {
        let raw = server
            .raw(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
        let text = String::from_utf8_lossy(&raw).into_owned();
        text.lines().next().unwrap_or("").to_string()
    };
    assert_eq!(
        status_line("/cgi-bin/nph-custom.cgi"),
        "HTTP/1.1 299 Custom Thing"
    );
    assert_eq!(
        status_line("/cgi-bin/custom.cgi"),
        "HTTP/1.1 299 Custom Thing"
    );
    for code in ["100", "101", "102", "103", "199"] {
        let path = format!("/cgi-bin/info.cgi?{code}");
        let r = server.get(&path);
        assert_eq!(r.status, 500, "{code}");
        assert!(r.text().contains("informational"), "{code}: {}", r.text());
    }
    assert!(status_line("/cgi-bin/nph-switch.cgi").starts_with("HTTP/1.1 500"));
    server.wait_for("informational_status");
}
