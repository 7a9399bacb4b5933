//! The response-write progress timeout: a client that reads nothing for 10 s is dropped.
//!
//! hyper 1 has no write timeout, so a client that pipelines requests and never reads the answers
//! would keep its connection, hyper's buffers and a full kernel send buffer forever. `TimedWrites`
//! wraps the connection's socket and watches progress, not duration: a write that completes (even
//! partly) costs nothing but a flag, and only a write that finds the send buffer full arms a timer.
//! If no byte can be written before it fires, the write fails, hyper ends the connection, and the
//! socket is closed abortively (`SO_LINGER` 0): the kernel drops the unsent data at once instead
//! of holding it for a client that will never take it.
//!
//! The timeout bounds how long a stuck connection lives; `bound_send_buffer` bounds how much
//! kernel memory it holds meanwhile. Left to autotuning, Linux grows a socket's send buffer to
//! `net.ipv4.tcp_wmem`'s maximum (4 MiB by default) for a client that reads nothing: 100 such
//! clients held 389 MiB of kernel memory (docs/RELIABILITY.md has the figures).

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// The contract's write-progress timeout: no byte written to the client for this long and the
/// connection is closed. Long enough for any client that reads at all (a phone on a bad network
/// drains a send buffer in well under a second), short enough that stuck connections cannot pile
/// up: at most this long's worth of them hold memory at once.
pub(crate) const WRITE_PROGRESS_TIMEOUT: Duration = Duration::from_secs(10);

/// `SO_SNDBUF` of client sockets; Linux doubles it for its bookkeeping, so a socket holds at most
/// 128 KiB. That is four times the largest common answer (a page of 100 users, about 26 KiB), so
/// answers still leave in one write, and enough for 10 Mbit/s to a client 100 ms away; a BFF's
/// clients (an ingress, a gateway) are much closer. Measured on loopback, a page of 100 users is
/// served as fast as with autotuning, and 100 clients that read nothing hold 26 MiB instead of 389.
const SEND_BUFFER_BYTES: usize = 64 << 10;

/// Fixes the client socket's send buffer at `SEND_BUFFER_BYTES` (which turns autotuning off).
pub(crate) fn bound_send_buffer(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_send_buffer_size(SEND_BUFFER_BYTES);
}

/// The error a stalled write fails with, so the server can tell it from other I/O errors.
#[derive(Debug)]
pub(crate) struct WriteStalled;

/// A client socket whose writes must make progress within a timeout.
pub(crate) struct TimedWrites {
    stream: TcpStream,
    timeout: Duration,
    /// Made on the first stall and reused, so a connection that never stalls never allocates one.
    timer: Option<Pin<Box<Sleep>>>,
    /// A write is waiting for the client to read; the timer runs. Cleared by any byte written.
    stalled: bool,
}

impl TimedWrites {
    pub(crate) fn new(stream: TcpStream, timeout: Duration) -> TimedWrites {
        TimedWrites {
            stream,
            timeout,
            timer: None,
            stalled: false,
        }
    }

    /// The socket could take nothing: start the timer if this is a new stall, and fail the write
    /// once it has run out.
    fn stall(&mut self, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.stalled {
            self.stalled = true;
            let deadline = Instant::now() + self.timeout;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let timer = self.timer.as_mut().expect("a stalled write has a timer");
        match timer.as_mut().poll(context) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, WriteStalled))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// What a write returned, with the stall bookkeeping: progress clears it, `Pending` runs it.
    fn track<T>(&mut self, written: Poll<io::Result<T>>, context: &mut Context<'_>) -> Poll<io::Result<T>> {
        match written {
            Poll::Ready(result) => {
                self.stalled = false;
                Poll::Ready(result)
            }
            Poll::Pending => match self.stall(context) {
                Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                _ => Poll::Pending,
            },
        }
    }
}

impl std::fmt::Display for WriteStalled {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("the client read nothing for the write-progress timeout")
    }
}

impl std::error::Error for WriteStalled {}

impl AsyncRead for TimedWrites {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(context, buffer)
    }
}

impl AsyncWrite for TimedWrites {
    fn poll_write(mut self: Pin<&mut Self>, context: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(context, bytes);
        self.track(written, context)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(context, buffers);
        self.track(written, context)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = Pin::new(&mut self.stream).poll_flush(context);
        self.track(flushed, context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(context)
    }
}

impl Drop for TimedWrites {
    /// A connection closed while its writes are stuck has unsent data the client will not take:
    /// reset it so the kernel frees that memory now, rather than retrying the send for minutes.
    fn drop(&mut self) {
        if self.stalled {
            let _ = self.stream.set_zero_linger();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn connected_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    #[tokio::test]
    async fn a_peer_that_reads_nothing_fails_the_write_after_the_timeout() {
        let (server, _client_that_never_reads) = connected_pair().await;
        let mut writes = TimedWrites::new(server, Duration::from_millis(200));
        let chunk = vec![0u8; 1 << 16];
        let started = std::time::Instant::now();
        let error = loop {
            if let Err(error) = writes.write_all(&chunk).await {
                break error;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "the write never failed");
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(error.get_ref().is_some_and(|inner| inner.is::<WriteStalled>()));
        assert!(
            writes.stalled,
            "a failed write leaves the socket marked for an abortive close"
        );
    }

    #[tokio::test]
    async fn writes_that_make_progress_never_time_out() {
        let (server, mut client) = connected_pair().await;
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut buffer = vec![0u8; 16 << 10];
            loop {
                // A slow reader: it takes a little at a time, but it does take.
                tokio::time::sleep(Duration::from_millis(1)).await;
                match tokio::io::AsyncReadExt::read(&mut client, &mut buffer).await {
                    Ok(0) | Err(_) => return total,
                    Ok(read) => total += read,
                }
            }
        });
        let mut writes = TimedWrites::new(server, Duration::from_millis(300));
        let chunk = vec![1u8; 1 << 20];
        for _ in 0..2 {
            writes.write_all(&chunk).await.expect("progress keeps the write alive");
        }
        writes.shutdown().await.unwrap();
        drop(writes);
        assert_eq!(reader.await.unwrap(), 2 << 20);
    }
}
