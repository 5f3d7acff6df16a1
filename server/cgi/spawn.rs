//! Starting a script: process group, resource limits, identity, working directory and standard
//! descriptors, then `execve` — without a `fork`.
//!
//! Why not `std::process::Command`: it leaves the `posix_spawn` fast path as soon as a uid, gid,
//! groups or a `pre_exec` hook (needed for rlimits) is set, and then `fork`s, whose cost grows
//! with the server's memory (measured on this machine kind: a `fork` runs at 0.75 of a
//! `vfork`+exec with a tiny parent, and at 0.41 / 0.17 / 0.04 with 16 / 64 / 256 MiB). Here the
//! child is a `clone(CLONE_VM | CLONE_VFORK)` that shares the parent's memory until it execs,
//! exactly as glibc's own `posix_spawn` does, so the cost stays flat in every case. Everything
//! the child touches is prepared before the clone; the child makes only async-signal-safe
//! system calls and reports a failure through memory it shares with the parent.
//!
//! The child is created with `CLONE_PIDFD`, so the parent holds a descriptor of exactly this
//! process: waiting and signalling can never hit a recycled pid.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// A user a script runs as (used only when the server runs as root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The account's name, for messages.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// A script's resource limits.
pub use crate::config::ScriptLimits as Limits;

/// What to run and how.
pub struct Spec<'a> {
    /// The file to execute (the script, or its handler's interpreter).
    pub program: CString,
    /// `argv`.
    pub argv: Vec<CString>,
    /// The environment, `NAME=value`.
    pub envp: Vec<CString>,
    /// The working directory, held open: the script's own directory as the gate judged it
    /// (the child `fchdir`s into it, so a path swapped since cannot redirect it).
    pub dir: BorrowedFd<'a>,
    /// Execute `program` relative to `dir` without following a symlink at its name
    /// (`execveat(AT_SYMLINK_NOFOLLOW)`): for a script that runs itself.
    pub nofollow: bool,
    /// Descriptors that become 0, 1 and 2.
    pub stdio: [BorrowedFd<'a>; 3],
    /// Run as this user (`None`: as the server's own user).
    pub identity: Option<&'a Identity>,
    /// Resource limits.
    pub limits: Limits,
    /// The largest file it may write (`RLIMIT_FSIZE`), with `SIGXFSZ` ignored so that a write
    /// past it fails with `EFBIG` ("File too large") and the program cleans up, rather than
    /// being killed: the room left in a push deploy's quota.
    pub file_size: Option<u64>,
    /// The customer's shell to join, when there is one.
    pub join: Option<Join>,
}

/// A customer's shell as the child joins it: descriptors the caller holds open for the
/// spawn's duration (`-1`: not part of this shell).
#[derive(Clone, Copy, Debug)]
pub struct Join {
    /// `cgroup.procs` of each hierarchy, written `0` (one on cgroup v2, three on v1).
    pub cgroups: [RawFd; 3],
    /// The network namespace (network `none`).
    pub net: RawFd,
    /// The IPC namespace.
    pub ipc: RawFd,
    /// The mount namespace.
    pub mnt: RawFd,
    /// The Landlock ruleset.
    pub landlock: RawFd,
    /// A fresh pid namespace for this script and everything it starts.
    pub new_pid: bool,
    /// With a mount namespace (`mnt`), the working directory by path (the held one belongs to
    /// the host's mounts, whose `..` leads out of the shell) and its (device, inode), which must
    /// be the directory the gate judged; `None` without one.
    pub dir: Option<(*const libc::c_char, (u64, u64))>,
}

/// The step at which the child failed, with its errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `setpgid`.
    ProcessGroup,
    /// `setrlimit`.
    Limits,
    /// `dup2` of stdin/stdout/stderr.
    Descriptors,
    /// `setgroups`/`setgid`/`setuid`, or the identity check after it.
    Identity,
    /// `chdir`.
    WorkingDirectory,
    /// `execve`.
    Exec,
    /// Joining the customer's cgroup.
    Cgroup,
    /// `setns` into the customer's namespaces.
    Namespace,
    /// `landlock_restrict_self`.
    Landlock,
}

/// A failed spawn: the step and the OS error.
#[derive(Debug)]
pub struct SpawnError {
    /// Where it failed (`None`: the clone itself).
    pub step: Option<Step>,
    /// The error.
    pub error: io::Error,
}

