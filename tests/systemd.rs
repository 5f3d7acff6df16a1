//! Living under a service manager (issue 21, first part): sockets handed over by socket
//! activation (`systemd-socket-activate`, which works without systemd as PID 1), readiness,
//! reload, stop and watchdog notifications on a `NOTIFY_SOCKET` the test owns, and SIGUSR1
//! reopening the log files after a rotation.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::sftp::{Running, SftpSite, local, text};
use crate::support::{PATIENCE, Server, Site, bin, eventually, have};

/// A port nobody listens on now (bound and let go: the socket activator binds it next).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// `GET path` on `port` once something accepts there (the activator starts the server at the
/// first connection); the status code.
fn get_when_listening(port: u16, path: &str) -> std::thread::JoinHandle<u16> {
    let path = path.to_string();
    std::thread::spawn(move || {
        let deadline = Instant::now() + PATIENCE;
        let mut stream = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("nothing listens on {port}: {e}"),
            }
        };
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("send");
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        crate::support::raw_status(&out)
    })
}

/// The notifications that arrive on `socket` within `bound`, one string per datagram.
fn notifications_until(socket: &UnixDatagram, bound: Duration, want: &str) -> Vec<String> {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let deadline = Instant::now() + bound;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            if got.last().is_some_and(|g| g.contains(want)) {
                break;
            }
        }
    }
    got
}

#[test]
fn socket_activation_hands_over_the_http_and_sftp_sockets() {
    if !have("systemd-socket-activate") || !have("sftp") {
        return;
    }
    let s = SftpSite::new("");
    s.site.file("index.html", "activated\n", 0o644);
    s.site.write_config();
    let (http, sftp) = (free_port(), free_port());
    let first = get_when_listening(http, "/index.html");
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args([
        "-l",
        &format!("127.0.0.1:{http}"),
        "-l",
        &format!("127.0.0.1:{sftp}"),
    ])
    .arg("--fdname=http:sftp")
    .arg(bin())
    .arg("--config")
    .arg(s.site.config_path());
    let server = Server::spawn_command(cmd);
    assert_eq!(
        first.join().expect("thread"),
        200,
        "the first request, which started it"
    );
    assert_eq!(
        server.http.port(),
        http,
        "it serves on the socket it was given"
    );
    let running = Running::of(server);
    assert_eq!(running.addr.port(), sftp);
    let file = local(
        s.site.dir.path(),
        "up.txt",
        b"uploaded through the handed-over socket\n",
    );
    let o = running.batch(&s.key, format!("put {} up.txt\n", file.display()));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(s.site.path("up.txt")).expect("uploaded"),
        b"uploaded through the handed-over socket\n"
    );
}

