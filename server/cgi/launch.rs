//! Starting a script: everything it is started with, built before anything is spawned
//! ([`Launch`]: who runs it, with what environment, in which directory held open, under which
//! limits), the pipes, the spawn, and what a failed spawn means.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::fcntl::OFlag;
use tokio::net::unix::pipe;
use tracing::Instrument;
use yadokari_site::{Jail, JailError};

use super::child::Child;
use super::failure::{self, Failure};
use super::slots::Slot;
use super::{Stdin, env, identity, predict, pump, spawn};
use crate::config::Config;
use crate::conn::ConnInfo;
use crate::resolve::Script;
use crate::sandbox::Shell;
use crate::sandbox::cgroup::Stop;
use crate::sites::Served;
use std::sync::Arc;

/// Everything the script is started with, built before anything is spawned.
pub(super) struct Launch {
    program: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// The script's directory, opened through the jail: its working directory, and where
    /// `program` is found for a script that runs itself.
    dir: OwnedFd,
    identity: Option<spawn::Identity>,
    /// The site's root, where the directories the script's user must enter start.
    root: PathBuf,
    /// The script runs itself (no handler): exec its name in `dir`, never through a link.
    nofollow: bool,
    /// The script's name in `dir`.
    name: std::ffi::OsString,
    limits: spawn::Limits,
    /// The customer's shell, and the script's directory by path and (device, inode) for the
    /// working directory inside its mount namespace.
    shell: Option<(Arc<Shell>, Option<ShellDir>)>,
}

/// What a script is started for: the request, the site it was routed to, and the script the
/// gate let run.
pub(super) struct Call<'a> {
    pub(super) parts: &'a http::request::Parts,
    pub(super) stdin: &'a Stdin,
    pub(super) script: &'a Script,
    pub(super) site: &'a Served<'a>,
    pub(super) config: &'a Config,
    pub(super) conn: &'a ConnInfo,
    /// What the request picked up on its way here.
    pub(super) before: super::Before<'a>,
    /// The customer's shell, when their scripts run in one.
    pub(super) shell: Option<Arc<Shell>>,
}

impl Launch {
    /// Who runs it, with what environment, where, and under which limits.
    pub(super) fn new(call: &Call<'_>) -> Result<Launch, Failure> {
        let Call {
            script,
            site,
            config,
            ..
        } = *call;
        let identity = identity::for_owner(script.stat.st_uid, config)?;
        let filename = site.root.join(&script.rel);
        let envp = environment(call, &filename);
        let (dir, name) = pinned_directory(site.jail, script)?;
        let shell = match &call.shell {
            Some(shell) => Some((shell.clone(), shell_directory(shell, &dir, &filename)?)),
            None => None,
        };
        let script_c = c_string(filename.as_os_str())?;
        let (program, argv) = match &script.interpreter {
            Some(interp) => {
                let interp_c = c_string(interp.as_os_str())?;
                (interp_c.clone(), vec![interp_c, script_c])
            }
            // As suEXEC does: the name, run in its directory (argv[0] keeps the full path).
            None => (c_string(&exec_name(&name))?, vec![script_c]),
        };
        Ok(Launch {
            program,
            argv,
            envp,
            dir,
            identity,
            root: site.root.to_path_buf(),
            nofollow: script.interpreter.is_none(),
            name,
            limits: site
                .customer
                .map_or(config.cgi.limits, |i| config.customers[i].limits),
            shell,
        })
    }

    /// A script that failed before its header block: explained as its customer's limit when
    /// that is what stopped it.
    pub(super) fn explain_stop(&self, failure: Failure) -> Failure {
        if !matches!(
            failure,
            Failure::NoHeaderBlock { .. } | Failure::BadHead { .. }
        ) {
            return failure;
        }
        match self.shell.as_ref().and_then(|(s, _)| s.stopped()) {
            Some(Stop::Memory(limit)) => Failure::MemoryLimit { limit },
            Some(Stop::Processes(limit)) => Failure::ProcessLimit { limit },
            None => failure,
        }
    }
}

/// The script's directory by path and the (device, inode) it must turn out to be.
type ShellDir = (CString, (u64, u64));

