//! The accept loop and graceful shutdown.
//!
//! Each accepted connection is served by hyper's HTTP/1 connection with a header-read timeout
//! (slow or stalled clients are dropped after 5 s) and watched by hyper-util's `GracefulShutdown`.
//! On shutdown the listener is closed first, so new connections are refused at once, then
//! in-flight requests get up to the grace period to finish; idle keep-alive connections close
//! immediately.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::app::AppState;
use crate::handlers;

/// The contract's header timeout: a client slower than this to send its request head is dropped.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// After a failed `accept` (such as running out of file descriptors), wait this long before the
/// next, rather than spinning.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

pub async fn serve(listener: TcpListener, state: Arc<AppState>, shutdown: impl Future<Output = ()>, grace: Duration) {
    let mut http = http1::Builder::new();
    // half_close: a client may shut its sending side once the request is out (as `nc -q` does)
    // and still get its answer; hyper's default drops such a connection.
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        .half_close(true);
    let graceful = GracefulShutdown::new();
    let logger = state.logger.clone();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    logger.warn("accept failed", &[("error", &error.to_string())]);
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Responses are written whole; Nagle's algorithm would only delay them.
        let _ = stream.set_nodelay(true);
        let connection_state = state.clone();
        let service = service_fn(move |request| {
            let state = connection_state.clone();
            async move { Ok::<_, Infallible>(handlers::handle(state, request).await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let connection_logger = logger.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                connection_logger.debug("connection ended with an error", &[("error", &error.to_string())]);
            }
        });
    }
    drop(listener);
    logger.info(
        "shutting down; draining in-flight requests",
        &[("grace_seconds", &grace.as_secs().to_string())],
    );
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            logger.warn("grace period over; closing the remaining connections", &[]);
        }
    }
}
