//! The SFTP protocol seen from a second real client (paramiko) and from raw packets on the
//! channel: big pipelined downloads under a timeout, operations the OpenSSH CLI does not
//! expose, a packet over the limit, and malformed requests answered with their own id.

use crate::support::sftp::{SftpSite, paramiko, text};

fn run(s: &SftpSite, body: &str, extra: &[&str]) -> std::process::Output {
    let py = paramiko().expect("checked");
    let r = s.start();
    r.paramiko(py, &s.key, body, extra)
}

#[test]
fn paramiko_get_of_a_256_mib_file_finishes_and_matches() {
    if paramiko().is_none() {
        return;
    }
    use sha2::Digest;
    use std::io::Write;
    let s = SftpSite::new("");
    // 256 MiB of a pattern, written and hashed piece by piece.
    let path = s.site.path("big.bin");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    let mut hash = sha2::Sha256::new();
    let mut chunk = vec![0u8; 1024 * 1024];
    for n in 0..256u32 {
        for (i, b) in chunk.iter_mut().enumerate() {
            *b = ((i as u32).wrapping_mul(2654435761) ^ n) as u8;
        }
        f.write_all(&chunk).expect("write");
        hash.update(&chunk);
    }
    f.flush().expect("flush");
    drop(f);
    let want: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let work = tempfile::tempdir().expect("tempdir");
    let dest = work.path().join("got.bin");
    let o = run(
        &s,
        r#"
sftp = paramiko.SFTPClient.from_transport(t)
sftp.get("big.bin", sys.argv[4])
h = hashlib.sha256()
with open(sys.argv[4], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print("sha256", h.hexdigest())
"#,
        &[dest.to_str().expect("utf-8")],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&want),
        "{}",
        text(&o)
    );
}

#[test]
fn paramiko_operations_follow_the_rental_server_rules() {
    if paramiko().is_none() {
        return;
    }
    let s = SftpSite::new("");
    s.site.file("a.txt", "alpha", 0o644);
    s.site.file("b.txt", "bravo", 0o644);
    let o = run(
        &s,
        r#"
sftp = paramiko.SFTPClient.from_transport(t)
def refused(f, *a):
    try:
        f(*a); return "allowed"
    except (IOError, OSError) as e:
        return "refused"
print("rename-over", refused(sftp.rename, "a.txt", "b.txt"))
sftp.posix_rename("a.txt", "b.txt")
print("b", sftp.open("b.txt").read().decode())
print("symlink", refused(sftp.symlink, "/etc/passwd", "pw"))
with sftp.open("app.log", "a") as f:
    f.write(b"one\n")
with sftp.open("app.log", "a") as f:
    f.write(b"two\n")
print("append", repr(sftp.open("app.log").read().decode()))
with sftp.open("rand.bin", "w") as f:
    f.write(b"0123456789")
with sftp.open("rand.bin", "r+") as f:
    f.seek(3); f.write(b"xy")
print("random", sftp.open("rand.bin").read().decode())
sftp.truncate("rand.bin", 4)
sftp.utime("rand.bin", (1000000000, 1000000000))
st = sftp.stat("rand.bin")
print("stat", st.st_size, st.st_mtime, oct(st.st_mode))
sftp.mkdir("d", 0o777)
print("mkdir", oct(sftp.stat("d").st_mode & 0o7777))
print("rmdir-root", refused(sftp.rmdir, "/"))
print("rename-root", refused(sftp.rename, "/", "x"))
print("realpath", sftp.normalize("../../d/./"))
print("outside", refused(sftp.stat, "/../../etc/passwd"))
"#,
        &[],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    for want in [
        "rename-over refused",
        "b alpha",
        "symlink refused",
        "append 'one\\ntwo\\n'",
        "random 012xy56789",
        "stat 4 1000000000 0o100644",
        "mkdir 0o755",
        "rmdir-root refused",
        "rename-root refused",
        "realpath /d",
        "outside refused",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{}", text(&o));
    }
}

/// Raw SFTP on the channel: INIT, then a malformed OPEN, then a packet over the limit.
const RAW: &str = r#"
ch = t.open_session()
ch.invoke_subsystem("sftp")
def send(kind, payload):
    body = bytes([kind]) + payload
    ch.sendall(struct.pack(">I", len(body)) + body)
def recv():
    head = b""
    while len(head) < 4:
        chunk = ch.recv(4 - len(head))
        if not chunk: return None
        head += chunk
    n = struct.unpack(">I", head)[0]
    body = b""
    while len(body) < n:
        chunk = ch.recv(n - len(body))
        if not chunk: return None
        body += chunk
    return body
send(1, struct.pack(">I", 3))
v = recv()
print("version", v[0], struct.unpack(">I", v[1:5])[0], b"limits@openssh.com" in v)
# OPEN with id 77 whose path string claims more bytes than the packet has.
send(3, struct.pack(">II", 77, 1000) + b"short")
r = recv()
print("status", r[0], struct.unpack(">I", r[1:5])[0], struct.unpack(">I", r[5:9])[0])
# limits@openssh.com reports the real limit.
name = b"limits@openssh.com"
send(200, struct.pack(">II", 78, len(name)) + name)
r = recv()
print("limits", r[0], struct.unpack(">I", r[1:5])[0], struct.unpack(">Q", r[5:13])[0])
# A packet header claiming 16 MiB: the session must end, not wait or desynchronise.
ch.settimeout(20)
ch.sendall(struct.pack(">I", 16 * 1024 * 1024) + b"\x03" + b"\x00" * 100)
try:
    print("after-oversize", recv())
except socket.timeout:
    print("after-oversize timeout")
"#;

#[test]
fn malformed_requests_get_their_own_id_and_an_oversized_packet_ends_the_session() {
    if paramiko().is_none() {
        return;
    }
    let s = SftpSite::new("");
    let o = run(&s, RAW, &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.contains("version 2 3 True"), "{}", text(&o));
    assert!(
        out.contains("status 101 77 5"),
        "BAD_MESSAGE for id 77: {}",
        text(&o)
    );
    assert!(out.contains("limits 201 78 262144"), "{}", text(&o));
    assert!(
        out.contains("after-oversize None"),
        "the channel closes: {}",
        text(&o)
    );
}