#[test]
fn a_handed_over_socket_that_is_not_a_tcp_listener_is_refused_with_the_reason() {
    if !have("systemd-socket-activate") {
        return;
    }
    let site = Site::new();
    site.write_config();
    let port = free_port();
    // A UDP socket where the HTTP listener should be.
    let mut activator = Command::new("timeout")
        .args(["30", "systemd-socket-activate", "--datagram"])
        .args(["-l", &format!("127.0.0.1:{port}"), "--fdname=http"])
        .arg(bin())
        .arg("--config")
        .arg(site.config_path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("activator");
    // A datagram starts it.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let started = Instant::now();
    let status = loop {
        let _ = udp.send_to(b"hello", ("127.0.0.1", port));
        if let Some(status) = activator.try_wait().expect("wait") {
            break status;
        }
        assert!(started.elapsed() < PATIENCE, "the server never gave up");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    activator
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read");
    assert!(!status.success(), "it must not serve: {err}");
    assert!(
        err.contains("the `http` descriptor") && err.contains("not a listening stream socket"),
        "the reason names the socket: {err}"
    );
}

/// The server on `site` with a `NOTIFY_SOCKET` this test owns and a 0.2 s watchdog: the
/// server, the socket, and the directory that holds it.
fn start_notified(site: &Site) -> (Server, UnixDatagram, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).expect("bind");
    let mut cmd = Command::new(bin());
    cmd.arg("--config")
        .arg(site.config_path())
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000");
    (Server::spawn_command(cmd), socket, dir)
}

#[test]
fn the_service_manager_hears_ready_reloading_stopping_and_the_watchdog() {
    let site = Site::new();
    site.file("index.html", "ready\n", 0o644);
    site.write_config();
    let (server, socket, _dir) = start_notified(&site);
    let got = notifications_until(&socket, PATIENCE, "READY=1");
    let ready = got.iter().find(|g| g.contains("READY=1"));
    assert!(ready.is_some(), "READY=1 once it serves: {got:?}");
    assert!(
        ready.is_some_and(|r| r.contains("STATUS=serving") && r.contains("sandbox")),
        "with a status line: {got:?}"
    );
    assert_eq!(server.get("/").status, 200, "ready means it answers");
    let got = notifications_until(&socket, PATIENCE, "WATCHDOG=1");
    assert!(
        got.iter().any(|g| g.contains("WATCHDOG=1")),
        "the watchdog is pinged: {got:?}"
    );
    server.signal(nix::sys::signal::Signal::SIGHUP);
    let got = notifications_until(&socket, PATIENCE, "READY=1");
    assert!(
        got.iter()
            .any(|g| g.contains("RELOADING=1") && g.contains("MONOTONIC_USEC=")),
        "a reload is announced: {got:?}"
    );
    assert!(
        got.iter().any(|g| g.contains("READY=1")),
        "and its end: {got:?}"
    );
    server.signal(nix::sys::signal::Signal::SIGTERM);
    let got = notifications_until(&socket, PATIENCE, "STOPPING=1");
    assert!(
        got.iter().any(|g| g.contains("STOPPING=1")),
        "SIGTERM is announced: {got:?}"
    );
}

#[test]
fn sigusr1_reopens_the_logs_so_that_no_line_is_lost_across_a_rotation() {
    let site = Site::new().config(
        "[server]\naccess_log = \"access.log\"\nerror_log = \"error.log\"\nlog_level = \"info\"",
    );
    let server = site.start();
    let logs = site.dir.path();
    let (access, error) = (logs.join("access.log"), logs.join("error.log"));
    for i in 0..5 {
        assert_eq!(server.get(&format!("/before-{i}")).status, 404);
    }
    assert!(
        eventually(|| lines_with(&access, "/before-") == 5),
        "the first requests are logged"
    );
    std::fs::rename(&access, logs.join("access.log.1")).expect("rotate");
    std::fs::rename(&error, logs.join("error.log.1")).expect("rotate");
    server.signal(nix::sys::signal::Signal::SIGUSR1);
    assert!(
        eventually(|| lines_with(&error, "logs reopened") == 1),
        "the reopen is in the new error log"
    );
    for i in 0..5 {
        assert_eq!(server.get(&format!("/after-{i}")).status, 404);
    }
    assert!(
        eventually(|| lines_with(&access, "/after-") == 5),
        "the later requests are in the new access log"
    );
    let old = logs.join("access.log.1");
    assert_eq!(
        lines_with(&old, "/before-"),
        5,
        "nothing lost from the old one"
    );
    assert_eq!(
        lines_with(&old, "/after-"),
        0,
        "nothing new written to the old one"
    );
    assert_eq!(lines_with(&access, "/before-"), 0);
    assert!(
        lines_with(&logs.join("error.log.1"), "logs reopened") == 0,
        "the rotated error log gets nothing after the signal"
    );
}

/// Lines of `path` that contain `needle` (0 when it does not exist).
fn lines_with(path: &std::path::Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().filter(|l| l.contains(needle)).count())
        .unwrap_or(0)
}

#[test]
fn the_error_log_can_be_json_lines_for_log_shippers() {
    let site = Site::new()
        .config("[server]\nerror_log = \"error.log\"\nlog_format = \"json\"\nlog_level = \"info\"");
    let server = site.start();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    let path = site.dir.path().join("error.log");
    assert!(eventually(
        || std::fs::read_to_string(&path).is_ok_and(|t| t.contains("configuration reloaded"))
    ));
    let text = std::fs::read_to_string(&path).expect("log");
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            v.get("level").is_some() && v.get("fields").is_some(),
            "{line}"
        );
    }
    assert!(
        text.contains("\"why\":\"SIGHUP\""),
        "fields are JSON fields: {text}"
    );
}

