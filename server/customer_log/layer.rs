//! The tracing side of customers' logs: a [`CustomerLayer`] beside the error log's formatter
//! that sends each event raised inside a span carrying a `customer` field to that customer's
//! `logs/error.log`, and the [`CustomerFilter`] that decides which spans and events it sees.
//!
//! The `customer` field is the contract: the request span records it once the request is
//! routed to a customer's site (`crate::service`), the script's stderr task runs in that span
//! (`crate::cgi::launch`), and the SFTP endpoint runs each session in a span with it
//! (`sftp-upload`'s `ssh.rs`).
//!
//! Why a filter of its own: the request span is a debug span, which the error log's filter
//! (at the default `info`) leaves disabled, so that a request formats nothing for it. This
//! filter enables spans with a `customer` field whatever the level (while there are customers
//! at all), and events from `info` up (whatever `server.log_level` says: a customer's transfer
//! lines are theirs to read) inside them; the formatter still sees only what its own filter
//! lets through.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::{CustomerLog, CustomerLogs, Stream};

/// The span field that names the customer.
const FIELD: &str = "customer";

/// Sends events in a customer's span to their error log.
pub struct CustomerLayer {
    logs: Arc<CustomerLogs>,
}

/// Which spans and events the [`CustomerLayer`] sees.
pub struct CustomerFilter {
    logs: Arc<CustomerLogs>,
}

impl CustomerLayer {
    /// The layer for `logs`, with its filter.
    pub fn new(logs: Arc<CustomerLogs>) -> (CustomerLayer, CustomerFilter) {
        (
            CustomerLayer { logs: logs.clone() },
            CustomerFilter { logs },
        )
    }

    /// Remembers span `id`'s customer, when `values` name one that has logs.
    fn attach<S: Subscriber + for<'a> LookupSpan<'a>>(
        &self,
        id: &Id,
        name: Option<String>,
        ctx: &Context<'_, S>,
    ) {
        let Some(log) = name.and_then(|n| self.logs.get(&n)) else {
            return;
        };
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().replace(Customer(log));
        }
    }
}

/// A span's customer, kept in the span's extensions.
struct Customer(Arc<CustomerLog>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for CustomerLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut name = CustomerName(None);
        attrs.record(&mut name);
        self.attach(id, name.0, &ctx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut name = CustomerName(None);
        values.record(&mut name);
        self.attach(id, name.0, &ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            if let Some(Customer(log)) = span.extensions().get::<Customer>() {
                log.append(Stream::Error, &line(event, SystemTime::now()));
                return;
            }
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Filter<S> for CustomerFilter {
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        if meta.is_span() {
            meta.fields().field(FIELD).is_some() && self.logs.active()
        } else {
            *meta.level() <= Level::INFO && cx.lookup_current().is_some()
        }
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        let wanted = if meta.is_span() {
            meta.fields().field(FIELD).is_some()
        } else {
            *meta.level() <= Level::INFO
        };
        if wanted {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        // The request and SFTP spans are debug spans.
        Some(tracing::level_filters::LevelFilter::DEBUG)
    }
}

/// Finds the `customer` field.
struct CustomerName(Option<String>);

impl Visit for CustomerName {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == FIELD {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == FIELD {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// `[27/Nov/2026:23:38:05 +0000] WARN message key=value ...`, one line.
///
/// SECURITY: fields carry what clients and scripts chose (paths, stderr); control characters
/// are escaped as in the global error log (`crate::error_log`), so nobody can forge a line
/// of the customer's log.
fn line(event: &Event<'_>, time: SystemTime) -> Vec<u8> {
    let mut fields = Fields::default();
    event.record(&mut fields);
    let text = format!(
        "[{}] {} {}{}\n",
        crate::access_log::clf_time(time),
        event.metadata().level(),
        fields.message,
        fields.rest
    );
    crate::error_log::escape(text.as_bytes(), false)
}

/// An event's message, and its other fields as ` key=value`.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}
