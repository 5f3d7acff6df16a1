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
//! - replies not yet handed to the channel, READ data and every other reply
//!   ([`MAX_PENDING_REPLY_BYTES`]): the request thread waits for room before starting a read or
//!   queuing a reply, and room is made by the writer. Meanwhile the reader keeps reading (READ
//!   requests are tiny: paramiko's prefetch of a whole 1 GiB file is about 1.3 MiB of
//!   requests), so window adjustments keep flowing.
//!
//! # The end of a session
//!
//! A session ends for one named reason ([`End`]), given by whichever part meets it first: the
//! reader (the client closed the channel or the connection, broke a rule, hung up while the
//! session was stalled, or the server stopped or cut the connection off), the request thread
//! (no INIT) or the writer (the channel is gone). From then on nothing waits for the client:
//! the writer drops what it had not sent, the request thread stops waiting for room and skips
//! the READs still queued (nobody will get their data), runs the other queued requests (a
//! CLOSE sent just before the client left still puts its upload in place; the queue is
//! bounded, so this is too), then closes every handle. The channel gets `exit-status` (0 when
//! the client closed it, 1 otherwise), EOF and CLOSE, as OpenSSH's internal-sftp sends them:
//! `scp` takes a missing exit status for a failure.
//!
//! A client that floods requests and never reads the replies stalls its session at both
//! bounds; russh's session loop then waits for the reader and no longer reads the socket, so
//! it would not see the client leave. The reader, stalled, watches the socket itself
//! ([`Guard::hung_up`]) and the idle bound, so such a session ends when its client leaves, or
//! after `idle_timeout` without room, or at the end of the shutdown grace period.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use russh::server::Msg;
use russh::{ChannelReadHalf, ChannelWriteHalf};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::ending::{End, Ending};
use crate::guard::Guard;
use crate::handler::{Action, MAX_DATA, MAX_PACKET, ReadJob, Sftp};
use crate::wire::fxp;

/// Bytes of requests read from the channel but not yet handled, at most.
pub const MAX_QUEUED_REQUEST_BYTES: usize = 16 * 1024 * 1024;
/// Bytes of replies (READ data and every other reply) not yet handed to the channel, at most.
pub const MAX_PENDING_REPLY_BYTES: usize = 32 * 1024 * 1024;
/// What a queued request costs besides its bytes (so that tiny requests are bounded too).
const REQUEST_OVERHEAD: usize = 64;
/// What a queued reply costs besides its bytes (its allocation and its place in the queue).
const REPLY_OVERHEAD: usize = 64;
/// How long the closing messages (exit-status, EOF, CLOSE) may take to be handed to russh.
const CLOSING_BOUND: Duration = Duration::from_secs(5);

type Request = (Bytes, OwnedSemaphorePermit);
type Reply = (Bytes, OwnedSemaphorePermit);

/// What ends a session from outside it.
pub struct Stops {
    /// The server's shutdown: an idle session ends, one with files open goes on.
    pub shutdown: CancellationToken,
    /// The connection's kill switch and socket watch.
    pub guard: Guard,
    /// How long a stalled session waits for its client to read (the SSH idle timeout).
    pub idle: Duration,
}

