//! Leftovers of scripts. A script that puts something in the background with `setsid` (or a
//! double fork with `os.setsid()`) leaves a process outside its process group, which the group
//! kill at the end of the request cannot reach, and which a rental server must not let live on.
//!
//! The server is a child subreaper (`PR_SET_CHILD_SUBREAPER`), so every orphaned descendant of
//! a script becomes its child instead of init's. A sweep every second looks at the server's
//! children (`/proc/self/task/*/children`): a running script (its pid is in
//! [`Running`]) belongs to its request, which reaps it; so does a process still in the process
//! group of a running script (the group kill ends it with the request). Anything else is an
//! adopted leftover: killed if alive, reaped once dead. A process is only acted on when two
//! sweeps in a row found it so, which leaves a script alone in the moment between its spawn
//! and its registration.
//!
//! Known gap: a leftover that stays in the server's session can move itself into the process
//! group of another running script (`setpgid`) and live as long as that request does; only a
//! per-customer cgroup (the sandbox issue) closes that.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::cgi::Running;

/// Children that are not scripts' leftovers although no request owns them: a new server
/// started by an upgrade (`crate::upgrade`).
static SPARED: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

/// Never touch child `pid`.
pub fn spare(pid: i32) {
    SPARED.lock().unwrap_or_else(|p| p.into_inner()).push(pid);
}

/// Treat child `pid` as any other again (it was killed and reaped).
pub fn unspare(pid: i32) {
    SPARED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|&p| p != pid);
}

/// How often the server's children are looked at.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Makes this process the reaper of its orphaned descendants.
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments only; it changes a flag of this process.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sweeps the server's children every second, for as long as it runs; `running` are the
/// scripts that requests own.
pub async fn run(running: Running) {
    // SAFETY: getsid(0) only reads this process's session id.
    let session = unsafe { libc::getsid(0) };
    // Children the process already had (a container entrypoint's `sh -c 'crond & exec
    // yadokari'`) are not the scripts' leftovers: never touched.
    let inherited: Arc<HashSet<i32>> = Arc::new(children().into_iter().collect());
    let mut suspects = HashSet::new();
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        every.tick().await;
        let mut scripts = running.pids();
        scripts.extend(inherited.iter());
        scripts.extend(SPARED.lock().unwrap_or_else(|p| p.into_inner()).iter());
        suspects = tokio::task::spawn_blocking(move || sweep(session, &scripts, &suspects))
            .await
            .unwrap_or_default();
    }
}

/// What a child of the server is, read from `/proc/PID/stat`.
struct Facts {
    pid: i32,
    zombie: bool,
    pgid: i32,
    sid: i32,
}

/// One sweep: acts on the leftovers also found by the previous sweep (`suspects`); returns the
/// leftovers found now.
fn sweep(session: i32, scripts: &HashSet<i32>, suspects: &HashSet<i32>) -> HashSet<i32> {
    let mut found = HashSet::new();
    for c in children().into_iter().filter_map(facts) {
        // A script is reaped by its request; what is still in a running script's process
        // group ends with it.
        let in_running_group = c.sid == session && scripts.contains(&c.pgid) && !c.zombie;
        if scripts.contains(&c.pid) || in_running_group {
            continue;
        }
        found.insert(c.pid);
        if !suspects.contains(&c.pid) {
            continue;
        }
        if c.zombie {
            // SAFETY: waitpid on one pid, our own child, without blocking.
            unsafe { libc::waitpid(c.pid, std::ptr::null_mut(), libc::WNOHANG) };
        } else {
            tracing::warn!(
                pid = c.pid,
                "killed a process a script left running in the background (daemons are not allowed)"
            );
            // SAFETY: kill(2) of our own (adopted) child, by its pid.
            unsafe { libc::kill(c.pid, libc::SIGKILL) };
        }
    }
    found
}

/// The pids of the server's children, from every thread's `children` list.
fn children() -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for task in tasks.filter_map(Result::ok) {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            pids.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    pids
}

/// State, process group and session of `pid` (fields 3, 5 and 6 of `/proc/PID/stat`, after
/// the command name, which may itself hold spaces and parentheses).
fn facts(pid: i32) -> Option<Facts> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let _ppid = fields.next()?;
    let pgid = fields.next()?.parse().ok()?;
    let sid = fields.next()?.parse().ok()?;
    Some(Facts {
        pid,
        zombie: state == "Z",
        pgid,
        sid,
    })
}
