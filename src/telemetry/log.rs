//! JSON log lines: one per request on stdout, operational events on stderr.
//!
//! The contract keeps stdout for request lines alone, so log shippers can parse it without
//! filtering. Request lines are appended to an in-memory buffer that a background thread writes
//! out every few milliseconds: a request never waits on a slow terminal or pipe, and a burst of
//! requests costs one `write` call instead of one per line. If the consumer stalls, the buffer is
//! capped and excess lines are dropped (and counted) rather than growing memory without bound.
//! Nothing logged carries a body, a password, or any client text other than a sanitised request id.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::config::LogLevel;

/// How much unwritten request log may pile up before lines are dropped.
const MAX_PENDING_BYTES: usize = 8 << 20;
/// How long the writer waits after the first pending line, so that a burst goes out together.
const BATCH_WINDOW: Duration = Duration::from_millis(5);

/// The service's logger; cheap to clone.
#[derive(Clone, Debug)]
pub struct Logger {
    level: LogLevel,
}

/// The facts of one request, as its log line records them.
pub struct RequestRecord<'a> {
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub duration: Duration,
    pub request_id: &'a [u8],
    /// `HIT` or `MISS` on cached routes.
    pub cache: Option<&'static str>,
    /// Why a 5xx happened (never sent to the client).
    pub error: Option<&'a str>,
}

struct StdoutSink {
    pending: Mutex<Vec<u8>>,
    wake: Condvar,
    dropped: AtomicU64,
    /// Held while a batch goes from the buffer to stdout, so `flush` at exit waits for a batch the
    /// writer thread has already taken.
    writing: Mutex<()>,
}

impl Logger {
    pub fn new(level: LogLevel) -> Logger {
        Logger { level }
    }

    pub fn enabled(&self, level: LogLevel) -> bool {
        level >= self.level
    }

    /// The request line, written when the level is `info` or lower.
    pub fn request(&self, record: &RequestRecord<'_>) {
        if !self.enabled(LogLevel::Info) {
            return;
        }
        let mut line = Vec::with_capacity(256);
        line.extend_from_slice(b"{\"ts\":\"");
        crate::timestamp::write_now(&mut line);
        line.extend_from_slice(b"\",\"level\":\"info\",\"msg\":\"request\",\"method\":");
        write_json_string(&mut line, record.method);
        line.extend_from_slice(b",\"route\":\"");
        line.extend_from_slice(record.route.as_bytes());
        line.extend_from_slice(b"\",\"status\":");
        write_decimal(&mut line, u64::from(record.status));
        line.extend_from_slice(b",\"duration_ms\":");
        write_milliseconds(&mut line, record.duration);
        line.extend_from_slice(b",\"request_id\":\"");
        // Request ids are either ours or passed `request_id::is_sane`: nothing to escape.
        line.extend_from_slice(record.request_id);
        line.push(b'"');
        if let Some(cache) = record.cache {
            line.extend_from_slice(b",\"cache\":\"");
            line.extend_from_slice(cache.as_bytes());
            line.push(b'"');
        }
        if let Some(error) = record.error {
            line.extend_from_slice(b",\"error\":");
            write_json_string(&mut line, error);
        }
        line.extend_from_slice(b"}\n");
        sink().append(&line);
    }

    pub fn debug(&self, message: &str, fields: &[(&str, &str)]) {
        self.event(LogLevel::Debug, "debug", message, fields);
    }

    pub fn info(&self, message: &str, fields: &[(&str, &str)]) {
        self.event(LogLevel::Info, "info", message, fields);
    }

    pub fn warn(&self, message: &str, fields: &[(&str, &str)]) {
        self.event(LogLevel::Warn, "warn", message, fields);
    }

    pub fn error(&self, message: &str, fields: &[(&str, &str)]) {
        self.event(LogLevel::Error, "error", message, fields);
    }

    /// An operational event on stderr; rare, so written at once.
    fn event(&self, level: LogLevel, level_name: &str, message: &str, fields: &[(&str, &str)]) {
        if !self.enabled(level) {
            return;
        }
        let mut line = Vec::with_capacity(160);
        line.extend_from_slice(b"{\"ts\":\"");
        crate::timestamp::write_now(&mut line);
        let _ = write!(line, "\",\"level\":\"{level_name}\",\"msg\":");
        write_json_string(&mut line, message);
        for (key, value) in fields {
            line.push(b',');
            write_json_string(&mut line, key);
            line.push(b':');
            write_json_string(&mut line, value);
        }
        line.extend_from_slice(b"}\n");
        let _ = std::io::stderr().lock().write_all(&line);
    }

