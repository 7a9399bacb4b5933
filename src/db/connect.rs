//! Opening one Postgres connection as the settings say: address, credentials, and TLS.
//!
//! TLS uses rustls (OpenSSL does not link into a static musl binary). `require` encrypts but
//! accepts any certificate, as libpq's `require` does; `verify-full` checks the chain against
//! `DB_SSL_ROOT_CERT` (or the public web roots) and the host name.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::schema::SchemaWatch;
use crate::config::{ConfigError, DatabaseSettings, SslMode};

/// How long one connection attempt may take before it counts as failed.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Every connection's own `statement_timeout` and `lock_timeout`, below the 10 s request deadline
/// by more than a write's commit margin: no statement (and no lock wait) runs longer than this,
/// whatever the client does; no write is given longer (`writes::transaction`).
pub(crate) const STATEMENT_TIMEOUT: Duration = Duration::from_secs(9);

/// How long Postgres keeps a session that sits in a transaction its client has stopped speaking in
/// (`idle_in_transaction_session_timeout`): a connection lost where Postgres could not tell (a
/// middlebox that forgot it) would otherwise hold the write's row lock and idempotency claim until
/// TCP gives up, hours later. A live client speaks sooner: the service is never idle in a
/// transaction for longer than its fence's round trip (200 ms at most), and what it sends reaches
/// Postgres within `TCP_USER_TIMEOUT` or never. A path that holds the traffic longer loses the
/// session, and the write says so truthfully (nothing written, or outcome unknown).
pub(crate) const IDLE_IN_TRANSACTION_TIMEOUT: Duration = TCP_USER_TIMEOUT.saturating_add(Duration::from_secs(1));

/// How long data sent to Postgres may stay unacknowledged before the connection is dropped: so a
/// statement that is sent reaches Postgres within this long, or never.
pub(crate) const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// What every connection of the process is opened with.
#[derive(Clone)]
pub(crate) struct Connector {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    /// What the connections found of the schema, shared by all of them.
    pub(crate) schema: SchemaWatch,
}

/// A connection's driver: it must be polled for the client to make progress.
pub(crate) type Driver = tokio_postgres::Connection<Socket, <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream>;

impl Connector {
    /// Builds the connection settings; fails only on a bad `DB_SSL_ROOT_CERT`.
    pub(crate) fn new(settings: &DatabaseSettings, application_name: &str) -> Result<Connector, ConfigError> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&settings.host)
            .port(settings.port)
            .user(&settings.user)
            .dbname(&settings.name)
            .application_name(application_name)
            .connect_timeout(CONNECT_TIMEOUT)
            // A peer that vanishes without closing (a dead host, a dropped route) is noticed by TCP
            // within about a minute rather than the kernel's default two hours, and unacknowledged
            // writes give up after 30 s; the keeper then reconnects.
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3)
            .tcp_user_timeout(TCP_USER_TIMEOUT)
            .options(format!(
                "-c statement_timeout={milliseconds} -c lock_timeout={milliseconds} \
                 -c idle_in_transaction_session_timeout={idle} -c TimeZone=UTC",
                milliseconds = STATEMENT_TIMEOUT.as_millis(),
                idle = IDLE_IN_TRANSACTION_TIMEOUT.as_millis()
            ))
            .ssl_mode(match settings.ssl_mode {
                SslMode::Disable => PgSslMode::Disable,
                SslMode::Require | SslMode::VerifyFull => PgSslMode::Require,
            });
        if !settings.password.expose().is_empty() {
            config.password(settings.password.expose());
        }
        let tls = MakeRustlsConnect::new(tls_config(settings)?);
        Ok(Connector {
            config,
            tls,
            schema: SchemaWatch::default(),
        })
    }

    /// Opens a connection. The driver must be spawned or polled by the caller.
    pub(crate) async fn connect(&self) -> Result<(Client, Driver), tokio_postgres::Error> {
        self.config.connect(self.tls.clone()).await
    }

    /// Asks Postgres, on a connection of its own, to cancel the statement `client`'s session is
    /// running. Postgres does not answer: a session running nothing (its statement not there yet,
    /// or already done) ignores it, so a caller that must see the statement end asks again.
    pub(crate) fn cancel(&self, client: &Client) -> impl Future<Output = ()> + Send + 'static {
        let (token, tls) = (client.cancel_token(), self.tls.clone());
        async move {
            let _ = token.cancel_query(tls).await;
        }
    }
}

fn tls_config(settings: &DatabaseSettings) -> Result<ClientConfig, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions");
    Ok(match settings.ssl_mode {
        SslMode::Disable | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly { algorithms }))
            .with_no_client_auth(),
        SslMode::VerifyFull => builder
            .with_root_certificates(root_store(settings)?)
            .with_no_client_auth(),
    })
}

fn root_store(settings: &DatabaseSettings) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    let Some(path) = &settings.ssl_root_cert else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(roots);
    };
    let unreadable = |problem: String| ConfigError::new("DB_SSL_ROOT_CERT", problem);
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| unreadable(format!("cannot be read from {}: {error}", path.display())))?;
    for certificate in certificates {
        let certificate = certificate.map_err(|error| unreadable(format!("holds a malformed certificate: {error}")))?;
        roots
            .add(certificate)
            .map_err(|error| unreadable(format!("holds a certificate rustls refuses: {error}")))?;
    }
    if roots.is_empty() {
        return Err(unreadable(format!("{} holds no PEM certificate", path.display())));
    }
    Ok(roots)
}

/// libpq's `sslmode=require`: the session is encrypted and the handshake signatures are checked,
/// but the certificate is not tied to a trusted CA or to the host name.
#[derive(Debug)]
struct EncryptOnly {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
