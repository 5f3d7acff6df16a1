//! Per-customer logs: a customer whose home has a `logs/` directory finds their requests in
//! `logs/access.log` (Combined), and their refusals, scripts' stderr and SFTP transfers in
//! `logs/error.log`, owned by them, mode 0600, rotated by size; what they plant at a log's
//! name (a symlink out of their home, a FIFO) is refused, never followed, never waited on.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::sftp::{Running, client_key, local, text};
use crate::support::{
    PATIENCE, Server, eventually, give_to_test_user, have, raw_status, test_user,
};

const STDERR: &str = "#!/bin/sh\necho \"stderr-of-$QUERY_STRING\" >&2\nprintf 'Content-Type: text/plain\\n\\nok\\n'\n";

/// A server with customers alice (`alice.example`) and bob (`bob.example`), each with a home
/// holding `logs/`, an index, a script writing to stderr and a non-executable script.
struct Hosting {
    dir: tempfile::TempDir,
    server: Server,
    alice_key: PathBuf,
}

impl Hosting {
    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn logs(&self, customer: &str) -> PathBuf {
        self.root().join(customer).join("logs")
    }

    /// `GET path` with `Host: host`; the status.
    fn get(&self, host: &str, path: &str) -> u16 {
        let raw = self.server.raw(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        raw_status(&raw)
    }

    /// Waits (bounded) until `customer`'s log `name` contains `needle`; returns its text.
    fn wait_log(&self, customer: &str, name: &str, needle: &str) -> String {
        let path = self.logs(customer).join(name);
        let mut text = String::new();
        let found = eventually(|| {
            text = std::fs::read_to_string(&path).unwrap_or_default();
            text.contains(needle)
        });
        assert!(found, "{} never held {needle:?}: {text:?}", path.display());
        text
    }
}

/// Sets up the homes (with `prepare` run on the root before the files are given to the test
/// user) and starts the server with `extra` added to `[hosting]`.
fn start(extra: &str, prepare: impl FnOnce(&Path)) -> Hosting {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::create_dir(root.join("htdocs")).expect("mkdir");
    for customer in ["alice", "bob"] {
        let home = root.join(customer);
        std::fs::create_dir_all(home.join("logs")).expect("mkdir");
        std::fs::create_dir_all(home.join("cgi-bin")).expect("mkdir");
        write(&home.join("index.html"), customer, 0o644);
        write(&home.join("cgi-bin/stderr.cgi"), STDERR, 0o755);
        write(&home.join("bad.cgi"), STDERR, 0o644);
        for d in ["", "logs", "cgi-bin"] {
            let mode = std::fs::Permissions::from_mode(0o755);
            std::fs::set_permissions(home.join(d), mode).expect("chmod");
        }
    }
    prepare(root);
    give_to_test_user(&root.join("alice"));
    give_to_test_user(&root.join("bob"));
    let alice_key = client_key(root, "id_alice");
    std::fs::copy(alice_key.with_extension("pub"), root.join("ak_alice")).expect("copy");
    let config = root.join("y.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndocument_root = \"htdocs\"\nhttp = \"127.0.0.1:0\"\nsftp = \"127.0.0.1:0\"\n\
             [hosting]\n{extra}\n\
             [[users]]\nname = \"alice\"\nsite = \"alice\"\nauthorized_keys = \"ak_alice\"\ndomains = [\"alice.example\"]\n\
             [[users]]\nname = \"bob\"\nsite = \"bob\"\ndomains = [\"bob.example\"]\n"
        ),
    )
    .expect("config");
    let server = Server::spawn(&["--config", config.to_str().expect("utf-8")]);
    Hosting {
        dir,
        server,
        alice_key,
    }
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn a_customers_requests_land_in_their_own_logs() {
    let h = start("", |_| {});
    for i in 0..3 {
        assert_eq!(h.get("alice.example", &format!("/?alice-{i}")), 200);
    }
    assert_eq!(h.get("ALICE.EXAMPLE:80", "/cgi-bin/stderr.cgi?alice"), 200);
    assert_eq!(h.get("alice.example", "/bad.cgi"), 500);
    assert_eq!(h.get("bob.example", "/?bob-0"), 200);

    let access = h.wait_log("alice", "access.log", "/bad.cgi");
    for i in 0..3 {
        let line = access
            .lines()
            .find(|l| l.contains(&format!("/?alice-{i} ")))
            .unwrap_or_else(|| panic!("no line for alice-{i}: {access}"));
        // Combined: host, identity, user, [time], "request", status, bytes, "referer", "agent".
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        assert!(
            line.ends_with(&format!("] \"GET /?alice-{i} HTTP/1.1\" 200 5 \"-\" \"-\"")),
            "{line}"
        );
    }
    assert!(!access.contains("bob-0"), "{access}");
    let bob = h.wait_log("bob", "access.log", "/?bob-0");
    assert!(!bob.contains("alice"), "{bob}");

    let errors = h.wait_log("alice", "error.log", "bad.cgi");
    assert!(errors.contains("stderr-of-alice"), "{errors}");
    let refusal = errors
        .lines()
        .find(|l| l.contains("bad.cgi"))
        .expect("refusal");
    assert!(
        refusal.contains("WARN") && refusal.contains("chmod"),
        "{refusal}"
    );
    let bob_errors = std::fs::read_to_string(h.logs("bob").join("error.log")).unwrap_or_default();
    assert!(!bob_errors.contains("alice"), "{bob_errors}");
    // The global logs keep every line.
    h.server.wait_for("stderr-of-alice");

    for name in ["access.log", "error.log"] {
        let meta = std::fs::metadata(h.logs("alice").join(name)).expect("log");
        assert_eq!(meta.mode() & 0o7777, 0o600, "{name}");
        let owner = test_user().map_or_else(|| nix::unistd::geteuid().as_raw(), |(uid, _)| uid);
        assert_eq!(meta.uid(), owner, "{name}");
    }
}

#[test]
fn a_planted_symlink_hard_link_or_fifo_is_refused_and_never_blocks() {
    let h = start("", |root| {
        write(&root.join("outside.txt"), "untouched\n", 0o666);
        std::os::unix::fs::symlink(root.join("outside.txt"), root.join("alice/logs/access.log"))
            .expect("symlink");
        // A hard link to a file of the same owner outside the home: refused too.
        write(&root.join("linked.txt"), "untouched\n", 0o600);
        give_to_test_user(&root.join("linked.txt"));
        std::fs::hard_link(root.join("linked.txt"), root.join("alice/logs/error.log"))
            .expect("link");
        nix::unistd::mkfifo(
            &root.join("bob/logs/error.log"),
            nix::sys::stat::Mode::from_bits_truncate(0o666),
        )
        .expect("mkfifo");
    });
    for i in 0..5 {
        assert_eq!(h.get("alice.example", &format!("/?a{i}")), 200);
        assert_eq!(h.get("alice.example", &format!("/bad.cgi?a{i}")), 500);
        assert_eq!(h.get("bob.example", &format!("/bad.cgi?b{i}")), 500);
        assert_eq!(h.get("bob.example", &format!("/?b{i}")), 200);
    }
    let symlink = h.server.wait_for("file=\"logs/access.log\"");
    assert!(
        symlink.contains("customer=\"alice\"") && symlink.contains("symbolic link"),
        "{symlink}"
    );
    let fifo = h.server.wait_for("FIFO");
    assert!(
        fifo.contains("customer=\"bob\"") && fifo.contains("file=\"logs/error.log\""),
        "{fifo}"
    );
    let hard = h.server.wait_for("more than one link");
    assert!(
        hard.contains("customer=\"alice\"") && hard.contains("logs/error.log"),
        "{hard}"
    );
    // Bob's access log is not held up by his error log; the server still answers.
    h.wait_log("bob", "access.log", "/?b4 ");
    assert_eq!(h.get("bob.example", "/"), 200);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        std::fs::read_to_string(h.root().join("outside.txt")).expect("read"),
        "untouched\n"
    );
    assert_eq!(
        std::fs::read_to_string(h.root().join("linked.txt")).expect("read"),
        "untouched\n"
    );
    assert!(h.logs("alice").join("access.log").is_symlink());
    // One warning per attempt, not one per request.
    let warnings = h
        .server
        .output()
        .matches("file=\"logs/access.log\"")
        .count();
    assert_eq!(warnings, 1, "{}", h.server.output());
}

