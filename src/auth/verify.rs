//! One bearer token checked against the issuer's keys: who it speaks for and what it grants.
//!
//! The header is read first, by the service itself, to refuse what no key could verify: an
//! algorithm outside the allow-list (`none`, HMAC, …), a `crit` extension, or an algorithm that
//! is not the one of the key its `kid` names. jsonwebtoken then checks the signature (through
//! ring) and `iss`, `aud`, `exp`, `nbf` and `sub`, and the claims the service reads must parse:
//! `sub` is a string of 1 to 255 bytes (OpenID Connect's limit) without control, invisible (such
//! as bidirectional overrides) or line separator characters (it goes into logs and the
//! Idempotency-Key records), `exp` a whole number of seconds.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::errors::ErrorKind;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::key_set::{ALGORITHMS, KeySet};
use super::ring_provider;
use super::scopes::{Grants, ScopeClaim};
use crate::http::bearer::TokenProblem;
use crate::user::visibility::is_invisible;

/// OpenID Connect Core §2: `sub` is at most 255 ASCII characters.
const MAX_SUBJECT_BYTES: usize = 255;

/// Who a verified token speaks for.
#[derive(Debug)]
pub(crate) struct Principal {
    /// `sub`: the user (or client) the issuer vouches for.
    pub(crate) subject: Box<str>,
    pub(crate) grants: Grants,
    /// `exp`, in seconds since the epoch: how long the token may be remembered.
    pub(crate) expires_at: u64,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    /// Present at all, even as `null`.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    /// Read only to refuse an array: jsonwebtoken accepts one in which any element matches, and
    /// `iss` must be `AUTH_ISSUER` exactly.
    #[serde(rename = "iss")]
    _issuer: String,
    scope: Option<ScopeClaim>,
    scp: Option<ScopeClaim>,
}

/// Verifies `token` with the key it names in `keys`. `UnknownKey` means this set lacks it; a
/// newer set might not.
pub(super) fn verify(token: &str, keys: &KeySet) -> Result<Principal, TokenProblem> {
    ring_provider::install();
    let (kid, algorithm) = read_header(token)?;
    let key = keys.find(kid.as_deref(), algorithm).ok_or(TokenProblem::UnknownKey)?;
    // A key is used with its own algorithm only; jsonwebtoken checks it again.
    if algorithm != key.algorithm {
        return Err(TokenProblem::DisallowedAlgorithm);
    }
    let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &key.validation)
        .map_err(|error| problem_of(error.kind()))?
        .claims;
    // A character that a log viewer would take for a line break or that reverses the text is
    // as unwelcome in a log line as a control character.
    let unprintable = |c: char| c.is_control() || is_invisible(c) || matches!(c, '\u{2028}' | '\u{2029}');
    let subject_is_valid =
        !claims.sub.is_empty() && claims.sub.len() <= MAX_SUBJECT_BYTES && !claims.sub.chars().any(unprintable);
    if !subject_is_valid {
        return Err(TokenProblem::BadClaims);
    }
    Ok(Principal {
        grants: Grants::of(claims.scope.as_ref(), claims.scp.as_ref()),
        subject: claims.sub.into_boxed_str(),
        expires_at: claims.exp,
    })
}

/// The header's `kid` and its algorithm, one of `ALGORITHMS`.
fn read_header(token: &str) -> Result<(Option<String>, Algorithm), TokenProblem> {
    let (encoded, _) = token.split_once('.').ok_or(TokenProblem::Malformed)?;
    let json = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| TokenProblem::Malformed)?;
    let header: Header = serde_json::from_slice(&json).map_err(|_| TokenProblem::Malformed)?;
    // No extension is understood, so none may be critical (RFC 7515 §4.1.11).
    if header.crit {
        return Err(TokenProblem::Malformed);
    }
    let Some(algorithm) = header.alg.parse().ok().filter(|alg| ALGORITHMS.contains(alg)) else {
        return Err(TokenProblem::DisallowedAlgorithm);
    };
    // A header jsonwebtoken cannot read (a `typ` that is no string, say) is malformed too, not a
    // problem of the claims it would otherwise be reported as.
    serde_json::from_slice::<jsonwebtoken::Header>(&json).map_err(|_| TokenProblem::Malformed)?;
    Ok((header.kid, algorithm))
}

