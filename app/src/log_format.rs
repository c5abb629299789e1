//! The text log line, written without `core::fmt` on the hot path.
//!
//! The demo logs one access line per request, and with tracing-subscriber's `Full` format that
//! line cost more than all the middleware together: the timestamp goes through a calendar
//! conversion and `Display` every time, and every field (numbers too) through a `Debug` visitor
//! and `core::fmt::write` (a profile under load put formatting at 9 % of the server's CPU). This
//! formatter writes the same line, byte for byte, for a writer without colours (a file, a pipe,
//! a collector): the date and time up to the second are formatted once per second per thread,
//! integers with `itoa`, plain strings copied between quotes; anything else (an IP address, an
//! error) still goes through its `Debug` implementation. A person at a terminal gets the stock
//! coloured format, where speed does not matter.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crosscut::access_log::{AccessEntry, AccessLogLayer, AccessSink, ClientIp, TARGET};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::log_writer::BatchWriter;

/// `Full`'s line (`2026-01-02T03:04:05.678901Z  INFO target: message key=value ...`) for a
/// writer without ANSI colours.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainText;

thread_local! {
    /// The line being composed on this thread, kept between events so its capacity is reused.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Largest line buffer a thread keeps between events; a longer line's buffer is let go.
const KEEP_LINE_BYTES: usize = 64 * 1024;

impl<S, N> FormatEvent<S, N> for PlainText
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // The line is composed in a plain `String` and handed over in one write: every piece
        // written to `Writer` directly is a dynamic call, and a line has about thirty pieces.
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                let result = compose(ctx, event, &mut line).and_then(|()| writer.write_str(&line));
                if line.capacity() > KEEP_LINE_BYTES {
                    *line = String::new();
                }
                result
            }
            // A field whose `Debug` logs comes back here while the buffer is in use: that nested
            // line gets a buffer of its own.
            Err(_) => {
                let mut line = String::new();
                compose(ctx, event, &mut line)?;
                writer.write_str(&line)
            }
        })
    }
}

/// Appends the whole line for `event`, newline included.
fn compose<S, N>(ctx: &FmtContext<'_, S, N>, event: &Event<'_>, line: &mut String) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let meta = event.metadata();
    write_timestamp(line, SystemTime::now());
    line.push(' ');
    line.push_str(level_text(*meta.level()));
    if let Some(scope) = ctx.event_scope() {
        let mut seen = false;
        for span in scope.from_root() {
            line.push_str(span.metadata().name());
            seen = true;
            let ext = span.extensions();
            if let Some(fields) = ext.get::<FormattedFields<N>>() {
                if !fields.is_empty() {
                    write!(line, "{{{fields}}}")?;
                }
            }
            line.push(':');
        }
        if seen {
            line.push(' ');
        }
    }
    line.push_str(meta.target());
    line.push_str(": ");
    let mut visitor = Fields {
        line,
        first: true,
        result: Ok(()),
    };
    event.record(&mut visitor);
    visitor.result?;
    line.push('\n');
    Ok(())
}

/// The level as `Full` pads it, between the timestamp's space and the target.
fn level_text(level: Level) -> &'static str {
    match level {
        Level::TRACE => "TRACE ",
        Level::DEBUG => "DEBUG ",
        Level::INFO => " INFO ",
        Level::WARN => " WARN ",
        Level::ERROR => "ERROR ",
    }
}

/// Writes `name=value` pairs the way tracing-subscriber's default visitor does: space-separated,
/// the message bare, strings quoted and escaped as `Debug` would.
struct Fields<'a> {
    line: &'a mut String,
    first: bool,
    // Only a `Debug` implementation can fail; the rest of the line is still written.
    result: fmt::Result,
}