#[test]
fn a_log_past_its_size_is_rotated_keeping_its_generations() {
    let h = start("log_max_bytes = 1000\nlog_generations = 2", |_| {});
    for round in 0..12 {
        for i in 0..4 {
            assert_eq!(h.get("alice.example", &format!("/?r{round}-{i}")), 200);
        }
        // Past the flush period: each round is its own write.
        std::thread::sleep(Duration::from_millis(300));
    }
    h.wait_log("alice", "access.log.1", "GET");
    h.wait_log("alice", "access.log", "/?r11-3 ");
    let rotated: Vec<String> = std::fs::read_dir(h.logs("alice"))
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("access.log."))
        .collect();
    assert!(rotated.len() <= 2, "{rotated:?}");
    assert!(rotated.contains(&"access.log.2".to_string()), "{rotated:?}");
    for name in ["access.log", "access.log.1"] {
        let size = std::fs::metadata(h.logs("alice").join(name))
            .expect("log")
            .len();
        assert!(size <= 1000, "{name}: {size}");
    }
}

#[test]
fn an_sftp_upload_is_in_the_uploaders_error_log() {
    if !have("sftp") {
        return;
    }
    let h = start("", |_| {});
    let file = local(h.root(), "upload-me.txt", b"hello\n");
    let r = Running::of(h.server);
    let o = r.batch_as(
        "alice",
        Some(&h.alice_key),
        format!("put {} /uploaded.txt\n", file.display()),
        PATIENCE,
    );
    assert!(o.status.success(), "{}", text(&o));
    let log = h.dir.path().join("alice/logs/error.log");
    let mut text = String::new();
    assert!(
        eventually(|| {
            text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains("uploaded.txt")
        }),
        "{text:?}"
    );
    let line = text
        .lines()
        .find(|l| l.contains("uploaded.txt"))
        .expect("line");
    assert!(
        line.contains("transfer") && line.contains("upload"),
        "{line}"
    );
}

