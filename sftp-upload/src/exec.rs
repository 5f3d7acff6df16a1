//! An `exec` channel (and a `shell` one): a refusal with the sentence that says what this host
//! accepts, or one of the deploy programs [`crate::deploy`] lets through, started by the
//! embedding server's [`Deployer`] (the customer's identity, sandbox and limits) and wired to
//! the channel: the client's data to its stdin (EOF closes it), its stdout and stderr back as
//! channel data and extended data 1, then its `exit-status`, EOF and CLOSE, so that `rsync`,
//! `scp` and `git` report success or failure exactly. A client that closes the channel or
//! leaves ends the program with its whole process group (dropping [`Started::exit`] does).

use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::time::Duration;

use russh::server::Msg;
use russh::{ChannelMsg, ChannelWriteHalf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::deploy::{Deploy, ONLY};

/// Starts deploy programs for the endpoint's users; the embedding server provides it.
pub trait Deployer: Send + Sync {
    /// Starts `deploy` as `user`, in their home; or says why not (sent to the client's stderr).
    /// `file_size`: the largest file it may write (the room left in the user's quota), a limit
    /// past which a write fails with "File too large" rather than passing the quota.
    fn start(&self, user: &str, deploy: &Deploy, file_size: Option<u64>) -> Starting;
}

/// A deploy program being started.
pub type Starting = Pin<Box<dyn Future<Output = Result<Started, String>> + Send>>;

/// A started deploy program.
pub struct Started {
    /// Its standard input, output and error (the server's ends of three pipes).
    pub stdio: [OwnedFd; 3],
    /// Resolves to its exit status once it has ended; dropped before, it kills the program
    /// with its process group.
    pub exit: Pin<Box<dyn Future<Output = u32> + Send>>,
}

/// How a deploy program's run ended; the channel is still open, for [`Ended::close`].
pub struct Ended {
    write: ChannelWriteHalf<Msg>,
    /// Its exit status; `None` when it was stopped (the client left, or `stop` resolved).
    pub status: Option<u32>,
    /// The client closed the channel: nothing more can be said to it.
    pub gone: bool,
    /// It said "File too large" on stderr: a write passed its file size limit.
    pub too_large: bool,
}

impl Ended {
    /// Says `text` on the client's stderr (when it is still there), then `exit-status`, EOF
    /// and CLOSE.
    pub async fn close(self, text: &str, status: u32) {
        if self.gone {
            return;
        }
        if !text.is_empty() {
            let _ = tokio::time::timeout(
                CLOSING_BOUND,
                self.write.extended_data_bytes(1, text.as_bytes().to_vec()),
            )
            .await;
        }
        close(&self.write, status).await;
    }
}

/// How long the closing messages may take to be handed to russh.
const CLOSING_BOUND: Duration = Duration::from_secs(5);
/// How long output may still be sent once the program has ended (something it started and
/// that left its process group may hold the pipes open).
const DRAIN_BOUND: Duration = Duration::from_secs(5);

/// Says no: [`ONLY`] and `why` on the client's stderr, exit status 1.
pub async fn refuse(channel: russh::Channel<Msg>, why: &str) {
    let (_read, write) = channel.split();
    let said = format!("{ONLY}: {why}\r\n");
    let _ = tokio::time::timeout(
        CLOSING_BOUND,
        write.extended_data_bytes(1, said.into_bytes()),
    )
    .await;
    close(&write, 1).await;
}

/// Runs `started` on `channel` until it ends, the client leaves, or `stop` resolves (which a
/// stalled channel needs: while the program does not read its stdin, the channel is not read
/// either; and a quota passed stops a program). The channel is left open for [`Ended::close`].
/// `too_large` is said on the client's stderr the moment the program reports a write past its
/// file size limit: then, because a client such as rsync hangs up as soon as it learns of the
/// failure, and anything said after the program has ended would be lost.
pub async fn run(
    channel: russh::Channel<Msg>,
    started: Started,
    stop: impl Future<Output = ()>,
    too_large: &str,
) -> Ended {
    let (mut read, write) = channel.split();
    let Started { stdio, mut exit } = started;
    let [stdin, stdout, stderr] = stdio;
    let pipes = (|| {
        Ok::<_, std::io::Error>((
            tokio::net::unix::pipe::Sender::from_owned_fd(stdin)?,
            tokio::net::unix::pipe::Receiver::from_owned_fd(stdout)?,
            tokio::net::unix::pipe::Receiver::from_owned_fd(stderr)?,
        ))
    })();
    let (stdin, mut stdout, mut stderr) = match pipes {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "cannot wire a deploy program to its channel");
            return Ended {
                write,
                status: Some(1),
                gone: false,
                too_large: false,
            };
        }
    };
    let feed = async {
        let mut stdin = Some(stdin);
        loop {
            match read.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    if let Some(pipe) = stdin.as_mut()
                        && pipe.write_all(&data).await.is_err()
                    {
                        // It stopped reading (it ended, or does not want more): drop the rest.
                        stdin = None;
                    }
                }
                Some(ChannelMsg::Eof) => stdin = None,
                Some(ChannelMsg::Close) | None => return,
                Some(_) => {}
            }
        }
    };
    let said = std::sync::atomic::AtomicBool::new(false);
    let note = TooLarge {
        said: &said,
        note: too_large,
    };
    let out = forward(&mut stdout, &write, None, &note);
    let err = forward(&mut stderr, &write, Some(1), &note);
    let finished = async {
        let mut pumps = std::pin::pin!(async {
            tokio::join!(out, err);
        });
        tokio::select! {
            status = &mut exit => {
                let _ = tokio::time::timeout(DRAIN_BOUND, &mut pumps).await;
                status
            }
            () = &mut pumps => exit.await,
        }
    };
    let (status, gone) = tokio::select! {
        () = feed => (None, true),
        () = stop => (None, false),
        status = finished => (Some(status), false),
    };
    Ended {
        write,
        status,
        gone,
        too_large: said.load(std::sync::atomic::Ordering::Relaxed),
    }
}