impl Fields<'_> {
    /// The separator and `name=`; `true` for the message, which is written bare.
    fn start(&mut self, field: &Field) -> bool {
        if self.first {
            self.first = false;
        } else {
            self.line.push(' ');
        }
        let name = field.name();
        if name == "message" {
            return true;
        }
        self.line.push_str(name.strip_prefix("r#").unwrap_or(name));
        self.line.push('=');
        false
    }

    fn plain(&mut self, field: &Field, text: &str) {
        self.start(field);
        self.line.push_str(text);
    }
}

/// Writes `value` in double quotes if it needs no escaping in either `Debug` or JSON (printable
/// ASCII without quote or backslash, where both only add the quotes); `false` if it does.
fn push_quoted_plain(line: &mut String, value: &str) -> bool {
    let plain = value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    if plain {
        line.push('"');
        line.push_str(value);
        line.push('"');
    }
    plain
}

/// `value` as `Debug` writes a `str`: quoted and escaped.
fn push_quoted(line: &mut String, value: &str) -> fmt::Result {
    if push_quoted_plain(line, value) {
        return Ok(());
    }
    write!(line, "{value:?}")
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.start(field) {
            self.line.push_str(value);
        } else if let Err(e) = push_quoted(self.line, value) {
            self.result = Err(e);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.plain(field, itoa::Buffer::new().format(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.plain(field, itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.plain(field, if value { "true" } else { "false" });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.start(field);
        if let Err(e) = write!(self.line, "{value:?}") {
            self.result = Err(e);
        }
    }
}

/// The access log's line, byte for byte as the subscriber writes the event of
/// [`crosscut::access_log`] ([`PlainText`]'s line, or tracing-subscriber's JSON object with
/// flattened fields for the demo's `log_format = "json"`), composed straight from the entry and
/// appended to a [`BatchWriter`].
///
/// The event's way through `tracing` (dispatch, one visitor call per field, the formatter's
/// buffers) cost more than the rest of the access log layer together (`benches/layers.rs`,
/// `access_log` against `access_log_direct`); here the fields are known and written in order.
/// Whether to log still follows the subscriber's filter (`RUST_LOG`). The event's span context,
/// which the demo never has around a request, is not written.
#[derive(Clone)]
pub struct AccessLines {
    writer: BatchWriter,
    compose: fn(&AccessEntry<'_>, &mut String),
}

impl AccessLines {
    /// Writes each request's text line to `writer`.
    pub fn text(writer: BatchWriter) -> Self {
        Self {
            writer,
            compose: access_line,
        }
    }

    /// Writes each request's JSON object, one per line, to `writer`.
    pub fn json(writer: BatchWriter) -> Self {
        Self {
            writer,
            compose: access_json,
        }
    }
}

impl AccessSink for AccessLines {
    fn record(&self, entry: &AccessEntry<'_>) {
        write_line(&self.writer, entry, self.compose);
    }
}

/// Composes `entry`'s line in this thread's buffer and appends it to `writer`.
fn write_line(
    writer: &BatchWriter,
    entry: &AccessEntry<'_>,
    compose: fn(&AccessEntry<'_>, &mut String),
) {
    LINE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut line) => {
            line.clear();
            compose(entry, &mut line);
            writer.write_lines(line.as_bytes());
        }
        // Only if a field's `Debug` sent a request while an event was being formatted.
        Err(_) => {
            let mut line = String::new();
            compose(entry, &mut line);
            writer.write_lines(line.as_bytes());
        }
    });
}

/// Appends the line [`PlainText`] writes for `entry`'s event, newline included.
fn access_line(entry: &AccessEntry<'_>, line: &mut String) {
    write_timestamp(line, SystemTime::now());
    line.push(' ');
    line.push_str(level_text(Level::INFO));
    line.push_str(TARGET);
    line.push_str(": request");
    access_fields(entry, line, Syntax::Text);
    line.push('\n');
}

/// Appends the object tracing-subscriber's flattened JSON format writes for `entry`'s event
/// (same keys, same order), newline included.
fn access_json(entry: &AccessEntry<'_>, line: &mut String) {
    line.push_str("{\"timestamp\":\"");
    write_timestamp(line, SystemTime::now());
    line.push_str("\",\"level\":\"INFO\",\"message\":\"request\"");
    access_fields(entry, line, Syntax::Json);
    line.push_str(",\"target\":\"");
    line.push_str(TARGET);
    line.push_str("\"}\n");
}

/// How the two formats write a field.
#[derive(Clone, Copy)]
enum Syntax {
    /// ` name=value`: strings quoted, a `Display` value (method, address) bare.
    Text,
    /// `,"name":value`: strings and `Display` values as JSON strings.
    Json,
}

impl Syntax {
    /// The separator and the field's name: `[text, json]`, each written in one piece.
    fn key(self, line: &mut String, [text, json]: [&str; 2]) {
        line.push_str(match self {
            Self::Text => text,
            Self::Json => json,
        });
    }

    /// A string field, quoted and escaped as the format's formatter writes a `&str`.
    fn string(self, line: &mut String, value: &str) {
        match self {
            Self::Text => {
                // Writing to a `String` does not fail.
                let _ = push_quoted(line, value);
            }
            Self::Json => push_json_str(line, value),
        }
    }

    /// Around a value the text format writes as its `Display` does: nothing, or JSON's quotes
    /// (the method and the address never need escaping).
    fn display_quote(self, line: &mut String) {
        if let Self::Json = self {
            line.push('"');
        }
    }
}

/// The event's fields after its message, in its order, each left out when the event leaves it out.
// Inlined into each caller, so that the format is known there and every choice below folds away.
#[inline(always)]
fn access_fields(entry: &AccessEntry<'_>, line: &mut String, syntax: Syntax) {
    syntax.key(line, [" method=", ",\"method\":"]);
    syntax.display_quote(line);
    line.push_str(entry.method.as_str());
    syntax.display_quote(line);
    syntax.key(line, [" path=", ",\"path\":"]);
    syntax.string(line, entry.path);
    syntax.key(line, [" status=", ",\"status\":"]);
    match entry.status {
        Some(status) => line.push_str(itoa::Buffer::new().format(status)),
        None => syntax.string(line, "error"),
    }
    syntax.key(line, [" latency_us=", ",\"latency_us\":"]);
    line.push_str(itoa::Buffer::new().format(latency_us(entry)));
    if let Some(ip) = entry.client_ip {
        syntax.key(line, [" client_ip=", ",\"client_ip\":"]);
        syntax.display_quote(line);
        ClientIp(ip).push_to(line);
        syntax.display_quote(line);
    }
    for (key, value) in [
        ([" user_agent=", ",\"user_agent\":"], entry.user_agent),
        ([" request_id=", ",\"request_id\":"], entry.request_id),
    ] {
        if let Some(value) = value {
            syntax.key(line, key);
            syntax.string(line, value);
        }
    }
}

/// The entry's latency in whole microseconds, as the event's `latency_us` field has it.
fn latency_us(entry: &AccessEntry<'_>) -> u64 {
    u64::try_from(entry.latency.as_micros()).unwrap_or(u64::MAX)
}

/// `value` as a JSON string, escaped as `serde_json` escapes it (which tracing-subscriber uses).
fn push_json_str(line: &mut String, value: &str) {
    if !push_quoted_plain(line, value) {
        // A string always serializes.
        line.push_str(&serde_json::Value::from(value).to_string());
    }
}

/// The access log layer [`access_log_layer`] hands out: set once, by [`log_access_directly`].
static ACCESS_LAYER: OnceLock<AccessLogLayer> = OnceLock::new();

/// Makes [`access_log_layer`] write the access log's lines with `sink` (an [`AccessLines`] in
/// front of the subscriber's writer) rather than send events. Process-wide, as
/// the subscriber is; only the first call counts.
pub fn log_access_directly(sink: impl AccessSink) {
    let _ = ACCESS_LAYER.set(AccessLogLayer::with_sink(sink));
}

/// The access log layer for the demo's stack: the one [`log_access_directly`] set, else the
/// layer sending the `tracing` event.
pub fn access_log_layer() -> AccessLogLayer {
    ACCESS_LAYER.get().cloned().unwrap_or_default()
}

thread_local! {
    /// The second last formatted on this thread and its `YYYY-MM-DDTHH:MM:SS.` text.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC, as tracing-subscriber's `SystemTime` timer writes it.
fn write_timestamp(line: &mut String, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let text = date_time(secs);
            cached.0 = secs;
            cached.1.clear();
            // Digits and separators only.
            cached
                .1
                .push_str(std::str::from_utf8(&text).unwrap_or("0000-00-00T00:00:00."));
        }
        line.push_str(&cached.1);
    });
    // Six digits with their leading zeros: the seventh, a `1`, is left out.
    let mut digits = itoa::Buffer::new();
    line.push_str(&digits.format(1_000_000 + since.subsec_micros())[1..]);
    line.push('Z');
}

