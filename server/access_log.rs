//! The access log, in Apache's Combined Log Format, written when a response body has been sent
//! (or dropped), so that the byte count is what really went out. The same line goes to the
//! customer's own `logs/access.log` when the request was routed to their site
//! (`crate::customer_log`).

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::body::Body;
use crate::config::LogTarget;
use crate::customer_log::{CustomerLog, Stream};

/// The destination of access log lines.
///
/// Lines are collected in a buffer and written when it fills or when [`AccessLog::flush`] runs
/// (the server calls it a few times a second and at exit), like Apache's `BufferedLogs On`:
/// a write system call per request was a tenth of the cost of a small static response. Whole
/// lines only ever reach the file, so concurrent requests never interleave.
pub struct AccessLog {
    out: Mutex<io::BufWriter<Box<dyn Write + Send>>>,
    /// False for `access_log = "off"`: requests then capture nothing for it.
    enabled: AtomicBool,
}

/// How much the access log buffers before it writes.
const BUFFER: usize = 64 * 1024;

/// How often the server flushes the access log.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

impl AccessLog {
    /// Opens `target` (appending to a file).
    pub fn open(target: &LogTarget) -> io::Result<AccessLog> {
        Ok(AccessLog {
            out: Mutex::new(io::BufWriter::with_capacity(BUFFER, writer(target)?)),
            enabled: AtomicBool::new(*target != LogTarget::Off),
        })
    }

    /// Whether requests are logged at all.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Reopens the target (after SIGHUP, so rotated files are let go); what was buffered goes
    /// to the old one first.
    pub fn reopen(&self, target: &LogTarget) -> io::Result<()> {
        let w = writer(target)?;
        if let Ok(mut out) = self.out.lock() {
            let _ = out.flush();
            *out = io::BufWriter::with_capacity(BUFFER, w);
        }
        self.enabled
            .store(*target != LogTarget::Off, Ordering::Relaxed);
        Ok(())
    }

    /// Logs a request that never reached the service: hyper refused its head (400, 431), so
    /// there is no request line to show (`"-"`, as Apache logs an unreadable one).
    pub fn rejected(&self, remote: IpAddr, status: u16) {
        if !self.enabled() {
            return;
        }
        let entry = Entry {
            remote,
            time: SystemTime::now(),
            request_line: "-".into(),
            status,
            referer: None,
            user_agent: None,
        };
        self.write_line(&entry.line(0));
    }

    /// Writes out what is buffered.
    pub fn flush(&self) {
        if let Ok(mut out) = self.out.lock()
            && let Err(e) = out.flush()
        {
            give_up(&mut out, &e);
        }
    }

    fn write_line(&self, line: &str) {
        if let Ok(mut out) = self.out.lock() {
            // A line that does not fit makes the buffer write out first, so only whole lines
            // reach the file.
            let flushed = if out.capacity() - out.buffer().len() < line.len() {
                out.flush()
            } else {
                Ok(())
            };
            if let Err(e) = flushed.and_then(|()| out.write_all(line.as_bytes())) {
                give_up(&mut out, &e);
            }
        }
    }
}

/// A destination that refuses writes (a closed standard output, a full disk) is said once in
/// the error log and then dropped, with what was buffered for it, until the log is reopened
/// (SIGHUP): otherwise every request would log the same failure again and the buffer never
/// drain.
fn give_up(out: &mut io::BufWriter<Box<dyn Write + Send>>, error: &io::Error) {
    tracing::warn!(error = %error, "cannot write the access log; it is off until the server reloads its configuration (SIGHUP)");
    *out = io::BufWriter::with_capacity(BUFFER, Box::new(io::sink()));
}

fn writer(target: &LogTarget) -> io::Result<Box<dyn Write + Send>> {
    Ok(match target {
        LogTarget::Stdout => Box::new(io::stdout()),
        LogTarget::Stderr => Box::new(io::stderr()),
        LogTarget::File(path) => Box::new(OpenOptions::new().create(true).append(true).open(path)?),
        LogTarget::Off => Box::new(io::sink()),
    })
}

/// What the log line says about the request, captured when it arrived.
pub struct Entry {
    /// `%h`
    pub remote: IpAddr,
    /// `%t`
    pub time: SystemTime,
    /// `%r`: method, raw target, version.
    pub request_line: String,
    /// `%>s`
    pub status: u16,
    /// `%{Referer}i`
    pub referer: Option<String>,
    /// `%{User-agent}i`
    pub user_agent: Option<String>,
}

impl Entry {
    fn line(&self, bytes: u64) -> String {
        let size = if bytes == 0 {
            "-".to_string()
        } else {
            bytes.to_string()
        };
        format!(
            "{} - - [{}] \"{}\" {} {} \"{}\" \"{}\"\n",
            self.remote,
            clf_time(self.time),
            quote(&self.request_line),
            self.status,
            size,
            quote(self.referer.as_deref().unwrap_or("-")),
            quote(self.user_agent.as_deref().unwrap_or("-")),
        )
    }
}

/// SECURITY: log lines are read by people and parsers; escaping quotes, backslashes and
/// control bytes (as Apache does) keeps a client from forging or splitting lines.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `25/Nov/2026:23:38:05 +0000` (UTC).
pub(crate) fn clf_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31), Howard Hinnant's algorithm.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A response body that counts what it sends and writes the log line when it is finished or
/// dropped (a client that went away still gets its line). It also holds `guard`, which is
/// released at the same moment: the end of the response.
pub struct LoggedBody<G: Send> {
    inner: Body,
    bytes: u64,
    entry: Option<Entry>,
    log: Arc<AccessLog>,
    /// The customer whose site answered, whose own access log gets the line too.
    customer: Option<Arc<CustomerLog>>,
    _guard: G,
}

impl<G: Send> LoggedBody<G> {
    /// Wraps `inner`; with no `entry` (no log wants the request) nothing is written.
    pub fn new(
        inner: Body,
        entry: Option<Entry>,
        log: Arc<AccessLog>,
        customer: Option<Arc<CustomerLog>>,
        guard: G,
    ) -> Self {
        LoggedBody {
            inner,
            bytes: 0,
            entry,
            log,
            customer,
            _guard: guard,
        }
    }
}

impl<G: Send + Unpin> HttpBody for LoggedBody<G> {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &poll
            && let Some(data) = frame.data_ref()
        {
            self.bytes += data.len() as u64;
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<G: Send> Drop for LoggedBody<G> {
    fn drop(&mut self) {
        crate::metrics::bytes_sent(self.customer.as_deref().map(CustomerLog::name), self.bytes);
        if let Some(entry) = self.entry.take() {
            let line = entry.line(self.bytes);
            if self.log.enabled() {
                self.log.write_line(&line);
            }
            if let Some(customer) = &self.customer {
                customer.append(Stream::Access, line.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn combined_log_format() {
        let e = Entry {
            remote: "127.0.0.1".parse().expect("ip"),
            time: UNIX_EPOCH + Duration::from_secs(1_795_822_685),
            request_line: "GET /a\"b HTTP/1.1".into(),
            status: 200,
            referer: None,
            user_agent: Some("curl/8".into()),
        };
        assert_eq!(
            e.line(1234),
            "127.0.0.1 - - [27/Nov/2026:23:38:05 +0000] \"GET /a\\\"b HTTP/1.1\" 200 1234 \"-\" \"curl/8\"\n"
        );
        assert!(e.line(0).contains(" 200 - "));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
