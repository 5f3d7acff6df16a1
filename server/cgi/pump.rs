//! The script's three pipes, all at once: the request body flows into stdin while stdout flows
//! out to the client and stderr into the error log, so no pipe can fill up and deadlock (Apache
//! and nginx+fcgiwrap write all of stdin before reading stdout). The response body owns the
//! child: when it ends or is dropped, the script's process group is killed and reaped.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::io::poll_read_buf;
use tracing::Instrument;

use super::child::Child;
use super::failure::Failure;
use super::head::{self, CgiHead, HeadError};

/// Read size for stdout.
const CHUNK: usize = 64 * 1024;
/// Longest stderr line logged (the rest of the line is cut).
const STDERR_LINE: usize = 2048;
/// Most stderr lines logged per request (the rest are read and dropped).
const STDERR_LINES: usize = 500;

/// Copies the request body into the script's stdin, then closes it. When the script stops
/// reading (closes stdin or exits), the rest of the body is read and discarded, as Apache does,
/// so the client can finish sending and read the response instead of meeting a reset. The body
/// is already bounded by `limits.max_request_body_bytes`.
pub async fn feed_stdin(mut body: crate::body::RequestBody, stdin: pipe::Sender) {
    let mut stdin = Some(stdin);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return };
        if let (Some(pipe), Some(data)) = (stdin.as_mut(), frame.data_ref())
            && pipe.write_all(data).await.is_err()
        {
            stdin = None;
        }
    }
}

/// Logs the script's stderr, one event per line, tagged with the script and its pid.
pub async fn log_stderr(stderr: pipe::Receiver, script: String, pid: i32) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    let mut logged = 0;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if logged == STDERR_LINES {
            tracing::warn!(%script, pid, "further stderr output of this script is not logged");
        }
        logged += 1;
        if logged > STDERR_LINES {
            continue;
        }
        let text = &line[..line.len().min(STDERR_LINE)];
        let text = String::from_utf8_lossy(text);
        tracing::warn!(%script, pid, stderr = %text.trim_end(), "script stderr");
    }
}

/// Reads stdout until a complete header block, the end of output, or the header limit.
/// Returns the head and the body bytes already read after it.
pub async fn read_head(
    stdout: &mut pipe::Receiver,
    child: &mut Child,
    limit: usize,
    nph: bool,
) -> Result<(CgiHead, Bytes), Failure> {
    let mut buf = BytesMut::with_capacity(8 * 1024);
    loop {
        match head::parse(&buf, limit, nph) {
            Ok(head) => {
                let rest = buf.split_off(head.len).freeze();
                return Ok((head, rest));
            }
            Err(HeadError::Incomplete) => {}
            Err(error) => {
                return Err(Failure::BadHead {
                    error,
                    exit: child.status(),
                });
            }
        }
        buf.reserve(CHUNK);
        let n = read_some(stdout, child, &mut buf).await;
        if n == 0 {
            child.kill_and_reap().await;
            let exit = child.status();
            return Err(match head::parse(&buf, limit, nph) {
                Err(HeadError::Incomplete) if !buf.is_empty() && looks_like_headers(&buf) => {
                    Failure::BadHead {
                        error: HeadError::Incomplete,
                        exit,
                    }
                }
                Err(HeadError::Incomplete) | Ok(_) => Failure::NoHeaderBlock {
                    first_bytes: first_bytes(&buf),
                    exit,
                },
                Err(error) => Failure::BadHead { error, exit },
            });
        }
    }
}

/// True when every complete line so far is `Name: value` (the block just never ended).
fn looks_like_headers(buf: &[u8]) -> bool {
    buf.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .all(|l| {
            l.iter()
                .position(|&b| b == b':')
                .is_some_and(|i| i > 0 && !l[..i].contains(&b' '))
        })
}

fn first_bytes(buf: &[u8]) -> String {
    let shown = &buf[..buf.len().min(80)];
    String::from_utf8_lossy(shown).escape_debug().to_string()
}