/// In a shell with a mount namespace, the child enters the script's directory by path: the
/// path and the (device, inode) it must turn out to be.
fn shell_directory(
    shell: &Shell,
    dir: &OwnedFd,
    filename: &std::path::Path,
) -> Result<Option<ShellDir>, Failure> {
    if !shell.has_mounts() {
        return Ok(None);
    }
    let stat = nix::sys::stat::fstat(dir).map_err(|e| Failure::Resources { error: e.into() })?;
    let path = filename
        .parent()
        .and_then(crate::sandbox::c_dir)
        .ok_or(Failure::Changed)?;
    Ok(Some((path, (stat.st_dev, stat.st_ino))))
}

/// The script's environment (see `env.rs`). SCRIPT_NAME is the URL path, the site's prefix
/// (`/~name`) included.
fn environment(call: &Call<'_>, filename: &std::path::Path) -> Vec<CString> {
    let Call {
        parts,
        stdin,
        script,
        site,
        config,
        conn,
        before,
        ..
    } = *call;
    let redirected = before.redirected;
    let redirect_status = match (redirected, &script.interpreter) {
        (Some(_), _) | (None, Some(_)) => Some(200),
        (None, None) => None,
    };
    let mut script_name = site.prefix.as_bytes().to_vec();
    script_name.extend_from_slice(&script.script_name);
    env::build(&env::Facts {
        method: parts.method.as_str(),
        uri: &parts.uri,
        version: parts.version,
        headers: &parts.headers,
        content_length: stdin.len(),
        remote: conn.peer,
        local: conn.local,
        tls: conn.tls,
        document_root: site.document_root,
        context_prefix: site.prefix,
        context_root: site.root,
        script_name: &script_name,
        path_info: &script.path_info,
        script_filename: filename,
        pass_authorization: config.cgi.pass_authorization,
        redirect_status,
        redirect_url: redirected,
        request_uri: before.request_uri,
        remote_user: before.remote_user,
        extra: before.env,
    })
}

/// The script's directory opened through the jail (never outside the site), and the script's
/// name in it, after checking that the name is still the very file the gate judged.
fn pinned_directory(
    jail: &Jail,
    script: &Script,
) -> Result<(OwnedFd, std::ffi::OsString), Failure> {
    let (dir, name) = match jail.open_parent(&script.rel) {
        Ok(Some(pair)) => pair,
        Ok(None) | Err(JailError::NotFound | JailError::Outside) => return Err(Failure::Changed),
        Err(JailError::Io(error)) => return Err(Failure::Resources { error }),
    };
    let now = nix::sys::stat::fstatat(
        &dir,
        name.as_os_str(),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|_| Failure::Changed)?;
    if (now.st_dev, now.st_ino) != (script.stat.st_dev, script.stat.st_ino) {
        return Err(Failure::Changed);
    }
    Ok((dir, name))
}

/// The name to run in the script's directory: as given, or `./name` when it starts with `-`,
/// which an interpreter would otherwise take for an option.
fn exec_name(name: &std::ffi::OsStr) -> std::ffi::OsString {
    if name.as_bytes().starts_with(b"-") {
        let mut dotted = std::ffi::OsString::from("./");
        dotted.push(name);
        dotted
    } else {
        name.to_os_string()
    }
}

fn c_string(text: &std::ffi::OsStr) -> Result<CString, Failure> {
    CString::new(text.as_bytes()).map_err(|_| Failure::Resources {
        error: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a path contains a NUL byte",
        ),
    })
}

