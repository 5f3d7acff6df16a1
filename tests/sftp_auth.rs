//! Who gets in over SFTP: keys, passwords (set with `yadokari user passwd`, retried in one
//! connection), wrong keys, unknown users, the ban after repeated failures, the first-start demo
//! password, two users jailed apart, and `yadokari user ...` editing a running server's users.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::sftp::{
    Running, SftpSite, client_key, paramiko, password_options, python, run_with_input, ssh_options,
    text, user_cmd,
};
use crate::support::{PATIENCE, Server, Site, have};

#[test]
fn key_login_works_and_wrong_keys_and_unknown_users_are_refused() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("");
    s.site.file("here.txt", "x", 0o644);
    let r = s.start();
    let o = r.batch(&s.key, "ls\n");
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("here.txt"));

    let other = client_key(s.site.dir.path(), "id_other");
    let o = r.batch_as("demo", Some(&other), "ls\n", PATIENCE);
    assert!(
        !o.status.success(),
        "a key not in authorized_keys: {}",
        text(&o)
    );
    let o = r.batch_as("nobody", Some(&s.key), "ls\n", PATIENCE);
    assert!(!o.status.success(), "an unknown user: {}", text(&o));
    // Only the sftp subsystem: no shell, no exec.
    let o = Command::new("timeout")
        .args(["30", "ssh"])
        .args(
            ssh_options(r.addr.port())
                .into_iter()
                .map(|a| if a == "-P" { "-p".into() } else { a }),
        )
        .arg("-i")
        .arg(&s.key)
        .args(["-o", "BatchMode=yes", "-T"])
        .arg(format!("demo@{}", r.addr.ip()))
        .arg("cat /etc/passwd")
        .output()
        .expect("ssh");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("root:"));
}

#[test]
fn rsa_and_ecdsa_keys_log_in_too() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("");
    let dir = s.site.dir.path();
    let mut keys = Vec::new();
    for (kind, bits) in [("rsa", "3072"), ("ecdsa", "256")] {
        let key = dir.join(format!("id_{kind}"));
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-b", bits, "-N", "", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen");
        assert!(st.success());
        let line = std::fs::read_to_string(key.with_extension("pub")).expect("pub");
        let ak = dir.join("authorized_keys");
        let mut all = std::fs::read_to_string(&ak).expect("ak");
        all.push_str(&line);
        std::fs::write(&ak, all).expect("write");
        keys.push(key);
    }
    let r = s.start();
    for key in &keys {
        let o = r.batch_as("demo", Some(key), "pwd\n", PATIENCE);
        assert!(o.status.success(), "{}: {}", key.display(), text(&o));
    }
}

#[test]
fn password_set_with_user_passwd_logs_in_and_a_wrong_one_is_refused() {
    if !have("sftp") || !have("sshpass") {
        return;
    }
    let s = SftpSite::new("");
    let r = s.start_with_password("demo", "correct horse");
    let config = std::fs::read_to_string(s.site.config_path()).expect("config");
    assert!(config.contains("$argon2id$"), "{config}");
    assert!(
        !config.contains("correct horse"),
        "never the password itself"
    );
    let o = r.batch_password("demo", "correct horse", "pwd\n");
    assert!(o.status.success(), "{}", text(&o));
    let o = r.batch_password("demo", "wrong horse", "pwd\n");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        !r.server.output().contains("wrong horse"),
        "passwords are never logged"
    );
}

#[test]
fn a_wrong_password_can_be_retried_in_the_same_connection() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("");
    s.site.file("a.txt", "x", 0o644);
    let r = s.start_with_password("demo", "right one");
    // The stock client asks SSH_ASKPASS for each attempt: wrong first, right second.
    let dir = s.site.dir.path();
    let askpass = dir.join("askpass");
    std::fs::write(
        &askpass,
        format!(
            "#!/bin/sh\nif [ -e {n} ]; then echo 'right one'; else touch {n}; echo wrong; fi\n",
            n = dir.join("asked").display()
        ),
    )
    .expect("askpass");
    std::fs::set_permissions(
        &askpass,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let mut cmd = Command::new("timeout");
    cmd.args(["60", "setsid", "-w", "sftp"])
        .args(ssh_options(r.addr.port()))
        .args(password_options(3))
        .arg(format!("demo@{}", r.addr.ip()))
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0");
    let o = run_with_input(cmd, "ls\n");
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        dir.join("asked").exists(),
        "the wrong password was tried first"
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("a.txt"),
        "{}",
        text(&o)
    );
}

const FAIL_PASSWORD: &str = r#"
import sys, socket, paramiko
host, port = sys.argv[1], int(sys.argv[2])
try:
    t = paramiko.Transport(socket.create_connection((host, port)))
    t.start_client(timeout=30)
    t.auth_password("demo", "nope")
except Exception as e:
    print("refused", type(e).__name__)
"#;

