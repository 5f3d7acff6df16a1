//! The customers' control panel (issue 15, first part), over plain HTTP with a real client:
//! login with the SFTP password, the files of the home with the gate's badge, the verdict of
//! a mode asked before it is applied, chmod with the CSRF token, and what must not work (no
//! token, another customer's files, paths out of the home, a name that is markup, a banned
//! address).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;

use crate::support::host::{Host, get};
use crate::support::sftp::{text, user_cmd};

/// A host with a panel and customers `alice` and `bob` (with passwords), alice's
/// `cgi-bin/hello.cgi` uploaded the classic way: 0644.
pub(crate) fn host() -> Host {
    let h = Host::new(
        "panel = \"127.0.0.1:0\"\n[sftp]\nmax_auth_failures = 4\n[hosting]\nhomes = \"homes\"\nuid_range = [28000, 28999]\n",
    );
    for (name, password) in [("alice", "alice-secret"), ("bob", "bob-secret")] {
        h.customer(name, &["--domain", &format!("{name}.example")]);
        let o = user_cmd(
            &h.config(),
            &["passwd", name],
            &format!("{password}\n{password}\n"),
        );
        assert!(o.status.success(), "{}", text(&o));
    }
    h.site_file(
        "alice",
        "cgi-bin/hello.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello from the panel\\n'\n",
        0o644,
    );
    h
}

/// The panel's address, from the server's banner.
pub(crate) fn panel_addr(server: &crate::support::Server) -> SocketAddr {
    let line = server.wait_for("listening panel=");
    line.split("panel=")
        .nth(1)
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

/// A browser's worth of state: the panel's address and the session cookie.
struct Browser {
    addr: SocketAddr,
    agent: ureq::Agent,
    cookie: Option<String>,
}

/// An answer: status, headers we look at, body.
struct Answer {
    status: u16,
    location: Option<String>,
    set_cookie: Option<String>,
    body: String,
}

impl Browser {
    fn new(addr: SocketAddr) -> Browser {
        Browser {
            addr,
            agent: ureq::AgentBuilder::new().redirects(0).build(),
            cookie: None,
        }
    }

    fn call(&self, method: &str, path: &str, form: Option<&[(&str, &str)]>) -> Answer {
        let mut req = self
            .agent
            .request(method, &format!("http://{}{path}", self.addr));
        if let Some(c) = &self.cookie {
            req = req.set("Cookie", c);
        }
        let got = match form {
            Some(pairs) => req.send_form(pairs),
            None => req.call(),
        };
        let resp = match got {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        Answer {
            status: resp.status(),
            location: resp.header("location").map(str::to_string),
            set_cookie: resp.header("set-cookie").map(str::to_string),
            body: resp.into_string().unwrap_or_default(),
        }
    }

    fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None)
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.call("POST", path, Some(form))
    }

    /// Logs in; the answer to the login form.
    fn log_in(&mut self, name: &str, password: &str) -> Answer {
        let a = self.post("/login", &[("name", name), ("password", password)]);
        if let Some(c) = &a.set_cookie {
            self.cookie = c.split(';').next().map(str::to_string);
        }
        a
    }
}

/// The form token in a page.
fn csrf(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no csrf token in {page}"))
        .to_string()
}

const HELLO: &str = "/file?path=%2Fpublic_html%2Fcgi-bin%2Fhello.cgi";

