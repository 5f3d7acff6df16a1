//! CGI/1.1 (RFC 3875) execution of a script the gate approved: the request body is prepared,
//! a concurrency slot taken, the script spawned with a clean environment, its header block read
//! and turned into a response whose body streams the rest of its output.
//!
//! `env` and `head` are pure; `spawn` is the only unsafe code; `child` owns the process;
//! `pump` moves the bytes; `failure` names everything that can go wrong.

mod child;
pub mod env;
pub mod failure;
mod head;
mod identity;
pub mod predict;
mod pump;
pub mod spawn;

use std::ffi::CString;
use std::io::{Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use nix::fcntl::OFlag;
use tokio::net::unix::pipe;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::body::{self, Body, RequestBody};
use crate::config::Config;
use crate::conn::ConnInfo;
use crate::resolve::Script;
use child::Child;
use failure::Failure;
use head::CgiHead;
use yadokari_site::{Jail, JailError};

/// What running a script produced.
pub enum Outcome {
    /// A response to send.
    Response(Response<Body>),
    /// `Location:` with a local path: serve that path instead, as a GET with these headers.
    Redirect(String, http::request::Parts),
}

/// The request body as the script's stdin will get it.
enum Stdin {
    /// No body: `/dev/null`.
    Empty,
    /// A Content-Length body, streamed through a pipe while the script runs.
    Stream(RequestBody, u64),
    /// A chunked body, spooled to an unnamed temporary file so CONTENT_LENGTH can be given.
    Spooled(std::fs::File, u64),
}

impl Stdin {
    /// `CONTENT_LENGTH`: the body's real length, when there is a body.
    fn len(&self) -> Option<u64> {
        match self {
            Stdin::Empty => None,
            Stdin::Stream(_, n) | Stdin::Spooled(_, n) => Some(*n),
        }
    }
}

/// The script slots (`cgi.max_concurrent`): a semaphore, how many permits it was made with,
/// and the pids of the scripts running now (which the reaper must leave alone).
pub struct ScriptSlots {
    semaphore: Arc<Semaphore>,
    size: usize,
    running: Running,
}

impl ScriptSlots {
    /// `size` slots.
    pub fn new(size: usize) -> ScriptSlots {
        ScriptSlots {
            semaphore: Arc::new(Semaphore::new(size)),
            size,
            running: Running::default(),
        }
    }

    /// The scripts running now.
    pub fn running(&self) -> Running {
        self.running.clone()
    }

    /// A slot, waiting at most `wait`; `Busy` when none came free.
    async fn take(&self, wait: std::time::Duration) -> Result<Slot, Failure> {
        match tokio::time::timeout(wait, self.semaphore.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Slot {
                _permit: permit,
                running: self.running.clone(),
                pid: None,
            }),
            _ => Err(Failure::Busy { slots: self.size }),
        }
    }
}

/// The pids of the scripts that have been started and not yet reaped.
#[derive(Clone, Default)]
pub struct Running(Arc<std::sync::Mutex<std::collections::HashSet<i32>>>);

