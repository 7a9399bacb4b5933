//! A keep-alive HTTP/1.1 connection for the requests the harness makes itself: waiting for
//! readiness, warming caches, collecting ids, and the invalidation-lag probe (hyper's client
//! connection, so responses are parsed properly and one connection serves every request).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Longer than the service's own 10 s request deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Connection {
    host: String,
    port: u16,
    /// `Authorization` sent with every request, for an instance that checks tokens.
    authorization: Option<String>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

pub struct Response {
    pub status: u16,
    /// `X-Cache`, on cached routes.
    pub cache: Option<String>,
    pub body: Bytes,
}

impl Response {
    /// Whether the service answered from a cache (Redis or a local copy) rather than Postgres.
    pub fn answered_from_cache(&self) -> bool {
        self.cache.as_deref().is_some_and(|value| value != "MISS")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl Connection {
    /// A connection to `http://host:port` (anything after the port is ignored), opened on first use.
    pub fn to(base_url: &str) -> Result<Connection, String> {
        let (host, port) = host_and_port(base_url).ok_or_else(|| format!("{base_url:?} is not http://host:port"))?;
        Ok(Connection {
            host,
            port,
            authorization: None,
            sender: None,
        })
    }

    /// Sends `Authorization: {value}` with every request.
    pub fn with_authorization(mut self, value: Option<&str>) -> Connection {
        self.authorization = value.map(str::to_owned);
        self
    }

    pub async fn get(&mut self, path: &str) -> Result<Response, String> {
        self.send(Method::GET, path, None).await
    }

    /// One request on the kept-alive connection, reopened when the server has closed it.
    pub async fn send(&mut self, method: Method, path: &str, json: Option<&str>) -> Result<Response, String> {
        let mut sender = self.ready().await?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, format!("{}:{}", self.host, self.port));
        if json.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        let request = request
            .body(Full::new(Bytes::from(json.unwrap_or_default().to_owned())))
            .map_err(|error| error.to_string())?;
        let exchange = async {
            let response = sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, hyper::Error>((parts, body))
        };
        let (parts, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{path}: no answer within {REQUEST_TIMEOUT:?}"))?
            .map_err(|error| format!("{path}: {error}"))?;
        self.sender = Some(sender);
        Ok(Response {
            status: parts.status.as_u16(),
            cache: parts
                .headers
                .get("x-cache")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            body,
        })
    }

    async fn ready(&mut self) -> Result<SendRequest<Full<Bytes>>, String> {
        if let Some(mut sender) = self.sender.take()
            && !sender.is_closed()
            && sender.ready().await.is_ok()
        {
            return Ok(sender);
        }
        let connect = async {
            let stream = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|error| error.to_string())?;
            let _ = stream.set_nodelay(true);
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|error| error.to_string())?;
            tokio::spawn(connection);
            Ok::<_, String>(sender)
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| format!("{}:{}: connect timed out", self.host, self.port))?
            .map_err(|error| format!("{}:{}: {error}", self.host, self.port))
    }
}

/// Polls `path` until it answers 200, for up to `within`.
pub async fn wait_for_200(base_url: &str, path: &str, within: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let mut connection = Connection::to(base_url)?;
        let last = match connection.get(path).await {
            Ok(response) if response.status == 200 => return Ok(()),
            Ok(response) => format!("status {}", response.status),
            Err(error) => error,
        };
        if started.elapsed() > within {
            return Err(format!(
                "{base_url}{path} did not answer 200 within {within:?} ({last})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn contains_finds_a_quoted_name_and_not_a_longer_one() {
        let body = br#"{"id":"x","name":"lag-a-12","email":null}"#;
        assert!(contains(body, br#""lag-a-12""#));
        assert!(!contains(body, br#""lag-a-1""#));
        assert!(!contains(body, b""));
    }
}
