//! Bearer tokens as HTTP carries them (RFC 6750): the token read from the `Authorization`
//! header, and the refusals a resource server answers with, each with its status, its
//! `WWW-Authenticate` challenge and the reason `/metrics` counts it under.
//!
//! Verifying the token is `auth`'s job and mapping a refusal to a response is `error`'s; this
//! module knows nothing of JWTs beyond the reasons a token can be refused for.
//!
//! Where the token is read from, and why only there, and each refusal's status and challenge:
//! docs/API.md (The token, Refusals). Reading the token (`bearer_token`) only finds it; its syntax
//! (`b64token`) is checked apart, so that a token verified before, and remembered by its digest,
//! is not scanned again.

use hyper::StatusCode;
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderValue};

/// The longest token the service verifies. Access tokens of the common issuers are 1–3 KiB
/// (Entra ID's with many group claims up to about 6 KiB); anything longer is refused before
/// it is parsed or hashed.
pub const MAX_TOKEN_BYTES: usize = 8 << 10;

/// Why a request was refused for its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no bearer token (no `Authorization` header, or another scheme).
    NoToken,
    /// 400 `invalid_request`: `Authorization` given more than once.
    RepeatedHeader,
    /// 401 `invalid_token`: a token was sent and it is not one the service accepts.
    InvalidToken(TokenProblem),
    /// 403 `insufficient_scope`: a valid token without the scope the route needs.
    InsufficientScope(&'static str),
}

/// What is wrong with a token that was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// Not a compact JWS (three base64url parts of JSON), empty, or with a `crit` header.
    Malformed,
    /// Over `MAX_TOKEN_BYTES`.
    Oversized,
    /// An algorithm outside the allow-list (`none`, HMAC, …), or not the algorithm of its key.
    DisallowedAlgorithm,
    /// Its `kid` names no key of the issuer, even after the key set was fetched again.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    /// A required claim (`sub`, `exp`, `iss`, `aud`) is missing or of the wrong type.
    BadClaims,
}

/// The `reason` label of `gravity_auth_refusals_total`, by `Refusal::index` (and
/// `KEYS_UNAVAILABLE_INDEX` for the 503 of a service that has never had its issuer's keys).
pub const REFUSAL_REASONS: [&str; 14] = [
    "no_token",
    "repeated_header",
    "malformed",
    "oversized",
    "disallowed_algorithm",
    "unknown_key",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "wrong_issuer",
    "wrong_audience",
    "bad_claims",
    "insufficient_scope",
    "keys_unavailable",
];

/// The slot of the 503 answered while the service has never had its issuer's keys.
pub const KEYS_UNAVAILABLE_INDEX: usize = REFUSAL_REASONS.len() - 1;

/// The challenge of a request that sent no bearer token: no error code (RFC 6750 §3.1).
const CHALLENGE: HeaderValue = HeaderValue::from_static("Bearer");
const INVALID_REQUEST: HeaderValue = HeaderValue::from_static("Bearer error=\"invalid_request\"");
const INVALID_TOKEN: HeaderValue = HeaderValue::from_static("Bearer error=\"invalid_token\"");

/// The bearer token of a request, as sent: `Ok(None)` when it sent none (no header, or another
/// scheme). An empty token or one over `MAX_TOKEN_BYTES` is refused here; `b64token` checks the
/// rest of its syntax.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&[u8]>, Refusal> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(Refusal::RepeatedHeader);
    }
    // credentials = auth-scheme [ 1*SP token68 ] (RFC 9110 §11.4); hyper has trimmed the ends.
    let bytes = value.as_bytes();
    let (scheme, rest) = match bytes.iter().position(|&byte| byte == b' ') {
        Some(space) => (&bytes[..space], &bytes[space + 1..]),
        None => (bytes, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    let token = rest.trim_ascii_start();
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Refusal::InvalidToken(TokenProblem::Oversized));
    }
    if token.is_empty() {
        return Err(Refusal::InvalidToken(TokenProblem::Malformed));
    }
    Ok(Some(token))
}

/// The token as text when it is RFC 6750's `b64token`:
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub fn b64token(token: &[u8]) -> Result<&str, Refusal> {
    let body_end = token.len() - token.iter().rev().take_while(|&&byte| byte == b'=').count();
    let body = &token[..body_end];
    let valid = !body.is_empty() && body.iter().all(|&byte| B64TOKEN[usize::from(byte)]);
    // A b64token is ASCII, so it is text.
    std::str::from_utf8(token)
        .ok()
        .filter(|_| valid)
        .ok_or(Refusal::InvalidToken(TokenProblem::Malformed))
}

/// Which bytes a `b64token` is made of, by value: one load per byte of every request's token.
const B64TOKEN: [bool; 256] = super::byte_table(b"-._~+/");

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::NoToken | Refusal::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Refusal::RepeatedHeader => StatusCode::BAD_REQUEST,
            Refusal::InsufficientScope(_) => StatusCode::FORBIDDEN,
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3).
    pub fn challenge(self) -> HeaderValue {
        match self {
            Refusal::NoToken => CHALLENGE,
            Refusal::RepeatedHeader => INVALID_REQUEST,
            Refusal::InvalidToken(_) => INVALID_TOKEN,
            Refusal::InsufficientScope(scope) => {
                HeaderValue::from_str(&format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\""))
                    .unwrap_or(CHALLENGE)
            }
        }
    }

    /// The problem body's `detail`: what the client can do about it, never the token itself.
    pub fn detail(self) -> String {
        match self {
            Refusal::NoToken => "this route needs a bearer token: Authorization: Bearer <token>".into(),
            Refusal::RepeatedHeader => "Authorization is given more than once".into(),
            Refusal::InvalidToken(problem) => problem.detail().into(),
            Refusal::InsufficientScope(scope) => format!("the token does not grant the scope {scope}"),
        }
    }

    /// Position in `REFUSAL_REASONS`.
    pub fn index(self) -> usize {
        match self {
            Refusal::NoToken => 0,
            Refusal::RepeatedHeader => 1,
            Refusal::InvalidToken(problem) => 2 + problem as usize,
            Refusal::InsufficientScope(_) => 12,
        }
    }
}

