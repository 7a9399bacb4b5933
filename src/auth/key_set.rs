//! The issuer's keys: a JSON Web Key Set (RFC 7517) turned into keys that each verify one
//! algorithm, with the checks every token signed by it must pass.
//!
//! A key is used only with its own algorithm: the JWK's `alg` when it names one, else the one
//! its type implies (RSA: RS256, EC P-256: ES256, OKP Ed25519: EdDSA). Keys for encryption, of
//! other algorithms or types, RSA keys under 2048 bits and entries that do not parse are left
//! out, so one odd key never costs the others. A document that is a key set is the issuer's word
//! on which keys exist, even when none of its keys is usable here: a held key it no longer lists
//! is withdrawn (`key_store`). Only a document that is no key set at all is a failed fetch.

use jsonwebtoken::jwk::EllipticCurve::{Ed25519, P256};
use jsonwebtoken::jwk::{AlgorithmParameters as Parameters, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, Validation};
use serde::Deserialize;

use crate::config::BearerSettings;

/// How far clocks may disagree: a token is taken up to 30 s after its `exp` and 30 s before its
/// `nbf`. Enough for servers kept by NTP; jsonwebtoken's default of 60 s is more than they need.
pub(super) const CLOCK_LEEWAY_SECONDS: u64 = 30;
/// The most keys a set may hold: issuers publish two or three (the current, the next, the last).
const MAX_KEYS: usize = 32;
/// The shortest RSA modulus taken, in bits (RFC 7518 §3.3; ring verifies none shorter).
const MIN_RSA_MODULUS_BITS: usize = 2048;

/// The usable keys of one fetch of the key set.
pub(super) struct KeySet {
    keys: Vec<VerificationKey>,
    /// The entries the document listed, usable or not.
    pub(super) listed: usize,
    /// Usable keys left out past `MAX_KEYS`.
    pub(super) over_the_limit: usize,
}

/// One key, the algorithm it verifies, and the checks of a token signed with it.
pub(super) struct VerificationKey {
    pub(super) kid: Option<String>,
    pub(super) algorithm: Algorithm,
    pub(super) decoding: DecodingKey,
    /// This key's algorithm only, `iss`, `aud`, `exp`, `nbf` and `sub`, with the leeway.
    pub(super) validation: Validation,
    /// The public key's bytes, to tell whether a later set still holds this key.
    material: Vec<u8>,
}

#[derive(Deserialize)]
struct RawKeySet {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// The usable keys of a JWKS document; none is a set too (see the module doc).
    pub(super) fn parse(document: &[u8], settings: &BearerSettings) -> Result<KeySet, String> {
        let raw: RawKeySet =
            serde_json::from_slice(document).map_err(|error| format!("the key set is not a JWKS document: {error}"))?;
        let listed = raw.keys.len();
        let mut keys: Vec<VerificationKey> = raw
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(|jwk| VerificationKey::of(&jwk, settings))
            .collect();
        let over_the_limit = keys.len().saturating_sub(MAX_KEYS);
        keys.truncate(MAX_KEYS);
        Ok(KeySet {
            keys,
            listed,
            over_the_limit,
        })
    }

