//! One SFTP session on one SSH channel, as three parts joined by queues, so that the channel is
//! always being read:
//!
//! - the **reader** (a task) takes packets off the channel, checks each length against
//!   [`MAX_PACKET`] before allocating (a longer one ends the session: the stream cannot be
//!   resynchronised), and queues them;
//! - the **request thread** runs requests in order on the blocking pool (file system calls
//!   block), except READs, which it hands to the blocking pool to run concurrently (they commute
//!   with each other); before any other request it waits for the reads in flight, so every
//!   request still sees the effects of those before it;
//! - the **writer** (a task) sends replies as the channel's window allows, batching them.
//!
//! A bounded request queue served by a handler that itself waits for window space is how
//! russh-sftp deadlocks downloads: the session loop blocks delivering data to a full queue, so
//! the client's window adjustments are never read. Here memory is bounded in two places, neither
//! of which can close that cycle for a client that reads its replies:
//!
//! - queued requests, by bytes ([`MAX_QUEUED_REQUEST_BYTES`]): the reader waits for room, and
//!   room is made by the request thread, which never waits for the writer to make it;
//! - READ data not yet handed to the channel ([`MAX_PENDING_REPLY_BYTES`]): the request thread
//!   waits for room before starting another read, and room is made by the writer. Meanwhile the
//!   reader keeps reading (READ requests are tiny: paramiko's prefetch of a whole 1 GiB file is
//!   about 1.3 MiB of requests), so window adjustments keep flowing.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use russh::ChannelWriteHalf;
use russh::server::Msg;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::handler::{Action, MAX_DATA, MAX_PACKET, Sftp};
use crate::wire::fxp;

/// Bytes of requests read from the channel but not yet handled, at most.
pub const MAX_QUEUED_REQUEST_BYTES: usize = 16 * 1024 * 1024;
/// Bytes of READ data read from files but not yet handed to the channel, at most.
pub const MAX_PENDING_REPLY_BYTES: usize = 32 * 1024 * 1024;
/// What a queued request costs besides its bytes (so that tiny requests are bounded too).
const REQUEST_OVERHEAD: usize = 64;

type Reply = (Bytes, Option<OwnedSemaphorePermit>);

