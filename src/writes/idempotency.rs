//! The `Idempotency-Key` request header (IETF httpapi Idempotency-Key draft; the contract is in
//! docs/API.md, Writes): what a valid key is, whose it is, and what identifies the request it was
//! first used for: its method, its path (the user id in lower case, so letter case does not make
//! two requests differ) and its body's exact bytes.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use hyper::header::{HeaderMap, HeaderName};

use crate::db::idempotency_records::RecordKey;
use crate::error::Error;

pub(crate) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub(crate) const MAX_KEY_LEN: usize = 255;

/// A request's key, whose it is, and what the request was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdempotencyKey {
    pub(crate) key: RecordKey,
    /// Method, canonical path and body: what the fingerprint is made of.
    pub(crate) request: Vec<u8>,
}

impl IdempotencyKey {
    /// The request's key, if it sent one, owned by `subject`; a malformed key is a 400.
    pub(crate) fn from_headers(
        headers: &HeaderMap,
        subject: &str,
        method: &str,
        canonical_path: &str,
        body: &[u8],
    ) -> Result<Option<IdempotencyKey>, Error> {
        let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(Error::BadRequest("Idempotency-Key is given more than once".into()));
        }
        let bytes = value.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_KEY_LEN || !bytes.iter().all(u8::is_ascii_graphic) {
            return Err(Error::BadRequest(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            )));
        }
        let request = [method.as_bytes(), b" ", canonical_path.as_bytes(), b"\n", body].concat();
        Ok(Some(IdempotencyKey {
            key: RecordKey {
                subject: subject.to_owned(),
                key: String::from_utf8_lossy(bytes).into_owned(),
            },
            request,
        }))
    }

    /// A fixed hash of the key, for queueing writes with the same key in the process.
    pub(crate) fn queue_hash(&self) -> u64 {
        BuildHasherDefault::<DefaultHasher>::default().hash_one(&self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn key_of(values: &[&str]) -> Result<Option<IdempotencyKey>, Error> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(IDEMPOTENCY_KEY, HeaderValue::from_str(value).unwrap());
        }
        IdempotencyKey::from_headers(&headers, "auth0|alice", "POST", "/v1/users", b"{}")
    }

    #[test]
    fn a_key_is_one_to_255_visible_ascii_characters() {
        let longest = "k".repeat(MAX_KEY_LEN);
        for good in [
            "a",
            "8e03978e-40d5-43e8-bc93-6894a57f9324",
            "\"quoted\"",
            longest.as_str(),
        ] {
            let key = key_of(&[good]).unwrap().unwrap().key;
            assert_eq!((key.key.as_str(), key.subject.as_str()), (good, "auth0|alice"));
        }
        let too_long = "k".repeat(MAX_KEY_LEN + 1);
        for bad in ["", "has space", "tab\there", too_long.as_str()] {
            assert!(key_of(&[bad]).is_err(), "{bad:?}");
        }
        assert!(key_of(&["a", "b"]).is_err(), "one key per request");
        assert_eq!(key_of(&[]).unwrap(), None);
    }

    #[test]
    fn the_fingerprint_input_is_method_path_and_body() {
        let key = key_of(&["k"]).unwrap().unwrap();
        assert_eq!(key.request, b"POST /v1/users\n{}");
    }
}