    /// Writes out pending request lines now (at shutdown).
    pub fn flush(&self) {
        sink().flush();
    }

    /// Request lines dropped because stdout could not keep up.
    pub fn dropped_lines() -> u64 {
        sink().dropped.load(Ordering::Relaxed)
    }
}

/// Appends `value` in decimal; the request line is written on every request, and `write!` with
/// its formatting machinery cost more than the rest of the line.
fn write_decimal(buffer: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    buffer.extend_from_slice(&digits[start..]);
}

/// Appends a duration in milliseconds with three decimals (microsecond resolution), e.g. `0.123`.
fn write_milliseconds(buffer: &mut Vec<u8>, duration: Duration) {
    let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    write_decimal(buffer, micros / 1000);
    let fraction = micros % 1000;
    buffer.extend_from_slice(&[
        b'.',
        b'0' + (fraction / 100) as u8,
        b'0' + (fraction / 10 % 10) as u8,
        b'0' + (fraction % 10) as u8,
    ]);
}

fn write_json_string(buffer: &mut Vec<u8>, text: &str) {
    let _ = serde_json::to_writer(&mut *buffer, text);
}

fn sink() -> &'static StdoutSink {
    static SINK: OnceLock<&'static StdoutSink> = OnceLock::new();
    SINK.get_or_init(|| {
        let sink: &'static StdoutSink = Box::leak(Box::new(StdoutSink {
            pending: Mutex::new(Vec::with_capacity(64 << 10)),
            wake: Condvar::new(),
            dropped: AtomicU64::new(0),
            writing: Mutex::new(()),
        }));
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || sink.write_forever())
            .expect("the log writer thread starts");
        sink
    })
}

impl StdoutSink {
    fn append(&self, line: &[u8]) {
        let mut pending = self.pending.lock().unwrap_or_else(|poison| poison.into_inner());
        if pending.len() + line.len() > MAX_PENDING_BYTES {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let was_empty = pending.is_empty();
        pending.extend_from_slice(line);
        drop(pending);
        if was_empty {
            self.wake.notify_one();
        }
    }

    fn write_forever(&self) {
        let mut outgoing = Vec::with_capacity(64 << 10);
        loop {
            {
                let mut pending = self.pending.lock().unwrap_or_else(|poison| poison.into_inner());
                while pending.is_empty() {
                    pending = self.wake.wait(pending).unwrap_or_else(|poison| poison.into_inner());
                }
            }
            std::thread::sleep(BATCH_WINDOW);
            self.swap_and_write(&mut outgoing);
        }
    }

    fn flush(&self) {
        let mut outgoing = Vec::new();
        self.swap_and_write(&mut outgoing);
    }

    fn swap_and_write(&self, outgoing: &mut Vec<u8>) {
        let _writing = self.writing.lock().unwrap_or_else(|poison| poison.into_inner());
        {
            let mut pending = self.pending.lock().unwrap_or_else(|poison| poison.into_inner());
            std::mem::swap(&mut *pending, outgoing);
        }
        if outgoing.is_empty() {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(outgoing);
        let _ = stdout.flush();
        outgoing.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_filter_from_the_configured_one_up() {
        let logger = Logger::new(LogLevel::Warn);
        assert!(!logger.enabled(LogLevel::Info));
        assert!(logger.enabled(LogLevel::Warn));
        assert!(logger.enabled(LogLevel::Error));
    }

    #[test]
    fn numbers_are_written_as_json_numbers() {
        let mut buffer = Vec::new();
        write_decimal(&mut buffer, 0);
        buffer.push(b' ');
        write_decimal(&mut buffer, 503);
        buffer.push(b' ');
        write_milliseconds(&mut buffer, Duration::from_micros(123));
        buffer.push(b' ');
        write_milliseconds(&mut buffer, Duration::from_micros(10_000_007));
        assert_eq!(buffer, b"0 503 0.123 10000.007");
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut buffer = Vec::new();
        write_json_string(&mut buffer, "a \"quoted\"\nline");
        assert_eq!(buffer, br#""a \"quoted\"\nline""#);
    }
}
