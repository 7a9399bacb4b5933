//! A token issuer of the tests' own: keys made in the test (RSA by the `openssl` command, which
//! ring cannot do; EC P-256 and Ed25519 by ring), their JSON Web Key Set, tokens signed with
//! them (good ones, and ones crafted to be refused), and a JWKS endpoint on a real HTTP server
//! that a test can rotate, take down and bring back.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
    RsaPublicKeyComponents,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// `iss` of the tests' tokens, as `AUTH_ISSUER` names it (keys come from `AUTH_JWKS_URL`).
pub const ISSUER: &str = "https://issuer.test/realms/gravity";
/// `aud` of the tests' tokens, as `AUTH_AUDIENCE` names it.
pub const AUDIENCE: &str = "gravity-bff-tests";
/// Both scopes of the API.
pub const READ_WRITE: &str = "users:read users:write";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Rs256,
    Es256,
    EdDsa,
}

/// A private key, its `kid` and its algorithm.
pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pair: Pair,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }
}

impl SigningKey {
    pub fn generate(algorithm: Algorithm, kid: &str) -> SigningKey {
        let random = SystemRandom::new();
        let pair = match algorithm {
            Algorithm::Rs256 => Pair::Rsa(RsaKeyPair::from_der(&rsa_private_key()).expect("openssl made an RSA key")),
            Algorithm::Es256 => {
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random).unwrap();
                Pair::Ec(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &random).unwrap())
            }
            Algorithm::EdDsa => {
                Pair::Ed(Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&random).unwrap().as_ref()).unwrap())
            }
        };
        SigningKey {
            kid: kid.to_owned(),
            algorithm,
            pair,
        }
    }

    /// The public key as its JWK, with `kid`, `use` and `alg`.
    pub fn jwk(&self) -> Value {
        let mut jwk = match &self.pair {
            Pair::Rsa(pair) => {
                let components = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                json!({"kty": "RSA", "n": b64(&components.n), "e": b64(&components.e)})
            }
            Pair::Ec(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])})
            }
            Pair::Ed(pair) => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())}),
        };
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(self.algorithm.name());
        jwk
    }

    /// The public key's bytes as a JWK carries them (RSA: the modulus), for tokens that misuse
    /// them as an HMAC secret.
    pub fn public_bytes(&self) -> Vec<u8> {
        match &self.pair {
            Pair::Rsa(pair) => RsaPublicKeyComponents::<Vec<u8>>::from(pair.public()).n,
            Pair::Ec(pair) => pair.public_key().as_ref().to_vec(),
            Pair::Ed(pair) => pair.public_key().as_ref().to_vec(),
        }
    }

    fn sign(&self, input: &[u8]) -> Vec<u8> {
        let random = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &random, input, &mut signature).unwrap();
                signature
            }
            Pair::Ec(pair) => pair.sign(&random, input).unwrap().as_ref().to_vec(),
            Pair::Ed(pair) => pair.sign(input).as_ref().to_vec(),
        }
    }

    /// A token with this key's `alg` and `kid` over `claims`.
    pub fn token(&self, claims: &Value) -> String {
        self.token_with_header(&self.header(), claims)
    }

    /// The header this key's tokens carry.
    pub fn header(&self) -> Value {
        json!({"alg": self.algorithm.name(), "typ": "JWT", "kid": self.kid})
    }

    /// A token of this key's header over any payload, JSON or not, signed by this key.
    pub fn token_over(&self, payload: &[u8]) -> String {
        let input = format!("{}.{}", b64(self.header().to_string().as_bytes()), b64(payload));
        format!("{input}.{}", b64(&self.sign(input.as_bytes())))
    }

    /// A token with any header over `claims`, signed by this key.
    pub fn token_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let signature = self.sign(input.as_bytes());
        format!("{input}.{}", b64(&signature))
    }
}

/// A key set of these keys.
pub fn jwks(keys: &[&SigningKey]) -> Value {
    json!({"keys": keys.iter().map(|key| key.jwk()).collect::<Vec<_>>()})
}

