//! What a script cannot take from the server or leave behind: descriptors the server inherited
//! never reach it, set-id programs cannot raise its rights, and a daemon it starts with
//! `setsid` (or a double fork) is killed once its request is over.

use std::process::Command;

use crate::support::{Server, Site, bin, eventually, process_gone};

const FD_SCRIPT: &str = "#!/bin/sh
printf 'Content-Type: text/plain\\n\\n'
if { echo leaked >&7; } 2>/dev/null; then echo fd7-open; else echo fd7-closed; fi
grep NoNewPrivs /proc/self/status
";

#[test]
fn inherited_descriptors_do_not_reach_scripts_and_no_new_privileges() {
    let site = Site::new();
    site.file("cgi-bin/fd.cgi", FD_SCRIPT, 0o755);
    site.write_config();
    let secret = site.dir.path().join("owner-only");
    std::fs::write(&secret, "").expect("write");
    // As `yadokari 7>>owner-only` from a shell.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "exec 7>>\"$0\"; exec \"$1\" --config \"$2\""])
        .arg(&secret)
        .arg(bin())
        .arg(site.config_path());
    let server = Server::spawn_command(cmd);
    let body = server.get("/cgi-bin/fd.cgi").text();
    assert!(body.contains("fd7-closed"), "{body}");
    assert!(body.contains("NoNewPrivs:\t1"), "{body}");
    assert_eq!(std::fs::read_to_string(&secret).expect("read"), "");
}

fn first_pid(body: &str) -> i32 {
    body.lines()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {body:?}"))
}

#[test]
fn a_daemon_started_with_setsid_is_killed_after_the_response() {
    let site = Site::new();
    site.file(
        "cgi-bin/daemon.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nsetsid sleep 301 </dev/null >/dev/null 2>&1 &\necho $!\n",
        0o755,
    );
    let server = site.start();
    let pid = first_pid(&server.get("/cgi-bin/daemon.cgi").text());
    assert!(
        eventually(|| process_gone(pid)),
        "the setsid daemon {pid} is still running"
    );
    // Not even as a zombie: the server reaped it.
    assert!(eventually(|| !std::path::Path::new(&format!(
        "/proc/{pid}"
    ))
    .exists()));
}

#[test]
fn a_double_forked_daemon_is_killed_after_the_response() {
    let site = Site::new();
    site.file(
        "cgi-bin/double.cgi",
        "#!/usr/bin/python3
import os, sys, time
print('Content-Type: text/plain')
print()
sys.stdout.flush()
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(r)
        os.write(w, str(os.getpid()).encode())
        os.close(w)
        for fd in (0, 1, 2):
            os.close(fd)
        time.sleep(301)
    os._exit(0)
os.close(w)
print(os.read(r, 32).decode())
",
        0o755,
    );
    let server = site.start();
    let pid = first_pid(&server.get("/cgi-bin/double.cgi").text());
    assert!(
        eventually(|| process_gone(pid)),
        "the double-forked daemon {pid} is still running"
    );
}

#[test]
fn a_cgi_directory_swapped_for_a_link_never_runs_a_script_outside_the_site() {
    let site = Site::new();
    let script =
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s' \"$(basename \"$(pwd)\")\"\n";
    site.file("cgi-bin/run.cgi", script, 0o755);
    // The same script outside the site: running it would print the outside directory's name.
    let outside = site.dir.path().join("OUTSIDE");
    std::fs::create_dir(&outside).expect("mkdir");
    std::fs::write(outside.join("run.cgi"), script).expect("write");
    use std::os::unix::fs::PermissionsExt;
    for p in [outside.clone(), outside.join("run.cgi")] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let server = site.start();
    let real = site.path("cgi-bin");
    let parked = site.path("cgi-bin.real");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, real, parked, outside) =
            (stop.clone(), real.clone(), parked.clone(), outside.clone());
        std::thread::spawn(move || {
            // Bounded: it stops when the requests are done, or after 20,000 swaps.
            for _ in 0..20_000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                // Each state held a moment, so requests land in both: with the old
                // exec-by-path, about one request in ten ran the script outside.
                let hold = std::time::Duration::from_micros(300);
                let _ = std::fs::rename(&real, &parked);
                let _ = std::os::unix::fs::symlink(&outside, &real);
                std::thread::sleep(hold);
                let _ = std::fs::remove_file(&real);
                let _ = std::fs::rename(&parked, &real);
                std::thread::sleep(hold);
            }
        })
    };
    let mut inside = 0;
    for _ in 0..800 {
        let r = server.get("/cgi-bin/run.cgi");
        let text = r.text();
        assert!(!text.contains("OUTSIDE"), "a script outside the site ran");
        if r.status == 200 {
            inside += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().expect("swapper");
    let r = server.get("/cgi-bin/run.cgi");
    assert_eq!((r.status, r.text()), (200, "cgi-bin".to_string()));
    eprintln!("{inside} of 800 racing requests ran the script inside the site");
}