/// What is said once when a program reports a write past its file size limit.
struct TooLarge<'a> {
    said: &'a std::sync::atomic::AtomicBool,
    note: &'a str,
}

/// What a program says when a write passes its file size limit (`strerror(EFBIG)`).
const TOO_LARGE: &[u8] = b"File too large";

/// Sends what `pipe` gives as channel data (`ext`: as extended data of that type) until it
/// ends or the channel is gone; says `too_large`'s note on stderr the first time the program
/// says [`TOO_LARGE`] (on stdout too: git-receive-pack and rsync pass their helpers' errors to
/// the client in their protocol stream).
async fn forward(
    pipe: &mut tokio::net::unix::pipe::Receiver,
    write: &ChannelWriteHalf<Msg>,
    ext: Option<u32>,
    too_large: &TooLarge<'_>,
) {
    let mut buf = bytes::BytesMut::new();
    loop {
        buf.reserve(64 * 1024);
        match pipe.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let chunk = buf.split().freeze();
        if memchr::memmem::find(&chunk, TOO_LARGE).is_some()
            && !too_large
                .said
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            && !too_large.note.is_empty()
        {
            let _ = write
                .extended_data_bytes(1, too_large.note.as_bytes().to_vec())
                .await;
        }
        let sent = match ext {
            None => write.data_bytes(chunk).await,
            Some(ext) => write.extended_data_bytes(ext, chunk).await,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// `exit-status`, EOF, CLOSE, each handed to russh within [`CLOSING_BOUND`].
async fn close(write: &ChannelWriteHalf<Msg>, status: u32) {
    let closing = async {
        write.exit_status(status).await?;
        write.eof().await?;
        write.close().await
    };
    let _ = tokio::time::timeout(CLOSING_BOUND, closing).await;
}
