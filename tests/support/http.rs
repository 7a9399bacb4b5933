//! The one HTTP client of the harnesses: HTTP/1.1 written and read by hand on a `TcpStream`, so a
//! test sees exactly what went over the wire. A [`Connection`] is kept alive across requests (the
//! chaos load, the bench's probes); [`request`] and [`get`] use a connection of their own with
//! `Connection: close`. [`connect`] and [`read_until_closed`] are the socket helpers for tests
//! that send malformed bytes on purpose.

use std::fmt;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longer than the service's own 10 s request deadline: past this, a request hangs.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A response: the status, the headers in the order sent, and the whole body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The TCP connect failed or timed out: nothing was accepting.
    Refused(String),
    /// The connection failed after the request was sent, before a whole response came.
    Broken(String),
    /// No whole response within the connection's timeout.
    TimedOut,
}

/// A keep-alive HTTP/1.1 connection to one server, opened on first use and reopened when the
/// server has closed it.
pub struct Connection {
    host: String,
    port: u16,
    /// Sent with every request (an `Authorization`, a `Host`).
    headers: Vec<(String, String)>,
    timeout: Duration,
    stream: Option<TcpStream>,
    /// Bytes read past the last response.
    unread: Vec<u8>,
}

impl Response {
    /// The first header of this name, in any letter case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the service answered from a cache (Redis or a local copy) rather than Postgres.
    pub fn answered_from_cache(&self) -> bool {
        self.header("x-cache").is_some_and(|value| value != "MISS")
    }

    /// The body as JSON, or `Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A problem body's `detail`, or "" when there is none.
    pub fn detail(&self) -> String {
        self.json()["detail"].as_str().unwrap_or_default().to_owned()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused(error) => write!(formatter, "connect failed: {error}"),
            Failure::Broken(error) => write!(formatter, "connection broken: {error}"),
            Failure::TimedOut => write!(formatter, "no answer within the timeout"),
        }
    }
}

impl From<Failure> for String {
    fn from(failure: Failure) -> String {
        failure.to_string()
    }
}

impl Connection {
    pub fn to(host: &str, port: u16) -> Connection {
        Connection {
            host: host.to_owned(),
            port,
            headers: vec![("Host".to_owned(), format!("{host}:{port}"))],
            timeout: REQUEST_TIMEOUT,
            stream: None,
            unread: Vec::new(),
        }
    }

    /// A connection to `http://host:port` (anything after the port is ignored).
    pub fn to_url(base_url: &str) -> Result<Connection, String> {
        let (host, port) = host_and_port(base_url).ok_or_else(|| format!("{base_url:?} is not http://host:port"))?;
        Ok(Connection::to(&host, port))
    }

    /// Sends `name: value` with every request, in place of any header of that name.
    pub fn with_header(mut self, name: &str, value: &str) -> Connection {
        self.headers.retain(|(field, _)| !field.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// How long a request may take, connect included (15 s unless set).
    pub fn with_timeout(mut self, timeout: Duration) -> Connection {
        self.timeout = timeout;
        self
    }

    pub async fn get(&mut self, path: &str) -> Result<Response, Failure> {
        self.send("GET", path, &[], None).await
    }

    /// One request, with `headers` beside the connection's own and a JSON body when given.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        json: Option<&str>,
    ) -> Result<Response, Failure> {
        let body = json.map(|json| ("application/json", json.as_bytes()));
        self.send_body(method, path, headers, body).await
    }

    /// One request with a body of any type: `(content type, bytes)`.
    pub async fn send_body(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Response, Failure> {
        let mut request = format!("{method} {path} HTTP/1.1\r\n");
        let own = self.headers.iter().map(|(name, value)| (name.as_str(), value.as_str()));
        for (name, value) in own.chain(headers.iter().copied()) {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some((content_type, bytes)) = body {
            request.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                bytes.len()
            ));
        }
        request.push_str("\r\n");
        let mut request = request.into_bytes();
        request.extend_from_slice(body.map_or(&[][..], |(_, bytes)| bytes));
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.exchange(&request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(failure)) => {
                self.stream = None;
                Err(failure)
            }
            Err(_) => {
                self.stream = None;
                Err(Failure::TimedOut)
            }
        }
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<Response, Failure> {
        let mut stream = match self.stream.take().filter(still_open) {
            Some(stream) => stream,
            None => {
                self.unread.clear();
                open(&self.host, self.port).await?
            }
        };
        let broken = |error: std::io::Error| Failure::Broken(error.to_string());
        stream.write_all(request).await.map_err(broken)?;
        let (response, keep_alive) = read_response(&mut stream, &mut self.unread).await.map_err(broken)?;
        if keep_alive {
            self.stream = Some(stream);
        }
        Ok(response)
    }
}

/// One request on a connection of its own (`Connection: close`).
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    json: Option<&str>,
) -> Result<Response, Failure> {
    let mut connection = Connection::to("127.0.0.1", port).with_header("Connection", "close");
    connection.send(method, path, headers, json).await
}

