//! Many customers on one server, as a host runs it: `yadokari user add` makes each customer a
//! home with a web root and an identity of their own (as root); their uploads, scripts and
//! SFTP sessions are that identity; they cannot reach each other's homes; one customer's slow
//! scripts do not starve another's; `user remove` stops logins and serving within seconds; the
//! first start as root gives the demo user (a root-owned document root) an identity.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::support::sftp::text;
use crate::support::{Host, PATIENCE, as_root, eventually, get, have, raw_status};

const ID: &str =
    "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\necho \"uid=$(id -u) groups=$(id -G)\"\n";

fn uid_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).expect("stat").uid()
}

#[test]
fn each_customer_is_their_own_identity_in_their_own_home() {
    if !as_root() || !have("sftp") {
        return;
    }
    let h = Host::new("[hosting]\nhomes = \"homes\"\nuid_range = [23000, 23999]\n");
    let alice_key = h.customer("alice", &["--domain", "alice.example"]);
    let bob_key = h.customer("bob", &["--domain", "bob.example"]);
    let alice_uid = uid_of(&h.home("alice"));
    let bob_uid = uid_of(&h.home("bob"));
    assert!((23000..24000).contains(&alice_uid), "{alice_uid}");
    assert_ne!(alice_uid, bob_uid);
    for made in ["public_html/index.html", "public_html/cgi-bin", "logs"] {
        assert_eq!(uid_of(&h.home("alice").join(made)), alice_uid, "{made}");
    }
    let listed = h.user(&["list"]);
    assert!(listed.contains(&format!("uid {alice_uid}")), "{listed}");
    assert!(listed.contains("domains=alice.example"), "{listed}");
    assert!(
        listed.contains("bytes=") && listed.contains("files=4/unlimited"),
        "usage against quota: {listed}"
    );

    let s = h.start();
    let local = h.root.join("id.cgi");
    std::fs::write(&local, ID).expect("write");
    let o = s.batch_as(
        "alice",
        Some(&alice_key),
        format!(
            "put {} public_html/cgi-bin/id.cgi\nchmod 755 public_html/cgi-bin/id.cgi\n",
            local.display()
        ),
        PATIENCE,
    );
    assert!(o.status.success(), "{}", text(&o));
    let uploaded = h.home("alice").join("public_html/cgi-bin/id.cgi");
    assert_eq!(uid_of(&uploaded), alice_uid, "her upload is hers");
    assert!(
        eventually(|| s.server.output().contains("runs as a CGI script")),
        "the transfer log judges the file in her web root: {}",
        s.server.output()
    );

    let (status, body) = get(&s.server, "alice.example", "/cgi-bin/id.cgi");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body.trim(),
        format!("uid={alice_uid} groups={alice_uid}"),
        "her script runs as her identity, with its own group only"
    );
    let (status, body) = get(&s.server, "bob.example", "/");
    assert_eq!(status, 200);
    assert!(body.contains("bob's site"), "{body}");
    let (_, body) = get(&s.server, "ALICE.EXAMPLE:8080", "/");
    assert!(body.contains("alice's site"), "{body}");
    assert_eq!(
        get(&s.server, "other.example", "/"),
        (200, "default".into())
    );
    let (_, body) = get(&s.server, "other.example", "/~bob/");
    assert!(body.contains("bob's site"), "{body}");
    assert_eq!(get(&s.server, "other.example", "/~nobody/").0, 404);

    // Alice cannot see, read or write bob's home: every path she gives stays in hers.
    let bob_index = h.home("bob").join("public_html/index.html");
    let before = std::fs::read(&bob_index).expect("read");
    for batch in [
        "ls ../bob\n".to_string(),
        "get ../bob/public_html/index.html /dev/null\n".to_string(),
        format!(
            "get {}/public_html/index.html /dev/null\n",
            h.home("bob").display()
        ),
        format!("put {} ../bob/public_html/index.html\n", local.display()),
    ] {
        let o = s.batch_as("alice", Some(&alice_key), &batch, PATIENCE);
        assert!(!o.status.success(), "{batch}: {}", text(&o));
    }
    assert_eq!(std::fs::read(&bob_index).expect("read"), before);
    let o = s.batch_as("bob", Some(&bob_key), "ls\n", PATIENCE);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn user_add_refuses_what_would_break_isolation() {
    let h = Host::new("[hosting]\nhomes = \"homes\"\nuid_range = [23000, 23999]\n");
    let said = h.user_refused(&["add", "eve", "--unix-user", "root"]);
    assert!(said.contains("root or a system account"), "{said}");
    let said = h.user_refused(&["add", "eve", "--domain", "not a domain"]);
    assert!(said.contains("not a domain name"), "{said}");
    h.user(&["add", "alice", "--domain", "alice.example"]);
    let said = h.user_refused(&["add", "eve", "--domain", "ALICE.example"]);
    assert!(said.contains("already `alice`'s"), "{said}");
    let inside = h.home("alice").join("public_html/eve");
    let said = h.user_refused(&["add", "eve", "--home", inside.to_str().expect("utf-8")]);
    assert!(said.contains("overlaps `alice`'s home"), "{said}");
    assert!(!inside.exists(), "a refused add makes nothing");
    let said = h.user_refused(&["add", "alice"]);
    assert!(said.contains("already exists"), "{said}");
    if let Some((uid, _)) = crate::support::test_user() {
        h.user(&["add", "dave", "--unix-user", crate::support::TEST_USER]);
        assert_eq!(uid_of(&h.home("dave")), uid);
        let said = h.user_refused(&["add", "erin", "--unix-user", crate::support::TEST_USER]);
        assert!(
            said.contains("already another customer's identity"),
            "{said}"
        );
        assert!(!h.home("erin").exists());
    }
    let config = std::fs::read_to_string(h.config()).expect("read");
    assert!(
        !config.contains("eve") && !config.contains("erin"),
        "{config}"
    );
}

