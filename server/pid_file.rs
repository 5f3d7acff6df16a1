//! The pid file (`[server] pid_file`), and `yadokari upgrade`, which finds the running server
//! through it and asks it to upgrade in place (SIGUSR2, see `crate::upgrade`).
//!
//! The file is written whole (a temporary beside it, renamed over it) once the server serves,
//! so that a reader never sees half a number; a server that stops removes it only when it
//! still names itself (after an upgrade, the new server has written its own).

use std::path::Path;
use std::time::{Duration, Instant};

/// Writes this process's pid to `path`.
pub fn write(path: &Path) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut temp, format!("{}\n", std::process::id()).as_bytes())?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Removes `path` when it names this process.
pub fn remove(path: &Path) {
    if read(path) == Some(std::process::id() as i32) {
        let _ = std::fs::remove_file(path);
    }
}

/// The pid in `path`, if it holds one.
pub fn read(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `pid` is a running yadokari (its command is this program's name): a stale pid file
/// whose number now belongs to another program must not be signalled.
fn is_yadokari(pid: i32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let program = cmdline.split(|&b| b == 0).next().unwrap_or(&[]);
    Path::new(std::ffi::OsStr::new(&*String::from_utf8_lossy(program)))
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("yadokari"))
}

/// `yadokari upgrade`: signals the server named by `path` and waits (bounded) for a new pid in
/// the file; `Ok` with what happened, `Err` with why not.
pub fn upgrade(path: &Path) -> Result<String, String> {
    let old = read(path).ok_or_else(|| {
        format!(
            "{} does not hold a pid: is the server running with this configuration?",
            path.display()
        )
    })?;
    if !is_yadokari(old) {
        return Err(format!(
            "{} names pid {old}, which is not a running yadokari (a stale file?)",
            path.display()
        ));
    }
    // SAFETY: kill(2) of the server the pid file names, checked to be a yadokari just above.
    if unsafe { libc::kill(old, libc::SIGUSR2) } != 0 {
        return Err(format!(
            "cannot signal pid {old}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // The server waits up to 30 s for the new binary; a little more here.
    let deadline = Instant::now() + Duration::from_secs(35);
    while Instant::now() < deadline {
        if let Some(new) = read(path).filter(|&p| p != old && is_yadokari(p)) {
            return Ok(format!(
                "upgraded: pid {new} serves now; pid {old} is finishing what was in flight"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "no new server took over within 35 s; pid {old} keeps serving (its error log says why)"
    ))
}
