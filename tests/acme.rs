//! Automatic certificates end to end against Debian's `pebble` ACME test server, validation
//! not skipped: `pebble-challtestsrv` is pebble's DNS and resolves every name to 127.0.0.1,
//! and pebble's `httpPort` is yadokari's HTTP port, so pebble really fetches
//! `/.well-known/acme-challenge/TOKEN` from the server under test. Certificates are made
//! short-lived so that a renewal happens within the test; a domain that resolves to an
//! address where nothing listens cannot be validated, which is logged and harms nothing.
//!
//! The files are checked, and that the TLS listener serves what was obtained (by SNI) and,
//! after the renewal, the renewed certificate.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::pki::Pki;
use crate::support::{Site, have};

/// A free port on 127.0.0.1 (bound and released: pebble needs numbers in its config).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A child process killed (by its own pid) and reaped when the test ends.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Pebble and its DNS, running.
struct Pebble {
    _dns: Owned,
    _pebble: Owned,
    /// The directory URL.
    directory: String,
    /// The CA file that signs pebble's own HTTPS certificate.
    ca: PathBuf,
    /// challtestsrv's management address.
    management: String,
}

/// Starts challtestsrv and pebble with certificates valid for `validity_secs`, validating
/// HTTP-01 on `http_port`.
fn start_pebble(dir: &Path, http_port: u16, validity_secs: u64) -> Pebble {
    // pebble's own HTTPS certificate, from a CA the server under test is told to trust.
    let pki = Pki::new(dir.join("ca"));
    let san = "IP:127.0.0.1,DNS:localhost";
    pki.issue_for(
        "pebble",
        "/CN=127.0.0.1",
        san,
        &dir.join("pebble.pem"),
        &dir.join("pebble.key"),
    );
    let (dns, management, acme) = (free_port(), free_port(), free_port());
    let management = format!("127.0.0.1:{management}");
    let dns_child = Command::new("pebble-challtestsrv")
        .args([
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
        ])
        .args([
            "-dns01",
            &format!("127.0.0.1:{dns}"),
            "-management",
            &management,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pebble-challtestsrv");
    let config = format!(
        r#"{{"pebble": {{"listenAddress": "127.0.0.1:{acme}", "managementListenAddress": "127.0.0.1:{}",
        "certificate": "pebble.pem", "privateKey": "pebble.key", "httpPort": {http_port},
        "tlsPort": {}, "ocspResponderURL": "", "externalAccountBindingRequired": false,
        "certificateValidityPeriod": {validity_secs}}}}}"#,
        free_port(),
        free_port()
    );
    std::fs::write(dir.join("pebble.json"), config).expect("pebble config");
    let pebble = Command::new("pebble")
        .current_dir(dir)
        .args([
            "-config",
            "pebble.json",
            "-dnsserver",
            &format!("127.0.0.1:{dns}"),
            "-strict=false",
        ])
        // Validation at once (no random sleep), no rejected nonces, and no authorization
        // reused: every order is validated afresh. Never PEBBLE_VA_ALWAYS_VALID.
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .env("PEBBLE_AUTHZREUSE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pebble");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", acme)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "pebble never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Pebble {
        _dns: Owned(dns_child),
        _pebble: Owned(pebble),
        directory: format!("https://127.0.0.1:{acme}/dir"),
        ca: PathBuf::from(pki.ca()),
        management,
    }
}

/// Makes challtestsrv resolve `host` to `address`.
fn resolve(pebble: &Pebble, host: &str, address: &str) {
    let body = format!(r#"{{"host": "{host}.", "addresses": ["{address}"]}}"#);
    ureq::post(&format!("http://{}/add-a", pebble.management))
        .send_string(&body)
        .expect("challtestsrv add-a");
}

/// `openssl x509 -noout -subject -enddate -serial -ext subjectAltName` of `pem`.
fn describe(pem: &Path) -> String {
    let o = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-enddate",
            "-serial",
            "-ext",
            "subjectAltName",
            "-in",
        ])
        .arg(pem)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn serial(description: &str) -> String {
    description
        .lines()
        .find_map(|l| l.strip_prefix("serial="))
        .expect("serial")
        .to_string()
}

/// The serial of the certificate the TLS listener at `https` sends for `name`, read with
/// `openssl s_client`; `None` when the handshake gives none.
fn served_serial(https: &str, name: &str) -> Option<String> {
    let shown = Command::new("openssl")
        .args(["s_client", "-connect", https, "-servername", name])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("openssl s_client");
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl x509");
    if let Some(mut input) = x509.stdin.take() {
        use std::io::Write;
        let _ = input.write_all(&shown.stdout);
    }
    let out = x509.wait_with_output().expect("openssl x509");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("serial="))
        .map(str::to_string)
}

