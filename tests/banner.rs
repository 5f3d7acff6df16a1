//! The start-up banner: on standard error (standard output carries only the access log), with
//! addresses a client can use as printed, and a server that survives a closed standard output.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::{Site, bin};

/// Starts the binary with separate pipes; returns the child, the stderr lines up to the first
/// containing `until`, and the HTTP address from `listening http=` (on standard error).
fn start(site: &Site, args: &[&str], until: &str) -> (std::process::Child, Vec<String>, String) {
    site.write_config();
    let mut child = Command::new(bin())
        .arg("--config")
        .arg(site.config_path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let mut lines: Vec<String> = Vec::new();
    let mut addr = None;
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    while addr.is_none() || !lines.iter().any(|l| l.contains(until)) {
        let mut line = String::new();
        let n = err.read_line(&mut line).expect("read stderr");
        assert!(n > 0, "stderr ended before {until:?}: {lines:?}");
        if let Some(a) = line.trim().strip_prefix("listening http=") {
            addr = Some(a.to_string());
        }
        lines.push(line);
    }
    // Keep reading stderr in the background so the server never blocks on it.
    std::thread::spawn(move || for _ in err.lines() {});
    (child, lines, addr.expect("listening line"))
}

fn get(addr: &str, path: &str) -> String {
    ureq::get(&format!("http://{addr}{path}"))
        .call()
        .expect("get")
        .into_string()
        .expect("body")
}

#[test]
fn the_banner_is_on_standard_error_and_standard_output_has_only_the_access_log() {
    let site = Site::new();
    site.file("a.txt", "a", 0o644);
    let (child, banner, addr) = start(&site, &[], "listening http=");
    assert!(
        banner.iter().any(|l| l.starts_with("yadokari ")),
        "{banner:?}"
    );
    assert_eq!(get(&addr, "/a.txt"), "a");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("kill");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"GET /a.txt HTTP/1.1\" 200"), "{stdout}");
    assert!(!stdout.contains("listening"), "{stdout}");
    assert!(!stdout.contains("Open http"), "{stdout}");
}

#[test]
fn a_closed_standard_output_does_not_stop_the_server() {
    let site = Site::new();
    site.file("a.txt", "a", 0o644);
    let (mut child, _, addr) = start(&site, &[], "listening http=");
    // As `yadokari | head -3` does once head has its lines.
    drop(child.stdout.take());
    for _ in 0..3 {
        assert_eq!(get(&addr, "/a.txt"), "a");
        // The access log is flushed every 200 ms: give it the chance to hit the closed pipe.
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the server died"
    );
    assert_eq!(get(&addr, "/a.txt"), "a");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("kill");
    assert_eq!(child.wait().expect("wait").code(), Some(0));
}

#[test]
fn a_wildcard_address_is_printed_as_a_url_that_works() {
    let site = Site::new();
    site.file("a.txt", "a", 0o644);
    let (mut child, banner, _) = start(&site, &["--http", "0.0.0.0:0"], "Open http://");
    let url = banner
        .iter()
        .find_map(|l| l.split("Open http://").nth(1))
        .and_then(|rest| rest.split('/').next())
        .expect("an Open line")
        .to_string();
    assert!(url.starts_with("127.0.0.1:"), "{url}");
    assert_eq!(get(&url, "/a.txt"), "a");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("kill");
    let _ = child.wait();
}
