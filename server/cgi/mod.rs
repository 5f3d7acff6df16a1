//! CGI/1.1 (RFC 3875) execution of a script the gate approved: the request body is prepared,
//! a concurrency slot taken, the script spawned with a clean environment, its header block read
//! and turned into a response whose body streams the rest of its output.
//!
//! `env` and `head` are pure; `spawn` is the only unsafe code; `child` owns the process;
//! `pump` moves the bytes; `failure` names everything that can go wrong.

pub(crate) mod child;
pub mod env;
pub mod failure;
mod head;
pub(crate) mod identity;
mod launch;
pub mod predict;
mod pump;
mod slots;
pub mod spawn;

use std::io::{Seek, Write};
use std::os::unix::ffi::OsStrExt;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::net::unix::pipe;
use tokio::time::Instant;

use crate::body::{self, Body, RequestBody};
use crate::config::Config;
use crate::conn::ConnInfo;
use crate::resolve::Script;
use crate::sites::Served;
use child::Child;
use failure::Failure;
use head::CgiHead;
use launch::Launch;
pub use slots::{Running, ScriptSlots};

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

/// What a request picked up before reaching its script.
#[derive(Clone, Copy, Default)]
pub struct Before<'a> {
    /// The original URL path, after an internal redirect or rewrite (`REDIRECT_URL`).
    pub redirected: Option<&'a str>,
    /// The request target the client sent, when a rewrite changed it (`REQUEST_URI`).
    pub request_uri: Option<&'a str>,
    /// The user the server's Basic authentication let in (`REMOTE_USER`).
    pub remote_user: Option<&'a str>,
    /// Variables a `.htaccess` set.
    pub env: &'a [(String, String)],
}

/// Where scripts run: the slots they take and the customers' shells.
#[derive(Clone, Copy)]
pub struct Scripts<'a> {
    /// The concurrency slots.
    pub slots: &'a ScriptSlots,
    /// The customers' sandboxes.
    pub sandboxes: &'a std::sync::Arc<crate::sandbox::Sandboxes>,
}

/// Runs `script` for `req`: prepare the body, take a slot, build the launch, start the
/// script, read its header block, and make the response.
pub async fn run(
    req: Request<RequestBody>,
    script: &Script,
    site: &Served<'_>,
    config: &Config,
    conn: &ConnInfo,
    scripts: Scripts<'_>,
    before: Before<'_>,
) -> Result<Outcome, Failure> {
    let (parts, body) = req.into_parts();
    let stdin = prepare_body(&parts, body, &config.limits).await?;
    let launch_body_len = stdin.len().unwrap_or(0);
    let share = site.customer.map(|i| {
        let c = &config.customers[i];
        slots::Share {
            customer: &c.name,
            max: c.max_scripts,
        }
    });
    let slot = scripts.slots.take(config.cgi.queue_wait, share).await?;
    let shell = match site.customer {
        Some(i) => scripts
            .sandboxes
            .shell(config, i)
            .await
            .map_err(|error| Failure::Sandbox { error })?,
        None => None,
    };
    let launch = Launch::new(&launch::Call {
        parts: &parts,
        stdin: &stdin,
        script,
        site,
        config,
        conn,
        before,
        shell,
    })?;
    let (mut child, mut stdout) = launch::start(&launch, stdin, slot, script)?;
    let customer = site.customer.map(|i| config.customers[i].name.as_str());
    crate::metrics::script_started(customer);
    crate::metrics::bytes_received(customer, launch_body_len);
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
        Ok(result) => result.map_err(|f| launch.explain_stop(f))?,
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
///
/// A chunked body must keep coming: a gap longer than `limits.header_read_timeout` between
/// two pieces ends the request with 408 (a trickling client would otherwise hold its slot and
/// a temporary file for ever).
async fn prepare_body(
    parts: &http::request::Parts,
    body: RequestBody,
    limits: &crate::config::Limits,
) -> Result<Stdin, Failure> {
    let limit = limits.max_request_body;
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
    let gap = limits.header_read_timeout;
    loop {
        let next = tokio::time::timeout(gap, body.frame()).await;
        let Ok(next) = next else {
            return Err(Failure::BodyTimeout {
                secs: gap.as_secs(),
            });
        };
        let Some(frame) = next else { break };
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
