//! Upgrades that drop nothing (issue 21): SIGUSR2 starts the binary now on disk with the
//! listening sockets, and the old server drains once the new one is ready. Five upgrades in a
//! row under a load of static GETs, CGI GETs, POSTs and SFTP uploads lose nothing; a broken new
//! binary leaves the old one serving.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::support::sftp::{Running, SftpSite, local, run_with_input, ssh_options, text};
use crate::support::{self, PATIENCE, Server, Site, eventually, have, process_gone, raw_status};

/// Kills the server that an upgrade left running (the test's `Server` only knows the first).
struct Last(i32);

impl Drop for Last {
    fn drop(&mut self) {
        if self.0 > 0 {
            // SAFETY: kill(2) of the server this test started (through its upgrades), by pid.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
}

/// One request on a new connection; whether it got a 200 with `want` in its body.
fn request(addr: SocketAddr, head: &str, body: &[u8], want: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(PATIENCE));
    if s.write_all(head.as_bytes()).is_err() || s.write_all(body).is_err() {
        return false;
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    raw_status(&out) == 200 && String::from_utf8_lossy(&out).contains(want)
}

/// `GET /cgi-bin/hello.cgi` on a kept-alive connection: `Some(whether the response closes the
/// connection)` for a whole 200 response (chunked), `None` when there is none.
fn keep_alive_request(reader: &mut std::io::BufReader<TcpStream>) -> Option<bool> {
    use std::io::BufRead;
    let _ = reader.get_ref().set_read_timeout(Some(PATIENCE));
    reader
        .get_mut()
        .write_all(b"GET /cgi-bin/hello.cgi HTTP/1.1\r\nHost: upgrade\r\n\r\n")
        .ok()?;
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push(line.to_ascii_lowercase());
    }
    if !head
        .iter()
        .any(|l| l.starts_with("transfer-encoding: chunked"))
    {
        return None;
    }
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        let mut chunk = vec![0u8; size + 2];
        reader.read_exact(&mut chunk).ok()?;
        if size == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..size]);
    }
    let ok = head.first()?.starts_with("http/1.1 200") && body == b"hello script\n";
    let close = head
        .iter()
        .any(|l| l.starts_with("connection:") && l.contains("close"));
    ok.then_some(close)
}