/// Runs the session until the client closes the channel, breaks a rule, or the server stops;
/// then frees everything it holds, whatever is still queued.
pub async fn run(channel: russh::Channel<Msg>, sftp: Sftp, user: String, stops: Stops) {
    let (mut read_half, write_half) = channel.split();
    let ending = Arc::new(Ending::default());
    let open_files = sftp.open_files();
    let (req_tx, req_rx) = mpsc::unbounded_channel::<Request>();
    let (reply_tx, reply_rx) = mpsc::unbounded_channel::<Reply>();
    let writer = tokio::spawn(write_replies(write_half, reply_rx, ending.clone()));
    let replies = Replies {
        tx: reply_tx,
        room: Arc::new(Semaphore::new(MAX_PENDING_REPLY_BYTES)),
        ending: ending.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    // The request thread logs the transfers: in the session's span (it names the customer).
    let span = tracing::Span::current();
    let worker = tokio::task::spawn_blocking(move || {
        span.in_scope(|| serve_requests(sftp, req_rx, replies))
    });
    let mut reader = Reader {
        queued: Arc::new(Semaphore::new(MAX_QUEUED_REQUEST_BYTES)),
        open_files,
        stops: &stops,
        ending: &ending,
        stopping: false,
        last_packet: std::time::Instant::now(),
        user: &user,
    };
    let why = reader.run(&mut read_half, req_tx).await;
    ending.end(why);
    drop(read_half);
    let _ = worker.await;
    if let Ok(write_half) = writer.await {
        close_channel(&write_half, ending.why()).await;
    }
    tracing::info!(%user, reason = ending.why().reason(), "sftp session ended");
    // The session's buffers (up to 48 MiB while a large transfer streams) are free now, but
    // glibc keeps freed memory in its arenas: the server's PSS stayed near 60 MiB after the
    // bench's 256 MiB transfers. Hand what is free back to the system.
    // SAFETY: malloc_trim only releases memory that is already free; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The reader's state.
struct Reader<'a> {
    queued: Arc<Semaphore>,
    open_files: Arc<AtomicUsize>,
    stops: &'a Stops,
    ending: &'a Ending,
    /// The server is stopping; the session goes on while it has files open, or while its
    /// client is still sending (see [`QUIET`]).
    stopping: bool,
    /// When the last packet began.
    last_packet: std::time::Instant,
    user: &'a str,
}

/// When the server stops (or hands over to an upgrade), a session without open files ends
/// only once its client has sent nothing for this long: a client between two requests of one
/// batch (`put` is OPEN, WRITEs, CLOSE; a batch is several) would otherwise see its session
/// end in the middle of what it was doing.
const QUIET: Duration = Duration::from_millis(500);

impl Reader<'_> {
    /// Queues packets until the session ends; returns why it did.
    async fn run(
        &mut self,
        channel: &mut ChannelReadHalf,
        requests: mpsc::UnboundedSender<Request>,
    ) -> End {
        let mut reader = tokio::io::BufReader::with_capacity(256 * 1024, channel.make_reader());
        loop {
            if let Err(end) = self.next_packet(&mut reader).await {
                return end;
            }
            let Ok(len) = reader.read_u32().await else {
                return End::ClosedByClient;
            };
            if len == 0 || len > MAX_PACKET {
                tracing::warn!(user = %self.user, len, limit = MAX_PACKET, "sftp packet over the limit; ending the session");
                return End::OversizedPacket;
            }
            let permit = match self.room((len as usize + REQUEST_OVERHEAD) as u32).await {
                Ok(permit) => permit,
                Err(end) => return end,
            };
            let mut body = BytesMut::zeroed(len as usize);
            if reader.read_exact(&mut body).await.is_err() {
                return End::ClosedByClient;
            }
            if requests.send((body.freeze(), permit)).is_err() {
                return self.ending.why();
            }
        }
    }

    /// Waits until a packet starts (with a cancel-safe call, `fill_buf`: a read cut off
    /// half-way by the select would desynchronise the stream), or the session ends.
    async fn next_packet(&mut self, reader: &mut (impl AsyncBufRead + Unpin)) -> Result<(), End> {
        loop {
            // SECURITY of uploads: when the server stops, a session with files open goes on
            // (within the server's grace period) so a transfer can finish; an idle one ends.
            if self.stopping
                && self.open_files.load(Ordering::SeqCst) == 0
                && self.last_packet.elapsed() >= QUIET
            {
                return Err(End::ServerStopping);
            }
            tokio::select! {
                _ = self.ending.ended() => return Err(self.ending.why()),
                _ = self.stops.guard.cut_off() => return Err(End::CutOff),
                _ = self.stops.shutdown.cancelled(), if !self.stopping => self.stopping = true,
                _ = tokio::time::sleep(Duration::from_millis(100)), if self.stopping => {}
                r = reader.fill_buf() => return match r {
                    Ok(buf) if !buf.is_empty() => {
                        self.last_packet = std::time::Instant::now();
                        Ok(())
                    }
                    _ => Err(End::ClosedByClient),
                },
            }
        }
    }

    /// Room in the request queue for `cost`. When there is none, the session is stalled (see
    /// the module's documentation): the wait also ends when the client hangs up, when it has
    /// read nothing for the idle timeout, or when the session or the server ends.
    async fn room(&mut self, cost: u32) -> Result<OwnedSemaphorePermit, End> {
        if let Ok(permit) = self.queued.clone().try_acquire_many_owned(cost) {
            return Ok(permit);
        }
        let idle = tokio::time::sleep(self.stops.idle);
        tokio::pin!(idle);
        loop {
            tokio::select! {
                p = self.queued.clone().acquire_many_owned(cost) => return p.map_err(|_| self.ending.why()),
                _ = self.ending.ended() => return Err(self.ending.why()),
                _ = self.stops.guard.cut_off() => return Err(End::CutOff),
                _ = self.stops.guard.hung_up() => return Err(End::HungUp),
                _ = &mut idle => return Err(End::NotReading),
                _ = self.stops.shutdown.cancelled(), if !self.stopping => {
                    self.stopping = true;
                    if self.open_files.load(Ordering::SeqCst) == 0 {
                        return Err(End::ServerStopping);
                    }
                }
            }
        }
    }
}

/// The request thread's way to the writer: every reply takes room in the reply budget first,
/// and nothing is queued once the session has ended.
struct Replies {
    tx: mpsc::UnboundedSender<Reply>,
    room: Arc<Semaphore>,
    ending: Arc<Ending>,
    runtime: tokio::runtime::Handle,
}