#[test]
fn the_panel_shows_the_gate_before_a_chmod_and_applies_it_with_the_form_token() {
    if !crate::support::host::as_root() {
        return;
    }
    let h = host();
    let running = h.start();
    let mut b = Browser::new(panel_addr(&running.server));
    let first = b.get("/files?path=%2F");
    assert_eq!(first.status, 303);
    assert_eq!(first.location.as_deref(), Some("/login"));
    let wrong = b.log_in("alice", "not-it");
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(
        wrong.body.contains("wrong user name or password"),
        "{}",
        wrong.body
    );
    let ok = b.log_in("alice", "alice-secret");
    assert_eq!(ok.status, 303, "{}", ok.body);
    let cookie = ok.set_cookie.expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    let dir = b.get("/files?path=%2Fpublic_html%2Fcgi-bin");
    assert_eq!(dir.status, 200, "{}", dir.body);
    assert!(dir.body.contains("hello.cgi"), "{}", dir.body);
    assert!(dir.body.contains("badge refused"), "{}", dir.body);

    let page = b.get(HELLO);
    assert_eq!(page.status, 200, "{}", page.body);
    for who in ["owner", "group", "others"] {
        for what in ["read", "write", "execute"] {
            assert!(
                page.body.contains(&format!("aria-label=\"{who} {what}\"")),
                "no checkbox named {who} {what}"
            );
            assert!(
                page.body
                    .contains(&format!("<label for=\"bit-{who}-{what}\""))
            );
        }
    }
    assert!(page.body.contains("badge refused"), "{}", page.body);
    let token = csrf(&page.body);

    // The gate is asked about a mode before it is applied.
    let path = "%2Fpublic_html%2Fcgi-bin%2Fhello.cgi";
    let runs = b.get(&format!("/verdict?path={path}&mode=0755"));
    assert!(runs.body.starts_with("runs\n"), "{}", runs.body);
    let open = b.get(&format!("/verdict?path={path}&mode=0777"));
    assert!(open.body.starts_with("refused\n"), "{}", open.body);
    assert!(open.body.contains("can write"), "{}", open.body);
    let file = h.home("alice").join("public_html/cgi-bin/hello.cgi");
    let mode = || std::fs::metadata(&file).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode(), 0o644, "asking changed nothing");

    // Without the form token: refused, nothing changed.
    let forged = b.post(
        "/chmod",
        &[("path", "/public_html/cgi-bin/hello.cgi"), ("bit", "64")],
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(mode(), 0o644);

    // With it: 0755 (owner rwx, group r-x, others r-x), and the script runs.
    let mut form = vec![
        ("csrf", token.as_str()),
        ("path", "/public_html/cgi-bin/hello.cgi"),
    ];
    for bit in ["256", "128", "64", "32", "8", "4", "1"] {
        form.push(("bit", bit));
    }
    let applied = b.post("/chmod", &form);
    assert_eq!(applied.status, 200, "{}", applied.body);
    assert!(applied.body.contains("is now 0755"), "{}", applied.body);
    assert!(applied.body.contains("badge runs"), "{}", applied.body);
    assert_eq!(mode(), 0o755);
    assert_eq!(
        get(&running.server, "alice.example", "/cgi-bin/hello.cgi"),
        (200, "hello from the panel\n".to_string())
    );
    let log = running.server.output();
    assert!(
        log.lines()
            .any(|l| l.contains("transfer") && l.contains("chmod") && l.contains("panel")),
        "{log}"
    );

    // And in alice's own error log, as an SFTP chmod would be.
    let error_log = h.home("alice").join("logs/error.log");
    let mut said = String::new();
    let logged = crate::support::eventually(|| {
        said = std::fs::read_to_string(&error_log).unwrap_or_default();
        said.contains("chmod") && said.contains("panel")
    });
    assert!(logged, "{}: {said}", error_log.display());

    // Logging out ends the session.
    let out = b.post("/logout", &[("csrf", &token)]);
    assert_eq!(out.status, 303);
    assert_eq!(b.get(HELLO).status, 303);
}

