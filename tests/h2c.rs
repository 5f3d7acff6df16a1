//! Cleartext HTTP/2 with prior knowledge (`[server] h2c = true`): curl's
//! `--http2-prior-knowledge` gets HTTP/2 on the plain listener, HTTP/1.1 clients keep working
//! there, a static file larger than the sendfile threshold arrives whole, and a script sees
//! `SERVER_PROTOCOL=HTTP/2.0`. Off (the default), the preface is not HTTP/1.1 and is refused.

use std::process::Command;

use crate::support::{Site, have};

const ENV: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\n\
printf '%s\\n' \"SERVER_PROTOCOL=$SERVER_PROTOCOL\" \"HTTPS=${HTTPS:-off}\"\n";

/// `curl -s` with `args` on `url`: (the HTTP version curl reports, the body).
fn curl(args: &[&str], url: &str) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_version} %{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    let mut body = out.stdout;
    let split = body.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    let tail = String::from_utf8_lossy(&body[split..]).trim().to_string();
    body.truncate(split);
    (tail, body)
}

fn site() -> Site {
    let site = Site::new();
    let big: Vec<u8> = (0..300 * 1024u32).map(|i| (i % 251) as u8).collect();
    site.file("big.bin", big, 0o644);
    site.file("cgi-bin/env.cgi", ENV, 0o755);
    site
}

#[test]
fn h2c_prior_knowledge_serves_files_and_scripts_and_http_1_1_still_works() {
    if !have("curl") {
        return;
    }
    let site = site().config("[server]\nh2c = true");
    let server = site.start();
    let (version, body) = curl(&["--http2-prior-knowledge"], &server.url("/big.bin"));
    assert_eq!(version, "2 200");
    assert_eq!(
        body,
        std::fs::read(site.path("big.bin")).expect("read"),
        "the file must arrive whole over h2c"
    );
    let (version, body) = curl(
        &["--http2-prior-knowledge"],
        &server.url("/cgi-bin/env.cgi"),
    );
    assert_eq!(version, "2 200");
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("SERVER_PROTOCOL=HTTP/2.0"), "{text}");
    assert!(text.contains("HTTPS=off"), "{text}");
    let (version, body) = curl(&["--http1.1"], &server.url("/big.bin"));
    assert_eq!(version, "1.1 200");
    assert_eq!(body.len(), 300 * 1024);
    // The access log names the protocol as it names HTTP/1.1's.
    server.wait_for("\"GET /cgi-bin/env.cgi HTTP/2.0\" 200");
}

#[test]
fn without_h2c_the_preface_is_not_served() {
    if !have("curl") {
        return;
    }
    let site = site();
    let server = site.start();
    let (version, _) = curl(&["--http2-prior-knowledge"], &server.url("/big.bin"));
    assert!(!version.starts_with("2 "), "{version}");
    let (version, _) = curl(&["--http1.1"], &server.url("/big.bin"));
    assert_eq!(version, "1.1 200");
}
