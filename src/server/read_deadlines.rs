//! The read-side timeouts of a client connection: a request head must arrive within
//! `HEAD_READ_TIMEOUT` of its first byte (of the accept, for a connection's first request), and a
//! keep-alive connection may wait for its next request for `KEEP_ALIVE_SECONDS`.
//!
//! Two limits, because they guard against different things. The head's is short: a client that
//! trickles its head holds a connection for nothing. The idle one must be long: a proxy in front
//! (an ingress, a load balancer) keeps its connections to the service pooled, and if the service
//! closes one just as the proxy sends a request on it, the proxy answers 502 and, for a write
//! without an `Idempotency-Key`, cannot say whether it happened. So the service must be the one
//! that waits longer; the connection limit's eviction (`connections`) closes idle connections when
//! room is needed. hyper 1 has one timer for both (its header read timeout starts as soon as it
//! waits for the next head), so it is off and this wrapper keeps them: the reads of a connection
//! between requests tell which wait it is in.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::connections::Tracked;

/// The contract's header timeout: a client slower than this to send its request head is dropped.
pub(crate) const HEAD_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The error a head that took too long fails its connection with.
#[derive(Debug)]
pub(crate) struct HeadTooSlow;

/// What the connection is waiting for while no request is in the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// The rest of a head whose first byte has arrived (or the first head of a new connection).
    Head,
    /// The first byte of the next request.
    NextRequest,
}

/// A client connection's I/O with the two read deadlines; writes pass through.
pub(crate) struct ReadDeadlines<S> {
    io: S,
    tracked: Arc<Tracked>,
    keep_alive: Duration,
    timer: Pin<Box<Sleep>>,
    waiting: Waiting,
    /// `Tracked::between_requests`'s mark when the current wait began: another mark means a request
    /// has ended since, and the next wait begins.
    wait_mark: u64,
    /// The request that ended left its body unread: the first bytes after it are that body, which
    /// hyper reads and drops, not the start of the next head.
    body_to_drain: bool,
}

impl<S> ReadDeadlines<S> {
    pub(crate) fn new(io: S, tracked: Arc<Tracked>, keep_alive: Duration) -> ReadDeadlines<S> {
        let wait_mark = tracked.between_requests().unwrap_or(0);
        ReadDeadlines {
            io,
            tracked,
            keep_alive,
            timer: Box::pin(tokio::time::sleep(HEAD_READ_TIMEOUT)),
            waiting: Waiting::Head,
            wait_mark,
            body_to_drain: false,
        }
    }

    fn wait_for(&mut self, waiting: Waiting, deadline: Instant) {
        self.waiting = waiting;
        self.timer.as_mut().reset(deadline);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadDeadlines<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let filled = buffer.filled().len();
        let read = Pin::new(&mut self.io).poll_read(context, buffer);
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
                if std::mem::take(&mut self.body_to_drain) {
                    return read;
                }
                self.wait_for(Waiting::Head, Instant::now() + HEAD_READ_TIMEOUT);
                read
            }
            Poll::Pending if self.timer.as_mut().poll(context).is_ready() => match self.waiting {
                Waiting::Head => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, HeadTooSlow))),
                // Idle for its time: closed as if the client had closed it, which hyper ends quietly.
                Waiting::NextRequest => Poll::Ready(Ok(())),
            },
            read => read,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadDeadlines<S> {
    fn poll_write(mut self: Pin<&mut Self>, context: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(context, bytes)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(context)
    }
}

impl std::fmt::Display for HeadTooSlow {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "no complete request head within {} s",
            HEAD_READ_TIMEOUT.as_secs()
        )
    }
}

impl std::error::Error for HeadTooSlow {}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;
    use crate::server::connections::{Registration, Registry};

    /// A connection (its client end, and its server end read through `ReadDeadlines`) whose first
    /// request has ended, having declared a body or not.
    fn after_one_request(declares_body: bool) -> (Registration, DuplexStream, ReadDeadlines<DuplexStream>) {
        let connection = Registry::new().register();
        let (client, io) = tokio::io::duplex(1024);
        let server = ReadDeadlines::new(io, connection.tracked.clone(), Duration::from_secs(75));
        let request = connection
            .tracked
            .begin_request()
            .expect("an idle connection takes a request");
        connection.tracked.declares_body(declares_body);
        drop(request);
        (connection, client, server)
    }

    /// Whether a read of `server` is still waiting after `wait` (rather than ending or failing).
    async fn still_waiting(server: &mut ReadDeadlines<DuplexStream>, wait: Duration) -> bool {
        let mut byte = [0u8; 1];
        tokio::time::timeout(wait, server.read(&mut byte)).await.is_err()
    }

    #[tokio::test]
    async fn a_body_left_unread_and_dropped_after_the_answer_does_not_start_the_heads_5_s() {
        let (_connection, mut client, mut server) = after_one_request(true);
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
        let (_connection, mut client, mut server) = after_one_request(false);
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
}