fn present<'de, D: serde::Deserializer<'de>>(value: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(value).map(|_| true)
}

fn problem_of(kind: &ErrorKind) -> TokenProblem {
    match kind {
        ErrorKind::InvalidSignature => TokenProblem::BadSignature,
        ErrorKind::ExpiredSignature => TokenProblem::Expired,
        ErrorKind::ImmatureSignature => TokenProblem::NotYetValid,
        ErrorKind::InvalidIssuer => TokenProblem::WrongIssuer,
        ErrorKind::InvalidAudience => TokenProblem::WrongAudience,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => TokenProblem::DisallowedAlgorithm,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) | ErrorKind::InvalidSubject => {
            TokenProblem::BadClaims
        }
        // A claim missing or of the wrong type; a payload that is no JSON at all is malformed.
        ErrorKind::Json(error) if error.is_data() => TokenProblem::BadClaims,
        _ => TokenProblem::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use serde_json::{Value, json};

    use super::*;
    use crate::auth::key_set::tests::settings;
    use crate::auth::scopes::Scope;

    /// An ES256 and an EdDSA key, their key set, and tokens signed by them.
    struct Issuer {
        ec: EcdsaKeyPair,
        ed: Ed25519KeyPair,
        keys: KeySet,
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    impl Issuer {
        fn new() -> Issuer {
            let random = SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random).unwrap();
            let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &random).unwrap();
            let ed = Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&random).unwrap().as_ref()).unwrap();
            let point = ec.public_key().as_ref();
            let set = json!({"keys": [
                {"kty": "EC", "crv": "P-256", "kid": "ec", "x": b64(&point[1..33]), "y": b64(&point[33..])},
                {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(ed.public_key().as_ref())},
            ]});
            let keys = KeySet::parse(set.to_string().as_bytes(), &settings()).unwrap();
            Issuer { ec, ed, keys }
        }

        fn sign(&self, header: &Value, claims: &Value) -> String {
            let input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let signature = match header["kid"].as_str() {
                Some("ed") => self.ed.sign(input.as_bytes()).as_ref().to_vec(),
                _ => self
                    .ec
                    .sign(&SystemRandom::new(), input.as_bytes())
                    .unwrap()
                    .as_ref()
                    .to_vec(),
            };
            format!("{input}.{}", b64(&signature))
        }

        fn verify(&self, header: &Value, claims: &Value) -> Result<Principal, TokenProblem> {
            verify(&self.sign(header, claims), &self.keys)
        }
    }

    fn good_claims() -> Value {
        json!({"iss": "https://issuer.test", "aud": "gravity-bff", "sub": "user-1", "exp": now() + 300, "scope": "users:read"})
    }

    fn with(claims: &Value, name: &str, value: Value) -> Value {
        let mut claims = claims.clone();
        claims[name] = value;
        claims
    }

    fn without(claims: &Value, name: &str) -> Value {
        let mut claims = claims.clone();
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    #[test]
    fn a_good_token_names_its_subject_grants_and_expiry() {
        let issuer = Issuer::new();
        for kid in ["ec", "ed"] {
            let alg = if kid == "ec" { "ES256" } else { "EdDSA" };
            let principal = issuer.verify(&json!({"alg": alg, "kid": kid}), &good_claims()).unwrap();
            assert_eq!(&*principal.subject, "user-1");
            assert!(principal.grants.allow(Scope::UsersRead) && !principal.grants.allow(Scope::UsersWrite));
            assert!(principal.expires_at > now());
        }
        let list_audience = with(&good_claims(), "aud", json!(["other", "gravity-bff"]));
        assert!(
            issuer
                .verify(&json!({"alg": "ES256", "kid": "ec"}), &list_audience)
                .is_ok()
        );
    }

    #[test]
    fn each_broken_rule_is_named() {
        let issuer = Issuer::new();
        let ec = json!({"alg": "ES256", "kid": "ec"});
        let good = good_claims();
        let cases = [
            (
                ec.clone(),
                with(&good, "exp", json!(now() - 120)),
                TokenProblem::Expired,
            ),
            (
                ec.clone(),
                with(&good, "nbf", json!(now() + 120)),
                TokenProblem::NotYetValid,
            ),
            (
                ec.clone(),
                with(&good, "iss", json!("https://other.test")),
                TokenProblem::WrongIssuer,
            ),
            (
                ec.clone(),
                with(&good, "aud", json!("another-api")),
                TokenProblem::WrongAudience,
            ),
            (ec.clone(), without(&good, "sub"), TokenProblem::BadClaims),
            (ec.clone(), without(&good, "exp"), TokenProblem::BadClaims),
            (ec.clone(), without(&good, "aud"), TokenProblem::BadClaims),
            (ec.clone(), with(&good, "exp", json!("never")), TokenProblem::BadClaims),
            (
                ec.clone(),
                with(&good, "nbf", json!("99999999999")),
                TokenProblem::BadClaims,
            ),
            (ec.clone(), with(&good, "sub", json!("")), TokenProblem::BadClaims),
            (
                ec.clone(),
                with(&good, "sub", json!("x".repeat(256))),
                TokenProblem::BadClaims,
            ),
            (
                ec.clone(),
                with(&good, "sub", json!("a\u{0}b")),
                TokenProblem::BadClaims,
            ),
            (
                ec.clone(),
                with(&good, "sub", json!("a\u{202e}b")),
                TokenProblem::BadClaims,
            ),
            (
                ec.clone(),
                with(&good, "sub", json!("a\u{2028}b")),
                TokenProblem::BadClaims,
            ),
            (ec.clone(), with(&good, "scope", json!(7)), TokenProblem::BadClaims),
            (
                json!({"alg": "none", "kid": "ec"}),
                good.clone(),
                TokenProblem::DisallowedAlgorithm,
            ),
            (
                json!({"alg": "HS256", "kid": "ec"}),
                good.clone(),
                TokenProblem::DisallowedAlgorithm,
            ),
            (
                json!({"alg": "EdDSA", "kid": "ec"}),
                good.clone(),
                TokenProblem::DisallowedAlgorithm,
            ),
            (
                json!({"alg": "ES256", "kid": "nobody"}),
                good.clone(),
                TokenProblem::UnknownKey,
            ),
            (json!({"alg": "ES256"}), good.clone(), TokenProblem::UnknownKey),
            (
                json!({"alg": "ES256", "kid": "ec", "crit": ["exp"]}),
                good.clone(),
                TokenProblem::Malformed,
            ),
        ];
        for (header, claims, problem) in cases {
            assert_eq!(
                issuer.verify(&header, &claims).err(),
                Some(problem),
                "{header} {claims}"
            );
        }
    }

    #[test]
    fn a_changed_byte_breaks_the_signature_and_garbage_is_malformed() {
        let issuer = Issuer::new();
        let token = issuer.sign(&json!({"alg": "ES256", "kid": "ec"}), &good_claims());
        let (input, _) = token.rsplit_once('.').unwrap();
        let other = issuer.sign(
            &json!({"alg": "ES256", "kid": "ec"}),
            &with(&good_claims(), "sub", json!("user-2")),
        );
        let (_, other_signature) = other.rsplit_once('.').unwrap();
        let spliced = format!("{input}.{other_signature}");
        assert_eq!(verify(&spliced, &issuer.keys).err(), Some(TokenProblem::BadSignature));
        for garbage in ["", "abc", "a.b.c", "e30.e30.e30", "!!.e30.x"] {
            assert!(verify(garbage, &issuer.keys).is_err(), "{garbage}");
        }
    }
}
