//! `X-Request-Id`: the client's own when it is sane, otherwise a fresh one.
//!
//! A client id is echoed only when it is 1–128 characters of `[A-Za-z0-9._:-]`, so it can go into
//! a header and a JSON log line without escaping and cannot smuggle anything into either. New ids
//! are UUID-shaped (version 4 layout) over `unique_bits`, so they are made without a system call
//! and never repeat within a process.

use hyper::header::HeaderValue;

use crate::http::unique_bits;

pub(crate) const MAX_CLIENT_ID_LEN: usize = 128;

/// The request id to use: the client's `X-Request-Id` if it sent one and it is sane, else a new
/// one. Two header lines are none: a proxy in front may have read either.
pub(crate) fn choose<'a>(client_ids: impl IntoIterator<Item = &'a HeaderValue>) -> HeaderValue {
    let mut given = client_ids.into_iter();
    match (given.next(), given.next()) {
        (Some(value), None) if is_sane(value.as_bytes()) => value.clone(),
        _ => generate(),
    }
}

pub(crate) fn is_sane(id: &[u8]) -> bool {
    let allowed = |byte: &u8| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'-');
    (1..=MAX_CLIENT_ID_LEN).contains(&id.len()) && id.iter().all(allowed)
}

/// A new, process-unique id such as `5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d`.
pub(crate) fn generate() -> HeaderValue {
    let uuid = uuid::Builder::from_random_bytes(unique_bits::next()).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid.hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).expect("a hyphenated uuid is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_sane_client_id_is_kept() {
        let id = HeaderValue::from_static("req-42:abc.DEF_9");
        assert_eq!(choose(Some(&id)), id);
    }

    #[test]
    fn an_insane_client_id_is_replaced() {
        let long = "a".repeat(MAX_CLIENT_ID_LEN + 1);
        for bad in ["", "has space", "quote\"d", "{json}", long.as_str()] {
            let value = HeaderValue::from_str(bad).unwrap();
            let chosen = choose(Some(&value));
            assert_ne!(chosen, value, "{bad:?}");
            assert_eq!(chosen.len(), 36);
        }
    }

    #[test]
    fn generated_ids_are_uuids_and_unique() {
        let ids: HashSet<_> = (0..10_000).map(|_| generate()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            let parsed = uuid::Uuid::try_parse(id.to_str().unwrap()).unwrap();
            assert_eq!(parsed.get_version_num(), 4);
        }
    }
}
