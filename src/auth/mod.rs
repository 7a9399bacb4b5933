//! Who is calling, and whether they may: bearer tokens (RFC 6750) carrying JWTs from one OpenID
//! Connect issuer, verified in the process, and the scope each route needs (why and when:
//! docs/API.md, Authentication).
//!
//! In reading order: `scopes`, `verify` (one token), `ring_provider` (its signature),
//! `token_cache` (verified tokens until they expire), and the issuer's keys: parsed (`key_set`),
//! held (`key_store`) and fetched (`fetch`).
//!
//! What a refusal looks like on the wire (`WWW-Authenticate`, 400/401/403) is `http::bearer`'s;
//! this module decides, counts each refusal by reason, and never logs a token.

mod fetch;
mod key_set;
mod key_store;
mod ring_provider;
mod scopes;
mod token_cache;
mod verify;

use std::sync::Arc;

use hyper::header::HeaderMap;

use crate::config::{Authentication, ConfigError};
use crate::error::Error;
use crate::http::bearer::{KEYS_UNAVAILABLE_INDEX, Refusal, TokenProblem, b64token, bearer_token};
use crate::telemetry::log::Logger;
use crate::telemetry::metrics::{AuthFigures, Metrics};
use key_store::KeyStore;
pub(crate) use scopes::Scope;
use token_cache::{RememberedTokens, TokenDigest};
use verify::Principal;

/// The authentication of the process; cheap to clone.
#[derive(Clone)]
pub(crate) struct Auth {
    /// `None` with `AUTH_DISABLED=true`.
    bearer: Option<Arc<Bearer>>,
}

struct Bearer {
    keys: Arc<KeyStore>,
    tokens: Arc<RememberedTokens>,
    metrics: Arc<Metrics>,
}

/// `/ready`'s `auth` when authentication is on and no usable key is held (`Auth::readiness`).
pub(crate) const NO_KEYS: &str = "no_keys";

/// Who a request is from: the principal of its verified token, or nobody (authentication off,
/// or a route that needs none).
#[derive(Clone, Default)]
pub(crate) struct Caller(Option<Arc<Principal>>);

impl Auth {
    /// Starts fetching the issuer's keys (without waiting for them); refuses a service that was
    /// told neither how to check tokens nor to check none. A quarter of `max_connections` may
    /// wait for a fetch at once (`KeyStore::fetch_for_unknown_key`).
    pub(crate) fn start(
        settings: &Authentication,
        max_connections: usize,
        metrics: Arc<Metrics>,
        logger: &Logger,
    ) -> Result<Auth, ConfigError> {
        settings.require_a_choice()?;
        let Authentication::Bearer(settings) = settings else {
            logger.warn(
                "authentication is off (AUTH_DISABLED=true): anyone who reaches the port may read and change every user",
                &[],
            );
            return Ok(Auth { bearer: None });
        };
        let tokens = Arc::new(RememberedTokens::default());
        let max_waiting = (max_connections / 4).max(1);
        let keys = KeyStore::start(settings, max_waiting, tokens.clone(), metrics.clone(), logger);
        let bearer = Some(Arc::new(Bearer { keys, tokens, metrics }));
        Ok(Auth { bearer })
    }

    /// Whether a request may use a route that needs `scope`. `caller` names the token's
    /// principal as soon as the token is verified, so that a 403 is logged with whom it refused.
    pub(crate) async fn authorize(&self, headers: &HeaderMap, scope: Scope, caller: &mut Caller) -> Result<(), Error> {
        let Some(bearer) = &self.bearer else { return Ok(()) };
        let outcome = bearer.authorize(headers, scope, caller).await;
        match &outcome {
            Ok(()) => {}
            Err(Error::Bearer(refusal)) => bearer.metrics.record_auth_refusal(refusal.index()),
            Err(_) => bearer.metrics.record_auth_refusal(KEYS_UNAVAILABLE_INDEX),
        }
        outcome
    }

    /// The `auth` member of `/ready`: `disabled`; `ok` (a usable key of the issuer is held); or
    /// `no_keys` (none fetched yet: protected routes answer 503; or the issuer's set lists none
    /// usable: tokens are refused, 401).
    pub(crate) fn readiness(&self) -> &'static str {
        match &self.bearer {
            None => "disabled",
            Some(bearer) if bearer.keys.current().is_some_and(|keys| !keys.is_empty()) => "ok",
            Some(_) => NO_KEYS,
        }
    }

    /// The gauges of `/metrics`; `None` with authentication off.
    pub(crate) fn figures(&self) -> Option<AuthFigures> {
        self.bearer.as_ref().map(|bearer| AuthFigures {
            keys: bearer.keys.current().map_or(0, |keys| keys.len()),
            tokens_remembered: bearer.tokens.len(),
        })
    }
}

impl Bearer {
    async fn authorize(&self, headers: &HeaderMap, scope: Scope, caller: &mut Caller) -> Result<(), Error> {
        let token = bearer_token(headers)?.ok_or(Refusal::NoToken)?;
        let digest = TokenDigest::of(token);
        let now = jsonwebtoken::get_current_timestamp();
        let principal = match self.tokens.get(&digest, now) {
            Some(principal) => principal,
            None => {
                let era = self.tokens.era();
                let principal = Arc::new(self.verify(b64token(token)?).await?);
                self.tokens.remember(digest, principal.clone(), now, era);
                principal
            }
        };
        let allowed = principal.grants.allow(scope);
        *caller = Caller(Some(principal));
        if !allowed {
            return Err(Refusal::InsufficientScope(scope.name()).into());
        }
        Ok(())
    }

    /// Verifies a token not seen before; a `kid` the held keys lack (or holding none at all)
    /// first waits for a fetch of the key set, when one is allowed. A request that waited for the
    /// first set of all gets no second fetch: nothing fetched before it could predate the `kid`.
    async fn verify(&self, token: &str) -> Result<Principal, Error> {
        let (keys, waited_for_first_set) = match self.keys.current() {
            Some(keys) => (keys, false),
            None => {
                self.keys.fetch_for_unknown_key().await;
                (self.keys.current().ok_or(Error::KeysUnavailable)?, true)
            }
        };
        let verified = match verify::verify(token, &keys) {
            Err(TokenProblem::UnknownKey) if !waited_for_first_set && self.keys.fetch_for_unknown_key().await => {
                let keys = self.keys.current().ok_or(Error::KeysUnavailable)?;
                verify::verify(token, &keys)
            }
            verified => verified,
        };
        verified.map_err(|problem| Refusal::InvalidToken(problem).into())
    }
}

impl Caller {
    /// `sub` of the verified token, for the request's log line.
    pub(crate) fn user_id(&self) -> Option<&str> {
        self.0.as_ref().map(|principal| &*principal.subject)
    }

    /// Whose Idempotency-Key records a write uses: the token's `sub`, or the empty subject of
    /// every anonymous caller.
    pub(crate) fn subject(&self) -> &str {
        self.user_id().unwrap_or_default()
    }
}