#[test]
fn after_an_upgrade_the_new_server_is_the_main_process_and_keeps_the_admin_listener() {
    let site = Site::new();
    site.file("index.html", "upgraded\n", 0o644);
    // A fixed admin port: the new server can only have it by inheriting the old one's socket.
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let site = site.config(&format!("[server]\nadmin = \"{admin}\""));
    site.write_config();
    let (server, socket, _dir) = start_notified(&site);
    let got = notifications_until(&socket, PATIENCE, "READY=1");
    assert!(got.iter().any(|g| g.contains("READY=1")), "{got:?}");

    server.signal(nix::sys::signal::Signal::SIGUSR2);
    let got = notifications_until(&socket, PATIENCE, "MAINPID=");
    let new_pid: i32 = got
        .iter()
        .find_map(|g| g.lines().find_map(|l| l.strip_prefix("MAINPID=")))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the old server names the new main process: {got:?}"));
    struct Last(i32);
    impl Drop for Last {
        fn drop(&mut self) {
            // SAFETY: kill(2) of the server this test's upgrade started, by pid.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let _last = Last(new_pid);
    assert_ne!(new_pid, server.pid() as i32);
    let old = server.pid() as i32;
    assert!(
        eventually(|| crate::support::process_gone(old)),
        "the old server drains and exits"
    );
    // From now on only the new server can speak: its watchdog pings reach the service manager.
    let got = notifications_until(&socket, PATIENCE, "WATCHDOG=1");
    assert!(
        got.iter().any(|g| g.contains("WATCHDOG=1")),
        "the new main process pings the watchdog: {got:?}"
    );
    let mut health = TcpStream::connect(admin).expect("the admin listener answers");
    health.set_read_timeout(Some(PATIENCE)).expect("timeout");
    write!(health, "GET /healthz HTTP/1.0\r\n\r\n").expect("send");
    let mut out = Vec::new();
    let _ = health.read_to_end(&mut out);
    assert_eq!(crate::support::raw_status(&out), 200);
    assert_eq!(server.get("/index.html").text(), "upgraded\n");
    // SAFETY: a signal to the server this test's upgrade started, by pid.
    unsafe { libc::kill(new_pid, libc::SIGTERM) };
    let got = notifications_until(&socket, PATIENCE, "STOPPING=1");
    assert!(
        got.iter().any(|g| g.contains("STOPPING=1")),
        "the new main process announces its stop: {got:?}"
    );
}

/// The server started with `http` and `sftp` as handed-over sockets at descriptors 3 and 4,
/// as systemd starts a service whose sockets it holds.
fn start_with_sockets(
    config: &std::path::Path,
    http: &std::net::TcpListener,
    sftp: &std::net::TcpListener,
) -> Server {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fds = [http.as_raw_fd(), sftp.as_raw_fd()];
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ exec \"$0\" --config \"$1\"")
        .arg(bin())
        .arg(config)
        .env("LISTEN_FDS", "2")
        .env("LISTEN_FDNAMES", "http:sftp");
    // SAFETY: fcntl and dup2 only (async-signal-safe) on descriptors this test holds open:
    // each is first copied above 100, so that placing one at 3 or 4 overwrites no other.
    unsafe {
        cmd.pre_exec(move || {
            let mut high = [0; 2];
            for (i, &fd) in fds.iter().enumerate() {
                high[i] = libc::fcntl(fd, libc::F_DUPFD, 100);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, &fd) in high.iter().enumerate() {
                if libc::dup2(fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Server::spawn_command(cmd)
}

#[test]
fn a_restart_with_the_sockets_held_refuses_no_connection() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let site = Site::new();
    site.file("index.html", "held\n", 0o644);
    site.write_config();
    // What systemd's socket units do: the sockets outlive the service's processes.
    let http = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let sftp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = http.local_addr().expect("addr");
    let mut server = start_with_sockets(&site.config_path(), &http, &sftp);
    assert_eq!(server.http, addr, "it serves on the socket it was given");

    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let ok = TcpStream::connect(addr).is_ok_and(|mut s| {
                    let _ = s.set_read_timeout(Some(PATIENCE));
                    let mut out = Vec::new();
                    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").is_ok()
                        && s.read_to_end(&mut out).is_ok()
                        && crate::support::raw_status(&out) == 200
                });
                if ok {
                    done.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    for _ in 0..3 {
        let before = done.load(Ordering::SeqCst);
        assert!(eventually(|| done.load(Ordering::SeqCst) > before + 5));
        // `systemctl restart`: stop, then start again on the same sockets.
        server.signal(nix::sys::signal::Signal::SIGTERM);
        server.wait_exit();
        server = start_with_sockets(&site.config_path(), &http, &sftp);
    }
    let before = done.load(Ordering::SeqCst);
    assert!(eventually(|| done.load(Ordering::SeqCst) > before + 5));
    stop.store(true, Ordering::SeqCst);
    load.join().expect("load");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "connections were refused or dropped across the restarts"
    );
}
