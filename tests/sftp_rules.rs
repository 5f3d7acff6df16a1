//! The SFTP side's rules where hostile or unlucky clients meet them: names that try to forge
//! log lines, exclusive creates racing from two sessions, quotas counting directories, and
//! refusals logged with their reason.

use crate::support::have;
use crate::support::sftp::{SftpSite, paramiko, text};

/// A name whose second half looks like a log line of its own.
const FORGED: &str = "FORGED 2026-01-01T00:00:00Z  INFO sftp login (key) user=root";

#[test]
fn names_with_line_breaks_cannot_forge_log_lines() {
    let Some(py) = paramiko() else {
        return;
    };
    let s = SftpSite::new("");
    let r = s.start();
    let o = r.paramiko(
        py,
        &s.key,
        r#"
sftp = paramiko.SFTPClient.from_transport(t)
forged = sys.argv[4]
with sftp.open("up\n" + forged, "w") as f:
    f.write(b"x")
sftp.chmod("up\n" + forged, 0o755)
sftp.open("up\n" + forged).read()
sftp.mkdir("dir\r\n" + forged)
sftp.rename("up\n" + forged, "moved\n" + forged)
sftp.remove("moved\n" + forged)
sftp.rmdir("dir\r\n" + forged)
try:
    sftp.symlink("/etc/passwd", "link\n" + forged)
except IOError:
    pass
print("done")
"#,
        &[FORGED],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = r.server.output();
    for op in [
        "upload", "chmod", "download", "mkdir", "rename", "remove", "rmdir",
    ] {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!("op=\"{op}\"")) || l.contains(&format!("op={op}"))),
            "no {op} line:\n{out}"
        );
    }
    for line in out.lines() {
        assert!(
            !line.starts_with("FORGED"),
            "forged line {line:?} in:\n{out}"
        );
    }
    assert!(out.contains("\\nFORGED"), "escaped name missing:\n{out}");
}

#[test]
fn an_exclusive_create_fails_when_another_session_holds_the_name() {
    let Some(py) = paramiko() else {
        return;
    };
    let s = SftpSite::new("");
    let r = s.start();
    let o = r.paramiko(
        py,
        &s.key,
        r#"
import urllib.request, urllib.error
def session():
    t2 = paramiko.Transport(socket.create_connection((host, port)))
    t2.start_client(timeout=30)
    t2.auth_publickey("demo", key)
    return paramiko.SFTPClient.from_transport(t2)
def http(path):
    try:
        return urllib.request.urlopen(sys.argv[4] + path).status
    except urllib.error.HTTPError as e:
        return e.code
one = paramiko.SFTPClient.from_transport(t)
two = session()
first = one.open("lock.txt", "wx")
print("first ok")
try:
    two.open("lock.txt", "wx")
    print("second ok")
except IOError as e:
    print("second refused:", e)
first.write(b"mine\n")
print("while open", http("/lock.txt"))
first.close()
print("after close", http("/lock.txt"))
print("content", one.open("lock.txt").read())
try:
    two.open("lock.txt", "wx")
    print("third ok")
except IOError as e:
    print("third refused:", e)
abandoned = two.open("gone.txt", "wx")
abandoned.write(b"x")
two.get_channel().get_transport().close()
import time
for _ in range(100):
    if "gone.txt" not in one.listdir("."):
        break
    time.sleep(0.1)
print("after abandon", one.listdir("."))
"#,
        &[&r.server.url("")],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    for want in [
        "first ok",
        "second refused: already exists",
        "while open 403",
        "after close 200",
        "content b'mine\\n'",
        "third refused: already exists",
        "after abandon ['lock.txt']",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{}", text(&o));
    }
    assert_eq!(super::support::sftp::mode(&s.site.path("lock.txt")), 0o644);
}

/// Makes `d1` .. `d20` with the stock client (each `-mkdir` goes on after a refusal) and
/// returns the directories made and the client's output.
fn make_twenty_dirs(s: &SftpSite) -> (usize, String) {
    let r = s.start();
    let batch: String = (1..=20).map(|n| format!("-mkdir d{n}\n")).collect();
    let o = r.batch(&s.key, batch);
    let made = std::fs::read_dir(s.site.htdocs())
        .expect("ls")
        .flatten()
        .filter(|e| e.path().is_dir())
        .count();
    (made, text(&o))
}

#[test]
fn directories_count_against_the_file_limit() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("quota_files = 5\n");
    s.site.file("index.html", "hi", 0o644);
    s.site.dir("img", 0o755);
    let (made, out) = make_twenty_dirs(&s);
    assert_eq!(made, 4, "index.html + img + 3 new directories = 5:\n{out}");
}

#[test]
fn directories_count_against_the_byte_limit() {
    if !have("sftp") {
        return;
    }
    // Each directory counts as 4096 bytes: 4 fit in 20,000, a fifth does not.
    let s = SftpSite::new("quota_bytes = 20000\n");
    let (made, out) = make_twenty_dirs(&s);
    assert_eq!(made, 4, "{out}");
}

#[test]
fn refusals_are_logged_with_their_reason_and_quota_messages_name_the_limit() {
    let Some(py) = paramiko() else {
        return;
    };
    let s = SftpSite::new("quota_bytes = 5000\n");
    s.site.file("full/keep.txt", "keep", 0o644);
    let r = s.start();
    let o = r.paramiko(
        py,
        &s.key,
        r#"
sftp = paramiko.SFTPClient.from_transport(t)
def refused(f, *a):
    try:
        f(*a)
        return "allowed"
    except (IOError, OSError) as e:
        return str(e)
print("symlink:", refused(sftp.symlink, "/etc/passwd", "pw"))
print("chown:", refused(sftp.chown, "full/keep.txt", 12345, 12345))
print("rmdir:", refused(sftp.rmdir, "full"))
def big():
    with sftp.open("big.bin", "w") as f:
        f.write(b"x" * 8000)
print("quota:", refused(big))
"#,
        &[],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        out.contains("quota: disk quota exceeded: your site may hold 5000 bytes and holds"),
        "the client's message names the limit: {}",
        text(&o)
    );
    let log = r.server.output();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("sftp request refused"))
        .collect();
    for (op, reason) in [
        ("symlink", "symbolic links cannot be made"),
        ("setstat", "chown and chgrp are not allowed"),
        ("rmdir", "directory not empty"),
        ("write", "may hold 5000 bytes and holds 4100"),
    ] {
        assert!(
            refused.iter().any(|l| l.contains(op) && l.contains(reason)),
            "no refusal line for {op} with {reason:?}:\n{log}"
        );
    }
    assert!(!log.contains("os error"), "a raw errno in the log:\n{log}");
}