/// Runs the session until the client closes the channel, breaks a rule, or the server stops.
pub async fn run(
    channel: russh::Channel<Msg>,
    sftp: Sftp,
    user: String,
    shutdown: CancellationToken,
) {
    let (mut read_half, write_half) = channel.split();
    let open_files = sftp.open_files();
    let (req_tx, req_rx) = mpsc::unbounded_channel::<(Bytes, OwnedSemaphorePermit)>();
    let (reply_tx, reply_rx) = mpsc::unbounded_channel::<Reply>();
    let writer = tokio::spawn(write_replies(write_half, reply_rx));
    let runtime = tokio::runtime::Handle::current();
    let worker =
        tokio::task::spawn_blocking(move || serve_requests(sftp, req_rx, reply_tx, runtime));

    let queued = Arc::new(Semaphore::new(MAX_QUEUED_REQUEST_BYTES));
    let mut reader = tokio::io::BufReader::with_capacity(256 * 1024, read_half.make_reader());
    let mut stopping = false;
    let end = loop {
        // SECURITY of uploads: when the server stops, a session with files open goes on (within
        // the server's grace period) so a transfer can finish; an idle one ends at once.
        if stopping && open_files.load(Ordering::SeqCst) == 0 {
            break "server stopping";
        }
        // Wait for the next packet with a cancel-safe call (fill_buf), then read it whole: a
        // read cut off half-way by the select would desynchronise the stream.
        tokio::select! {
            _ = shutdown.cancelled(), if !stopping => {
                stopping = true;
                continue;
            }
            _ = tokio::time::sleep(Duration::from_millis(100)), if stopping => continue,
            r = reader.fill_buf() => match r {
                Ok(buf) if !buf.is_empty() => {}
                _ => break "closed by the client",
            },
        }
        let Ok(len) = reader.read_u32().await else {
            break "closed by the client";
        };
        if len == 0 || len > MAX_PACKET {
            tracing::warn!(%user, len, limit = MAX_PACKET, "sftp packet over the limit; ending the session");
            break "oversized packet";
        }
        let cost = (len as usize + REQUEST_OVERHEAD) as u32;
        let Ok(permit) = queued.clone().acquire_many_owned(cost).await else {
            break "request thread gone";
        };
        let mut body = BytesMut::zeroed(len as usize);
        if reader.read_exact(&mut body).await.is_err() {
            break "closed by the client";
        }
        if req_tx.send((body.freeze(), permit)).is_err() {
            break "request thread gone";
        }
    };
    tracing::info!(%user, reason = end, "sftp session ended");
    drop(req_tx);
    drop(reader);
    let _ = worker.await;
    let _ = writer.await;
    // The session's buffers (up to 48 MiB while a large transfer streams) are free now, but
    // glibc keeps freed memory in its arenas: the server's PSS stayed near 60 MiB after the
    // bench's 256 MiB transfers. Hand what is free back to the system.
    // SAFETY: malloc_trim only releases memory that is already free; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The request thread.
fn serve_requests(
    mut sftp: Sftp,
    mut requests: mpsc::UnboundedReceiver<(Bytes, OwnedSemaphorePermit)>,
    replies: mpsc::UnboundedSender<Reply>,
    runtime: tokio::runtime::Handle,
) {
    let Ok(_identity) = crate::identity::OwnerIdentity::assume(sftp.owner()) else {
        return;
    };
    let reads = Arc::new((Mutex::new(0usize), Condvar::new()));
    let pending = Arc::new(Semaphore::new(MAX_PENDING_REPLY_BYTES));
    let mut initialised = false;
    while let Some((packet, queued)) = requests.blocking_recv() {
        if !initialised {
            // The first packet must be INIT; anything else is a confused client.
            if packet.first() != Some(&fxp::INIT) {
                tracing::warn!("sftp session did not start with INIT");
                break;
            }
            initialised = true;
            let _ = replies.send((Sftp::version(), None));
            continue;
        }
        let is_read = packet.first() == Some(&fxp::READ);
        if !is_read {
            wait_for_reads(&reads);
        }
        let action = sftp.handle(&packet);
        drop(queued);
        match action {
            Action::Reply(reply) => {
                let _ = replies.send((reply, None));
            }
            Action::Read(job) => {
                let cost = job.len.min(MAX_DATA) + 64;
                let Ok(permit) = runtime.block_on(pending.clone().acquire_many_owned(cost)) else {
                    break;
                };
                let replies = replies.clone();
                let reads = reads.clone();
                *reads.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                runtime.spawn_blocking(move || {
                    let reply = job.run();
                    let _ = replies.send((reply, Some(permit)));
                    let mut n = reads.0.lock().unwrap_or_else(|e| e.into_inner());
                    *n -= 1;
                    reads.1.notify_all();
                });
            }
        }
    }
    wait_for_reads(&reads);
    sftp.finish();
}

fn wait_for_reads(reads: &(Mutex<usize>, Condvar)) {
    let mut n = reads.0.lock().unwrap_or_else(|e| e.into_inner());
    while *n > 0 {
        n = reads.1.wait(n).unwrap_or_else(|e| e.into_inner());
    }
}

/// The writer: replies go out as the window allows; the in-flight permit of each is released
/// once it is handed to the channel.
///
/// Replies that are ready together are joined into one batch, so the channel carries full
/// packets (a 32 KiB READ reply alone would be a full packet and a 13-byte one), and the batch
/// is handed over as owned bytes (`data_bytes`), which russh slices without copying again.
async fn write_replies(
    channel: ChannelWriteHalf<Msg>,
    mut replies: mpsc::UnboundedReceiver<Reply>,
) {
    let mut batch = BytesMut::with_capacity(512 * 1024);
    let mut permits = Vec::new();
    while let Some((reply, permit)) = replies.recv().await {
        batch.extend_from_slice(&reply);
        permits.extend(permit);
        while batch.len() < 256 * 1024 {
            match replies.try_recv() {
                Ok((reply, permit)) => {
                    batch.extend_from_slice(&reply);
                    permits.extend(permit);
                }
                Err(_) => break,
            }
        }
        if channel.data_bytes(batch.split().freeze()).await.is_err() {
            break;
        }
        permits.clear();
    }
    let _ = channel.eof().await;
    let _ = channel.close().await;
}
