//! `gravity-bff --health`: the container HEALTHCHECK, which must work where there is no shell,
//! curl or wget (scratch and distroless images). Blocking std networking, no runtime to start:
//! `GET /health` (or `/health?started`) on `127.0.0.1:$API_PORT`, healthy only on a `200` status
//! line within `TIMEOUT`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The contract's limit for one probe.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Probes `path` of the server on `port`; the error says why it is not healthy.
pub fn probe(port: u16, path: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let remaining = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .map_err(|error| format!("cannot connect to {address}: {error}"))?;
    stream
        .set_write_timeout(Some(remaining()))
        .map_err(|error| error.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: gravity-bff-health\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|error| format!("cannot send the request: {error}"))?;
    let mut head = Vec::with_capacity(128);
    let mut chunk = [0u8; 128];
    while !head.contains(&b'\n') {
        if Instant::now() >= deadline {
            return Err(format!("no answer within {} ms", timeout.as_millis()));
        }
        stream
            .set_read_timeout(Some(remaining()))
            .map_err(|error| error.to_string())?;
        let read = stream.read(&mut chunk).map_err(|error| format!("no answer: {error}"))?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
    }
    let status_line = String::from_utf8_lossy(&head);
    let status_line = status_line.lines().next().unwrap_or_default();
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if status_line.starts_with("HTTP/1.") && status == "200" {
        Ok(())
    } else if status_line.is_empty() {
        Err("the connection closed without an answer".into())
    } else {
        Err(format!("{path} answered {status_line:?}"))
    }
}
