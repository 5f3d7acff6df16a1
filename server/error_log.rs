//! The error log: tracing's formatter, to standard error or a file, at the configured level,
//! behind a writer that keeps every event on one line; beside it, the layer that copies events
//! of a customer's requests and sessions to that customer's own `logs/error.log`
//! (`crate::customer_log`), each with its own filter.
//!
//! SECURITY: events quote names a client chooses (request paths, uploaded file names, a
//! script's stderr). A name holding a newline would otherwise start a line of its own that
//! reads like another event (log forging). The formatter hands over one whole event per
//! write; [`OneLine`] escapes every control character in it but the final newline (and tab,
//! and colour (SGR) sequences when colours are on), so whatever a client sends stays inside
//! its own line and cannot drive the reader's terminal.

use std::io::{self, IsTerminal, Write};
use std::sync::Arc;

use anyhow::Context;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{Config, LogTarget};
use crate::customer_log::{CustomerLayer, CustomerLogs};

/// Starts the error log for `config` (once per process), with `customers`' error logs beside it.
pub fn init(config: &Config, customers: Arc<CustomerLogs>) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::prelude::*;
    let filter = EnvFilter::try_new(&config.log_level).with_context(|| {
        format!(
            "server.log_level: `{}` is not a log filter",
            config.log_level
        )
    })?;
    let (customer_layer, customer_filter) = CustomerLayer::new(customers);
    let registry = tracing_subscriber::registry().with(customer_layer.with_filter(customer_filter));
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    // Where lines go, and whether the formatter may colour them (only on a terminal). The
    // error log is never `off` (only the access log may be).
    let (writer, ansi) = match &config.error_log {
        LogTarget::File(path) => {
            let file = open(path)
                .with_context(|| format!("cannot open the error log {}", path.display()))?;
            let file = ERROR_FILE.get_or_init(|| ErrorFile {
                path: path.clone(),
                file: std::sync::Mutex::new(file),
            });
            (BoxMakeWriter::new(file), false)
        }
        LogTarget::Stdout => (BoxMakeWriter::new(io::stdout), io::stdout().is_terminal()),
        LogTarget::Stderr | LogTarget::Off => {
            (BoxMakeWriter::new(io::stderr), io::stderr().is_terminal())
        }
    };
    let fmt = tracing_subscriber::fmt::layer().with_target(false);
    if config.log_json {
        // JSON escapes every control character itself: no OneLine needed.
        let json = fmt.json().with_current_span(false).with_writer(writer);
        registry.with(json.with_filter(filter)).init();
    } else {
        let text = fmt.with_ansi(ansi).with_writer(OneLine::new(writer, ansi));
        registry.with(text.with_filter(filter)).init();
    }
    Ok(())
}

/// The error log's file, when it is one: reopened by [`reopen`] (SIGUSR1, after logrotate
/// renamed it), so that lines go to the new file and none to the renamed one.
struct ErrorFile {
    path: std::path::PathBuf,
    file: std::sync::Mutex<std::fs::File>,
}

static ERROR_FILE: std::sync::OnceLock<ErrorFile> = std::sync::OnceLock::new();

fn open(path: &std::path::Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Opens the error log's file again at its path (nothing to do when the log is a stream).
pub fn reopen() -> io::Result<()> {
    let Some(log) = ERROR_FILE.get() else {
        return Ok(());
    };
    let file = open(&log.path)?;
    let mut current = log.file.lock().unwrap_or_else(|p| p.into_inner());
    *current = file;
    Ok(())
}

impl<'a> MakeWriter<'a> for &'static ErrorFile {
    type Writer = ErrorFileWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        ErrorFileWriter(self.file.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The error log's file, held for one event.
pub struct ErrorFileWriter<'a>(std::sync::MutexGuard<'a, std::fs::File>);

impl Write for ErrorFileWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Makes writers that escape control characters inside an event.
pub struct OneLine<M> {
    inner: M,
    /// Let ESC through (the formatter's colours on a terminal).
    ansi: bool,
}

impl<M> OneLine<M> {
    fn new(inner: M, ansi: bool) -> OneLine<M> {
        OneLine { inner, ansi }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for OneLine<M> {
    type Writer = OneLineWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        OneLineWriter {
            inner: self.inner.make_writer(),
            ansi: self.ansi,
        }
    }
}

/// A writer that escapes control characters in what it is given, but a final newline.
pub struct OneLineWriter<W> {
    inner: W,
    ansi: bool,
}

impl<W: Write> Write for OneLineWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_all(&escape(buf, self.ansi))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `buf` with every control byte but tab (and ESC when `ansi`) written as `\n`, `\r` or
/// `\xNN`; a final newline is kept as it is.
pub(crate) fn escape(buf: &[u8], ansi: bool) -> Vec<u8> {
    let (body, end) = match buf.strip_suffix(b"\n") {
        Some(body) => (body, &b"\n"[..]),
        None => (buf, &b""[..]),
    };
    let mut out = Vec::with_capacity(buf.len() + 8);
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        // The formatter's colours (SGR: ESC [ digits and ; then m) pass on a terminal; any
        // other escape sequence (cursor moves, OSC 52 clipboard writes) a script's stderr
        // might carry is shown escaped.
        if ansi
            && b == 0x1b
            && let Some(len) = sgr_len(&body[i..])
        {
            out.extend_from_slice(&body[i..i + len]);
            i += len;
            continue;
        }
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.push(b),
            b if b < 0x20 || b == 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            b => out.push(b),
        }
        i += 1;
    }
    out.extend_from_slice(end);
    out
}

/// The length of the SGR sequence (`ESC [ 0-9; m`) at the start of `bytes`, if it is one.
fn sgr_len(bytes: &[u8]) -> Option<usize> {
    let rest = bytes.strip_prefix(b"\x1b[")?;
    let params = rest
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b';')
        .count();
    (rest.get(params) == Some(&b'm')).then_some(2 + params + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_stays_on_its_line() {
        assert_eq!(
            escape(b"WARN refused path=a\nFAKE ERROR line\r\x07\n", false),
            b"WARN refused path=a\\nFAKE ERROR line\\r\\x07\n"
        );
        assert_eq!(
            escape(b"\x1b[33mWARN\x1b[0m\n", true),
            b"\x1b[33mWARN\x1b[0m\n"
        );
        assert_eq!(escape(b"\x1b[33m\n", false), b"\\x1b[33m\n");
        assert_eq!(escape(b"tab\there\n", false), b"tab\there\n");
    }
}
