//! How SFTP sessions end: a client that stops reading its replies and vanishes must leave
//! nothing behind (its file handle, its queued replies) and must not keep the server from
//! stopping; and a session ended by the client reports `exit-status 0`, so the stock `scp`
//! (which speaks SFTP) exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::sftp::{SftpSite, filled, local, paramiko, python, ssh_options, text};
use crate::support::{eventually, have};

/// Opens `big.bin`, floods the channel with requests it never reads the replies of (its
/// window is 4 KiB, so the server can hand it almost nothing), then resets the TCP connection
/// without a word. argv[4]: `reads` (3,000 pipelined 32 KiB READs) or `stats` (2 million
/// STATs, more than the server queues: its reader stalls); `polite` just closes the channel,
/// for a baseline; `hold` stalls the session as `stats` does, then stays connected.
const VANISH: &str = r#"
import os, sys, socket, struct, threading, time, paramiko
host, port, keyfile, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
key = paramiko.Ed25519Key.from_private_key_file(keyfile)
sock = socket.create_connection((host, port))
t = paramiko.Transport(sock)
t.start_client(timeout=30)
t.auth_publickey("demo", key)
ch = t.open_session(window_size=4096, max_packet_size=4096)
ch.invoke_subsystem("sftp")
def pkt(kind, rid, body):
    p = bytes([kind]) + struct.pack(">I", rid) + body
    return struct.pack(">I", len(p)) + p
def s(b):
    return struct.pack(">I", len(b)) + b
def recv():
    head = b""
    while len(head) < 4:
        head += ch.recv(4 - len(head))
    n = struct.unpack(">I", head)[0]
    body = b""
    while len(body) < n:
        body += ch.recv(n - len(body))
    return body
ch.sendall(pkt(1, 3, b""))  # INIT, version 3
recv()
ch.sendall(pkt(3, 1, s(b"big.bin") + struct.pack(">II", 1, 0)))  # OPEN for reading
h = recv()
assert h[0] == 102, h
handle = h[9:9 + struct.unpack(">I", h[5:9])[0]]
ch.settimeout(10)
if mode == "hold":
    mode = "stats"
    hold = True
else:
    hold = False
if mode == "polite":
    ch.close()
    t.close()
    sys.exit(0)
if mode == "reads":
    flood = [b"".join(pkt(5, 10 + i, s(handle) + struct.pack(">QI", i * 32768, 32768))
                      for i in range(3000))]
else:
    one = s(b"big.bin")
    flood = [b"".join(pkt(17, i + j, one) for j in range(100000))
             for i in range(0, 2000000, 100000)]
sent = [0]
def send_all():
    try:
        for chunk in flood:
            ch.sendall(chunk)
            sent[0] += 1
        print("sent everything")
    except (socket.timeout, OSError, EOFError):
        print("the server stopped taking requests")
    sys.stdout.flush()
# Once the server stops reading, the socket's buffers fill and the send blocks for good.
sender = threading.Thread(target=send_all, daemon=True)
sender.start()
before = -1
while sender.is_alive() and sent[0] != before:
    before = sent[0]
    sender.join(3)
if sender.is_alive():
    print("the server stopped reading")
sys.stdout.flush()
if hold:
    time.sleep(120)
# Gone at once, as a killed client: a reset, which no data still queued can hold back.
sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
sock.close()
os._exit(0)
"#;