#[test]
fn sighup_reopens_a_customers_logs() {
    let h = start("", |_| {});
    assert_eq!(h.get("alice.example", "/?before"), 200);
    h.wait_log("alice", "access.log", "/?before ");
    // What logrotate does: move the file away, then SIGHUP.
    let logs = h.logs("alice");
    std::fs::rename(logs.join("access.log"), logs.join("access.log.old")).expect("rename");
    h.server.signal(nix::sys::signal::Signal::SIGHUP);
    h.server.wait_for("configuration reloaded");
    assert_eq!(h.get("alice.example", "/?after"), 200);
    let fresh = h.wait_log("alice", "access.log", "/?after ");
    assert!(!fresh.contains("before"), "{fresh}");
}

#[test]
fn a_home_owned_by_root_gets_no_logs_when_the_server_is_root() {
    if test_user().is_none() {
        return;
    }
    let h = start("", |_| {});
    std::os::unix::fs::chown(h.root().join("bob"), Some(0), Some(0)).expect("chown");
    for i in 0..3 {
        assert_eq!(h.get("bob.example", &format!("/?b{i}")), 200);
    }
    let warning = h.server.wait_for("customer logs not written");
    assert!(warning.contains("customer=\"bob\""), "{warning}");
    assert_eq!(h.get("bob.example", "/?again"), 200);
    std::thread::sleep(Duration::from_millis(500));
    let written: Vec<_> = std::fs::read_dir(h.logs("bob")).expect("readdir").collect();
    assert!(written.is_empty(), "{written:?}");
    assert_eq!(
        h.server
            .output()
            .matches("customer logs not written")
            .count(),
        1
    );
}

#[test]
fn a_customer_made_by_user_add_reads_their_logs_over_sftp() {
    if !nix::unistd::Uid::effective().is_root() || !have("sftp") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::create_dir(root.join("htdocs")).expect("mkdir");
    let config = root.join("y.toml");
    std::fs::write(
        &config,
        "[server]\ndocument_root = \"htdocs\"\nhttp = \"127.0.0.1:0\"\nsftp = \"127.0.0.1:0\"\n\
         [hosting]\nhomes = \"homes\"\nuid_range = [24000, 24999]\n",
    )
    .expect("config");
    let user = |args: &[&str]| {
        let o = crate::support::sftp::user_cmd(&config, args, "");
        assert!(o.status.success(), "user {args:?}: {}", text(&o));
    };
    user(&["add", "carol", "--domain", "carol.example"]);
    let key = client_key(root, "id_carol");
    user(&[
        "key",
        "carol",
        key.with_extension("pub").to_str().expect("utf-8"),
    ]);
    let home = root.join("homes/carol");
    let uid = std::fs::metadata(&home).expect("home").uid();
    let r = Running::of(Server::spawn(&[
        "--config",
        config.to_str().expect("utf-8"),
    ]));
    let raw = r
        .server
        .raw(b"GET /?carol-1 HTTP/1.1\r\nHost: carol.example\r\nConnection: close\r\n\r\n");
    assert_eq!(raw_status(&raw), 200);
    let log = home.join("logs/access.log");
    assert!(
        eventually(|| std::fs::read_to_string(&log).is_ok_and(|t| t.contains("/?carol-1 "))),
        "{}",
        r.server.output()
    );
    let meta = std::fs::metadata(&log).expect("log");
    assert_eq!((meta.uid(), meta.mode() & 0o777), (uid, 0o600));
    let copy = root.join("fetched.log");
    let o = r.batch_as(
        "carol",
        Some(&key),
        format!("get logs/access.log {}\n", copy.display()),
        PATIENCE,
    );
    assert!(o.status.success(), "{}", text(&o));
    let fetched = std::fs::read_to_string(&copy).expect("fetched");
    assert!(fetched.contains("/?carol-1 "), "{fetched}");
}