/// A started process: its pid (also its process group) and a pidfd for it.
pub struct Spawned {
    /// pid, and process group id.
    pub pid: i32,
    /// `CLONE_PIDFD` descriptor.
    pub pidfd: OwnedFd,
}

/// Everything the child reads, laid out before the clone.
struct ChildArgs {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    dir: RawFd,
    nofollow: bool,
    stdio: [RawFd; 3],
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: *const libc::gid_t,
    ngroups: usize,
    set_identity: bool,
    /// Each limit; 0 leaves it as it is.
    limits: [(libc::__rlimit_resource_t, u64); 5],
    /// `SIGXFSZ` is ignored (a file size limit is set).
    ignore_xfsz: bool,
    /// Signals whose disposition the child resets to the default.
    reset: *const libc::c_int,
    nreset: usize,
    join: Option<Join>,
    /// Written by the child on failure: step * 1000 + errno.
    failure: AtomicI32,
}

const CHILD_STACK: usize = 64 * 1024;

thread_local! {
    /// The stack the child runs on between clone and exec. One per thread is enough: with
    /// CLONE_VFORK this thread is suspended until the child has exec'd or exited, so the stack is
    /// never used twice at once, and it need not be allocated (or zeroed) for every request.
    static STACK: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0u8; CHILD_STACK].into_boxed_slice());
}

/// The signals that have a handler or are ignored in this process (SIGPIPE is, by Rust's
/// runtime; tokio and the panic machinery install handlers), which a script must get back at
/// their defaults. Read once: the server installs all its handlers before it serves, and
/// asking the kernel for all 64 dispositions in every child would cost 64 system calls per
/// request.
fn signals_to_reset() -> &'static [libc::c_int] {
    static RESET: std::sync::OnceLock<Vec<libc::c_int>> = std::sync::OnceLock::new();
    RESET.get_or_init(|| {
        (1..65)
            .filter(|&sig| sig != libc::SIGKILL && sig != libc::SIGSTOP)
            .filter(|&sig| {
                // SAFETY: querying a disposition, with a zeroed out-parameter.
                let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
                // SAFETY: a null new action only reads the disposition into `old`.
                let r = unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
                r == 0 && (old.sa_sigaction != libc::SIG_DFL || sig == libc::SIGPIPE)
            })
            .collect()
    })
}

/// Starts the process described by `spec`.
pub fn spawn(spec: &Spec<'_>) -> Result<Spawned, SpawnError> {
    let argv: Vec<*const libc::c_char> = spec
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = spec
        .envp
        .iter()
        .map(|e| e.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let groups: Vec<libc::gid_t> = spec.identity.map(|i| i.groups.clone()).unwrap_or_default();
    let reset = signals_to_reset();
    let args = ChildArgs {
        program: spec.program.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        dir: spec.dir.as_raw_fd(),
        nofollow: spec.nofollow,
        stdio: spec.stdio.map(|fd| fd.as_raw_fd()),
        uid: spec.identity.map_or(0, |i| i.uid),
        gid: spec.identity.map_or(0, |i| i.gid),
        groups: groups.as_ptr(),
        ngroups: groups.len(),
        set_identity: spec.identity.is_some(),
        limits: [
            (libc::RLIMIT_CPU, spec.limits.cpu_secs),
            (libc::RLIMIT_AS, spec.limits.memory_bytes),
            (libc::RLIMIT_NOFILE, spec.limits.open_files),
            (libc::RLIMIT_NPROC, spec.limits.processes),
            (libc::RLIMIT_FSIZE, spec.file_size.map_or(0, |n| n.max(1))),
        ],
        ignore_xfsz: spec.file_size.is_some(),
        reset: reset.as_ptr(),
        nreset: reset.len(),
        join: spec.join,
        failure: AtomicI32::new(0),
    };
    let (pid, pidfd) = clone_child(&args)?;
    match args.failure.load(Ordering::Acquire) {
        0 => Ok(Spawned { pid, pidfd }),
        failure => Err(reap_failed(pidfd, failure)),
    }
}

/// Clones the child onto this thread's spare stack; returns its pid and pidfd once it has
/// exec'd or exited (CLONE_VFORK).
fn clone_child(args: &ChildArgs) -> Result<(i32, OwnedFd), SpawnError> {
    let mut pidfd: libc::c_int = -1;
    // SAFETY: the stack is ours and outlives the child's use of it (CLONE_VFORK suspends this
    // thread until the child has exec'd or exited). All signals are blocked around the clone so
    // that no handler of ours ever runs on the child's stack in shared memory; the child resets
    // dispositions and the mask before exec. `args` (and the vectors its pointers point into,
    // in `spawn`'s frame) outlive this call.
    let pid = STACK.with(|stack| unsafe {
        let mut stack = stack.borrow_mut();
        let top = stack.as_mut_ptr().add(CHILD_STACK);
        let top = (top as usize & !15) as *mut libc::c_void;
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let new_pid = if args.join.is_some_and(|j| j.new_pid) {
            libc::CLONE_NEWPID
        } else {
            0
        };
        let pid = libc::clone(
            child_main,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD | new_pid,
            args as *const ChildArgs as *mut libc::c_void,
            &mut pidfd as *mut libc::c_int,
        );
        let clone_error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            return Err(SpawnError {
                step: None,
                error: clone_error,
            });
        }
        Ok(pid)
    })?;
    // SAFETY: CLONE_PIDFD stored a fresh descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok((pid, pidfd))
}