/// Replaces the file at `path` with `content` in one rename, as a package upgrade does.
fn replace(path: &std::path::Path, content: &[u8]) {
    let next = path.with_extension("next");
    std::fs::write(&next, content).expect("write");
    std::fs::set_permissions(&next, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::rename(&next, path).expect("rename");
}

/// The server on `site`, run from a copy of the binary (which a test replaces between
/// upgrades): the server, the copy's path, and the directory that holds it.
fn start_from_a_copy(site: &Site) -> (Server, std::path::PathBuf, tempfile::TempDir) {
    let bin_dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let bin = bin_dir.path().join("yadokari");
    replace(&bin, &std::fs::read(support::bin()).expect("binary"));
    let mut cmd = Command::new(&bin);
    cmd.arg("--config").arg(site.config_path());
    (Server::spawn_command(cmd), bin, bin_dir)
}

/// The pid in the `n`th "new server is ready" line, once there is one.
fn ready_pid(server: &Server, n: usize) -> i32 {
    let said = |s: &str| s.matches("the new server is ready").count();
    assert!(
        eventually(|| said(&server.output()) >= n),
        "upgrade {n} never became ready:\n{}",
        server.output()
    );
    let out = server.output();
    out.lines()
        .filter(|l| l.contains("the new server is ready"))
        .nth(n - 1)
        .and_then(|l| l.split("new_pid=").nth(1))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no new_pid in:\n{out}"))
}

#[test]
fn five_upgrades_under_load_lose_no_request_and_a_broken_binary_changes_nothing() {
    if !have("sftp") {
        return;
    }
    let s = SftpSite::new("");
    s.site.file("index.html", "static page\n", 0o644);
    s.site.dir("cgi-bin", 0o755);
    s.site.file(
        "cgi-bin/hello.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello script\\n'\n",
        0o755,
    );
    s.site.file(
        "cgi-bin/count.cgi",
        "#!/bin/sh\nn=$(wc -c)\nprintf 'Content-Type: text/plain\\n\\ncounted %s\\n' \"$n\"\n",
        0o755,
    );
    s.site.write_config();
    // The server runs from a copy of the binary, which the test replaces between upgrades.
    let (server, bin, _bin_dir) = start_from_a_copy(&s.site);
    let running = Running::of(server);
    let first = running.server.pid() as i32;
    let mut last = Last(0);
    let http = running.server.http;

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let body = vec![b'p'; 64 * 1024];
    let loads: Vec<(String, Vec<u8>, &str)> = vec![
        (
            "GET /index.html HTTP/1.0\r\n\r\n".into(),
            Vec::new(),
            "static page",
        ),
        (
            "GET /cgi-bin/hello.cgi HTTP/1.0\r\n\r\n".into(),
            Vec::new(),
            "hello script",
        ),
        (
            format!(
                "POST /cgi-bin/count.cgi HTTP/1.0\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ),
            body,
            "counted 65536",
        ),
    ];
    let mut threads = Vec::new();
    for (head, body, want) in loads {
        let (stop, failures, done) = (stop.clone(), failures.clone(), done.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if request(http, &head, &body, want) {
                    done.fetch_add(1, Ordering::SeqCst);
                } else {
                    failures.fetch_add(1, Ordering::SeqCst);
                    eprintln!("failed: {}", head.lines().next().unwrap_or(""));
                }
            }
        }));
    }
    // Keep-alive clients, which send their next request the moment a response ends: the
    // old server must end such a connection with a response that says so, never between two
    // requests (where the client's next request would meet a closed connection). The script's
    // output is streamed (chunked), as most scripts' is: that is where it went wrong (wrk
    // counted read errors at every upgrade).
    for _ in 0..4 {
        let (stop, failures, done) = (stop.clone(), failures.clone(), done.clone());
        threads.push(std::thread::spawn(move || {
            let mut conn: Option<std::io::BufReader<TcpStream>> = None;
            while !stop.load(Ordering::SeqCst) {
                let reader = match conn.as_mut() {
                    Some(r) => r,
                    None => match TcpStream::connect(http) {
                        Ok(c) => conn.insert(std::io::BufReader::new(c)),
                        Err(_) => {
                            failures.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
                    },
                };
                match keep_alive_request(reader) {
                    Some(close) => {
                        done.fetch_add(1, Ordering::SeqCst);
                        if close {
                            conn = None;
                        }
                    }
                    None => {
                        failures.fetch_add(1, Ordering::SeqCst);
                        eprintln!("failed: a keep-alive request got no response");
                        conn = None;
                    }
                }
            }
        }));
    }
    let upload = local(s.site.dir.path(), "up.bin", &vec![b'u'; 256 * 1024]);
    let uploads = Arc::new(AtomicUsize::new(0));
    let sftp_failures = Arc::new(AtomicUsize::new(0));
    {
        let (stop, uploads, sftp_failures) = (stop.clone(), uploads.clone(), sftp_failures.clone());
        let key = s.key.clone();
        let addr = running.addr;
        let upload = upload.clone();
        threads.push(std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let o = put(
                    addr,
                    &key,
                    format!("put {} up-{}.bin\n", upload.display(), n % 3),
                );
                if o.status.success() {
                    uploads.fetch_add(1, Ordering::SeqCst);
                } else {
                    sftp_failures.fetch_add(1, Ordering::SeqCst);
                    eprintln!("sftp failed: {}", text(&o));
                }
                n += 1;
            }
        }));
    }

    let mut current = first;
    for n in 1..=5 {
        let before = done.load(Ordering::SeqCst);
        assert!(
            eventually(|| done.load(Ordering::SeqCst) > before + 5),
            "load runs"
        );
        replace(&bin, &std::fs::read(support::bin()).expect("binary"));
        // SAFETY: a signal to the server this test started (or its upgrade), by pid.
        unsafe { libc::kill(current, libc::SIGUSR2) };
        let next = ready_pid(&running.server, n);
        last.0 = next;
        assert_ne!(next, current);
        assert!(
            eventually(|| process_gone(current)),
            "the old server ({current}) drains and exits"
        );
        current = next;
    }
    let before = (done.load(Ordering::SeqCst), uploads.load(Ordering::SeqCst));
    assert!(
        eventually(|| done.load(Ordering::SeqCst) > before.0 + 5
            && uploads.load(Ordering::SeqCst) > before.1),
        "the last server serves HTTP and SFTP"
    );

    // A broken binary: the upgrade fails, the running server goes on, nothing is lost.
    replace(&bin, b"#!/bin/sh\necho broken >&2\nexit 1\n");
    // SAFETY: as above.
    unsafe { libc::kill(current, libc::SIGUSR2) };
    assert!(
        eventually(|| running
            .server
            .output()
            .contains("upgrade failed; this server keeps serving")),
        "the failure is logged:\n{}",
        running.server.output()
    );
    let before = done.load(Ordering::SeqCst);
    assert!(
        eventually(|| done.load(Ordering::SeqCst) > before + 5),
        "still serving"
    );
    assert!(!process_gone(current), "the same server serves on");

    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("load thread");
    }
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "HTTP requests failed across the upgrades"
    );
    assert_eq!(
        sftp_failures.load(Ordering::SeqCst),
        0,
        "SFTP uploads failed across the upgrades"
    );
    assert!(uploads.load(Ordering::SeqCst) > 0);
    let total = done.load(Ordering::SeqCst);
    eprintln!(
        "{total} HTTP requests and {} uploads across 5 upgrades",
        uploads.load(Ordering::SeqCst)
    );
}

