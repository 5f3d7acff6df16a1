//! HTTPS: certificates from a test CA made here with the `openssl` CLI (ECDSA P-256), picked
//! by SNI (a customer's own files, `[tls] directory`, the default), TLS 1.2 and 1.3, HTTP/2 by
//! ALPN, a certificate replaced on disk, CGI over h2, and static files byte-exact over TLS.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use sha2::{Digest, Sha256};

use crate::support::pki::{Pki, run, write};
use crate::support::{PATIENCE, Server, eventually, have};

const CGI: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\n\
printf '%s\\n' \"HTTPS=$HTTPS\" \"REQUEST_SCHEME=$REQUEST_SCHEME\" \"SERVER_PORT=$SERVER_PORT\" \"SERVER_PROTOCOL=$SERVER_PROTOCOL\" \"SERVER_NAME=$SERVER_NAME\" \"HTTP_HOST=$HTTP_HOST\"\n\
sha256sum | cut -d' ' -f1\n";

const STREAM: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nfirst\\n'\n\
i=0; while [ ! -e \"$QUERY_STRING\" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\n\
printf 'second\\n'\n";

struct Tls {
    root: PathBuf,
    pki: Pki,
    server: Server,
    https: String,
    _dir: tempfile::TempDir,
}

/// alice has her own files, bob's are in `[tls] directory`, anything else gets the default.
fn start() -> Tls {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for (site, text) in [("htdocs", "default"), ("alice", "alice"), ("bob", "bob")] {
        write(&root.join(site).join("index.html"), text, 0o644);
        std::fs::set_permissions(root.join(site), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    write(&root.join("alice/cgi-bin/env.cgi"), CGI, 0o755);
    write(&root.join("alice/cgi-bin/stream.cgi"), STREAM, 0o755);
    std::fs::set_permissions(
        root.join("alice/cgi-bin"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let pki = Pki::new(root.join("pki"));
    let certs = root.join("certs");
    pki.issue(
        "default.example",
        "/CN=default.example",
        &certs.join("default.pem"),
        &certs.join("default.key"),
    );
    pki.issue(
        "alice.example",
        "/CN=alice.example",
        &certs.join("alice.pem"),
        &certs.join("alice.key"),
    );
    let acme = root.join("acme");
    pki.issue(
        "bob.example",
        "/CN=bob.example",
        &acme.join("bob.example/fullchain.pem"),
        &acme.join("bob.example/privkey.pem"),
    );
    let config = root.join("y.toml");
    std::fs::write(
        &config,
        "[server]\ndocument_root = \"htdocs\"\nhttp = \"127.0.0.1:0\"\nsftp = \"127.0.0.1:0\"\n\
         https = \"127.0.0.1:1\"\n\
         [tls]\ncertificate = \"certs/default.pem\"\nkey = \"certs/default.key\"\ndirectory = \"acme\"\n\
         [[users]]\nname = \"alice\"\nsite = \"alice\"\ndomains = [\"alice.example\"]\n\
         tls_certificate = \"certs/alice.pem\"\ntls_key = \"certs/alice.key\"\n\
         [[users]]\nname = \"bob\"\nsite = \"bob\"\ndomains = [\"bob.example\"]\n\
         force_https = true\nhsts_max_age = 300\n",
    )
    .expect("config");
    // `--https` wins over the file's `https`.
    let config = config.to_str().expect("utf-8");
    let server = Server::spawn(&["--config", config, "--https", "127.0.0.1:0"]);
    let line = server.wait_for("listening https=");
    let https = line
        .trim()
        .trim_start_matches("listening https=")
        .to_string();
    Tls {
        root,
        pki,
        server,
        https,
        _dir: dir,
    }
}

impl Tls {
    fn port(&self) -> &str {
        self.https.rsplit(':').next().expect("port")
    }

    /// `curl` over HTTPS to `name` (resolved to the server), with the test CA.
    fn curl(&self, name: &str, args: &[&str], path: &str) -> Output {
        let resolve = format!("{name}:{}:127.0.0.1", self.port());
        let url = format!("https://{name}:{}{path}", self.port());
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time"])
            .arg(PATIENCE.as_secs().to_string())
            .args(["--cacert", &self.pki.ca(), "--resolve", &resolve])
            .args(args)
            .arg(url);
        run(&mut cmd)
    }

    /// What `openssl s_client` says of a handshake asking for `name` with `version`.
    fn handshake(&self, name: &str, version: &str) -> String {
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &self.https,
                "-servername",
                name,
                version,
            ])
            .args(["-CAfile", &self.pki.ca()])
            .stdin(Stdio::null())
            .output()
            .expect("run openssl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn tools() -> bool {
    have("curl") && have("openssl")
}

#[test]
fn sni_picks_each_customers_certificate_and_the_default_for_others() {
    if !tools() {
        return;
    }
    let t = start();
    let alice = t.curl("alice.example", &["-v"], "/");
    assert_eq!(String::from_utf8_lossy(&alice.stdout), "alice");
    assert!(String::from_utf8_lossy(&alice.stderr).contains("subject: CN=alice.example"));
    let bob = t.curl("bob.example", &["-v"], "/");
    assert_eq!(String::from_utf8_lossy(&bob.stdout), "bob");
    assert!(String::from_utf8_lossy(&bob.stderr).contains("subject: CN=bob.example"));
    let other = t.handshake("other.example", "-tls1_3");
    assert!(other.contains("subject=CN = default.example"), "{other}");
    let alice13 = t.handshake("alice.example", "-tls1_3");
    assert!(alice13.contains("subject=CN = alice.example"), "{alice13}");
    assert!(alice13.contains("TLSv1.3"), "{alice13}");
    let bob12 = t.handshake("bob.example", "-tls1_2");
    assert!(bob12.contains("subject=CN = bob.example"), "{bob12}");
    assert!(bob12.contains("TLSv1.2"), "{bob12}");
    // Plain HTTP is untouched.
    let plain = crate::support::curl(&t.server, &["-H", "Host: alice.example"], "/");
    assert_eq!(plain.body, "alice");
}

#[test]
fn alpn_negotiates_h2_and_falls_back_to_http_1_1() {
    if !tools() {
        return;
    }
    let t = start();
    let h2 = t.curl(
        "alice.example",
        &["--http2", "-o", "/dev/null", "-w", "%{http_version}"],
        "/",
    );
    assert_eq!(String::from_utf8_lossy(&h2.stdout), "2");
    let h1 = t.curl(
        "alice.example",
        &["--http1.1", "-o", "/dev/null", "-w", "%{http_version}"],
        "/",
    );
    assert_eq!(String::from_utf8_lossy(&h1.stdout), "1.1");
    let body = t.curl("bob.example", &["--http2"], "/");
    assert_eq!(String::from_utf8_lossy(&body.stdout), "bob");
}

#[test]
fn a_certificate_replaced_on_disk_is_served_on_the_next_connection() {
    if !tools() {
        return;
    }
    let t = start();
    assert!(
        t.handshake("alice.example", "-tls1_3")
            .contains("subject=CN = alice.example")
    );
    let certs = t.root.join("certs");
    t.pki.issue(
        "alice.example",
        "/O=renewed/CN=alice.example",
        &certs.join("alice.pem"),
        &certs.join("alice.key"),
    );
    assert!(
        eventually(|| t
            .handshake("alice.example", "-tls1_3")
            .contains("O = renewed")),
        "the renewed certificate was never served"
    );
    // A domain that appears in the directory later is picked up too.
    let acme = t.root.join("acme");
    t.pki.issue(
        "carol.example",
        "/CN=carol.example",
        &acme.join("carol.example/fullchain.pem"),
        &acme.join("carol.example/privkey.pem"),
    );
    assert!(
        eventually(|| t
            .handshake("carol.example", "-tls1_3")
            .contains("subject=CN = carol.example")),
        "the new directory entry was never served"
    );
}

#[test]
fn cgi_over_h2_sees_https_and_gets_its_whole_body_and_streams() {
    if !tools() {
        return;
    }
    let t = start();
    let body: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    let upload = t.root.join("upload.bin");
    std::fs::write(&upload, &body).expect("write");
    let data = format!("@{}", upload.display());
    let out = t.curl(
        "alice.example",
        &[
            "--http2",
            "--data-binary",
            &data,
            "-H",
            "Content-Type: application/octet-stream",
        ],
        "/cgi-bin/env.cgi",
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in [
        "HTTPS=on".to_string(),
        "REQUEST_SCHEME=https".into(),
        format!("SERVER_PORT={}", t.port()),
        "SERVER_PROTOCOL=HTTP/2.0".into(),
        "SERVER_NAME=alice.example".into(),
        format!("HTTP_HOST=alice.example:{}", t.port()),
        format!("{:x}", Sha256::digest(&body)),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from:\n{text}"
        );
    }
    // The first line arrives while the script still waits for the go-ahead (in alice's site:
    // her scripts see nothing outside her home).
    let go = t.root.join("alice/go");
    let resolve = format!("alice.example:{}:127.0.0.1", t.port());
    let mut curl = Command::new("curl")
        .args([
            "-sSN",
            "--http2",
            "--max-time",
            "30",
            "--cacert",
            &t.pki.ca(),
            "--resolve",
            &resolve,
        ])
        .arg(format!(
            "https://alice.example:{}/cgi-bin/stream.cgi?{}",
            t.port(),
            go.display()
        ))
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl");
    let mut lines = BufReader::new(curl.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("first"));
    std::fs::write(&go, "").expect("go");
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("second"));
    assert!(curl.wait().expect("wait").success());
}

#[test]
fn static_files_over_tls_are_byte_exact() {
    if !tools() {
        return;
    }
    let t = start();
    // Never zeros: a placeholder slice sent as it is would show up as zeros.
    let file: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 253) as u8 + 1).collect();
    write(&t.root.join("alice/big.bin"), &file, 0o644);
    for version in ["--http1.1", "--http2"] {
        let out = t.curl("alice.example", &[version], "/big.bin");
        assert!(
            out.stdout == file,
            "{version}: {} bytes differ from the file",
            out.stdout.len()
        );
        let range = t.curl(
            "alice.example",
            &[version, "-r", "100000-799999"],
            "/big.bin",
        );
        assert!(
            range.stdout == file[100_000..800_000],
            "{version}: the range differs"
        );
    }
}

#[test]
fn force_https_redirects_plain_requests_but_not_acme_challenges_and_hsts_is_sent() {
    if !tools() {
        return;
    }
    let t = start();
    let plain = crate::support::curl(&t.server, &["-H", "Host: bob.example"], "/a/b?x=1&y=2");
    assert_eq!(plain.status, 301);
    let expected = format!("https://bob.example:{}/a/b?x=1&y=2", t.port());
    assert_eq!(plain.header("location"), Some(expected.as_str()));
    let challenge = crate::support::curl(
        &t.server,
        &["-H", "Host: bob.example"],
        "/.well-known/acme-challenge/token",
    );
    assert_eq!(challenge.status, 404);
    let alice = crate::support::curl(&t.server, &["-H", "Host: alice.example"], "/");
    assert_eq!((alice.status, alice.body.as_str()), (200, "alice"));
    assert_eq!(alice.header("strict-transport-security"), None);
    let bob = t.curl("bob.example", &["-i", "--http2"], "/");
    let head = String::from_utf8_lossy(&bob.stdout).to_ascii_lowercase();
    assert!(
        head.contains("strict-transport-security: max-age=300"),
        "{head}"
    );
    let alice = t.curl("alice.example", &["-i"], "/");
    let head = String::from_utf8_lossy(&alice.stdout).to_ascii_lowercase();
    assert!(!head.contains("strict-transport-security"), "{head}");
}

#[test]
fn a_key_that_is_not_its_certificates_stops_the_start_and_a_reload_naming_the_file() {
    if !tools() {
        return;
    }
    let t = start();
    // At start: bob's key given as alice's.
    let config = t.root.join("bad.toml");
    let text = std::fs::read_to_string(t.root.join("y.toml"))
        .expect("config")
        .replace(
            "tls_key = \"certs/alice.key\"",
            "tls_key = \"certs/default.key\"",
        );
    std::fs::write(&config, &text).expect("write");
    let out = Command::new(crate::support::bin())
        .args(["--config", config.to_str().expect("utf-8")])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("default.key") && err.contains("alice.pem"),
        "{err}"
    );
    // A missing file, at reload: refused, the old certificates kept.
    std::fs::write(
        t.root.join("y.toml"),
        text.replace("certs/default.key", "certs/missing.key"),
    )
    .expect("write");
    t.server.signal(nix::sys::signal::Signal::SIGHUP);
    t.server.wait_for("missing.key");
    assert!(
        t.handshake("alice.example", "-tls1_3")
            .contains("subject=CN = alice.example")
    );
}

#[test]
fn htaccess_rewrites_see_https_and_the_h2_host() {
    if !tools() {
        return;
    }
    let t = start();
    write(&t.root.join("alice/secure/index.html"), "secret", 0o644);
    write(
        &t.root.join("alice/secure/.htaccess"),
        "RewriteEngine On\nRewriteCond %{HTTPS} !=on\nRewriteRule ^ - [F]\n\
         RewriteCond %{HTTP_HOST} ^alice\\.example\nRewriteRule ^host$ index.html [L]\n",
        0o644,
    );
    std::fs::set_permissions(
        t.root.join("alice/secure"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let plain = crate::support::curl(&t.server, &["-H", "Host: alice.example"], "/secure/");
    assert_eq!(plain.status, 403);
    for version in ["--http1.1", "--http2"] {
        let out = t.curl("alice.example", &[version], "/secure/host");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "secret", "{version}");
    }
}