impl TokenProblem {
    fn detail(self) -> &'static str {
        match self {
            TokenProblem::Malformed => "the token is not a signed JWT the service can read",
            TokenProblem::Oversized => "the token is over 8192 bytes",
            TokenProblem::DisallowedAlgorithm => {
                "the token's algorithm is not accepted (RS256, ES256 or EdDSA, as its key says)"
            }
            TokenProblem::UnknownKey => "the token names a key its issuer does not publish",
            TokenProblem::BadSignature => "the token's signature does not verify",
            TokenProblem::Expired => "the token has expired",
            TokenProblem::NotYetValid => "the token is not valid yet",
            TokenProblem::WrongIssuer => "the token is from another issuer",
            TokenProblem::WrongAudience => "the token is for another audience",
            TokenProblem::BadClaims => {
                "the token lacks sub, exp, iss or aud, or one of them, or its scope or scp, is malformed"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token a request with these `Authorization` values carries, syntax checked.
    fn token_of(values: &[&str]) -> Result<Option<String>, Refusal> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        match bearer_token(&headers)? {
            None => Ok(None),
            Some(token) => b64token(token).map(|token| Some(token.to_owned())),
        }
    }

    #[test]
    fn the_token_is_read_from_one_authorization_header_with_the_bearer_scheme_in_any_case() {
        type Case<'a> = (&'a [&'a str], Result<Option<&'a str>, Refusal>);
        let cases: [Case; 12] = [
            (&[], Ok(None)),
            (&["Bearer abc.def.ghi"], Ok(Some("abc.def.ghi"))),
            (&["bearer abc.def.ghi"], Ok(Some("abc.def.ghi"))),
            (&["BEARER  abc.def.ghi"], Ok(Some("abc.def.ghi"))),
            (&["Bearer a-b_c~d+e/f=="], Ok(Some("a-b_c~d+e/f=="))),
            (&["Basic dXNlcjpwYXNz"], Ok(None)),
            (&["Bearerabc.def.ghi"], Ok(None)),
            (&["Bearer"], Err(Refusal::InvalidToken(TokenProblem::Malformed))),
            (&["Bearer a b"], Err(Refusal::InvalidToken(TokenProblem::Malformed))),
            (&["Bearer ==="], Err(Refusal::InvalidToken(TokenProblem::Malformed))),
            (&["Bearer a=b"], Err(Refusal::InvalidToken(TokenProblem::Malformed))),
            (&["Bearer a", "Bearer b"], Err(Refusal::RepeatedHeader)),
        ];
        for (values, expected) in cases {
            assert_eq!(
                token_of(values),
                expected.map(|token| token.map(str::to_owned)),
                "{values:?}"
            );
        }
    }

    #[test]
    fn a_token_over_the_limit_is_refused_unread() {
        let longest = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES));
        assert!(token_of(&[&longest]).unwrap().is_some());
        let over = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert_eq!(token_of(&[&over]), Err(Refusal::InvalidToken(TokenProblem::Oversized)));
    }

    #[test]
    fn each_refusal_has_its_status_challenge_and_own_reason() {
        assert_eq!(Refusal::NoToken.status(), 401);
        assert_eq!(Refusal::NoToken.challenge(), "Bearer");
        assert_eq!(Refusal::RepeatedHeader.status(), 400);
        assert_eq!(Refusal::RepeatedHeader.challenge(), "Bearer error=\"invalid_request\"");
        let expired = Refusal::InvalidToken(TokenProblem::Expired);
        assert_eq!(
            (expired.status(), expired.challenge()),
            (StatusCode::UNAUTHORIZED, INVALID_TOKEN)
        );
        let scope = Refusal::InsufficientScope("users:write");
        assert_eq!(scope.status(), 403);
        assert_eq!(
            scope.challenge(),
            "Bearer error=\"insufficient_scope\", scope=\"users:write\""
        );
        let problems = [
            TokenProblem::Malformed,
            TokenProblem::Oversized,
            TokenProblem::DisallowedAlgorithm,
            TokenProblem::UnknownKey,
            TokenProblem::BadSignature,
            TokenProblem::Expired,
            TokenProblem::NotYetValid,
            TokenProblem::WrongIssuer,
            TokenProblem::WrongAudience,
            TokenProblem::BadClaims,
        ];
        let mut refusals = vec![Refusal::NoToken, Refusal::RepeatedHeader];
        refusals.extend(problems.map(Refusal::InvalidToken));
        refusals.push(Refusal::InsufficientScope("users:read"));
        let indexes: Vec<usize> = refusals.iter().map(|refusal| refusal.index()).collect();
        assert_eq!(indexes, (0..KEYS_UNAVAILABLE_INDEX).collect::<Vec<_>>());
        assert_eq!(REFUSAL_REASONS[TokenProblem::Expired as usize + 2], "expired");
        assert_eq!(REFUSAL_REASONS[KEYS_UNAVAILABLE_INDEX], "keys_unavailable");
    }
}
