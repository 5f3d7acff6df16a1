//! One customer's two logs: the buffers requests append to, and the flush that hands them to
//! the files (`files.rs`), pausing after a refusal so that a bad `logs/` costs one warning per
//! attempt, not one per request.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::files::Files;
use super::{Settings, lock};

/// Which of a customer's logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// `logs/access.log`: Combined Log Format.
    Access,
    /// `logs/error.log`: refusals, scripts' stderr, SFTP transfers.
    Error,
}

impl Stream {
    /// Its index in per-stream arrays.
    pub(super) fn slot(self) -> usize {
        match self {
            Stream::Access => 0,
            Stream::Error => 1,
        }
    }

    /// The file's name in `logs/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Stream::Access => "access.log",
            Stream::Error => "error.log",
        }
    }
}

/// The most a log buffers between two flushes; lines past it are dropped (and counted), so a
/// customer whose disk is slow or whose site is flooded cannot grow the server's memory.
const MAX_PENDING: usize = 1024 * 1024;

/// A buffer this full wakes the flush before its timer: one customer's site at 90,000 static
/// requests a second makes 1.4 MiB of lines per 200 ms tick, which the cap alone would drop.
const FLUSH_SOON: usize = 256 * 1024;

/// How long a log whose file was refused (or whose home has no `logs/`) drops its lines
/// before the next attempt.
const RETRY: Duration = Duration::from_secs(30);

/// One customer's logs.
pub struct CustomerLog {
    name: String,
    settings: Settings,
    pending: Mutex<Pending>,
    /// The files, touched only by the flush.
    files: Mutex<Files>,
    /// The registry's "something to flush" flag.
    dirty: Arc<AtomicBool>,
    /// Wakes the flush early.
    wake: Arc<Notify>,
}

/// What requests have appended since the last flush, by stream.
#[derive(Default)]
struct Pending {
    lines: [Vec<u8>; 2],
    /// Lines dropped because a buffer was full.
    dropped: u64,
    /// A stream's lines are dropped until then (after its file was refused).
    paused_until: [Option<Instant>; 2],
}

impl CustomerLog {
    /// The customer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn new(
        name: &str,
        settings: Settings,
        (dirty, wake): (Arc<AtomicBool>, Arc<Notify>),
    ) -> CustomerLog {
        CustomerLog {
            name: name.to_string(),
            settings,
            pending: Mutex::default(),
            files: Mutex::new(Files::default()),
            dirty,
            wake,
        }
    }

    pub(super) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Appends one whole line (ending in a newline) to `stream`'s buffer: all a request pays.
    pub fn append(&self, stream: Stream, line: &[u8]) {
        let i = stream.slot();
        let mut p = lock(&self.pending);
        if let Some(until) = p.paused_until[i] {
            if Instant::now() < until {
                return;
            }
            p.paused_until[i] = None;
        }
        let buf = &mut p.lines[i];
        if buf.len() + line.len() > MAX_PENDING {
            p.dropped += 1;
            return;
        }
        let before = buf.len();
        buf.extend_from_slice(line);
        drop(p);
        self.dirty.store(true, Ordering::Release);
        if before < FLUSH_SOON && before + line.len() >= FLUSH_SOON {
            self.wake.notify_one();
        }
    }

    /// Hands what is buffered to the files, or closes them when idle. Blocks.
    pub(super) fn flush(&self, now: Instant) {
        let (mut lines, dropped) = {
            let mut p = lock(&self.pending);
            (std::mem::take(&mut p.lines), std::mem::take(&mut p.dropped))
        };
        // Lines that came in while a refusal was being handled wait for no second attempt.
        let paused = lock(&self.pending).paused_until;
        for (data, until) in lines.iter_mut().zip(paused) {
            if until.is_some_and(|t| now < t) {
                data.clear();
            }
        }
        if dropped > 0 {
            tracing::warn!(customer = %self.name, dropped, "customer log lines dropped: more than 1 MiB waited for one flush");
        }
        let mut files = lock(&self.files);
        if lines.iter().all(Vec::is_empty) {
            files.close_if_idle(now, super::IDLE);
            return;
        }
        for (stream, data) in [Stream::Access, Stream::Error].into_iter().zip(lines) {
            if data.is_empty() {
                continue;
            }
            // A refused file pauses its own stream only: a FIFO planted at error.log does
            // not stop access.log.
            if let Err(refusal) = files.append(stream, &data, &self.settings, now) {
                files.refused(&refusal, &self.name, stream);
                files.close_stream(stream);
                lock(&self.pending).paused_until[stream.slot()] = Some(now + RETRY);
            }
        }
    }

    /// Closes the files and ends a pause: the next line opens them again.
    pub(super) fn reopen(&self) {
        lock(&self.files).close();
        lock(&self.pending).paused_until = [None, None];
    }
}
