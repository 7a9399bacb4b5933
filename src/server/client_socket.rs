//! A client connection's socket with the contract's three I/O deadlines, which hyper 1 does not
//! keep the way a service facing proxies and browsers needs.
//!
//! **Reads.** A request head must arrive within `HEAD_READ_TIMEOUT` of its first byte (of the
//! accept, for a connection's first request): a client that trickles its head holds a connection
//! for nothing. A keep-alive connection may wait `KEEP_ALIVE_SECONDS` for its next request, longer
//! than the proxies in front keep their pooled connections (docs/API.md, Timeouts, says why);
//! `connections` closes idle ones when room is needed. hyper 1 has one timer for both (its header
//! read timeout starts as soon as it waits for the next head), so it is off and the reads between
//! requests tell which wait it is in.
//!
//! **Writes.** hyper 1 has no write timeout, so a client that pipelines requests and never reads
//! the answers would keep its connection, hyper's buffers and a full kernel send buffer forever.
//! Progress is watched, not duration: a write that completes (even partly) costs nothing but a
//! flag, and only a write that finds the send buffer full arms a timer. If no byte can be written
//! before it fires, the write fails, hyper ends the connection, and the socket is closed
//! abortively (`SO_LINGER` 0): the kernel drops the unsent data at once instead of holding it for
//! a client that will never take it. The timeout bounds how long a stuck connection lives;
//! `SEND_BUFFER_BYTES` bounds how much kernel memory it holds meanwhile.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::connections::Tracked;

/// The contract's header timeout: a client slower than this to send its request head is dropped.
pub(crate) const HEAD_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The contract's write-progress timeout: no byte written to the client for this long and the
/// connection is closed. Long enough for any client that reads at all (a phone on a bad network
/// drains a send buffer in well under a second), short enough that stuck connections cannot pile
/// up: at most this long's worth of them hold memory at once.
pub(crate) const WRITE_PROGRESS_TIMEOUT: Duration = Duration::from_secs(10);

/// `SO_SNDBUF` of client sockets; Linux doubles it for its bookkeeping, so a socket holds at most
/// 128 KiB. Left to autotuning, Linux grows it to `net.ipv4.tcp_wmem`'s maximum (4 MiB by default)
/// for a client that reads nothing. 128 KiB is four times the largest common answer (a page of 100
/// users, about 26 KiB), so answers still leave in one write, and enough for 10 Mbit/s to a client
/// 100 ms away; a BFF's clients (an ingress, a gateway) are much closer. Measured on loopback, it
/// is as fast as autotuning and holds far less (docs/RELIABILITY.md has the figures).
const SEND_BUFFER_BYTES: usize = 64 << 10;

/// The error a head that took too long fails its connection with.
#[derive(Debug)]
pub(crate) struct HeadTooSlow;

/// The error a stalled write fails with, so the server can tell it from other I/O errors.
#[derive(Debug)]
pub(crate) struct WriteStalled;

/// What the connection is waiting for while no request is in the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// The rest of a head whose first byte has arrived (or the first head of a new connection).
    Head,
    /// The first byte of the next request.
    NextRequest,
}

/// A client socket with the read deadlines and the write-progress timeout.
pub(crate) struct ClientSocket {
    stream: TcpStream,
    tracked: Arc<Tracked>,
    keep_alive: Duration,
    read_timer: Pin<Box<Sleep>>,
    waiting: Waiting,
    /// `Tracked::between_requests`'s mark when the current wait began: another mark means a request
    /// has ended since, and the next wait begins.
    wait_mark: u64,
    /// The request that ended left its body unread: the first bytes after it are that body, which
    /// hyper reads and drops, not the start of the next head.
    body_to_drain: bool,
    /// `WRITE_PROGRESS_TIMEOUT`, but for the tests that need a shorter one.
    write_timeout: Duration,
    /// Made on the first stall and reused, so a connection that never stalls never allocates one.
    write_timer: Option<Pin<Box<Sleep>>>,
    /// A write is waiting for the client to read; the timer runs. Cleared by any byte written.
    stalled: bool,
}

impl ClientSocket {
    /// Sets the socket up for answers (no Nagle delay, a bounded send buffer, which turns
    /// autotuning off) and starts the first head's deadline.
    pub(crate) fn new(stream: TcpStream, tracked: Arc<Tracked>, keep_alive: Duration) -> ClientSocket {
        // Responses are written whole; Nagle's algorithm would only delay them.
        let _ = stream.set_nodelay(true);
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER_BYTES);
        let wait_mark = tracked.between_requests().unwrap_or(0);
        ClientSocket {
            stream,
            tracked,
            keep_alive,
            read_timer: Box::pin(tokio::time::sleep(HEAD_READ_TIMEOUT)),
            waiting: Waiting::Head,
            wait_mark,
            body_to_drain: false,
            write_timeout: WRITE_PROGRESS_TIMEOUT,
            write_timer: None,
            stalled: false,
        }
    }

    fn wait_for(&mut self, waiting: Waiting, deadline: Instant) {
        self.waiting = waiting;
        self.read_timer.as_mut().reset(deadline);
    }

    /// What a write returned, with the stall bookkeeping: progress clears it, `Pending` runs it.
    fn track<T>(&mut self, written: Poll<io::Result<T>>, context: &mut Context<'_>) -> Poll<io::Result<T>> {
        if written.is_ready() {
            self.stalled = false;
            return written;
        }
        let write_timeout = self.write_timeout;
        let timer = self
            .write_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(write_timeout)));
        if !std::mem::replace(&mut self.stalled, true) {
            timer.as_mut().reset(Instant::now() + write_timeout);
        }
        match timer.as_mut().poll(context) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, WriteStalled))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for ClientSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let filled = buffer.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(context, buffer);
        // A request in the handler reads its body, which has a timeout of its own.
        let Some(mark) = self.tracked.between_requests() else {
            return read;
        };
        if mark != self.wait_mark {
            self.wait_mark = mark;
            self.body_to_drain = self.tracked.take_unread_body();
            let deadline = Instant::from_std(self.tracked.ended_at(mark)) + self.keep_alive;
            self.wait_for(Waiting::NextRequest, deadline);
        }
        match read {
            Poll::Ready(Ok(())) if buffer.filled().len() > filled && self.waiting == Waiting::NextRequest => {
                if !std::mem::take(&mut self.body_to_drain) {
                    let now = Instant::now();
                    self.tracked.head_began(now.into_std());
                    self.wait_for(Waiting::Head, now + HEAD_READ_TIMEOUT);
                }
                read
            }
            Poll::Pending if self.read_timer.as_mut().poll(context).is_ready() => match self.waiting {
                Waiting::Head => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, HeadTooSlow))),
                // Idle for its time: closed as if the client had closed it, which hyper ends quietly.
                Waiting::NextRequest => Poll::Ready(Ok(())),
            },
            read => read,
        }
    }
}

