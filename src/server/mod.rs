//! The accept loop, the life of a client connection, and graceful shutdown.
//!
//! Each accepted connection is hyper's HTTP/1 over a [`client_socket`] (the head, idle and
//! write-progress deadlines), registered in [`connections`] (which one closes for room at
//! `MAX_CONNECTIONS`); while every connection is busy, the client at the cap waits, and the ones
//! after it in the listen backlog. Requests that hyper refuses before routing are still counted
//! and logged ([`refusals`]). Shutdown keeps ARCHITECTURE.md's invariant (Shutdown loses no
//! accepted request): idle keep-alive connections close at once, unless a request has already
//! arrived on them (the kernel holds bytes hyper has not read yet), which is answered with
//! `Connection: close`; a connection closed for room reads such a request first too, and answers
//! it 503. After the grace, the writes still running are ended through `db::write_pool`.

mod client_socket;
mod connections;
pub(crate) mod limits;
mod refusals;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::header::{CONNECTION, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::error::Error;
use crate::handlers;
use crate::state::AppState;
use crate::telemetry::rate_limited::RateLimitedWarning;
use client_socket::{ClientSocket, WriteStalled};
use connections::{Registry, Tracked};

/// hyper's per-connection buffer: a request head must fit in it (431 otherwise), and it bounds
/// how much of the answers hyper queues before waiting for the socket. hyper's default, 400 KiB,
/// let a client that sends a large head slowly hold that much of the process's memory for the 5 s
/// header timeout: 200 such clients took the release binary from 3.4 to 85 MiB resident. 16 KiB
/// is Node.js's limit for a head (which heads pass: docs/API.md, Refusals before routing).
const CONNECTION_BUFFER_BYTES: usize = 16 << 10;

/// After an `accept` that failed for want of descriptors or memory, wait up to this long before
/// the next, rather than spinning on a listener that stays readable.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Failed `accept`s are logged at most this often; the line says how many were not.
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// At the cap with every connection busy, look again this often: a request ending makes its
/// connection closable but, to keep requests cheap, signals nobody.
const ROOM_RECHECK: Duration = Duration::from_millis(20);

/// How long a connection closed for room may take to read and refuse a request that had already
/// arrived (it is complete in the kernel's buffer, or nearly).
const ARRIVED_REQUEST_GRACE: Duration = Duration::from_millis(250);

/// After the drain, how long Postgres has to end the writes still running once asked to cancel
/// them (milliseconds, while it answers); then the ended writes lift their cache fences in what
/// is left of both, and have at most the second to answer.
const WRITE_END_PATIENCE: Duration = Duration::from_secs(2);
const LAST_ANSWERS_PATIENCE: Duration = Duration::from_millis(500);

/// How the server treats its clients.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerSettings {
    /// Open client connections above which new ones wait in the listen backlog.
    pub(crate) max_connections: usize,
    /// How long in-flight requests may run after shutdown begins.
    pub(crate) shutdown_grace: Duration,
    /// How long a keep-alive connection may wait for its next request (`KEEP_ALIVE_SECONDS`).
    pub(crate) keep_alive: Duration,
}

pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
    settings: ServerSettings,
) {
    let mut http = http1::Builder::new();
    // half_close: a client may shut its sending side once the request is out (as `nc -q` does)
    // and still get its answer; hyper's default drops such a connection.
    // hyper's header read timeout is off: `ClientSocket` keeps the head's and the idle wait's apart.
    http.header_read_timeout(None)
        .max_buf_size(CONNECTION_BUFFER_BYTES)
        .keep_alive(true)
        .half_close(true);
    let (stop, stopping) = watch::channel(false);
    let registry = Registry::new();
    let accept_errors = RateLimitedWarning::new(state.logger.clone(), "accept failed", ACCEPT_ERROR_LOG_INTERVAL);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            stream = next_client(&listener, &registry, settings.max_connections, &state, &accept_errors) => stream,
            () = &mut shutdown => break,
        };
        serve_client(stream, &http, stopping.clone(), &registry, &state, settings.keep_alive);
    }
    drop(listener);
    let logger = &state.logger;
    logger.info(
        "shutting down; draining in-flight requests",
        &[("grace_seconds", &settings.shutdown_grace.as_secs())],
    );
    let _ = stop.send(true);
    let all_closed = async || {
        while registry.open() > 0 {
            let _ = tokio::time::timeout(ROOM_RECHECK, registry.wait_for_a_close()).await;
        }
    };
    if tokio::time::timeout(settings.shutdown_grace, all_closed())
        .await
        .is_err()
    {
        logger.warn(
            "grace period over; ending the writes still running, then closing the remaining connections",
            &[],
        );
    }
    let after_drain_until = tokio::time::Instant::now() + WRITE_END_PATIENCE + LAST_ANSWERS_PATIENCE;
    let unended = state.db.close_writes(WRITE_END_PATIENCE).await;
    if unended > 0 {
        logger.warn(
            "postgres did not end every write still running; they may commit after the exit",
            &[("writes", &unended)],
        );
    }
    // Writes that ended just now (cancelled, committed, or refused as the pool closed) lift their
    // fences and are answered before their connections close, in what is left of the time after the
    // drain. An exit before a lift (tried until Redis answers, for up to 2 s) would leave the fence
    // to keep its user uncached until it expires, and a body it should remove.
    let patience = after_drain_until.saturating_duration_since(tokio::time::Instant::now());
    if !state.writes.until_settled(patience).await {
        logger.warn(
            "exiting before every write had lifted its cache fence; their users are cached again once the fences \
             expire",
            &[],
        );
    }
    let answers_until = after_drain_until.min(tokio::time::Instant::now() + LAST_ANSWERS_PATIENCE);
    let _ = tokio::time::timeout_at(answers_until, all_closed()).await;
}