/// Reaps a child that reported `failure` (step * 1000 + errno) and exited 127, so no zombie
/// stays, and names the step.
fn reap_failed(pidfd: OwnedFd, failure: i32) -> SpawnError {
    // SAFETY: siginfo_t is plain data, valid all zero.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: plain waitid on our own child's pidfd.
    unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED,
        )
    };
    let step = match failure / 1000 {
        1 => Step::ProcessGroup,
        2 => Step::Limits,
        3 => Step::Descriptors,
        4 => Step::Identity,
        5 => Step::WorkingDirectory,
        7 => Step::Cgroup,
        8 => Step::Namespace,
        9 => Step::Landlock,
        _ => Step::Exec,
    };
    SpawnError {
        step: Some(step),
        error: io::Error::from_raw_os_error(failure % 1000),
    }
}

/// The child, between clone and exec. Only async-signal-safe calls; no allocation, no locks.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points at the parent's `ChildArgs`, alive and unmoved while we run.
    let args = unsafe { &*(arg as *const ChildArgs) };
    let fail = |step: i32| -> libc::c_int {
        // SAFETY: errno location is valid in this (shared) thread context.
        let errno = unsafe { *libc::__errno_location() };
        args.failure
            .store(step * 1000 + errno.clamp(1, 999), Ordering::Release);
        // SAFETY: _exit never returns and runs no destructors or atexit handlers.
        unsafe { libc::_exit(127) }
    };
    // SAFETY: each call below is async-signal-safe and touches only memory prepared above.
    unsafe {
        // Handlers installed by the server must not survive into the script; ignored SIGPIPE
        // (Rust's default) must not either, or `yes | head` style pipelines break.
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for i in 0..args.nreset {
            libc::sigaction(*args.reset.add(i), &dfl, std::ptr::null_mut());
        }
        if args.ignore_xfsz {
            let mut ign: libc::sigaction = std::mem::zeroed();
            ign.sa_sigaction = libc::SIG_IGN;
            libc::sigaction(libc::SIGXFSZ, &ign, std::ptr::null_mut());
        }
        // The shell first, while still root: v1 cgroups check the writer when it writes, and
        // every setns needs CAP_SYS_ADMIN. The mount namespace last of the three: it resets
        // the root and working directory.
        if let Some(join) = &args.join {
            for &fd in &join.cgroups {
                if fd >= 0 && libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return fail(7);
                }
            }
            for (fd, kind) in [
                (join.net, libc::CLONE_NEWNET),
                (join.ipc, libc::CLONE_NEWIPC),
                (join.mnt, libc::CLONE_NEWNS),
            ] {
                if fd >= 0 && libc::setns(fd, kind) != 0 {
                    return fail(8);
                }
            }
        }
        if libc::setpgid(0, 0) != 0 {
            return fail(1);
        }
        for &(resource, value) in &args.limits {
            if value > 0 {
                let limit = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                if libc::setrlimit(resource, &limit) != 0 {
                    return fail(2);
                }
            }
        }
        for (target, &fd) in args.stdio.iter().enumerate() {
            let target = target as RawFd;
            if fd == target {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return fail(3);
                }
            } else if libc::dup2(fd, target) < 0 {
                return fail(3);
            }
        }
        if args.set_identity {
            // Raw system calls, not glibc's wrappers: those apply the change to every thread
            // of the process by signalling them, and this child shares the server's memory and
            // its thread list (glibc's own posix_spawn uses raw calls for the same reason).
            if libc::syscall(libc::SYS_setgroups, args.ngroups, args.groups) != 0
                || libc::syscall(libc::SYS_setgid, args.gid) != 0
                || libc::syscall(libc::SYS_setuid, args.uid) != 0
            {
                return fail(4);
            }
            // SECURITY: never run a script as root, even if a uid switch silently did nothing.
            if libc::getuid() == 0 || libc::geteuid() == 0 {
                *libc::__errno_location() = libc::EPERM;
                return fail(4);
            }
        }
        match args.join.and_then(|j| j.dir) {
            // SECURITY: in the shell's mount namespace, never the held descriptor: it is a
            // directory of the host's mounts, and `..` from it would climb the host's tree
            // (other customers' homes included). By path instead, then checked to be the
            // very directory the gate judged (a bind mount keeps device and inode).
            Some((path, (dev, ino))) => {
                if libc::chdir(path) != 0 {
                    return fail(5);
                }
                let mut st: libc::stat = std::mem::zeroed();
                if libc::stat(c".".as_ptr(), &mut st) != 0 {
                    return fail(5);
                }
                if (st.st_dev, st.st_ino) != (dev, ino) {
                    *libc::__errno_location() = libc::ESTALE;
                    return fail(5);
                }
            }
            None => {
                if libc::fchdir(args.dir) != 0 {
                    return fail(5);
                }
            }
        }
        // SECURITY: no set-id program the script runs can gain rights (su, a setuid binary a
        // customer uploads as root's, ...).
        if libc::syscall(libc::SYS_prctl, libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return fail(4);
        }
        // After NNP (Landlock requires it of a process without CAP_SYS_ADMIN) and after the
        // setns calls (a confined process may not enter namespaces).
        if let Some(join) = &args.join
            && join.landlock >= 0
            && libc::syscall(libc::SYS_landlock_restrict_self, join.landlock, 0) != 0
        {
            return fail(9);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        if args.nofollow {
            // SECURITY: the name is resolved in the directory we are now in (the one the gate
            // judged), and a symlink swapped in at the name is refused (ELOOP), not followed.
            libc::syscall(
                libc::SYS_execveat,
                libc::AT_FDCWD,
                args.program,
                args.argv,
                args.envp,
                libc::AT_SYMLINK_NOFOLLOW,
            );
        } else {
            libc::execve(args.program, args.argv, args.envp);
        }
        fail(6)
    }
}

