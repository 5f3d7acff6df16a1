//! The admin listener (issue 21): `/metrics` in the Prometheus text format, which `promtool
//! check metrics` accepts and whose counters move by exactly the requests made; `/healthz`; and
//! none of it on the customers' HTTP port.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};

use crate::support::{PATIENCE, Server, Site, have, raw_body, raw_status};

/// The `listening admin=` address.
fn admin(server: &Server) -> SocketAddr {
    let line = server.wait_for("listening admin=");
    line.trim()
        .trim_start_matches("listening admin=")
        .parse()
        .unwrap_or_else(|_| panic!("bad line {line:?}"))
}

/// `GET path` on the admin listener: status and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
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
    assert!(
        after.contains("yadokari_http_response_head_seconds_bucket"),
        "{after}"
    );
    assert_eq!(get(addr, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(
        server.get("/metrics").status,
        404,
        "the customers' port has no metrics"
    );

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
    let out = Command::new(crate::support::BIN)
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