#[test]
fn repeated_failures_ban_the_address() {
    let Some(py) = paramiko() else { return };
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("[sftp]\nmax_auth_failures = 3\nauth_delay_ms = 0\nban_secs = 600\n");
    let r = s.start();
    let (host, port) = (r.addr.ip().to_string(), r.addr.port().to_string());
    for _ in 0..3 {
        let o = python(py, FAIL_PASSWORD, &[&host, &port]);
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("refused"),
            "{}",
            text(&o)
        );
    }
    // Even the right key is now refused from this address.
    let o = r.batch(&s.key, "pwd\n");
    assert!(!o.status.success(), "banned: {}", text(&o));
    r.server.wait_for("too many failed logins");
}

#[test]
fn first_start_prints_the_demo_password_once_and_stores_only_its_hash() {
    if !have("sftp") || !have("sshpass") {
        return;
    }
    let site = Site::new().config("[[users]]\nname = \"demo\"\n");
    let r = Running::of(site.start());
    let line = r.server.wait_for("its password is now: ");
    let password = line
        .split("its password is now: ")
        .nth(1)
        .expect("password")
        .trim()
        .to_string();
    assert_eq!(password.len(), 16, "{line}");
    r.server.wait_for("SSH host key fingerprint: SHA256:");
    let config = std::fs::read_to_string(site.config_path()).expect("config");
    assert!(config.contains("password_hash = \"$argon2id$"), "{config}");
    assert!(!config.contains(&password));
    let key = site.dir.path().join("ssh_host_ed25519_key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key).expect("host key").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let o = r.batch_password("demo", &password, "pwd\n");
    assert!(o.status.success(), "{}", text(&o));
    drop(r);
    // The second start finds credentials and prints no password.
    let server = site.start_as_written();
    server.wait_for("listening sftp=");
    server.wait_for("SSH host key fingerprint");
    assert!(!server.output().contains("password is now"));
}

#[test]
fn two_users_are_jailed_apart() {
    if !have("sftp") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for d in ["htdocs", "alice", "bob"] {
        std::fs::create_dir(root.join(d)).expect("mkdir");
    }
    std::fs::write(root.join("alice/alice.txt"), "a").expect("write");
    std::fs::write(root.join("bob/bob.txt"), "b").expect("write");
    crate::support::give_to_test_user(&root.join("alice"));
    crate::support::give_to_test_user(&root.join("bob"));
    let ka = client_key(root, "id_alice");
    let kb = client_key(root, "id_bob");
    std::fs::copy(ka.with_extension("pub"), root.join("ak_alice")).expect("copy");
    std::fs::copy(kb.with_extension("pub"), root.join("ak_bob")).expect("copy");
    let config = root.join("y.toml");
    std::fs::write(
        &config,
        "[server]\ndocument_root = \"htdocs\"\nhttp = \"127.0.0.1:0\"\nsftp = \"127.0.0.1:0\"\n\
         [[users]]\nname = \"alice\"\nsite = \"alice\"\nauthorized_keys = \"ak_alice\"\n\
         [[users]]\nname = \"bob\"\nsite = \"bob\"\nauthorized_keys = \"ak_bob\"\n",
    )
    .expect("config");
    let r = Running::of(Server::spawn(&[
        "--config",
        config.to_str().expect("utf-8"),
    ]));
    let o = r.batch_as("alice", Some(&ka), "ls -a /\nls ../bob\n", PATIENCE);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("alice.txt"), "{}", text(&o));
    assert!(!out.contains("bob.txt"), "{}", text(&o));
    let o = r.batch_as("bob", Some(&ka), "ls\n", PATIENCE);
    assert!(
        !o.status.success(),
        "alice's key is not bob's: {}",
        text(&o)
    );
}