#[test]
fn the_panel_keeps_each_customer_in_their_own_home() {
    if !crate::support::host::as_root() {
        return;
    }
    let h = host();
    let evil = "<img src=x onerror=alert(1)>";
    h.site_file("alice", evil, "markup in a name\n", 0o644);
    std::os::unix::fs::symlink("/etc", h.home("alice").join("public_html/etc-link"))
        .expect("symlink");
    let running = h.start();
    let addr = panel_addr(&running.server);
    let mut alice = Browser::new(addr);
    assert_eq!(alice.log_in("alice", "alice-secret").status, 303);
    let listing = alice.get("/files?path=%2Fpublic_html");
    assert_eq!(listing.status, 200);
    assert!(
        listing.body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{}",
        listing.body
    );
    assert!(!listing.body.contains(evil), "the name is shown as markup");
    // `..` stops at the home; absolute paths are the home's; a link out leads nowhere.
    for path in ["..%2F..%2F..%2Fetc", "%2Fetc", "%2Fpublic_html%2Fetc-link"] {
        let a = alice.get(&format!("/files?path={path}"));
        assert!(!a.body.contains("passwd"), "{path}: {}", a.body);
    }
    let passwd = alice.get("/file?path=%2Fpublic_html%2Fetc-link%2Fpasswd");
    assert_ne!(passwd.status, 200, "{}", passwd.body);
    assert!(!passwd.body.contains("root:"), "{}", passwd.body);

    // Bob's session acts in bob's home only: alice's path names nothing of his.
    let mut bob = Browser::new(addr);
    assert_eq!(bob.log_in("bob", "bob-secret").status, 303);
    let page = bob.get("/files?path=%2F");
    let token = csrf(&page.body);
    let tried = bob.post(
        "/chmod",
        &[
            ("csrf", &token),
            ("path", "/public_html/cgi-bin/hello.cgi"),
            ("bit", "256"),
            ("bit", "128"),
            ("bit", "64"),
        ],
    );
    assert_ne!(tried.status, 200, "{}", tried.body);
    let file = h.home("alice").join("public_html/cgi-bin/hello.cgi");
    assert_eq!(
        std::fs::metadata(&file).expect("stat").permissions().mode() & 0o7777,
        0o644
    );
    // A form posted from another site's page is refused, the login's too.
    let foreign = bob
        .agent
        .post(&format!("http://{addr}/login"))
        .set("Origin", "http://evil.example")
        .send_form(&[("name", "bob"), ("password", "bob-secret")]);
    let status = match foreign {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(status, 403);
    // Alice's token is no good with bob's session.
    let alice_token = csrf(&alice.get("/files?path=%2F").body);
    let crossed = bob.post("/logout", &[("csrf", &alice_token)]);
    assert_eq!(crossed.status, 403);
}

#[test]
fn failed_panel_logins_ban_the_address_for_ssh_too() {
    if !crate::support::host::as_root() || !crate::support::have("sftp") {
        return;
    }
    let h = host();
    let key = h.root.join("id_alice");
    let running = h.start();
    let mut b = Browser::new(panel_addr(&running.server));
    let mut last = 0;
    for _ in 0..4 {
        last = b.log_in("alice", "wrong").status;
    }
    assert_eq!(last, 403, "the fourth failure bans (max_auth_failures = 4)");
    let refused = b.log_in("alice", "alice-secret");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("too many failed logins"),
        "{}",
        refused.body
    );
    let o = running.batch_as(
        "alice",
        Some(&key),
        "ls\n",
        std::time::Duration::from_secs(30),
    );
    assert!(
        !o.status.success(),
        "SSH let a banned address in: {}",
        text(&o)
    );
}

/// A multipart/form-data body with one file field per `(name, content)`.
fn multipart(files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----yadokari-test-boundary-7MA4YWxk";
    let mut body = Vec::new();
    for (name, content) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

impl Browser {
    /// Uploads `files` into `dir` as the page's form does; the answer.
    fn upload(&self, token: &str, dir: &str, files: &[(&str, &[u8])]) -> Answer {
        let (kind, body) = multipart(files);
        let url = format!(
            "http://{}/upload?csrf={token}&dir={}",
            self.addr,
            dir.replace('/', "%2F")
        );
        let mut req = self.agent.post(&url).set("Content-Type", &kind);
        if let Some(c) = &self.cookie {
            req = req.set("Cookie", c);
        }
        let resp = match req.send_bytes(&body) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("upload: {e}"),
        };
        Answer {
            status: resp.status(),
            location: None,
            set_cookie: None,
            body: resp.into_string().unwrap_or_default(),
        }
    }
}