/// `sftp -b -` as demo with `key` on a new connection to `addr`.
fn put(addr: SocketAddr, key: &std::path::Path, batch: String) -> std::process::Output {
    let mut cmd = Command::new("timeout");
    cmd.arg(PATIENCE.as_secs().to_string()).arg("sftp");
    cmd.args(ssh_options(addr.port()));
    cmd.arg("-i")
        .arg(key)
        .args(["-o", "BatchMode=yes", "-b", "-"])
        .arg(format!("demo@{}", addr.ip()));
    run_with_input(cmd, batch)
}

#[test]
fn yadokari_upgrade_finds_the_server_through_its_pid_file_and_refuses_a_stale_one() {
    let site = Site::new().config("[server]\npid_file = \"run/yadokari.pid\"");
    site.file("index.html", "page\n", 0o644);
    let run = site.dir.path().join("run");
    std::fs::create_dir(&run).expect("mkdir");
    site.write_config();
    let bin_dir = tempfile::tempdir().expect("tempdir");
    let bin = bin_dir.path().join("yadokari");
    replace(&bin, &std::fs::read(support::bin()).expect("binary"));
    let mut cmd = Command::new(&bin);
    cmd.arg("--config").arg(site.config_path());
    let server = Server::spawn_command(cmd);
    let pid_path = run.join("yadokari.pid");
    let old = server.pid() as i32;
    assert!(
        eventually(|| std::fs::read_to_string(&pid_path).is_ok_and(|t| t.trim() == old.to_string())),
        "the pid file names the server"
    );
    let mut last = Last(0);
    let o = Command::new(support::bin())
        .args(["upgrade", "--config"])
        .arg(site.config_path())
        .output()
        .expect("upgrade");
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let new: i32 = std::fs::read_to_string(&pid_path)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    last.0 = new;
    assert_ne!(new, old);
    assert!(said.contains(&format!("pid {new} serves now")), "{said}");
    assert!(eventually(|| process_gone(old)), "the old server exits");
    assert_eq!(server.get("/index.html").status, 200, "the new one serves");
    assert!(
        std::fs::read_to_string(&pid_path).is_ok_and(|t| t.trim() == new.to_string()),
        "the old server, stopping, left the new one's pid file alone"
    );

    // A stale file naming some other program: never signalled.
    std::fs::write(&pid_path, format!("{}\n", std::process::id())).expect("write");
    let o = Command::new(support::bin())
        .args(["upgrade", "--config"])
        .arg(site.config_path())
        .output()
        .expect("upgrade");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("not a running yadokari"), "{err}");
}

#[test]
fn a_second_upgrade_meanwhile_and_a_missing_binary_are_refused_and_the_server_serves_on() {
    let site = Site::new();
    site.file("index.html", "still here\n", 0o644);
    site.write_config();
    let (server, bin, _bin_dir) = start_from_a_copy(&site);
    let pid = server.pid() as i32;
    let said = |needle: &str| server.output().matches(needle).count();

    // A new binary that takes its time and then fails: a second SIGUSR2 meanwhile is refused.
    replace(&bin, b"#!/bin/sh\nsleep 2\nexit 1\n");
    // SAFETY: signals to the server this test started, by pid.
    unsafe { libc::kill(pid, libc::SIGUSR2) };
    assert!(
        eventually(|| said("waiting for it to be ready") == 1),
        "{}",
        server.output()
    );
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGUSR2) };
    assert!(
        eventually(|| said("an upgrade is already in progress") == 1),
        "{}",
        server.output()
    );
    assert!(
        eventually(|| said("ended before it was ready") == 1),
        "{}",
        server.output()
    );
    assert_eq!(server.get("/index.html").text(), "still here\n");

    // No binary at all.
    std::fs::remove_file(&bin).expect("remove");
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGUSR2) };
    assert!(
        eventually(|| said("is not there") == 1),
        "{}",
        server.output()
    );
    assert_eq!(server.get("/index.html").text(), "still here\n");
    assert!(!process_gone(pid));
}

#[test]
fn garbage_in_listen_fds_stops_the_start_with_the_reason() {
    let site = Site::new();
    site.write_config();
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=three exec \"$0\" --config \"$1\"")
        .arg(support::bin())
        .arg(site.config_path())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("socket activation") && err.contains("LISTEN_FDS"),
        "{err}"
    );
}