const SLOW: &str = "#!/bin/sh\nread pid _ </proc/self/stat\ntouch \"started.$pid\"\ni=0\nwhile [ ! -e release ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\nprintf 'Content-Type: text/plain\\n\\nslow done\\n'\n";
const HELLO: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello from bob\\n'\n";

/// A site directory `name` under the host's root with `cgi-bin/` holding `script`.
fn site_with_script(h: &Host, name: &str, script: &str) -> PathBuf {
    let site = h.root.join(name);
    let bin = site.join("cgi-bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::fs::write(bin.join("s.cgi"), script).expect("write");
    std::fs::set_permissions(bin.join("s.cgi"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    for d in [&site, &bin] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    crate::support::give_to_test_user(&site);
    bin
}

#[test]
fn one_customers_slow_scripts_do_not_starve_another() {
    let h = Host::new(
        "[cgi]\nqueue_wait_ms = 300\n\
         [[users]]\nname = \"alice\"\nsite = \"alice\"\ndomains = [\"alice.example\"]\nmax_scripts = 2\n\
         [[users]]\nname = \"bob\"\nsite = \"bob\"\ndomains = [\"bob.example\"]\n",
    );
    let alice_bin = site_with_script(&h, "alice", SLOW);
    site_with_script(&h, "bob", HELLO);
    let s = h.start();
    let running: Vec<_> = (0..2)
        .map(|_| {
            let stream = s.server.connect();
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut stream = stream;
                stream
                    .write_all(b"GET /cgi-bin/s.cgi HTTP/1.1\r\nHost: alice.example\r\nConnection: close\r\n\r\n")
                    .expect("send");
                let mut out = Vec::new();
                let _ = stream.read_to_end(&mut out);
                out
            })
        })
        .collect();
    let started = || {
        std::fs::read_dir(&alice_bin)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("started."))
                    .count()
            })
            .unwrap_or(0)
    };
    assert!(eventually(|| started() == 2), "alice's two scripts run");
    let (status, body) = get(&s.server, "alice.example", "/cgi-bin/s.cgi");
    assert_eq!(status, 503, "a third is over her share: {body}");
    assert!(body.contains("share"), "{body}");
    let (status, body) = get(&s.server, "bob.example", "/cgi-bin/s.cgi");
    assert_eq!((status, body.as_str()), (200, "hello from bob\n"));
    std::fs::write(alice_bin.join("release"), "").expect("release");
    for t in running {
        let out = t.join().expect("thread");
        assert_eq!(raw_status(&out), 200, "{}", String::from_utf8_lossy(&out));
    }
}

#[test]
fn a_removed_customer_stops_logging_in_and_being_served() {
    if !have("sftp") {
        return;
    }
    let h = Host::new("[hosting]\nhomes = \"homes\"\nuid_range = [23000, 23999]\n");
    let key = h.customer("bob", &["--domain", "bob.example"]);
    let s = h.start();
    let (_, body) = get(&s.server, "bob.example", "/");
    assert!(body.contains("bob's site"), "{body}");
    let o = s.batch_as("bob", Some(&key), "ls\n", PATIENCE);
    assert!(o.status.success(), "{}", text(&o));
    h.user(&["remove", "bob"]);
    assert!(
        eventually(|| get(&s.server, "bob.example", "/") == (200, "default".to_string())),
        "his domain falls back to the default site"
    );
    let o = s.batch_as("bob", Some(&key), "ls\n", PATIENCE);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        h.home("bob").join("public_html/index.html").exists(),
        "files stay"
    );
    let said = h.user_refused(&["remove", "bob"]);
    assert!(said.contains("no user `bob`"), "{said}");
}

#[test]
fn remove_purge_deletes_the_home_but_never_the_document_root() {
    let h = Host::new(
        "[hosting]\nhomes = \"homes\"\nuid_range = [23000, 23999]\n[[users]]\nname = \"demo\"\n",
    );
    h.user(&["add", "carol"]);
    let out = h.user(&["remove", "carol", "--purge"]);
    assert!(out.contains("deleted their home"), "{out}");
    assert!(!h.home("carol").exists());
    let said = h.user_refused(&["remove", "demo", "--purge"]);
    assert!(said.contains("not `demo`'s alone"), "{said}");
    assert!(h.root.join("htdocs/index.html").exists());
}

#[test]
fn the_first_start_as_root_gives_the_demo_user_an_identity() {
    if !as_root() {
        return;
    }
    let h = Host::new("[hosting]\nuid_range = [23500, 23999]\n[[users]]\nname = \"demo\"\n");
    let bin = h.root.join("htdocs/cgi-bin");
    std::fs::create_dir(&bin).expect("mkdir");
    std::fs::write(bin.join("id.cgi"), ID).expect("write");
    std::fs::set_permissions(bin.join("id.cgi"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    assert_eq!(uid_of(&h.root.join("htdocs")), 0);
    let s = h.start();
    s.server.wait_for("now has an identity of their own");
    let uid = uid_of(&h.root.join("htdocs"));
    assert!((23500..24000).contains(&uid), "{uid}");
    assert_eq!(uid_of(&bin.join("id.cgi")), uid);
    let config = std::fs::read_to_string(h.config()).expect("read");
    assert!(config.contains(&format!("uid = {uid}")), "{config}");
    let (status, body) = get(&s.server, "localhost", "/cgi-bin/id.cgi");
    assert_eq!(
        (status, body.trim()),
        (200, format!("uid={uid} groups={uid}").as_str())
    );
}
