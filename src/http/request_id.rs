//! `X-Request-Id`: the client's own when it is sane, otherwise a fresh one.
//!
//! A client id is echoed only when it is 1–128 characters of `[A-Za-z0-9._:-]`, so it can go into
//! a header and a JSON log line without escaping and cannot smuggle anything into either. New ids
//! are UUID-shaped (version 4 layout) and made without a system call: a per-process random seed
//! mixed with a counter through SplitMix64, which is a bijection, so ids never repeat within a
//! process and differ between processes.

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::header::HeaderValue;

pub const MAX_CLIENT_ID_LEN: usize = 128;

/// The request id to use: the client's `X-Request-Id` if it is sane, else a new one.
pub fn choose(client_id: Option<&HeaderValue>) -> HeaderValue {
    match client_id {
        Some(value) if is_sane(value.as_bytes()) => value.clone(),
        _ => generate(),
    }
}

pub fn is_sane(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CLIENT_ID_LEN
        && id
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'-'))
}

/// A new, process-unique id such as `5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d`.
pub fn generate() -> HeaderValue {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| RandomState::new().hash_one(std::process::id()));
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let high = splitmix64(seed ^ count);
    let low = splitmix64(high ^ seed.rotate_left(32));
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid.hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).expect("a hyphenated uuid is a valid header value")
}

fn splitmix64(mut state: u64) -> u64 {
    state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    state = (state ^ (state >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    state = (state ^ (state >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    state ^ (state >> 31)
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