impl AsyncWrite for ClientSocket {
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

impl Drop for ClientSocket {
    /// The abortive close of a stuck connection (see the module doc), so the kernel frees its
    /// unsent data now rather than retrying the send for minutes.
    fn drop(&mut self) {
        if self.stalled {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl std::fmt::Display for HeadTooSlow {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = HEAD_READ_TIMEOUT.as_secs();
        write!(formatter, "no complete request head within {seconds} s")
    }
}

impl std::error::Error for HeadTooSlow {}

impl std::fmt::Display for WriteStalled {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("the client read nothing for the write-progress timeout")
    }
}

impl std::error::Error for WriteStalled {}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::server::connections::{Registration, Registry};

    /// A connection: its client end, and its server end as a `ClientSocket`, with this write
    /// timeout.
    async fn connected(write_timeout: Duration) -> (Registration, TcpStream, ClientSocket) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let connection = Registry::new().register();
        let keep_alive = Duration::from_secs(75);
        let mut server = ClientSocket::new(server, connection.tracked.clone(), keep_alive);
        server.write_timeout = write_timeout;
        (connection, client, server)
    }

    /// A connection whose first request has ended, having declared a body or not.
    async fn after_one_request(declares_body: bool) -> (Registration, TcpStream, ClientSocket) {
        let (connection, client, server) = connected(WRITE_PROGRESS_TIMEOUT).await;
        let request = connection
            .tracked
            .begin_request()
            .expect("an idle connection takes a request");
        connection.tracked.declares_body(declares_body);
        drop(request);
        (connection, client, server)
    }

    /// Whether a read of `server` is still waiting after `wait` (rather than ending or failing).
    async fn still_waiting(server: &mut ClientSocket, wait: Duration) -> bool {
        let mut byte = [0u8; 1];
        tokio::time::timeout(wait, server.read(&mut byte)).await.is_err()
    }

    #[tokio::test]
    async fn a_body_left_unread_and_dropped_after_the_answer_does_not_start_the_heads_5_s() {
        let (_connection, mut client, mut server) = after_one_request(true).await;
        // hyper reads the body the handler did not need once the answer is out, and drops it.
        client.write_all(b"{}").await.unwrap();
        let mut body = [0u8; 2];
        server.read_exact(&mut body).await.unwrap();
        assert!(
            still_waiting(&mut server, HEAD_READ_TIMEOUT + Duration::from_secs(1)).await,
            "an idle keep-alive, not a slow head"
        );
    }

    #[tokio::test]
    async fn the_first_byte_of_the_next_head_starts_its_5_s() {
        let (_connection, mut client, mut server) = after_one_request(false).await;
        client.write_all(b"GET").await.unwrap();
        let mut start = [0u8; 3];
        server.read_exact(&mut start).await.unwrap();
        let mut more = [0u8; 1];
        let read = tokio::time::timeout(HEAD_READ_TIMEOUT + Duration::from_secs(1), server.read(&mut more)).await;
        let error = read
            .expect("the head's 5 s ran out")
            .expect_err("a head too slow fails the connection");
        assert!(
            error.get_ref().is_some_and(|inner| inner.is::<HeadTooSlow>()),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_peer_that_reads_nothing_fails_the_write_after_the_timeout() {
        let (_connection, _client_that_never_reads, mut server) = connected(Duration::from_millis(200)).await;
        let chunk = vec![0u8; 1 << 16];
        let started = std::time::Instant::now();
        let error = loop {
            if let Err(error) = server.write_all(&chunk).await {
                break error;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "the write never failed");
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(error.get_ref().is_some_and(|inner| inner.is::<WriteStalled>()));
        assert!(
            server.stalled,
            "a failed write leaves the socket marked for an abortive close"
        );
    }

    #[tokio::test]
    async fn writes_that_make_progress_never_time_out() {
        let (_connection, mut client, mut server) = connected(Duration::from_millis(300)).await;
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut buffer = vec![0u8; 16 << 10];
            loop {
                // A slow reader: it takes a little at a time, but it does take.
                tokio::time::sleep(Duration::from_millis(1)).await;
                match client.read(&mut buffer).await {
                    Ok(0) | Err(_) => return total,
                    Ok(read) => total += read,
                }
            }
        });
        let chunk = vec![1u8; 1 << 20];
        for _ in 0..2 {
            server.write_all(&chunk).await.expect("progress keeps the write alive");
        }
        server.shutdown().await.unwrap();
        drop(server);
        assert_eq!(reader.await.unwrap(), 2 << 20);
    }
}