/// `YYYY-MM-DDTHH:MM:SS.` for seconds since the Unix epoch (years 1970 to 9999).
fn date_time(secs: u64) -> [u8; 20] {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"0000-00-00T00:00:00.";
    let mut put = |at: usize, width: usize, mut n: u64| {
        for slot in out[at..at + width].iter_mut().rev() {
            *slot = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year.min(9999));
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, rem / 3600);
    put(14, 2, rem / 60 % 60);
    put(17, 2, rem % 60);
    out
}

/// Year, month, day of the proleptic Gregorian calendar for days since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for non-negative days).
pub(crate) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// What `emit` logs, once through the stock `Full` format and once through `PlainText`.
    fn both(emit: impl Fn()) -> (String, String) {
        let stock = Buffer::default();
        let ours = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .with_writer(stock.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, &emit);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .with_writer(ours.clone())
            .event_format(PlainText)
            .finish();
        tracing::subscriber::with_default(subscriber, &emit);
        let text = |b: Buffer| String::from_utf8(b.0.lock().unwrap().clone()).unwrap();
        (text(stock), text(ours))
    }

    /// Everything after the timestamp, which differs between the two runs.
    fn after_timestamp(line: &str) -> &str {
        line.split_once("Z ").expect("a timestamp").1
    }

    #[test]
    fn same_line_as_the_stock_format() {
        let (stock, ours) = both(|| {
            let ip: std::net::IpAddr = [192, 0, 2, 7].into();
            // As `crosscut::access_log` sends it: the message a plain field, first.
            tracing::info!(
                target: "crosscut::access",
                message = "request",
                method = %http::Method::GET,
                path = "/api/v1/users",
                status = 200u16,
                latency_us = 17u64,
                delta = -3i64,
                ok = true,
                client_ip = %ip,
                user_agent = "quote \" back\\slash tab\t é",
                request_id = Some("abc-123"),
            );
            tracing::warn!(r#type = "raw", "warned {} times", 2);
            tracing::error!(error = ?io::Error::other("boom"), "failed");
            let span = tracing::info_span!("conn", peer = 5);
            let _in = span.enter();
            tracing::debug!(n = 1, "inside");
            tracing::trace!("no fields");
        });
        let stock: Vec<&str> = stock.lines().map(after_timestamp).collect();
        let ours: Vec<&str> = ours.lines().map(after_timestamp).collect();
        assert_eq!(stock.len(), 5);
        assert_eq!(ours, stock);
    }

    /// A field whose `Debug` logs while its own event is being formatted.
    struct Chatty;

    impl fmt::Debug for Chatty {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            tracing::info!(target: "nested", depth = 2u64, "inner");
            f.write_str("chatty")
        }
    }

    #[test]
    fn nested_and_long_lines() {
        let (stock, ours) = both(|| {
            tracing::info!(value = ?Chatty, "outer");
            tracing::info!(big = "x".repeat(100_000).as_str(), "long");
            tracing::info!(after = 1u64, "short again");
        });
        let stock: Vec<&str> = stock.lines().map(after_timestamp).collect();
        let ours: Vec<&str> = ours.lines().map(after_timestamp).collect();
        // tracing drops an event raised while another is being dispatched on the same thread, in
        // both set-ups; what matters is that formatting survives it and the lines still agree.
        assert_eq!(ours.len(), stock.len());
        assert_eq!(ours.len(), 3);
        assert!(
            ours == stock,
            "the lines differ (not printed: one is 100 kB)"
        );
        assert!(ours[1].len() > KEEP_LINE_BYTES);
        assert!(LINE.with(|l| l.borrow().capacity()) <= KEEP_LINE_BYTES);
    }

    /// The requests `direct_access_line_is_the_events_line` sends: every field present or absent,
    /// text that needs escaping, both address families, a service that fails.
    fn access_requests() -> Vec<(http::Request<axum::body::Body>, bool)> {
        use axum::extract::ConnectInfo;
        use crosscut::access_log::ClientIp;
        use crosscut::request_id::RequestId;
        let build = |target: &str, ua: Option<&[u8]>| {
            let mut req = http::Request::get(target);
            if let Some(ua) = ua {
                req = req.header("user-agent", http::HeaderValue::from_bytes(ua).unwrap());
            }
            req.body(axum::body::Body::empty()).unwrap()
        };
        let mut full = build("/api/v1/users?access_token=x", Some(b"curl/8.0"));
        full.extensions_mut()
            .insert(ConnectInfo(std::net::SocketAddr::from(([10, 0, 0, 7], 1))));
        let id = RequestId::from_header(&http::HeaderValue::from_static("rid-42")).unwrap();
        full.extensions_mut().insert(id);
        let mut quoted = build("/a%20b/\"q\"", Some(b"say \"hi\" back\\slash\ttab"));
        quoted
            .extensions_mut()
            .insert(ClientIp("2001:db8::7".parse().unwrap()));
        let mut failing = build("/fail", Some(b"ua"));
        failing
            .extensions_mut()
            .insert(ClientIp([203, 0, 113, 255].into()));
        vec![
            (full, true),
            (quoted, true),
            (build("*", None), true),
            (build("http://example.com:8080", Some(b"caf\xc3\xa9")), true),
            (failing, false),
        ]
    }

    /// Sends [`access_requests`] through `layer` under the demo's subscriber for a file, in text
    /// or JSON, writing to a batch writer over a buffer; returns what came out, the timestamps
    /// and latencies blanked.
    fn access_lines(json: bool, layer: impl Fn(BatchWriter) -> AccessLogLayer) -> Vec<String> {
        use tower::Service;
        let out = Buffer::default();
        let (writer, guard) = crate::log_writer::batch_writer(out.clone());
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(writer.clone());
        let subscriber: Box<dyn tracing::Subscriber + Send + Sync> = if json {
            Box::new(builder.json().flatten_event(true).finish())
        } else {
            Box::new(builder.event_format(PlainText).finish())
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        tracing::subscriber::with_default(subscriber, || {
            for (req, ok) in access_requests() {
                let mut svc = tower::ServiceBuilder::new()
                    .layer(layer(writer.clone()))
                    .service_fn(move |_req| async move {
                        if ok {
                            Ok(http::Response::new(axum::body::Body::empty()))
                        } else {
                            Err(io::Error::other("failed"))
                        }
                    });
                runtime
                    .block_on(std::future::poll_fn(|cx| svc.poll_ready(cx)))
                    .unwrap();
                // The failing service's error is the point of that case.
                let _ = runtime.block_on(svc.call(req));
            }
        });
        drop(guard);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let blank = |line: &str, time_end: &str, latency: &str| {
            let (_, rest) = line.split_once(time_end).expect(line);
            let (head, tail) = rest.split_once(latency).expect(line);
            let tail = tail.trim_start_matches(|c: char| c.is_ascii_digit());
            format!("{head}{latency}N{tail}")
        };
        text.lines()
            .map(|line| {
                if json {
                    let object: serde_json::Value = serde_json::from_str(line).expect(line);
                    assert!(object["timestamp"].is_string(), "{line}");
                    blank(line, "Z\",", "\"latency_us\":")
                } else {
                    blank(line, "Z ", " latency_us=")
                }
            })
            .collect()
    }

    #[test]
    fn direct_access_line_is_the_events_line() {
        let events = access_lines(false, |_| AccessLogLayer::new());
        let direct = access_lines(false, |w| AccessLogLayer::with_sink(AccessLines::text(w)));
        assert_eq!(events.len(), 5, "{events:#?}");
        assert_eq!(direct, events);
        assert!(
            events[0].contains(" request_id=\"rid-42\""),
            "{}",
            events[0]
        );
        assert!(
            events[1].contains(" client_ip=2001:db8::7 "),
            "{}",
            events[1]
        );
        assert!(events[4].contains(" status=\"error\""), "{}", events[4]);
    }

    #[test]
    fn direct_access_json_is_the_events_json() {
        let events = access_lines(true, |_| AccessLogLayer::new());
        let direct = access_lines(true, |w| AccessLogLayer::with_sink(AccessLines::json(w)));
        assert_eq!(events.len(), 5, "{events:#?}");
        assert_eq!(direct, events);
        assert!(
            events[0].contains(r#","request_id":"rid-42","#),
            "{}",
            events[0]
        );
        assert!(events[1].contains(r#"\"q\""#), "{}", events[1]);
        assert!(events[4].contains(r#""status":"error""#), "{}", events[4]);
    }

    #[test]
    fn direct_access_log_follows_the_filter() {
        use tower::ServiceExt;
        let out = Buffer::default();
        let (writer, guard) = crate::log_writer::batch_writer(out.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer.clone())
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "info,crosscut::access=warn",
            ))
            .finish();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        tracing::subscriber::with_default(subscriber, || {
            let svc = tower::ServiceBuilder::new()
                .layer(AccessLogLayer::with_sink(AccessLines::text(writer)))
                .service_fn(|_req: http::Request<axum::body::Body>| async {
                    Ok::<_, io::Error>(http::Response::new(axum::body::Body::empty()))
                });
            let req = http::Request::get("/")
                .body(axum::body::Body::empty())
                .unwrap();
            runtime.block_on(svc.oneshot(req)).unwrap();
            tracing::info!("still logging");
        });
        drop(guard);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("still logging"), "{text}");
    }

    #[test]
    fn timestamps_match_the_calendar() {
        let cases = [
            (0, "1970-01-01T00:00:00."),
            (951_782_400, "2000-02-29T00:00:00."),
            (1_709_251_199, "2024-02-29T23:59:59."),
            (1_795_642_702, "2026-11-25T21:38:22."),
            (4_102_444_800, "2100-01-01T00:00:00."),
        ];
        for (secs, want) in cases {
            assert_eq!(
                std::str::from_utf8(&date_time(secs)).unwrap(),
                want,
                "{secs}"
            );
        }
        let mut out = String::new();
        let at = UNIX_EPOCH + Duration::new(1_795_642_702, 42_000);
        write_timestamp(&mut out, at);
        assert_eq!(out, "2026-11-25T21:38:22.000042Z");
    }

    #[test]
    fn timestamp_agrees_with_the_stock_timer() {
        use tracing_subscriber::fmt::time::{FormatTime, SystemTime as Stock};
        // Both read the clock; retry if a second boundary falls between the two reads.
        for _ in 0..3 {
            let mut stock = String::new();
            Stock.format_time(&mut Writer::new(&mut stock)).unwrap();
            let mut ours = String::new();
            write_timestamp(&mut ours, SystemTime::now());
            if stock[..19] == ours[..19] {
                assert_eq!(ours.len(), stock.len(), "{ours:?} {stock:?}");
                return;
            }
        }
        panic!("the stock timer and ours disagree on the second");
    }
}