/// The descriptors the server has open, as `/proc/PID/fd` shows them.
fn open_fds(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .map(|e| {
                    std::fs::read_link(e.path())
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The server's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// What a vanished session may leave resident (allocator slack), in KiB: far less than the
/// queues of one stalled session.
const RSS_SLACK_KIB: u64 = 24 * 1024;

#[test]
fn a_client_that_never_reads_and_vanishes_leaves_nothing_and_shutdown_completes() {
    let Some(py) = paramiko() else {
        return;
    };
    let s = SftpSite::new("");
    filled(&s.site.path("big.bin"), b'b', 64);
    let mut r = s.start();
    let pid = r.server.pid();
    let (host, port) = (r.addr.ip().to_string(), r.addr.port().to_string());
    let key = s.key.to_str().expect("utf-8");
    let held = || open_fds(pid).iter().any(|p| p.ends_with("/big.bin"));
    // The baseline is taken after a polite session: the server opens some descriptors (its
    // runtime's, the config watcher's) once, lazily.
    let o = python(py, VANISH, &[&host, &port, key, "polite"]);
    assert!(o.status.success(), "polite: {}", text(&o));
    assert!(eventually(|| !held()), "the polite session holds big.bin");
    let baseline = open_fds(pid).len();
    let baseline_rss = rss_kib(pid);
    for mode in ["reads", "stats"] {
        let o = python(py, VANISH, &[&host, &port, key, mode]);
        assert!(o.status.success(), "{mode}: {}", text(&o));
        assert!(
            eventually(|| !held()),
            "{mode}: the vanished session still holds big.bin: {:?}\n{}",
            open_fds(pid),
            r.server.output()
        );
        assert!(
            eventually(|| open_fds(pid).len() <= baseline),
            "{mode}: descriptors {} > {baseline}: {:?}",
            open_fds(pid).len(),
            open_fds(pid)
        );
        assert!(
            eventually(|| rss_kib(pid) <= baseline_rss + RSS_SLACK_KIB),
            "{mode}: resident {} KiB, {baseline_rss} KiB before",
            rss_kib(pid)
        );
    }
    r.server.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(r.server.wait_exit(), Some(0), "{}", r.server.output());
}

#[test]
fn a_stalled_session_does_not_hold_up_shutdown() {
    let Some(py) = paramiko() else {
        return;
    };
    let s = SftpSite::new("[limits]\nshutdown_grace_secs = 1\n");
    filled(&s.site.path("big.bin"), b'b', 1);
    let mut r = s.start();
    let (host, port) = (r.addr.ip().to_string(), r.addr.port().to_string());
    let mut client = Command::new(py)
        .args([
            "-c",
            VANISH,
            &host,
            &port,
            s.key.to_str().expect("utf-8"),
            "hold",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python");
    let mut out = BufReader::new(client.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("read");
    assert!(!line.is_empty(), "the client never got going");
    r.server.signal(nix::sys::signal::Signal::SIGTERM);
    let code = r.server.wait_exit();
    let _ = client.kill();
    let _ = client.wait();
    assert_eq!(code, Some(0));
}

/// Runs the stock `scp` (SFTP mode, `-s` where the option exists) with the demo key.
fn scp(s: &SftpSite, port: u16, from: &str, to: &str) -> std::process::Output {
    let mut cmd = Command::new("timeout");
    cmd.args(["60", "scp"])
        .args(ssh_options(port))
        .arg("-i")
        .arg(&s.key)
        .args(["-o", "BatchMode=yes", from, to]);
    cmd.output().expect("scp")
}

#[test]
fn scp_upload_and_download_exit_zero() {
    if !have("scp") {
        return;
    }
    let s = SftpSite::new("");
    let r = s.start();
    let work = tempfile::tempdir().expect("tempdir");
    let src = local(work.path(), "up.txt", b"over scp\n");
    let remote = |p: &str| format!("demo@{}:{p}", r.addr.ip());
    let o = scp(
        &s,
        r.addr.port(),
        src.to_str().expect("utf-8"),
        &remote("up.txt"),
    );
    assert_eq!(o.status.code(), Some(0), "upload: {}", text(&o));
    assert_eq!(
        std::fs::read(s.site.path("up.txt")).expect("uploaded"),
        b"over scp\n"
    );
    let back = work.path().join("back.txt");
    let o = scp(
        &s,
        r.addr.port(),
        &remote("up.txt"),
        back.to_str().expect("utf-8"),
    );
    assert_eq!(o.status.code(), Some(0), "download: {}", text(&o));
    assert_eq!(std::fs::read(&back).expect("downloaded"), b"over scp\n");
}
