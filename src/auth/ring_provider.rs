//! jsonwebtoken's cryptography, done by ring: the signature checks of the three algorithms the
//! service accepts, and nothing else.
//!
//! jsonwebtoken does the JOSE part (parsing, the algorithm allow-list of each key, the claims);
//! since version 10 its own cryptography is aws-lc-rs or RustCrypto, and this process already
//! links ring for TLS, so ring verifies here, through the `CryptoProvider` hook the crate offers
//! for exactly this. No signer and no HMAC verifier exist: a token "signed" with HS256 (using a
//! public key as the secret) finds no verifier at all. A key is only ever handed to the verifier
//! of its own family, and jsonwebtoken checks the same before it asks.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::signature::{self, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
};

use super::key_set::ALGORITHMS;

/// The provider; installed once per process by `install`.
static RING: CryptoProvider = CryptoProvider {
    signer_factory: no_signer,
    verifier_factory: verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Makes ring jsonwebtoken's cryptography for this process: idempotent, and as cheap as an
/// atomic load once done, so every verification calls it first.
pub(super) fn install() {
    // `Err` means a provider is installed already: this one, as nothing else installs one.
    let _ = RING.install_default();
}

/// A public key and the one algorithm it verifies.
struct RingVerifier {
    algorithm: Algorithm,
    key: DecodingKey,
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    // The allow-list only, each algorithm with a key of its own family.
    if !ALGORITHMS.contains(algorithm) || key.family() != algorithm.family() {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    // An RSA key is verified from its modulus and exponent only (`key_set` makes no other kind).
    if *algorithm == Algorithm::RS256 && !matches!(key.kind(), DecodingKeyKind::RsaModulusExponent { .. }) {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(RingVerifier {
        algorithm: *algorithm,
        key: key.clone(),
    }))
}

fn no_signer(_: &Algorithm, _: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    Err(ErrorKind::Signing("the service verifies tokens and never signs any".into()).into())
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        // `key_set` admits only these: a 65-byte P-256 point, a 32-byte Ed25519 key, and RSA as above.
        let verified = match (self.key.kind(), self.algorithm) {
            (DecodingKeyKind::RsaModulusExponent { n, e }, Algorithm::RS256) => {
                RsaPublicKeyComponents { n, e }.verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
            }
            (DecodingKeyKind::SecretOrDer(point), Algorithm::ES256) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).verify(message, signature)
            }
            (DecodingKeyKind::SecretOrDer(key), Algorithm::EdDSA) => {
                UnparsedPublicKey::new(&ED25519, key).verify(message, signature)
            }
            _ => return Err(signature::Error::new()),
        };
        verified.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn verify_with(algorithm: Algorithm, key: &DecodingKey, message: &[u8], signature: &[u8]) -> bool {
        verifier(&algorithm, key).is_ok_and(|verifier| verifier.verify(message, &signature.to_vec()).is_ok())
    }

    #[test]
    fn es256_and_eddsa_signatures_verify_and_a_changed_byte_does_not() {
        let random = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &random).unwrap();
        let ec_key = DecodingKey::from_ec_der(pair.public_key().as_ref());
        let signature = pair.sign(&random, b"header.claims").unwrap();
        assert!(verify_with(
            Algorithm::ES256,
            &ec_key,
            b"header.claims",
            signature.as_ref()
        ));
        assert!(!verify_with(
            Algorithm::ES256,
            &ec_key,
            b"header.claimz",
            signature.as_ref()
        ));

        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&random).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let ed_key = DecodingKey::from_ed_der(pair.public_key().as_ref());
        let signature = pair.sign(b"header.claims");
        assert!(verify_with(
            Algorithm::EdDSA,
            &ed_key,
            b"header.claims",
            signature.as_ref()
        ));
        assert!(!verify_with(
            Algorithm::EdDSA,
            &ed_key,
            b"header.claims!",
            signature.as_ref()
        ));
        assert!(!verify_with(
            Algorithm::ES256,
            &ed_key,
            b"header.claims",
            signature.as_ref()
        ));
    }

    #[test]
    fn hmac_and_algorithms_outside_the_allow_list_get_no_verifier() {
        let rsa_public_key = DecodingKey::from_rsa_raw_components(&[0xc5; 256], &[1, 0, 1]);
        for algorithm in [Algorithm::HS256, Algorithm::RS384, Algorithm::PS256, Algorithm::ES384] {
            assert!(verifier(&algorithm, &rsa_public_key).is_err(), "{algorithm:?}");
        }
        let secret = DecodingKey::from_secret(b"a public key used as an HMAC secret").unwrap();
        assert!(verifier(&Algorithm::HS256, &secret).is_err());
        assert!(
            verifier(&Algorithm::ES256, &rsa_public_key).is_err(),
            "a key of another family"
        );
        assert!(verifier(&Algorithm::RS256, &rsa_public_key).is_ok());
    }
}
