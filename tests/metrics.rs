//! The admin listener (issue 21): `/metrics` in the Prometheus text format, which `promtool
//! check metrics` accepts and whose counters move by exactly the requests made; `/healthz`; and
//! none of it on the customers' HTTP port.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};

use crate::support::pki::Pki;
use crate::support::sftp::{SftpSite, local, text};
use crate::support::{PATIENCE, Server, Site, bin, eventually, have, raw_body, raw_status};

/// The `listening admin=` address.
pub(crate) fn admin(server: &Server) -> SocketAddr {
    let line = server.wait_for("listening admin=");
    line.trim()
        .trim_start_matches("listening admin=")
        .parse()
        .unwrap_or_else(|_| panic!("bad line {line:?}"))
}

/// `GET path` on the admin listener: status and body.
pub(crate) fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    (
        raw_status(&out),
        String::from_utf8_lossy(raw_body(&out)).into_owned(),
    )
}

/// The value of the sample line that starts with `series` (name and labels as rendered).
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn metrics_count_exactly_the_requests_made_and_promtool_accepts_them() {
    let site = Site::new().config("[server]\nadmin = \"127.0.0.1:0\"\nexplain_errors = true");
    site.file("page.html", "page\n", 0o644);
    site.dir("cgi-bin", 0o755);
    site.file(
        "cgi-bin/hello.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello\\n'\n",
        0o755,
    );
    site.file("cgi-bin/open.cgi", "#!/bin/sh\necho hi\n", 0o777);
    let server = site.start();
    let addr = admin(&server);
    let (status, before) = get(addr, "/metrics");
    assert_eq!(status, 200, "{before}");
    for _ in 0..3 {
        assert_eq!(server.get("/page.html").status, 200);
    }
    for _ in 0..2 {
        assert_eq!(server.get("/nothing-here").status, 404);
    }
    assert_eq!(server.get("/cgi-bin/hello.cgi").status, 200);
    assert_eq!(
        server.get("/cgi-bin/open.cgi").status,
        500,
        "writable by others: refused"
    );
    let (_, after) = get(addr, "/metrics");
    let moved = |labels: &[&str]| {
        sample(&after, "yadokari_http_requests_total", labels)
            - sample(&before, "yadokari_http_requests_total", labels)
    };
    assert_eq!(moved(&["code=\"2xx\"", "customer=\"-\""]), 4.0, "{after}");
    assert_eq!(moved(&["code=\"4xx\""]), 2.0, "{after}");
    assert_eq!(moved(&["code=\"5xx\""]), 1.0, "{after}");
    assert_eq!(
        sample(&after, "yadokari_cgi_started_total", &[]),
        1.0,
        "one script ran: {after}"
    );
    assert_eq!(
        sample(&after, "yadokari_refusals_total", &[]),
        1.0,
        "one refusal: {after}"
    );
    assert!(after.contains("yadokari_build_info"), "{after}");
    assert_eq!(
        sample(&after, "yadokari_http_response_head_seconds_count", &[])
            - sample(&before, "yadokari_http_response_head_seconds_count", &[]),
        7.0,
        "every request's time is in the histogram: {after}"
    );
    assert_eq!(
        sample(
            &after,
            "yadokari_http_response_head_seconds_bucket",
            &["le=\"+Inf\""]
        ),
        sample(&after, "yadokari_http_response_head_seconds_count", &[]),
        "{after}"
    );
    assert_eq!(get(addr, "/healthz"), (200, "ready\n".to_string()));
    assert_eq!(
        server.get("/metrics").status,
        404,
        "the customers' port has no metrics"
    );

    promtool_accepts(&after);
}