#[test]
fn the_file_manager_uploads_downloads_renames_edits_and_deletes() {
    if !crate::support::host::as_root() {
        return;
    }
    let h = host();
    h.set_user("alice", "quota_bytes", 2_000_000i64);
    // A script saved with Windows line ends, already 0755.
    h.site_file(
        "alice",
        "cgi-bin/crlf.cgi",
        "#!/bin/sh\r\nprintf 'Content-Type: text/plain\\n\\nfixed in the page\\n'\r\n",
        0o755,
    );
    let running = h.start();
    let mut b = Browser::new(panel_addr(&running.server));
    assert_eq!(b.log_in("alice", "alice-secret").status, 303);
    let token = csrf(&b.get("/files?path=%2F").body);
    let cgi = h.home("alice").join("public_html/cgi-bin");

    // Upload two files at once: they land 0644, the script refused with the reason.
    let script = b"#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nuploaded\\n'\n";
    let up = b.upload(
        &token,
        "/public_html/cgi-bin",
        &[("up.cgi", script), ("notes.txt", b"some notes\n")],
    );
    assert_eq!(up.status, 200, "{}", up.body);
    let landed = format!("up.cgi: {} bytes, 0644", script.len());
    assert!(up.body.contains(&landed), "{}", up.body);
    assert!(up.body.contains("refused"), "{}", up.body);
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode(&cgi.join("up.cgi")), 0o644);
    assert_eq!(
        std::fs::read(cgi.join("notes.txt")).expect("landed"),
        b"some notes\n"
    );

    // Download.
    let down = b.get("/download?path=%2Fpublic_html%2Fcgi-bin%2Fnotes.txt");
    assert_eq!(down.status, 200);
    assert_eq!(down.body, "some notes\n");

    // A new folder, a rename, a delete after its confirmation page.
    let made = b.post(
        "/mkdir",
        &[("csrf", &token), ("dir", "/public_html"), ("name", "sub")],
    );
    assert_eq!(made.status, 200, "{}", made.body);
    assert!(h.home("alice").join("public_html/sub").is_dir());
    let renamed = b.post(
        "/rename",
        &[
            ("csrf", &token),
            ("path", "/public_html/cgi-bin/notes.txt"),
            ("to", "kept.txt"),
        ],
    );
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert!(cgi.join("kept.txt").exists() && !cgi.join("notes.txt").exists());
    let bad = b.post(
        "/rename",
        &[
            ("csrf", &token),
            ("path", "/public_html/cgi-bin/kept.txt"),
            ("to", "../../escaped.txt"),
        ],
    );
    assert_ne!(bad.status, 200);
    assert!(cgi.join("kept.txt").exists());
    let ask = b.get("/delete?path=%2Fpublic_html%2Fcgi-bin%2Fkept.txt");
    assert!(ask.body.contains("cannot be undone"), "{}", ask.body);
    assert!(cgi.join("kept.txt").exists(), "asking deleted nothing");
    let gone = b.post(
        "/delete",
        &[("csrf", &token), ("path", "/public_html/cgi-bin/kept.txt")],
    );
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert!(!cgi.join("kept.txt").exists());

    // The editor warns of the carriage return, and saving with the fix makes the script run,
    // its mode kept.
    let before = running.server.get("/~alice/cgi-bin/crlf.cgi");
    assert_ne!(before.status, 200);
    let editor = b.get("/edit?path=%2Fpublic_html%2Fcgi-bin%2Fcrlf.cgi");
    assert!(editor.body.contains("carriage return"), "{}", editor.body);
    assert!(editor.body.contains("name=\"fix\""), "{}", editor.body);
    let text = "#!/bin/sh\r\nprintf 'Content-Type: text/plain\\n\\nfixed in the page\\n'\r\n";
    let saved = b.post(
        "/save",
        &[
            ("csrf", &token),
            ("path", "/public_html/cgi-bin/crlf.cgi"),
            ("content", text),
            ("fix", "1"),
        ],
    );
    assert_eq!(saved.status, 200, "{}", saved.body);
    let on_disk = std::fs::read(cgi.join("crlf.cgi")).expect("saved");
    assert!(!on_disk.contains(&b'\r'), "{on_disk:?}");
    assert_eq!(mode(&cgi.join("crlf.cgi")), 0o755);
    assert_eq!(
        crate::support::host::get(&running.server, "alice.example", "/cgi-bin/crlf.cgi"),
        (200, "fixed in the page\n".to_string())
    );

    // Past the quota: refused, nothing left behind (no temporary file either).
    let big = vec![b'x'; 3_000_000];
    let over = b.upload(&token, "/public_html", &[("big.bin", &big)]);
    assert!(over.body.contains("not uploaded"), "{}", over.body);
    assert!(over.body.contains("quota"), "{}", over.body);
    let leftovers: Vec<_> = std::fs::read_dir(h.home("alice").join("public_html"))
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("big.bin") || n.starts_with(".ht-yadokari-upload-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn the_logs_and_the_account_page_work_for_the_customer() {
    if !crate::support::host::as_root() {
        return;
    }
    let h = host();
    h.set_user("alice", "quota_bytes", 5_000_000i64);
    let running = h.start();
    let mut b = Browser::new(panel_addr(&running.server));
    assert_eq!(b.log_in("alice", "alice-secret").status, 303);
    // A refused request (the 0644 script), then the log view links it to the file.
    let (status, _) = get(&running.server, "alice.example", "/cgi-bin/hello.cgi");
    assert_eq!(status, 500);
    let mut view = String::new();
    let found = crate::support::eventually(|| {
        view = b.get("/logs?log=access&status=refused").body;
        view.contains("/cgi-bin/hello.cgi")
    });
    assert!(found, "{view}");
    assert!(
        view.contains("/file?path=%2Fpublic%5Fhtml%2Fcgi%2Dbin%2Fhello%2Ecgi"),
        "{view}"
    );
    let live = b.get("/logs?log=access&status=refused&part=list");
    assert!(live.body.starts_with("<ol"), "{}", live.body);
    let ok_only = b.get("/logs?log=access&status=2xx&part=list");
    assert!(!ok_only.body.contains("hello.cgi"), "{}", ok_only.body);

    // The account: usage against the quota, the domain, the key.
    let account = b.get("/account");
    assert_eq!(account.status, 200);
    assert!(
        account.body.contains("of 5000000 bytes used"),
        "{}",
        account.body
    );
    assert!(account.body.contains("alice.example"), "{}", account.body);
    assert!(account.body.contains("SHA256:"), "{}", account.body);
    let token = csrf(&account.body);
    // A pasted key is added, and removed again.
    let extra = crate::support::sftp::client_key(&h.root, "id_extra");
    let public = std::fs::read_to_string(extra.with_extension("pub")).expect("pub");
    let added = b.post("/key/add", &[("csrf", &token), ("key", &public)]);
    assert!(added.body.contains("1 key(s) added"), "{}", added.body);
    let fingerprint = added
        .body
        .split("name=\"fingerprint\" value=\"")
        .nth(2)
        .and_then(|r| r.split('"').next())
        .expect("a second key")
        .to_string();
    let removed = b.post(
        "/key/remove",
        &[("csrf", &token), ("fingerprint", &fingerprint)],
    );
    assert!(
        removed.body.contains("the key is removed"),
        "{}",
        removed.body
    );
    // The password: the old one is asked first.
    let refused = b.post(
        "/password",
        &[
            ("csrf", &token),
            ("old", "guess"),
            ("new", "new-secret-1"),
            ("again", "new-secret-1"),
        ],
    );
    assert!(
        refused.body.contains("current password is wrong"),
        "{}",
        refused.body
    );
    let changed = b.post(
        "/password",
        &[
            ("csrf", &token),
            ("old", "alice-secret"),
            ("new", "new-secret-1"),
            ("again", "new-secret-1"),
        ],
    );
    assert!(
        changed.body.contains("password is changed"),
        "{}",
        changed.body
    );
    let mut again = Browser::new(b.addr);
    let mut status = 0;
    let took = crate::support::eventually(|| {
        status = again.log_in("alice", "new-secret-1").status;
        status == 303
    });
    assert!(took, "the new password does not log in: {status}");
}