/// `GET path` on a connection of its own.
pub async fn get(port: u16, path: &str) -> Result<Response, Failure> {
    request(port, "GET", path, &[], None).await
}

/// A figure of `/metrics` by its full name with labels, e.g. `gravity_cache_hits_total`.
pub async fn metric(port: u16, series: &str) -> Option<f64> {
    crate::support::metric_value(&get(port, "/metrics").await.ok()?.text(), series)
}

/// A loopback connection to `port`, for bytes written by hand.
pub async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|error| panic!("cannot connect to port {port}: {error}"))
}

/// Everything the server sends until it closes the connection (or fails it); `Err` with what
/// came so far when it is still open after `within`.
pub async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Result<Vec<u8>, Vec<u8>> {
    let mut answer = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return Err(answer),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(answer),
            Ok(Ok(read)) => answer.extend_from_slice(&buffer[..read]),
        }
    }
}

/// The status of a response that starts `HTTP/1.x NNN`.
pub fn status_of(answer: &str) -> Option<u16> {
    answer.get(9..12)?.parse().ok()
}

/// `("127.0.0.1", 8080)` from `http://127.0.0.1:8080` (port 80 when none is given).
pub fn host_and_port(base_url: &str) -> Option<(String, u16)> {
    let rest = base_url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None if !authority.is_empty() => Some((authority.to_owned(), 80)),
        None => None,
    }
}

async fn open(host: &str, port: u16) -> Result<TcpStream, Failure> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
        .await
        .map_err(|_| Failure::Refused(format!("{host}:{port}: connect timed out")))?
        .map_err(|error| Failure::Refused(format!("{host}:{port}: {error}")))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Whether a kept-alive connection may carry another request: the server has neither closed it
/// while it was idle nor sent anything unasked.
fn still_open(stream: &TcpStream) -> bool {
    matches!(stream.try_read(&mut [0u8; 1]), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock)
}

/// Reads one response (`unread` holds what was read past the previous one); also whether the
/// connection may be used again.
async fn read_response(stream: &mut TcpStream, unread: &mut Vec<u8>) -> std::io::Result<(Response, bool)> {
    let mut buffer = std::mem::take(unread);
    let head_end = loop {
        if let Some(at) = find(&buffer, b"\r\n\r\n") {
            break at;
        }
        fill(stream, &mut buffer).await?;
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(status_of).ok_or_else(|| invalid(&head))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let mut rest = buffer.split_off(head_end + 4);
    let closes = response
        .header("connection")
        .is_some_and(|value| value.eq_ignore_ascii_case("close"));
    // The servers spoken to answer with a length or close the connection (never chunked).
    let length = match status {
        100..=199 | 204 | 304 => Some(0),
        _ => response.header("content-length").and_then(|value| value.parse().ok()),
    };
    let Some(length) = length else {
        stream.read_to_end(&mut rest).await?;
        response.body = rest;
        return Ok((response, false));
    };
    while rest.len() < length {
        fill(stream, &mut rest).await?;
    }
    response.body = rest.drain(..length).collect();
    *unread = rest;
    Ok((response, !closes))
}

async fn fill(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 16 << 10];
    match stream.read(&mut chunk).await? {
        0 => Err(std::io::ErrorKind::UnexpectedEof.into()),
        read => {
            buffer.extend_from_slice(&chunk[..read]);
            Ok(())
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("not an HTTP response: {what:?}"),
    )
}

#[test]
fn host_and_port_come_from_the_base_url() {
    assert_eq!(
        host_and_port("http://127.0.0.1:18181"),
        Some(("127.0.0.1".to_owned(), 18181))
    );
    assert_eq!(host_and_port("http://localhost/v1"), Some(("localhost".to_owned(), 80)));
    assert_eq!(host_and_port("https://localhost"), None);
    assert_eq!(host_and_port("http://host:notaport"), None);
}