/// `promtool check metrics` accepts `text` (when promtool is installed; under CI it must be).
fn promtool_accepts(text: &str) {
    let after = text;
    if have("promtool") {
        let mut promtool = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool");
        promtool
            .stdin
            .take()
            .expect("stdin")
            .write_all(after.as_bytes())
            .expect("write");
        let out = promtool.wait_with_output().expect("promtool");
        assert!(
            out.status.success(),
            "promtool: {}{}\n{after}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_admin_listener_cannot_share_a_customer_facing_address() {
    // A fixed port, because port 0 is "any" and never the same as another listener's: the
    // configuration is refused before anything is bound.
    let site =
        Site::new().config("[server]\nhttp = \"127.0.0.1:18123\"\nadmin = \"127.0.0.1:18123\"");
    site.write_config();
    let out = Command::new(crate::support::bin())
        .arg("--config")
        .arg(site.config_path())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("server.admin") && err.contains("customer-facing"),
        "{err}"
    );
}

#[test]
fn bytes_script_times_quota_and_certificate_expiry_are_measured_and_health_says_ready() {
    if !have("openssl") || !have("sftp") {
        return;
    }
    let mut s = SftpSite::new("quota_bytes = 100000\n");
    let pki = Pki::new(s.site.dir.path().join("pki"));
    let (cert, key) = (
        s.site.dir.path().join("default.pem"),
        s.site.dir.path().join("default.key"),
    );
    pki.issue("metrics.example", "/CN=metrics.example", &cert, &key);
    // A fixed admin port, which `yadokari health` reads from the configuration.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    s.site = s.site.config(&format!(
        "[server]\nadmin = \"127.0.0.1:{port}\"\nhttps = \"127.0.0.1:0\"\n[tls]\ncertificate = \"{}\"\nkey = \"{}\"",
        cert.display(),
        key.display()
    ));
    s.site.file("page.html", "page\n", 0o644);
    s.site.dir("cgi-bin", 0o755);
    s.site.file(
        "cgi-bin/hello.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello\\n'\n",
        0o755,
    );
    let running = s.start();
    let server = &running.server;
    let addr = admin(server);
    let (_, before) = get(addr, "/metrics");
    let moved = |after: &str, name: &str, labels: &[&str]| {
        sample(after, name, labels) - sample(&before, name, labels)
    };

    // demo's site is the document root, so these are demo's: 3 x 5 bytes of page, 3 x 6 bytes
    // of script output; one script is handed a 100-byte body.
    for _ in 0..3 {
        assert_eq!(server.get("/page.html").text(), "page\n");
    }
    for _ in 0..2 {
        assert_eq!(server.get("/cgi-bin/hello.cgi").text(), "hello\n");
    }
    let posted = server.send("POST", "/cgi-bin/hello.cgi", &[], &[b'x'; 100]);
    assert_eq!(posted.text(), "hello\n");
    // A file uploaded: the customer's quota use is counted.
    let file = local(s.site.dir.path(), "up.bin", &[7u8; 1000]);
    let o = running.batch(&s.key, format!("put {} up.bin\n", file.display()));
    assert!(o.status.success(), "{}", text(&o));

    let mut after = String::new();
    assert!(
        eventually(|| {
            after = get(addr, "/metrics").1;
            moved(&after, "yadokari_cgi_run_seconds_count", &[]) == 3.0
        }),
        "each of the three scripts' run time is measured once it is reaped:\n{after}"
    );
    assert_eq!(
        moved(
            &after,
            "yadokari_http_sent_bytes_total",
            &["customer=\"demo\""]
        ),
        15.0 + 18.0,
        "{after}"
    );
    assert_eq!(
        moved(
            &after,
            "yadokari_http_received_bytes_total",
            &["customer=\"demo\""]
        ),
        100.0,
        "{after}"
    );
    let used = sample(&after, "yadokari_quota_used_bytes", &["customer=\"demo\""]);
    assert!(used >= 1000.0, "the upload counts: {used}\n{after}");
    assert_eq!(
        sample(&after, "yadokari_quota_limit_bytes", &["customer=\"demo\""]),
        100000.0,
        "{after}"
    );
    let expiry = sample(
        &after,
        "yadokari_certificate_expiry_timestamp_seconds",
        &["domain=\"metrics.example\""],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        expiry > now && expiry < now + 3.0 * 86400.0,
        "the two-day certificate's expiry: {expiry} (now {now})\n{after}"
    );
    promtool_accepts(&after);

    // `yadokari health` asks the same listener: ready while it serves, not once it is gone.
    let health = || {
        Command::new(bin())
            .args(["health", "--config"])
            .arg(s.site.config_path())
            .output()
            .expect("health")
    };
    let o = health();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("ready"),
        "{}",
        text(&o)
    );
    let mut running = running;
    running.server.signal(nix::sys::signal::Signal::SIGTERM);
    running.server.wait_exit();
    let o = health();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}
