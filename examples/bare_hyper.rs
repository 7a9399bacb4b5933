//! The "bare hyper" ceiling for `make bench`: the least a hyper 1 server can do to answer
//! `GET /health` with the service's body, so `health` can be reported as a fraction of it.
//!
//! It is built the way the service is (same crates, release profile, musl target, mimalloc) and
//! serves connections the way the service does (multi-threaded tokio runtime, one task per
//! connection, HTTP/1 keep-alive, `TCP_NODELAY`), but has no router, request id, metrics, log
//! line or timeout. Every request gets the same 200 with a static body and content type.
//!
//! Run: `cargo build --release --example bare_hyper`, then `BARE_PORT=18080 bare_hyper`.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The same allocator as the service, so the ceiling is not lowered by musl's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BODY: &[u8] = br#"{"status":"ok"}"#;
const JSON: HeaderValue = HeaderValue::from_static("application/json; charset=utf-8");

async fn health(_request: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    Ok(response)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::var("BARE_PORT")
        .ok()
        .and_then(|text| text.parse::<u16>().ok())
        .unwrap_or(18080);
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    eprintln!("bare_hyper listening on 127.0.0.1:{port}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(health))
                .await;
        });
    }
}