#[test]
fn over_tls_the_panel_uses_the_https_certificates_and_a_secure_cookie() {
    if !crate::support::host::as_root()
        || !crate::support::have("curl")
        || !crate::support::have("openssl")
    {
        return;
    }
    let h = Host::new(
        "panel = \"127.0.0.1:0\"\npanel_tls = true\nhttps = \"127.0.0.1:0\"\n\
         [tls]\ncertificate = \"default.pem\"\nkey = \"default.key\"\n\
         [hosting]\nhomes = \"homes\"\nuid_range = [28000, 28999]\n",
    );
    let pki = crate::support::pki::Pki::new(h.root.join("pki"));
    pki.issue(
        "panel.example",
        "/CN=panel.example",
        &h.root.join("default.pem"),
        &h.root.join("default.key"),
    );
    h.customer("alice", &[]);
    let o = user_cmd(
        &h.config(),
        &["passwd", "alice"],
        "alice-secret\nalice-secret\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    let running = h.start();
    let port = panel_addr(&running.server).port();
    let out = std::process::Command::new("curl")
        .args(["-sS", "-i", "--max-time", "30", "--cacert", &pki.ca()])
        .args(["--resolve", &format!("panel.example:{port}:127.0.0.1")])
        .args(["-d", "name=alice&password=alice-secret"])
        .arg(format!("https://panel.example:{port}/login"))
        .output()
        .expect("curl");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    let cookie = said
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {said}"));
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // Plain HTTP is not spoken there.
    let plain = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("http://127.0.0.1:{port}/login"))
        .output()
        .expect("curl");
    assert!(!plain.status.success() || plain.stdout.is_empty());
}
