//! Getting the issuer's key set: over https (rustls with the public web roots), over plain http,
//! or from a file, and through OpenID Connect discovery when no `AUTH_JWKS_URL` names it.
//!
//! One GET per document on a connection of its own (hyper's client connection, no pool: a fetch
//! is rare), no redirects followed, at most `MAX_DOCUMENT_BYTES` read; the caller bounds the
//! whole fetch in time. What discovery must name, and why plain http is for a network the
//! operator trusts: docs/API.md, The issuer's keys, and `AUTH_JWKS_URL`.

use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{ACCEPT, HOST, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::KeySource;

/// The largest document read: key sets are a few KiB; a megabyte is no key set.
const MAX_DOCUMENT_BYTES: usize = 256 << 10;

/// Where the keys come from, and the means to get them.
pub(super) struct KeySetSource {
    source: KeySource,
    /// The issuer the discovery document must name.
    issuer: String,
    tls: TlsConnector,
    /// A read of the key file has not returned (a hung mount): no other starts meanwhile, or each
    /// fetch would hold one more of the runtime's blocking threads, which DNS lookups need too.
    file_read_under_way: Arc<AtomicBool>,
}

/// The members of an OpenID provider's configuration the service reads.
#[derive(Deserialize)]
struct ProviderConfiguration {
    issuer: String,
    jwks_uri: String,
}

impl KeySetSource {
    pub(super) fn new(source: KeySource, issuer: String) -> KeySetSource {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tls = TlsConnector::from(Arc::new(config));
        KeySetSource {
            source,
            issuer,
            tls,
            file_read_under_way: Arc::default(),
        }
    }

    /// Whether the keys travel over plain http, which anyone on the path can change.
    pub(super) fn is_plain_http(&self) -> bool {
        matches!(&self.source, KeySource::Web(uri) | KeySource::Discovery(uri) if uri.scheme_str() == Some("http"))
    }

    /// Where the keys are read from, for the log.
    pub(super) fn describe(&self) -> String {
        match &self.source {
            KeySource::Discovery(uri) | KeySource::Web(uri) => uri.to_string(),
            KeySource::File(path) => format!("file://{}", path.display()),
        }
    }

    /// The key set document as it is now.
    pub(super) async fn fetch(&self) -> Result<Bytes, String> {
        match &self.source {
            KeySource::File(path) => self.read_file(path).await,
            KeySource::Web(uri) => self.get(uri).await,
            KeySource::Discovery(configuration) => self.get(&self.discover(configuration).await?).await,
        }
    }

    /// A mounted key set; a file over `MAX_DOCUMENT_BYTES` is no key set.
    async fn read_file(&self, path: &Path) -> Result<Bytes, String> {
        if self.file_read_under_way.swap(true, Ordering::AcqRel) {
            return Err(format!("the last read of {} has not returned yet", path.display()));
        }
        /// Marks the read over however it ends.
        struct Over(Arc<AtomicBool>);
        impl Drop for Over {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let (path, over) = (path.to_owned(), Over(self.file_read_under_way.clone()));
        tokio::task::spawn_blocking(move || {
            let _over = over;
            read_whole(&path)
        })
        .await
        .map_err(|error| error.to_string())?
    }

    /// `jwks_uri` from the provider's configuration, which must name this issuer (OpenID Connect
    /// Discovery 1.0 §4.3) and keep to https when it was read over https.
    async fn discover(&self, configuration: &Uri) -> Result<Uri, String> {
        let document = self.get(configuration).await?;
        let ProviderConfiguration { issuer, jwks_uri } = serde_json::from_slice(&document)
            .map_err(|error| format!("{configuration} is not an OpenID provider configuration: {error}"))?;
        if issuer != self.issuer {
            return Err(format!(
                "{configuration} names the issuer {issuer:?}, not AUTH_ISSUER {:?}; tokens would never match",
                self.issuer
            ));
        }
        let jwks: Uri = jwks_uri
            .parse()
            .map_err(|_| format!("{configuration} names a jwks_uri that is no URL: {jwks_uri:?}"))?;
        let allowed = match configuration.scheme_str() {
            Some("https") => jwks.scheme_str() == Some("https"),
            _ => matches!(jwks.scheme_str(), Some("https" | "http")),
        };
        if !allowed || jwks.host().is_none() {
            return Err(format!(
                "{configuration} names a jwks_uri the service does not fetch: {jwks}"
            ));
        }
        Ok(jwks)
    }

    /// One GET, answered 200 within `MAX_DOCUMENT_BYTES`.
    async fn get(&self, uri: &Uri) -> Result<Bytes, String> {
        let failed = |what: &str, error: &dyn std::fmt::Display| format!("GET {uri}: {what}: {error}");
        let host = uri.host().unwrap_or_default();
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let address = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((address, port))
            .await
            .map_err(|error| failed("cannot connect", &error))?;
        let _ = tcp.set_nodelay(true);
        if !https {
            return exchange(tcp, uri).await.map_err(|error| failed("no answer", &error));
        }
        let name = ServerName::try_from(address.to_owned()).map_err(|error| failed("no server name", &error))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|error| failed("TLS handshake failed", &error))?;
        exchange(tls, uri).await.map_err(|error| failed("no answer", &error))
    }
}

/// The request and its answer on one connection; the connection closes when this returns.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(stream: S, uri: &Uri) -> Result<Bytes, String> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| error.to_string())?;
    let target = uri.path_and_query().map_or("/", |target| target.as_str());
    let authority = uri.authority().map_or("", |authority| authority.as_str());
    let request = Request::get(target)
        .header(HOST, authority)
        .header(ACCEPT, "application/json")
        .header(USER_AGENT, concat!("gravity-bff/", env!("CARGO_PKG_VERSION")))
        .body(Empty::<Bytes>::new())
        .map_err(|error| error.to_string())?;
    let answer = async move {
        let response = sender.send_request(request).await.map_err(|error| error.to_string())?;
        // The connection ends once nothing can send on it.
        drop(sender);
        if response.status() != StatusCode::OK {
            return Err(format!(
                "answered {} (redirects are not followed: name where they lead)",
                response.status()
            ));
        }
        Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .map_err(|error| format!("the body could not be read whole within {MAX_DOCUMENT_BYTES} bytes: {error}"))
    };
    let (answer, _) = tokio::join!(answer, connection);
    answer
}

fn read_whole(path: &Path) -> Result<Bytes, String> {
    let unreadable = |error: &dyn std::fmt::Display| format!("cannot read {}: {error}", path.display());
    // Read under the limit, one byte past it telling a file that is over it.
    let mut document = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_DOCUMENT_BYTES as u64 + 1).read_to_end(&mut document))
        .map_err(|error| unreadable(&error))?;
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(unreadable(&format!("it is over {MAX_DOCUMENT_BYTES} bytes")));
    }
    Ok(Bytes::from(document))
}