/// Reads what stdout has; 0 at the end. When the script itself exits while something it left
/// behind still holds stdout open, the leftover group is killed so the end comes promptly.
async fn read_some(stdout: &mut pipe::Receiver, child: &Child, buf: &mut BytesMut) -> usize {
    use tokio::io::AsyncReadExt;
    let mut leader_gone = false;
    loop {
        tokio::select! {
            r = stdout.read_buf(buf) => return r.unwrap_or(0),
            () = child.exited(), if !leader_gone => {
                leader_gone = true;
                super::spawn::kill_group(child.pid());
            }
        }
    }
}

/// The response body: the script's stdout after its header block, streamed as it comes.
///
/// The body owns the child (shared only with its watchdog). A watchdog task enforces the run
/// deadline even while hyper is not polling the body (a client that stopped reading), kills the
/// group and makes the body end with an error, so the client sees a cut response, not a
/// complete-looking one.
pub struct ScriptBody {
    leftover: Option<Bytes>,
    stdout: pipe::Receiver,
    buf: BytesMut,
    child: Arc<Mutex<Option<Child>>>,
    watchdog: Option<JoinHandle<()>>,
    timed_out: Arc<AtomicBool>,
    leader_gone: bool,
    deadline: Instant,
}

impl ScriptBody {
    /// A body reading `stdout`, starting with `leftover`, owning `child` until `deadline`.
    pub fn new(
        leftover: Bytes,
        stdout: pipe::Receiver,
        child: Child,
        deadline: Instant,
    ) -> ScriptBody {
        let child = Arc::new(Mutex::new(Some(child)));
        let timed_out = Arc::new(AtomicBool::new(false));
        let watchdog = tokio::spawn({
            let child = child.clone();
            let timed_out = timed_out.clone();
            async move {
                tokio::time::sleep_until(deadline).await;
                let taken = child.lock().ok().and_then(|mut c| c.take());
                if let Some(child) = taken {
                    tracing::warn!(
                        pid = child.pid(),
                        "script ran past cgi.run_timeout_secs; killed with its process group"
                    );
                    timed_out.store(true, Ordering::Release);
                    crate::metrics::script_failed("run-timeout");
                    // Dropping the child kills the whole group.
                    drop(child);
                }
            }
            .in_current_span()
        });
        ScriptBody {
            leftover: (!leftover.is_empty()).then_some(leftover),
            stdout,
            buf: BytesMut::new(),
            child,
            watchdog: Some(watchdog),
            timed_out,
            leader_gone: false,
            deadline,
        }
    }

    fn take_child(&mut self) -> Option<Child> {
        if let Some(w) = self.watchdog.take() {
            w.abort();
        }
        self.child.lock().ok().and_then(|mut c| c.take())
    }

    /// Ends the body, letting the script finish its work (bounded by the run deadline).
    fn finish(&mut self) {
        if let Some(child) = self.take_child() {
            tokio::spawn(child.finish(self.deadline));
        }
    }
}

impl Drop for ScriptBody {
    fn drop(&mut self) {
        // A body dropped before its end (the client went away): kill the group now.
        drop(self.take_child());
    }
}

impl HttpBody for ScriptBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(bytes) = self.leftover.take() {
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        let this = &mut *self;
        loop {
            this.buf.reserve(CHUNK);
            match poll_read_buf(Pin::new(&mut this.stdout), cx, &mut this.buf) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    if this.timed_out.load(Ordering::Acquire) {
                        return Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "script run timeout",
                        ))));
                    }
                    this.finish();
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(_)) => {
                    let data = this.buf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Pending => {}
            }
            if this.leader_gone {
                return Poll::Pending;
            }
            let Ok(guard) = this.child.lock() else {
                return Poll::Pending;
            };
            // None: the watchdog has killed the group; end-of-file follows.
            let Some(child) = guard.as_ref() else {
                return Poll::Pending;
            };
            match child.poll_exited(cx) {
                Poll::Ready(()) => {
                    // The script has exited but something it started still holds stdout.
                    this.leader_gone = true;
                    super::spawn::kill_group(child.pid());
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