/// Waits up to `secs` for `check`.
fn within(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn a_customer_domain_gets_a_certificate_renewed_before_expiry_and_a_bad_one_harms_nothing() {
    if !have("pebble") || !have("pebble-challtestsrv") || !have("openssl") {
        return;
    }
    let site = Site::new();
    let work = site.dir.path().join("pebble");
    std::fs::create_dir(&work).expect("mkdir");
    let http_port = free_port();
    let pebble = start_pebble(&work, http_port, 40);
    // Nothing listens on 127.0.0.2 at yadokari's port: pebble's validation of bad.test fails.
    resolve(&pebble, "bad.test", "127.0.0.2");
    site.file("index.html", "still here\n", 0o644);
    for name in ["good", "bad", "wild"] {
        site.dir(name, 0o755);
    }
    let site = site.config(&format!(
            "[server]\nhttp = \"127.0.0.1:{http_port}\"\nhttps = \"127.0.0.1:0\"\n\
             [acme]\ndirectory = \"{}\"\ncontact = \"hostmaster@example.test\"\n\
             state = \"certs\"\nca_bundle = \"{}\"\nrenew_at = 0.5\nretry_min_secs = 1\nretry_max_secs = 4\n\
             [[users]]\nname = \"good\"\nsite = \"htdocs/good\"\ndomains = [\"good.test\"]\nacme = true\n\
             [[users]]\nname = \"bad\"\nsite = \"htdocs/bad\"\ndomains = [\"bad.test\"]\nacme = true\n\
             [[users]]\nname = \"wild\"\nsite = \"htdocs/wild\"\ndomains = [\"*.wild.test\"]\nacme = true",
            pebble.directory,
            pebble.ca.display()
        ))
        ;
    let server = site.start();
    let https = server
        .wait_for("listening https=")
        .split_whitespace()
        .find_map(|w| w.strip_prefix("https="))
        .expect("https address")
        .to_string();

    // An unknown token is a 404 from the server itself, not from a site.
    let r = server.get("/.well-known/acme-challenge/no-such-token");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("text/plain"));

    let certs = site.dir.path().join("certs");
    let chain = certs.join("good.test").join("fullchain.pem");
    let key = certs.join("good.test").join("privkey.pem");
    assert!(
        within(60, || chain.exists()),
        "no certificate; output:\n{}",
        server.output()
    );
    let first = describe(&chain);
    assert!(first.contains("DNS:good.test"), "{first}");
    assert!(first.contains("notAfter="), "{first}");
    let mode = std::fs::metadata(&key).expect("key").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the private key must be 0600");
    // The HTTPS listener serves it to good.test (no default certificate is configured, so
    // before that there is no handshake at all).
    assert!(
        within(30, || served_serial(&https, "good.test")
            == Some(serial(&first))),
        "the obtained certificate is not served; output:\n{}",
        server.output()
    );
    let account = std::fs::metadata(certs.join(".account.json")).expect("account");
    assert_eq!(account.permissions().mode() & 0o777, 0o600);
    // Pebble really fetched the answer over HTTP from this server.
    let out = server.output();
    assert!(
        out.lines()
            .any(|l| l.contains("GET /.well-known/acme-challenge/") && l.contains(" 200 ")),
        "pebble never fetched a challenge:\n{out}"
    );

    // The bad domain: a clear line, retried with back-off, and the server still serves.
    let failed = server.wait_for("cannot obtain a certificate");
    assert!(failed.contains("bad.test"), "{failed}");
    server.wait_for("wildcard domain needs the DNS-01 challenge");
    assert!(!certs.join("bad.test").join("fullchain.pem").exists());
    assert_eq!(server.get("/").status, 200);

    // Renewal: at half of the 40 s lifetime a new certificate replaces the file.
    let serial_before = serial(&first);
    assert!(
        within(60, || std::fs::read(&chain)
            .is_ok_and(|_| serial(&describe(&chain)) != serial_before)),
        "never renewed; output:\n{}",
        server.output()
    );
    let mode = std::fs::metadata(&key).expect("key").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the renewed key must be 0600");
    assert!(
        within(30, || served_serial(&https, "good.test")
            .is_some_and(|s| s != serial_before)),
        "the renewed certificate is not served; output:\n{}",
        server.output()
    );
    let failures = server
        .output()
        .matches("cannot obtain a certificate")
        .count();
    assert!(
        failures >= 2,
        "the bad domain was not retried:\n{}",
        server.output()
    );
}