#[test]
fn user_subcommands_edit_the_config_and_the_running_server_follows() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("");
    let r = s.start();
    let cfg = s.site.config_path();
    let bob_site = s.site.dir.path().join("bobsite");
    std::fs::create_dir(&bob_site).expect("mkdir");
    std::fs::write(bob_site.join("bob.txt"), "b").expect("write");
    crate::support::give_to_test_user(&bob_site);
    let kb = client_key(s.site.dir.path(), "id_bob");
    let o = user_cmd(
        &cfg,
        &["add", "bob", "--site", bob_site.to_str().expect("utf-8")],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = user_cmd(
        &cfg,
        &[
            "key",
            "bob",
            kb.with_extension("pub").to_str().expect("utf-8"),
        ],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = user_cmd(&cfg, &["list"], "");
    let listed = String::from_utf8_lossy(&o.stdout);
    assert!(
        listed.contains("demo") && listed.contains("bob"),
        "{listed}"
    );

    let deadline = Instant::now() + PATIENCE;
    loop {
        let o = r.batch_as("bob", Some(&kb), "ls\n", PATIENCE);
        if o.status.success() {
            assert!(
                String::from_utf8_lossy(&o.stdout).contains("bob.txt"),
                "{}",
                text(&o)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the running server never let bob in: {}",
            text(&o)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let o = user_cmd(&cfg, &["remove", "bob"], "");
    assert!(o.status.success(), "{}", text(&o));
    let deadline = Instant::now() + PATIENCE;
    while r
        .batch_as("bob", Some(&kb), "ls\n", PATIENCE)
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "bob was never removed");
        std::thread::sleep(Duration::from_millis(500));
    }
    let o = user_cmd(&cfg, &["remove", "nobody"], "");
    assert!(!o.status.success());
}

#[test]
fn a_connection_that_never_logs_in_is_closed_after_the_login_grace_time() {
    use std::io::Read;
    let s = SftpSite::new("[sftp]\nlogin_grace_secs = 1\n");
    let r = s.start();
    for greet in [false, true] {
        let mut c = std::net::TcpStream::connect(r.addr).expect("connect");
        c.set_read_timeout(Some(PATIENCE)).expect("timeout");
        if greet {
            use std::io::Write;
            c.write_all(b"SSH-2.0-silent_client\r\n").expect("greet");
        }
        let started = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            assert!(started.elapsed() < PATIENCE, "never closed");
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "closed after {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn sessions_per_user_are_capped() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("[sftp]\nmax_sessions_per_user = 1\n");
    let r = s.start();
    // One session held open (its batch waits on stdin).
    let mut held = r.spawn_batch(&s.key);
    let deadline = Instant::now() + PATIENCE;
    while !r.server.output().contains("sftp session started") {
        assert!(Instant::now() < deadline, "the first session never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = r.batch(&s.key, "pwd\n");
    assert!(!o.status.success(), "a second session: {}", text(&o));
    drop(held.stdin.take());
    let _ = held.wait();
    // The slot is free again once the server has wound the first session down.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let o = r.batch(&s.key, "pwd\n");
        if o.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the first ended: {}",
            text(&o)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn idle_connections_from_one_address_cannot_lock_out_logins() {
    use std::io::Read;
    if !crate::support::have("sftp") {
        return;
    }
    let s = SftpSite::new("[sftp]\nmax_unauthenticated_per_address = 10");
    let r = s.start();
    // Ten connections that never even send their SSH version hold all their address may.
    let idle: Vec<_> = (0..10)
        .map(|_| {
            let mut c = std::net::TcpStream::connect(r.addr).expect("connect");
            let mut banner = [0u8; 8];
            c.read_exact(&mut banner).expect("server banner");
            c
        })
        .collect();
    // The next one from there is closed without a word...
    let mut over = std::net::TcpStream::connect(r.addr).expect("connect");
    over.set_read_timeout(Some(crate::support::PATIENCE))
        .expect("timeout");
    let mut got = Vec::new();
    let _ = over.read_to_end(&mut got);
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    // ...while a client from another address logs in.
    let mut cmd = Command::new("timeout");
    cmd.args(["60", "sftp"])
        .args(crate::support::sftp::ssh_options(r.addr.port()))
        .args(["-o", "BindAddress=127.0.0.2", "-o", "BatchMode=yes", "-i"])
        .arg(&s.key)
        .args(["-b", "-"])
        .arg(format!("demo@{}", r.addr.ip()));
    let o = crate::support::sftp::run_with_input(cmd, "pwd\n");
    assert!(o.status.success(), "{}", text(&o));
    drop(idle);
}

#[test]
fn a_site_owned_by_root_or_holding_the_server_gives_no_sftp_login() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("");
    let cfg = s.site.config_path();
    s.site.write_config();
    // `user add` refuses the whole file system, and a directory holding the configuration.
    for site in ["/", s.site.dir.path().to_str().expect("utf-8")] {
        let o = user_cmd(&cfg, &["add", "mallory", "--site", site], "");
        assert!(!o.status.success(), "{site} was accepted");
        assert!(
            text(&o).contains("can never be a customer's site"),
            "{}",
            text(&o)
        );
    }
    if crate::support::test_user().is_none() {
        return; // the rest is about a server running as root
    }
    // A site that belongs to root: refused by `user add`, with the chown that fixes it...
    let rooted = s.site.dir.path().join("rooted");
    std::fs::create_dir(&rooted).expect("mkdir");
    let o = user_cmd(
        &cfg,
        &["add", "eve", "--site", rooted.to_str().expect("utf-8")],
        "",
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("chown -R"), "{}", text(&o));
    // ...and one already in the configuration still serves HTTP, but logs in nobody.
    std::os::unix::fs::chown(s.site.htdocs(), Some(0), Some(0)).expect("chown");
    s.site.file("page.html", "web", 0o644);
    std::os::unix::fs::chown(s.site.path("page.html"), Some(0), Some(0)).expect("chown");
    let r = Running::of(s.site.start_as_written());
    r.server.wait_for("SFTP logins of `demo` are refused");
    assert_eq!(r.server.get("/page.html").text(), "web");
    let o = r.batch(&s.key, "pwd\n");
    assert!(!o.status.success(), "root's site let demo in: {}", text(&o));
    let line = r.server.wait_for("sftp login refused");
    assert!(line.contains("uid 0") || line.contains("root"), "{line}");
}