/// Good claims for `subject` with `scope`, valid for five minutes.
pub fn claims(subject: &str, scope: &str) -> Value {
    let now = now();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "scope": scope, "iat": now, "exp": now + 300})
}

/// `claims` with one member replaced (or added).
pub fn with(claims: &Value, name: &str, value: Value) -> Value {
    let mut claims = claims.clone();
    claims[name] = value;
    claims
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `base64url(header).base64url(claims)`: what a signature covers.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// A fresh 2048-bit RSA key as DER (PKCS#1 `RSAPrivateKey`, as `openssl genpkey` writes it).
fn rsa_private_key() -> Vec<u8> {
    let output = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-outform",
            "DER",
        ])
        .output()
        .expect("openssl is installed (apt-get install openssl): it makes the tests' RSA keys");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// An issuer's HTTP endpoints on 127.0.0.1: `/jwks.json` and the OpenID configuration at
/// `/.well-known/openid-configuration`, which names this server as the issuer.
pub struct JwksServer {
    pub port: u16,
    state: Arc<ServerState>,
    connections: Option<JoinSet<()>>,
}

struct ServerState {
    key_set: Mutex<Value>,
    /// The `issuer` the OpenID configuration names.
    issuer: Mutex<String>,
    /// The `jwks_uri` it names, when not this server's own `/jwks.json`.
    jwks_uri: Mutex<Option<String>>,
    fetches: AtomicU64,
}

impl JwksServer {
    /// Serves `key_set` on a free port.
    pub async fn start(key_set: Value) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(ServerState {
            key_set: Mutex::new(key_set),
            issuer: Mutex::new(format!("http://127.0.0.1:{port}")),
            jwks_uri: Mutex::new(None),
            fetches: AtomicU64::new(0),
        });
        let mut server = JwksServer {
            port,
            state,
            connections: None,
        };
        server.serve(listener);
        server
    }

    /// The key set's URL, for `AUTH_JWKS_URL`.
    pub fn jwks_url(&self) -> String {
        format!("http://127.0.0.1:{}/jwks.json", self.port)
    }

    /// This server as an issuer, for `AUTH_ISSUER` with discovery.
    pub fn issuer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Serves another key set from now on.
    pub fn publish(&self, key_set: Value) {
        *self.state.key_set.lock().unwrap() = key_set;
    }

    /// Makes the OpenID configuration name another issuer.
    pub fn claim_issuer(&self, issuer: &str) {
        *self.state.issuer.lock().unwrap() = issuer.to_owned();
    }

    /// Makes the OpenID configuration name another key set (the issuer moved it).
    pub fn name_jwks_uri(&self, jwks_uri: &str) {
        *self.state.jwks_uri.lock().unwrap() = Some(jwks_uri.to_owned());
    }

    /// How many times the key set was fetched.
    pub fn fetches(&self) -> u64 {
        self.state.fetches.load(Ordering::SeqCst)
    }

    /// Closes the listener and every connection: the issuer is down (connection refused).
    pub fn stop(&mut self) {
        if let Some(mut connections) = self.connections.take() {
            connections.abort_all();
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], self.port)))
            .await
            .expect("the issuer's port is free again");
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let mut connections = JoinSet::new();
        let state = self.state.clone();
        connections.spawn(async move {
            let mut served = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                served.spawn(async move {
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, hyper::Error>(answer(&state, &request)) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        self.connections = Some(connections);
    }
}

fn answer(state: &ServerState, request: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let body = match request.uri().path() {
        "/jwks.json" => {
            state.fetches.fetch_add(1, Ordering::SeqCst);
            state.key_set.lock().unwrap().to_string()
        }
        "/.well-known/openid-configuration" => {
            let issuer = state.issuer.lock().unwrap().clone();
            let port = request
                .headers()
                .get("host")
                .and_then(|host| host.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let jwks_uri = state.jwks_uri.lock().unwrap().clone();
            let jwks_uri = jwks_uri.unwrap_or_else(|| format!("http://{port}/jwks.json"));
            json!({"issuer": issuer, "jwks_uri": jwks_uri}).to_string()
        }
        _ => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::NOT_FOUND;
            return response;
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}