impl Replies {
    /// Room for `cost` bytes of replies; `None` once the session has ended.
    fn room(&self, cost: usize) -> Option<OwnedSemaphorePermit> {
        if self.ending.is_ended() {
            return None;
        }
        let cost = cost.min(MAX_PENDING_REPLY_BYTES) as u32;
        if let Ok(permit) = self.room.clone().try_acquire_many_owned(cost) {
            return Some(permit);
        }
        self.runtime.block_on(async {
            tokio::select! {
                p = self.room.clone().acquire_many_owned(cost) => p.ok(),
                _ = self.ending.ended() => None,
            }
        })
    }

    /// Queues `reply`, or drops it once the session has ended.
    fn send(&self, reply: Bytes) {
        if let Some(permit) = self.room(reply.len() + REPLY_OVERHEAD) {
            let _ = self.tx.send((reply, permit));
        }
    }
}

/// The READs running on the blocking pool.
#[derive(Default)]
struct InFlight(Mutex<usize>, Condvar);

impl InFlight {
    fn start(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }

    fn done(&self) {
        let mut n = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        self.1.notify_all();
    }

    /// Waits until none runs (each is one `pread` loop of at most [`MAX_DATA`] bytes).
    fn wait(&self) {
        let mut n = self.0.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            n = self.1.wait(n).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The request thread.
fn serve_requests(
    mut sftp: Sftp,
    mut requests: mpsc::UnboundedReceiver<Request>,
    replies: Replies,
) {
    let Ok(_identity) = yadokari_site::identity::OwnerIdentity::assume(sftp.owner()) else {
        replies.ending.end(End::NoIdentity);
        return;
    };
    // The first packet must be INIT; anything else is a confused client.
    match requests.blocking_recv() {
        Some((packet, _)) if packet.first() == Some(&fxp::INIT) => replies.send(Sftp::version()),
        Some(_) => {
            tracing::warn!("sftp session did not start with INIT");
            replies.ending.end(End::NoInit);
            return;
        }
        None => return,
    }
    let reads = Arc::new(InFlight::default());
    while let Some((packet, queued)) = requests.blocking_recv() {
        let is_read = packet.first() == Some(&fxp::READ);
        if is_read && replies.ending.is_ended() {
            continue; // nobody will receive its data
        }
        if !is_read {
            reads.wait();
        }
        let action = sftp.handle(&packet);
        drop(queued);
        match action {
            Action::Reply(reply) => replies.send(reply),
            Action::Read(job) => start_read(job, &replies, &reads),
        }
    }
    reads.wait();
    sftp.finish();
}

/// Runs `job` on the blocking pool once its data has room in the reply budget.
fn start_read(job: ReadJob, replies: &Replies, reads: &Arc<InFlight>) {
    let Some(permit) = replies.room(job.len.min(MAX_DATA) as usize + REPLY_OVERHEAD) else {
        return;
    };
    let tx = replies.tx.clone();
    let reads = reads.clone();
    reads.start();
    replies.runtime.spawn_blocking(move || {
        let reply = job.run();
        let _ = tx.send((reply, permit));
        reads.done();
    });
}

/// The writer: replies go out as the window allows; the room each took is released once it
/// is handed to the channel. Once the session has ended, what is left is dropped.
///
/// Replies that are ready together are joined into one batch, so the channel carries full
/// packets (a 32 KiB READ reply alone would be a full packet and a 13-byte one), and the batch
/// is handed over as owned bytes (`data_bytes`), which russh slices without copying again.
async fn write_replies(
    channel: ChannelWriteHalf<Msg>,
    mut replies: mpsc::UnboundedReceiver<Reply>,
    ending: Arc<Ending>,
) -> ChannelWriteHalf<Msg> {
    let mut batch = BytesMut::with_capacity(512 * 1024);
    let mut permits = Vec::new();
    loop {
        let (reply, permit) = tokio::select! {
            biased;
            _ = ending.ended() => break,
            r = replies.recv() => match r {
                Some(pair) => pair,
                None => break,
            },
        };
        batch.extend_from_slice(&reply);
        permits.push(permit);
        while batch.len() < 256 * 1024 {
            match replies.try_recv() {
                Ok((reply, permit)) => {
                    batch.extend_from_slice(&reply);
                    permits.push(permit);
                }
                Err(_) => break,
            }
        }
        // The wait for window space ends with the session: a client that never reads would
        // otherwise hold this task, its replies and their room forever.
        tokio::select! {
            _ = ending.ended() => break,
            r = channel.data_bytes(batch.split().freeze()) => if r.is_err() {
                ending.end(End::ChannelGone);
                break;
            },
        }
        permits.clear();
    }
    channel
}

/// Closes the channel as OpenSSH's internal-sftp does: `exit-status`, EOF, CLOSE (each handed
/// to russh within [`CLOSING_BOUND`]; a connection already gone just refuses them).
async fn close_channel(channel: &ChannelWriteHalf<Msg>, end: End) {
    let closing = async {
        channel.exit_status(end.exit_status()).await?;
        channel.eof().await?;
        channel.close().await
    };
    let _ = tokio::time::timeout(CLOSING_BOUND, closing).await;
}