/// Spawns the script with its pipes and starts the tasks that feed its stdin and log its
/// stderr; returns the owned child and its stdout.
pub(super) fn start(
    launch: &Launch,
    stdin: Stdin,
    slot: Slot,
    script: &Script,
) -> Result<(Child, pipe::Receiver), Failure> {
    let resources = |error: std::io::Error| Failure::Resources { error };
    let (stdout_r, stdout_w) = pipe_pair(End::Read).map_err(resources)?;
    let (stderr_r, stderr_w) = pipe_pair(End::Read).map_err(resources)?;
    let (stdin_child, feed) = match stdin {
        Stdin::Empty => (None, None),
        Stdin::Spooled(file, _) => (Some(OwnedFd::from(file)), None),
        Stdin::Stream(body, _) => {
            let (r, w) = pipe_pair(End::Write).map_err(resources)?;
            (Some(r), Some((w, body)))
        }
    };
    let null = dev_null().map_err(resources)?;
    let spec = spawn::Spec {
        program: launch.program.clone(),
        argv: launch.argv.clone(),
        envp: launch.envp.clone(),
        dir: launch.dir.as_fd(),
        nofollow: launch.nofollow,
        stdio: [
            stdin_child.as_ref().map_or(null, |fd| fd.as_fd()),
            stdout_w.as_fd(),
            stderr_w.as_fd(),
        ],
        identity: launch.identity.as_ref(),
        limits: launch.limits,
        file_size: None,
        join: launch
            .shell
            .as_ref()
            .map(|(shell, dir)| shell.join(dir.as_ref().map(|(p, id)| (p, *id)))),
    };
    let spawned = spawn::spawn(&spec);
    // The child's ends must close here, or we would never see end-of-file.
    drop((stdin_child, stdout_w, stderr_w));
    let spawned = spawned.map_err(|e| spawn_failure(e, script, launch))?;
    let child = Child::new(spawned, slot).map_err(resources)?;
    let label = script.rel.to_string_lossy().into_owned();
    tracing::debug!(script = %label, pid = child.pid(), "script started");
    let stderr = pipe::Receiver::from_owned_fd_unchecked(stderr_r).map_err(resources)?;
    // In the request's span: the script's stderr also goes to its customer's error log.
    tokio::spawn(pump::log_stderr(stderr, label, child.pid()).in_current_span());
    if let Some((fd, body)) = feed {
        let sender = pipe::Sender::from_owned_fd_unchecked(fd).map_err(resources)?;
        tokio::spawn(pump::feed_stdin(body, sender));
    }
    let stdout = pipe::Receiver::from_owned_fd_unchecked(stdout_r).map_err(resources)?;
    Ok((child, stdout))
}

/// What a failed spawn means: an `execve` errno is diagnosed from the script's first bytes.
fn spawn_failure(e: spawn::SpawnError, script: &Script, launch: &Launch) -> Failure {
    // The directory entered by path inside the shell was not the one the gate judged.
    if e.step == Some(spawn::Step::WorkingDirectory) && e.error.raw_os_error() == Some(libc::ESTALE)
    {
        return Failure::Changed;
    }
    let denied = matches!(e.error.raw_os_error(), Some(libc::EACCES | libc::EPERM));
    let in_dirs = matches!(
        e.step,
        Some(spawn::Step::WorkingDirectory | spawn::Step::Exec)
    );
    if denied
        && in_dirs
        && let Some(blocked) =
            predict::blocked_directory(&launch.root, script, launch.identity.as_ref())
    {
        return blocked;
    }
    match (e.step, e.error.raw_os_error()) {
        (Some(spawn::Step::Exec), Some(errno)) => exec_failure(script, launch, errno),
        (Some(step), _) => Failure::Setup {
            step,
            error: e.error,
        },
        (None, _) => Failure::Resources { error: e.error },
    }
}

fn exec_failure(script: &Script, launch: &Launch, errno: i32) -> Failure {
    if let Some(interp) = &script.interpreter
        && errno == libc::ENOENT
    {
        return Failure::HandlerMissing {
            interpreter: interp.display().to_string(),
        };
    }
    let first = predict::first_bytes(&launch.dir, &launch.name);
    failure::diagnose_exec(errno, &first, &identity::describe(launch.identity.as_ref()))
}

/// Which end of a pipe the server keeps.
enum End {
    Read,
    Write,
}

/// A pipe: (read end, write end), both close-on-exec. The server's end is non-blocking (tokio
/// polls it); the script's end stays blocking, as every program expects of its stdio.
fn pipe_pair(ours: End) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let fd = match ours {
        End::Read => &r,
        End::Write => &w,
    };
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    if let End::Write = ours {
        // A request body flows through this pipe: a 1 MiB pipe instead of the default 64 KiB
        // lets the body stream in large steps with a fraction of the wake-ups. Best effort: the
        // kernel may refuse (pipe-max-size, per-user pipe quota), and 64 KiB still works.
        let _ = nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(BODY_PIPE));
    }
    Ok((r, w))
}

/// The size asked for the pipe a request body flows through.
const BODY_PIPE: libc::c_int = 1 << 20;

/// `/dev/null`, opened once and shared as the stdin of every script without a body.
fn dev_null() -> std::io::Result<std::os::fd::BorrowedFd<'static>> {
    static NULL: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();
    if let Some(f) = NULL.get() {
        return Ok(f.as_fd());
    }
    let file = std::fs::File::open("/dev/null")?;
    Ok(NULL.get_or_init(|| file).as_fd())
}