    /// The key a token's header names: by `kid` (the one of the token's algorithm, should an
    /// issuer give one `kid` to keys of two types), or the only key when the token names none.
    pub(super) fn find(&self, kid: Option<&str>, algorithm: Algorithm) -> Option<&VerificationKey> {
        match kid {
            // The first of those named `kid` whose algorithm is the token's, else the first of them.
            Some(kid) => self
                .keys
                .iter()
                .filter(|key| key.kid.as_deref() == Some(kid))
                .min_by_key(|key| key.algorithm != algorithm),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether some key of this set is missing from `newer`: tokens it verified must be verified again.
    pub(super) fn lost_keys_in(&self, newer: &KeySet) -> bool {
        self.keys.iter().any(|key| {
            !newer
                .keys
                .iter()
                .any(|kept| kept.kid == key.kid && kept.algorithm == key.algorithm && kept.material == key.material)
        })
    }
}

impl VerificationKey {
    fn of(jwk: &Jwk, settings: &BearerSettings) -> Option<VerificationKey> {
        if matches!(&jwk.common.public_key_use, Some(usage) if *usage != PublicKeyUse::Signature) {
            return None;
        }
        let algorithm = match (&jwk.common.key_algorithm, &jwk.algorithm) {
            (Some(KeyAlgorithm::RS256) | None, Parameters::RSA(_)) => Algorithm::RS256,
            (Some(KeyAlgorithm::ES256) | None, Parameters::EllipticCurve(ec)) if ec.curve == P256 => Algorithm::ES256,
            (Some(KeyAlgorithm::EdDSA) | None, Parameters::OctetKeyPair(okp)) if okp.curve == Ed25519 => {
                Algorithm::EdDSA
            }
            _ => return None,
        };
        let decoding = DecodingKey::from_jwk(jwk).ok()?;
        let material = match (decoding.kind(), algorithm) {
            (DecodingKeyKind::RsaModulusExponent { n, e }, Algorithm::RS256) => {
                let significant = &n[n.iter().take_while(|&&byte| byte == 0).count()..];
                let bits = significant.len() * 8 - significant.first().map_or(0, |top| top.leading_zeros() as usize);
                (bits >= MIN_RSA_MODULUS_BITS).then(|| [n.as_slice(), e.as_slice()].concat())?
            }
            (DecodingKeyKind::SecretOrDer(point), Algorithm::ES256) if point.len() == 65 => point.clone(),
            (DecodingKeyKind::SecretOrDer(key), Algorithm::EdDSA) if key.len() == 32 => key.clone(),
            _ => return None,
        };
        Some(VerificationKey {
            kid: jwk.common.key_id.clone(),
            algorithm,
            decoding,
            validation: validation(algorithm, settings),
            material,
        })
    }
}

/// The algorithms a key may have.
pub(super) const ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

fn validation(algorithm: Algorithm, settings: &BearerSettings) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[&settings.issuer]);
    validation.set_audience(&[&settings.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = CLOCK_LEEWAY_SECONDS;
    validation
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::KeySource;

    pub(crate) fn settings() -> BearerSettings {
        BearerSettings {
            issuer: "https://issuer.test".into(),
            audience: "gravity-bff".into(),
            keys: KeySource::File("/dev/null".into()),
            refresh_every: Duration::from_secs(300),
            unknown_key_fetch_every: Duration::from_secs(30),
        }
    }

    /// `n` of 2048 bits and `e` = 65537 in base64url; the key is never used to verify here.
    fn rsa(kid: &str, extra: &str) -> String {
        let modulus = format!("x{}", "A".repeat(341));
        format!(r#"{{"kty":"RSA","kid":"{kid}","n":"{modulus}","e":"AQAB"{extra}}}"#)
    }

    /// 32 bytes in base64url, of `fill` but for the last character (whose unused bits are zero).
    fn thirty_two_bytes(fill: &str) -> String {
        format!("{}A", fill.repeat(42))
    }

    fn ec(kid: &str, crv: &str, extra: &str) -> String {
        let coordinate = thirty_two_bytes("B");
        format!(r#"{{"kty":"EC","kid":"{kid}","crv":"{crv}","x":"{coordinate}","y":"{coordinate}"{extra}}}"#)
    }

    fn okp(kid: &str, crv: &str) -> String {
        format!(
            r#"{{"kty":"OKP","kid":"{kid}","crv":"{crv}","x":"{}"}}"#,
            thirty_two_bytes("C")
        )
    }

    fn parse(keys: &[String]) -> Result<KeySet, String> {
        KeySet::parse(format!(r#"{{"keys":[{}]}}"#, keys.join(",")).as_bytes(), &settings())
    }

    fn kids_and_algorithms(set: &KeySet) -> Vec<(String, Algorithm)> {
        set.keys
            .iter()
            .map(|key| (key.kid.clone().unwrap_or_default(), key.algorithm))
            .collect()
    }

    #[test]
    fn each_key_verifies_only_its_own_algorithm() {
        let set = parse(&[
            rsa("rsa", ""),
            rsa("rsa-alg", r#","alg":"RS256","use":"sig""#),
            ec("ec", "P-256", ""),
            okp("ed", "Ed25519"),
        ])
        .unwrap();
        assert_eq!(
            kids_and_algorithms(&set),
            vec![
                ("rsa".into(), Algorithm::RS256),
                ("rsa-alg".into(), Algorithm::RS256),
                ("ec".into(), Algorithm::ES256),
                ("ed".into(), Algorithm::EdDSA),
            ]
        );
        for key in &set.keys {
            assert_eq!(key.validation.algorithms, vec![key.algorithm]);
            assert!(key.validation.validate_nbf && key.validation.validate_exp && key.validation.validate_aud);
        }
    }

    #[test]
    fn keys_that_cannot_serve_are_left_out_and_the_rest_kept() {
        let short_rsa = r#"{"kty":"RSA","kid":"short","n":"AQAB","e":"AQAB"}"#.to_owned();
        // 256 bytes, but the first is 0x7C: 2047 bits, which ring would refuse to verify with.
        let one_bit_short = format!(r#"{{"kty":"RSA","kid":"2047","n":"f{}","e":"AQAB"}}"#, "A".repeat(341));
        let hmac = r#"{"kty":"oct","kid":"secret","k":"c2VjcmV0"}"#.to_owned();
        let set = parse(&[
            rsa("enc", r#","use":"enc""#),
            rsa("ps", r#","alg":"PS256""#),
            rsa("mislabelled", r#","alg":"ES256""#),
            ec("p384", "P-384", ""),
            okp("x25519", "X25519"),
            short_rsa,
            one_bit_short,
            hmac,
            r#"{"kty":"RSA"}"#.to_owned(),
            "42".to_owned(),
            ec("good", "P-256", r#","alg":"ES256""#),
        ])
        .unwrap();
        assert_eq!(kids_and_algorithms(&set), vec![("good".into(), Algorithm::ES256)]);
    }

    #[test]
    fn a_set_without_a_usable_key_is_a_set_and_a_document_that_is_none_is_refused() {
        let unusable = parse(&[rsa("enc", r#","use":"enc""#), rsa("ps", r#","alg":"PS256""#)]).unwrap();
        assert!(unusable.is_empty());
        assert_eq!(unusable.listed, 2);
        assert!(parse(&[]).unwrap().is_empty());
        assert!(KeySet::parse(b"{}", &settings()).is_err());
        assert!(KeySet::parse(b"<html>", &settings()).is_err());
        assert!(KeySet::parse(br#"{"keys":{}}"#, &settings()).is_err());
    }

    #[test]
    fn usable_keys_past_the_limit_are_counted_and_left_out() {
        let keys: Vec<String> = (0..MAX_KEYS + 3).map(|n| ec(&n.to_string(), "P-256", "")).collect();
        let set = parse(&keys).unwrap();
        assert_eq!((set.len(), set.over_the_limit, set.listed), (MAX_KEYS, 3, MAX_KEYS + 3));
    }

    #[test]
    fn a_token_without_kid_finds_the_only_key_and_no_other() {
        let one = parse(&[ec("only", "P-256", "")]).unwrap();
        assert!(one.find(None, Algorithm::ES256).is_some());
        assert!(one.find(Some("only"), Algorithm::ES256).is_some());
        assert!(one.find(Some("other"), Algorithm::ES256).is_none());
        let two = parse(&[ec("a", "P-256", ""), okp("b", "Ed25519")]).unwrap();
        assert!(two.find(None, Algorithm::ES256).is_none());
    }

    #[test]
    fn one_kid_on_keys_of_two_types_finds_the_one_of_the_tokens_algorithm() {
        let set = parse(&[rsa("shared", ""), ec("shared", "P-256", "")]).unwrap();
        assert_eq!(
            set.find(Some("shared"), Algorithm::ES256).unwrap().algorithm,
            Algorithm::ES256
        );
        assert_eq!(
            set.find(Some("shared"), Algorithm::RS256).unwrap().algorithm,
            Algorithm::RS256
        );
        assert_eq!(
            set.find(Some("shared"), Algorithm::EdDSA).unwrap().algorithm,
            Algorithm::RS256
        );
    }

    #[test]
    fn a_newer_set_that_drops_or_changes_a_key_loses_it() {
        let old = parse(&[ec("a", "P-256", ""), okp("b", "Ed25519")]).unwrap();
        assert!(!old.lost_keys_in(&parse(&[okp("b", "Ed25519"), ec("a", "P-256", ""), rsa("c", "")]).unwrap()));
        assert!(old.lost_keys_in(&parse(&[ec("a", "P-256", "")]).unwrap()));
        let replaced = format!(
            r#"{{"kty":"OKP","kid":"b","crv":"Ed25519","x":"{}"}}"#,
            thirty_two_bytes("D")
        );
        assert!(old.lost_keys_in(&parse(&[ec("a", "P-256", ""), replaced]).unwrap()));
    }
}