/// Serves one client on a task of its own, registered (and so closable for room) until it ends.
fn serve_client(
    stream: TcpStream,
    http: &http1::Builder,
    mut stopping: watch::Receiver<bool>,
    registry: &Arc<Registry>,
    state: &Arc<AppState>,
    keep_alive: Duration,
) {
    let connection = registry.register();
    state.metrics.connections_open.fetch_add(1, Ordering::Relaxed);
    let tracked = connection.tracked.clone();
    let service = {
        let (state, tracked) = (state.clone(), tracked.clone());
        service_fn(move |request| {
            let (state, tracked) = (state.clone(), tracked.clone());
            async move {
                let Some(_in_progress) = tracked.begin_request() else {
                    // Chosen to make room just as this request arrived: it is not run, and is
                    // answered (and logged) as such before the connection closes.
                    return Ok::<_, Infallible>(handlers::refuse(&state, request, Error::NoRoom));
                };
                tracked.declares_body(!hyper::body::Body::is_end_stream(request.body()));
                let mut response = handlers::handle(state, request, tracked.as_ref()).await;
                if tracked.closes_after_answer() {
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                Ok(response)
            }
        })
    };
    let socket = stream.as_raw_fd();
    let io = TokioIo::new(ClientSocket::new(stream, tracked.clone(), keep_alive));
    let served = http.serve_connection(io, service);
    let state = state.clone();
    tokio::spawn(async move {
        tokio::pin!(served);
        let mut told_to_stop = false;
        let ended = loop {
            tokio::select! {
                ended = served.as_mut() => break Some(ended),
                // Dropping the connection closes it (abortively if its writes were stuck).
                () = tracked.evicted() => {
                    if !has_unread_bytes(socket) {
                        break None;
                    }
                    break tokio::time::timeout(ARRIVED_REQUEST_GRACE, served.as_mut()).await.ok();
                }
                () = stopped(&mut stopping), if !told_to_stop => {
                    told_to_stop = true;
                    if has_unread_bytes(socket) || tracked.reading_a_head() {
                        tracked.close_after_answer();
                    } else {
                        served.as_mut().graceful_shutdown();
                    }
                }
            }
        };
        if let Some(Err(error)) = ended {
            connection_ended_with(&error, &state, &tracked);
        }
        if tracked.was_evicted() {
            state.metrics.connections_evicted.fetch_add(1, Ordering::Relaxed);
        }
        state.metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
        drop(connection);
    });
}

/// Completes once shutdown has begun (or the server is gone).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// Whether bytes the client sent wait in the kernel, unread: a request the client considers sent.
/// The caller owns the connection, so `socket` is open for the call.
fn has_unread_bytes(socket: RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: `socket` is the descriptor of a connection its caller holds open; one byte is
    // peeked into a local, without waiting and without taking it off the socket.
    let peeked = unsafe { libc::recv(socket, (&raw mut byte).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    peeked > 0
}

/// The next client, once there is room for it: a client that arrives at the cap closes the least
/// recently active connection not being served, or waits until one can be closed.
async fn next_client(
    listener: &TcpListener,
    registry: &Registry,
    max_connections: usize,
    state: &AppState,
    errors: &RateLimitedWarning,
) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                make_room(registry, max_connections).await;
                return stream;
            }
            Err(error) => {
                state.metrics.accept_errors.fetch_add(1, Ordering::Relaxed);
                errors.warn(&error.to_string(), &[]);
                // Out of something, where trying again at once would spin: free a descriptor if an
                // idle connection holds one and go on once it is closed; otherwise let the system
                // breathe before trying again.
                if matches!(
                    error.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                ) {
                    if registry.evict_least_recently_active() {
                        let _ = tokio::time::timeout(ACCEPT_ERROR_PAUSE, registry.wait_for_a_close()).await;
                    } else {
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                }
            }
        }
    }
}

/// Returns once fewer than `max_connections` are open, closing closable ones to get there.
async fn make_room(registry: &Registry, max_connections: usize) {
    loop {
        let open = registry.open();
        if open < max_connections {
            return;
        }
        // Connections already told to close count towards the room being made.
        if registry.closing() <= open - max_connections {
            registry.evict_least_recently_active();
        }
        let _ = tokio::time::timeout(ROOM_RECHECK, registry.wait_for_a_close()).await;
    }
}

/// Why a connection ended with an error: a refused request is counted and logged as a request;
/// a stuck writer is counted; the rest (clients gone, header timeouts) are routine.
fn connection_ended_with(error: &hyper::Error, state: &AppState, tracked: &Tracked) {
    let (metrics, logger) = (&state.metrics, &state.logger);
    if let Some(status) = refusals::refusal_status(error) {
        refusals::record(state, status, error, tracked.since_head_began());
    } else if is_write_stall(error) {
        metrics.connections_write_timed_out.fetch_add(1, Ordering::Relaxed);
        logger.debug("closed a connection that read nothing for 10 s", &[]);
    } else {
        let message = error.to_string();
        logger.debug("connection ended with an error", &[("error.message", &message)]);
    }
}

fn is_write_stall(error: &hyper::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<io::Error>())
        .and_then(io::Error::get_ref)
        .is_some_and(|inner| inner.is::<WriteStalled>())
}
