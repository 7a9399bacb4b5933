//! Where request lines go: an in-memory buffer that a background thread writes to stdout.
//!
//! A request never waits on a slow terminal or pipe, and a burst of requests costs one `write`
//! call instead of one per line. If the consumer stalls, the buffer is capped and excess lines
//! are dropped (and counted) rather than growing memory without bound; so are those stdout
//! refuses. Two buffers are swapped between the requests and the writer, so in steady state
//! nothing is allocated.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// How much unwritten request log may pile up before lines are dropped.
const MAX_PENDING_BYTES: usize = 8 << 20;
/// How long the writer waits after the first pending line, so that a burst goes out together.
const BATCH_WINDOW: Duration = Duration::from_millis(5);

pub(crate) struct StdoutSink {
    pending: Mutex<Vec<u8>>,
    wake: Condvar,
    dropped: AtomicU64,
    /// Held while a batch goes from the buffer to stdout, so `flush` at exit waits for a batch the
    /// writer thread has already taken; `true` when the last write failed, maybe mid-line.
    writing: Mutex<bool>,
}

/// The process's one sink; its writer thread starts with the first line.
pub(crate) fn sink() -> &'static StdoutSink {
    static SINK: OnceLock<&'static StdoutSink> = OnceLock::new();
    SINK.get_or_init(|| {
        let sink: &'static StdoutSink = Box::leak(Box::new(StdoutSink {
            pending: Mutex::new(Vec::with_capacity(64 << 10)),
            wake: Condvar::new(),
            dropped: AtomicU64::new(0),
            writing: Mutex::new(false),
        }));
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || sink.write_forever())
            .expect("the log writer thread starts");
        sink
    })
}

impl StdoutSink {
    /// Queues one whole line (its newline included).
    pub(crate) fn append(&self, line: &[u8]) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
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

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn flush(&self) {
        self.swap_and_write(&mut Vec::new());
    }

    fn write_forever(&self) {
        let mut outgoing = Vec::with_capacity(64 << 10);
        loop {
            let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            // Poisoned or not, the guard is released at once: only being woken matters here.
            drop(self.wake.wait_while(pending, |pending| pending.is_empty()));
            std::thread::sleep(BATCH_WINDOW);
            self.swap_and_write(&mut outgoing);
        }
    }

    fn swap_and_write(&self, outgoing: &mut Vec<u8>) {
        let mut failed_before = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut *pending, outgoing);
        drop(pending);
        if outgoing.is_empty() {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        // After a failed write, a newline first, so that a line cut off then stands apart.
        let separator: &[u8] = if *failed_before { b"\n" } else { b"" };
        let written = [separator, outgoing]
            .iter()
            .try_for_each(|bytes| stdout.write_all(bytes));
        *failed_before = written.and_then(|()| stdout.flush()).is_err();
        if *failed_before {
            // stdout refused the batch (a full disk, its reader gone): its lines count as dropped.
            let lines = outgoing.iter().filter(|&&byte| byte == b'\n').count();
            self.dropped.fetch_add(lines as u64, Ordering::Relaxed);
        }
        outgoing.clear();
    }
}