/// Sends SIGKILL to the whole process group `pgid`. Errors (the group is gone) are ignored.
pub fn kill_group(pgid: i32) {
    // SAFETY: plain kill(2) on a negative pid: the process group we created.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Reaps the exited process behind `pidfd` without blocking; returns its wait status, or
/// `None` when it has not exited yet.
pub fn try_reap(pidfd: BorrowedFd<'_>) -> Option<ExitStatus> {
    // SAFETY: siginfo_t is plain data, valid all zero.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid on our own child's pidfd, with a zeroed siginfo to detect "not yet".
    let r = unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG,
        )
    };
    // SAFETY: si_pid/si_status are valid to read after a successful waitid.
    if r != 0 || unsafe { info.si_pid() } == 0 {
        return None;
    }
    // SAFETY: as above: waitid succeeded and filled in a child's exit.
    let status = unsafe { info.si_status() };
    Some(if info.si_code == libc::CLD_EXITED {
        ExitStatus::Code(status)
    } else {
        ExitStatus::Signal(status)
    })
}

/// How a script ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exited with status {c}"),
            ExitStatus::Signal(s) => {
                // SAFETY: strsignal returns a static string for any signal number.
                let name = unsafe { CStr::from_ptr(libc::strsignal(*s)) };
                write!(f, "was killed by signal {s} ({})", name.to_string_lossy())
            }
        }
    }
}