impl Running {
    /// A copy of the set, taken under its lock.
    pub fn pids(&self) -> std::collections::HashSet<i32> {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// A script slot, held from before the spawn until the script is reaped; the script's pid is
/// in [`Running`] for as long as the slot holds it.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    running: Running,
    pid: Option<i32>,
}

impl Slot {
    /// Records the script that now occupies the slot.
    fn register(&mut self, pid: i32) {
        if let Ok(mut set) = self.running.0.lock() {
            set.insert(pid);
            self.pid = Some(pid);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(pid) = self.pid
            && let Ok(mut set) = self.running.0.lock()
        {
            set.remove(&pid);
        }
    }
}

/// Runs `script` for `req`: prepare the body, take a slot, build the launch, start the
/// script, read its header block, and make the response.
pub async fn run(
    req: Request<RequestBody>,
    script: &Script,
    jail: &Jail,
    config: &Config,
    conn: &ConnInfo,
    slots: &ScriptSlots,
    redirected: Option<&str>,
) -> Result<Outcome, Failure> {
    let (parts, body) = req.into_parts();
    let stdin = prepare_body(&parts, body, config.limits.max_request_body).await?;
    let slot = slots.take(config.cgi.queue_wait).await?;
    let launch = Launch::new(&parts, &stdin, script, jail, config, conn, redirected)?;
    let (mut child, mut stdout) = start(&launch, stdin, slot, script)?;
    let started = Instant::now();
    let nph = script
        .rel
        .file_name()
        .is_some_and(|n| n.as_bytes().starts_with(b"nph-"));
    let header_wait = config.cgi.header_timeout;
    let head = tokio::time::timeout(
        header_wait,
        pump::read_head(&mut stdout, &mut child, config.cgi.max_header_bytes, nph),
    )
    .await;
    let (head, rest) = match head {
        Ok(result) => result?,
        // Dropping the child kills its whole group.
        Err(_) => {
            return Err(Failure::HeaderTimeout {
                secs: header_wait.as_secs(),
            });
        }
    };
    let output = Output {
        rest,
        stdout,
        child,
        deadline: started + config.cgi.run_timeout,
    };
    respond(head, output, parts)
}

/// Everything the script is started with, built before anything is spawned.
struct Launch {
    program: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// The script's directory, opened through the jail: its working directory, and where
    /// `program` is found for a script that runs itself.
    dir: OwnedFd,
    identity: Option<spawn::Identity>,
    filename: PathBuf,
    /// The site's root, where the directories the script's user must enter start.
    root: PathBuf,
    /// The script runs itself (no handler): exec its name in `dir`, never through a link.
    nofollow: bool,
    limits: spawn::Limits,
}

impl Launch {
    /// Who runs it, with what environment, where, and under which limits.
    fn new(
        parts: &http::request::Parts,
        stdin: &Stdin,
        script: &Script,
        jail: &Jail,
        config: &Config,
        conn: &ConnInfo,
        redirected: Option<&str>,
    ) -> Result<Launch, Failure> {
        let identity = identity::for_owner(script.stat.st_uid, &config.cgi)?;
        let filename = config.document_root.join(&script.rel);
        let envp = environment(parts, stdin, script, config, conn, redirected, &filename);
        let (dir, name) = pinned_directory(jail, script)?;
        let script_c = c_string(filename.as_os_str())?;
        let (program, argv) = match &script.interpreter {
            Some(interp) => {
                let interp_c = c_string(interp.as_os_str())?;
                (interp_c.clone(), vec![interp_c, script_c])
            }
            // As suEXEC does: the name, run in its directory (argv[0] keeps the full path).
            None => (c_string(&name)?, vec![script_c]),
        };
        let c = &config.cgi;
        Ok(Launch {
            program,
            argv,
            envp,
            dir,
            identity,
            filename,
            root: config.document_root.clone(),
            nofollow: script.interpreter.is_none(),
            limits: spawn::Limits {
                cpu_secs: c.limit_cpu_secs,
                memory_bytes: c.limit_memory_bytes,
                open_files: c.limit_open_files,
                processes: c.limit_processes,
            },
        })
    }
}

/// The script's environment (see `env.rs`).
fn environment(
    parts: &http::request::Parts,
    stdin: &Stdin,
    script: &Script,
    config: &Config,
    conn: &ConnInfo,
    redirected: Option<&str>,
    filename: &std::path::Path,
) -> Vec<CString> {
    let redirect_status = match (redirected, &script.interpreter) {
        (Some(_), _) | (None, Some(_)) => Some(200),
        (None, None) => None,
    };
    env::build(&env::Facts {
        method: parts.method.as_str(),
        uri: &parts.uri,
        version: parts.version,
        headers: &parts.headers,
        content_length: stdin.len(),
        remote: conn.peer,
        local: conn.local,
        document_root: &config.document_root,
        script_name: &script.script_name,
        path_info: &script.path_info,
        script_filename: filename,
        pass_authorization: config.cgi.pass_authorization,
        redirect_status,
        redirect_url: redirected,
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
fn start(
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
    };
    let spawned = spawn::spawn(&spec);
    // The child's ends must close here, or we would never see end-of-file.
    drop((stdin_child, stdout_w, stderr_w));
    let spawned = spawned.map_err(|e| spawn_failure(e, script, launch))?;
    let child = Child::new(spawned, slot).map_err(resources)?;
    let label = script.rel.to_string_lossy().into_owned();
    tracing::debug!(script = %label, pid = child.pid(), "script started");
    let stderr = pipe::Receiver::from_owned_fd_unchecked(stderr_r).map_err(resources)?;
    tokio::spawn(pump::log_stderr(stderr, label, child.pid()));
    if let Some((fd, body)) = feed {
        let sender = pipe::Sender::from_owned_fd_unchecked(fd).map_err(resources)?;
        tokio::spawn(pump::feed_stdin(body, sender));
    }
    let stdout = pipe::Receiver::from_owned_fd_unchecked(stdout_r).map_err(resources)?;
    Ok((child, stdout))
}

/// What a failed spawn means: an `execve` errno is diagnosed from the script's first bytes.
fn spawn_failure(e: spawn::SpawnError, script: &Script, launch: &Launch) -> Failure {
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
        (Some(spawn::Step::Exec), Some(errno)) => {
            exec_failure(script, &launch.filename, errno, launch.identity.as_ref())
        }
        (Some(step), _) => Failure::Setup {
            step,
            error: e.error,
        },
        (None, _) => Failure::Resources { error: e.error },
    }
}

/// The script's output after its header block, and the script itself.
struct Output {
    rest: bytes::Bytes,
    stdout: pipe::Receiver,
    child: Child,
    deadline: Instant,
}

/// The response for a parsed header block: a local `Location:` without a status is an
/// internal redirect; otherwise status, location and headers, with a body that streams the
/// rest of the output (none for HEAD, whose output is drained so the script can finish).
fn respond(head: CgiHead, output: Output, parts: http::request::Parts) -> Result<Outcome, Failure> {
    if let Some(location) = &head.location
        && location.starts_with('/')
        && head.status.is_none()
    {
        return Ok(Outcome::Redirect(location.clone(), parts));
    }
    let malformed = |line: String| Failure::BadHead {
        error: head::HeadError::Malformed { line },
        exit: None,
    };
    let mut status = head.status.unwrap_or(StatusCode::OK);
    if status.is_informational() {
        return Err(Failure::Informational {
            status: status.as_u16(),
        });
    }
    let mut response = Response::builder();
    // The script's own reason phrase (`Status: 299 Custom Thing`) goes out as it was given.
    if let Some(reason) = head
        .reason
        .and_then(|r| hyper::ext::ReasonPhrase::try_from(r).ok())
    {
        response = response.extension(reason);
    }
    if let Some(location) = &head.location {
        if head.status.is_none() {
            status = StatusCode::FOUND;
        }
        let value = HeaderValue::from_str(location)
            .map_err(|_| malformed(format!("Location: {location}")))?;
        response = response.header(header::LOCATION, value);
    }
    for (name, value) in head.headers {
        response = response.header(name, value);
    }
    let mut stream =
        pump::ScriptBody::new(output.rest, output.stdout, output.child, output.deadline);
    let body = if parts.method == Method::HEAD {
        tokio::spawn(async move { while let Some(Ok(_)) = stream.frame().await {} });
        body::empty()
    } else {
        stream.boxed_unsync()
    };
    response
        .status(status)
        .body(body)
        .map(Outcome::Response)
        .map_err(|e| malformed(e.to_string()))
}

/// Validates and prepares the request body: 413 before anything is spawned when it is over the
/// limit; a chunked body is spooled (bounded) so that CONTENT_LENGTH can always be set.
async fn prepare_body(
    parts: &http::request::Parts,
    body: RequestBody,
    limit: u64,
) -> Result<Stdin, Failure> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared {
        if n > limit {
            return Err(Failure::BodyTooLarge { limit });
        }
        return Ok(if n == 0 {
            Stdin::Empty
        } else {
            Stdin::Stream(body, n)
        });
    }
    if !parts.headers.contains_key(header::TRANSFER_ENCODING) {
        return Ok(Stdin::Empty);
    }
    let unreadable = |error: std::io::Error| Failure::BodyUnreadable { error };
    let mut file = tempfile::tempfile().map_err(unreadable)?;
    let mut total = 0u64;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Failure::BodyUnreadable {
            error: std::io::Error::other(e),
        })?;
        if let Some(data) = frame.data_ref() {
            total += data.len() as u64;
            if total > limit {
                return Err(Failure::BodyTooLarge { limit });
            }
            file.write_all(data).map_err(unreadable)?;
        }
    }
    file.rewind().map_err(unreadable)?;
    Ok(if total == 0 {
        Stdin::Empty
    } else {
        Stdin::Spooled(file, total)
    })
}

fn exec_failure(
    script: &Script,
    filename: &std::path::Path,
    errno: i32,
    identity: Option<&spawn::Identity>,
) -> Failure {
    if let Some(interp) = &script.interpreter
        && errno == libc::ENOENT
    {
        return Failure::HandlerMissing {
            interpreter: interp.display().to_string(),
        };
    }
    let first = predict::first_bytes(filename);
    failure::diagnose_exec(errno, &first, &identity::describe(identity))
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
