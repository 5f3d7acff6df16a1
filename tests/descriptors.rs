//! File descriptors: the soft limit is raised at start, caps the limit cannot honour are
//! refused with the numbers, and running out is a 503, never a 404 for a file that exists.

use std::io::{Read, Write};
use std::process::Command;

use crate::support::{Server, Site, bin, have};

/// `Max open files` of `pid`: (soft, hard).
fn nofile(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let mut words = line.split_whitespace().skip(3);
    (
        words.next().expect("soft").to_string(),
        words.next().expect("hard").to_string(),
    )
}

fn under_ulimit(site: &Site, ulimit: &str) -> Command {
    site.write_config();
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        &format!("ulimit {ulimit}; exec \"$0\" --config \"$1\""),
    ])
    .arg(bin())
    .arg(site.config_path());
    cmd
}

#[test]
fn the_soft_limit_is_raised_to_the_hard_one() {
    let site = Site::new();
    let server = Server::spawn_command(under_ulimit(&site, "-Sn 64"));
    let (soft, hard) = nofile(server.pid());
    assert_eq!(soft, hard);
}

#[test]
fn caps_the_limit_cannot_honour_are_refused_with_the_numbers() {
    let site = Site::new();
    let out = under_ulimit(&site, "-n 256").output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("file descriptors"), "{err}");
    assert!(err.contains("limits.max_connections"), "{err}");
    assert!(err.contains("256"), "{err}");
}

#[test]
fn running_out_of_descriptors_is_a_503_not_a_404() {
    if !have("prlimit") {
        return;
    }
    let site = Site::new();
    site.file("a.txt", "a", 0o644);
    let server = site.start();
    // One kept-alive connection, already accepted: its next request needs one descriptor more
    // (the file), and the limit will allow none.
    let mut conn = server.connect();
    let ask = b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    conn.write_all(ask).expect("write");
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // The limit bounds descriptor numbers: set it to the lowest free one. The server's own
    // housekeeping (the reaper's look at /proc) may hold a descriptor for a moment when the
    // numbers are read, leaving a gap below the limit: then the request is served, and the
    // next try reads the numbers again. Bounded: 20 tries.
    let mut head = String::new();
    for _ in 0..20 {
        let open: std::collections::HashSet<usize> =
            std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
                .expect("fds")
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect();
        let lowest_free = (0..).find(|n| !open.contains(n)).expect("a free number");
        let limit = format!("--nofile={lowest_free}");
        let st = Command::new("prlimit")
            .args(["--pid", &server.pid().to_string(), &limit])
            .status()
            .expect("prlimit");
        assert!(st.success());
        conn.write_all(ask).expect("write");
        let n = conn.read(&mut buf).expect("read");
        head = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(!head.starts_with("HTTP/1.1 404"), "{head}");
        if head.starts_with("HTTP/1.1 503") {
            break;
        }
    }
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
}

#[test]
fn sftp_handles_of_all_sessions_share_what_the_descriptors_leave() {
    use crate::support::sftp::{Running, SftpSite, paramiko, text};
    let Some(py) = paramiko() else {
        return;
    };
    // Reserved: 64 + 8 connections × 2 + 2 scripts × 4 + 4 SSH connections × 3 = 100, and one
    // session's 8 handles must fit: with a limit of 112, all sessions together get 12.
    let s = SftpSite::new(
        "[limits]\nmax_connections = 8\n[cgi]\nmax_concurrent = 2\n\
         [sftp]\nmax_connections = 4\nmax_handles = 8",
    );
    for i in 0..16 {
        s.site.file(&format!("f{i}.txt"), "x", 0o644);
    }
    s.site.file("page.html", "web", 0o644);
    let r = Running::of(Server::spawn_command(under_ulimit(&s.site, "-n 112")));
    let o = r.paramiko(
        py,
        &s.key,
        r#"
first = paramiko.SFTPClient.from_transport(t)
second = paramiko.SFTPClient.from_transport(t)
held = [first.open(f"f{i}.txt") for i in range(8)]
got = []
for i in range(8, 16):
    try:
        got.append(second.open(f"f{i}.txt"))
    except IOError as e:
        print("refused:", e)
        break
print("second session opened", len(got))
"#,
        &[],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("second session opened 4"), "{}", text(&o));
    assert!(
        out.contains("as many files open as it allows"),
        "{}",
        text(&o)
    );
    // The web side is not starved.
    assert_eq!(r.server.get("/page.html").text(), "web");
}
