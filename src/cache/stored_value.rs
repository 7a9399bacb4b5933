//! What a value at a body key can be, told apart from its bytes alone: the body of that user (a
//! hit), a reader's fill lease (someone is filling it: a miss), nothing (a miss), or something
//! that is not a body for that id (a bad value: a miss that is replaced and counted).
//!
//! A body for `id` is recognised by its frame: it starts with `{"id":"<id in lower case>"` and
//! ends with `}`, as every body the service writes does. That is a few dozen byte comparisons on
//! the hot path, and it catches values written by anything else (a wrong key, another program,
//! a truncated copy). Leases start with a prefix no JSON body can have.

use super::keys::KeyBuf;

pub(crate) use crate::telemetry::metrics::BadValue;

/// What a fill lease's value starts with.
const LEASE_PREFIX: &[u8] = b"lease:";
/// `lease:` and 16 hex digits.
const LEASE_LEN: usize = LEASE_PREFIX.len() + 16;

/// What was found at a body key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    Body,
    Absent,
    Lease,
    Bad(BadValue),
}

/// A reader's claim on a key it may fill; only the holder of the same token may store a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct LeaseToken([u8; LEASE_LEN]);

/// Classifies the first `max_len + 1` bytes of a string value (what `GETRANGE key 0 max_len`
/// returns) read at `key`.
pub(crate) fn classify(bytes: &[u8], key: &KeyBuf, max_len: usize) -> Stored {
    if bytes.is_empty() {
        return Stored::Absent;
    }
    if bytes.starts_with(LEASE_PREFIX) && bytes.len() == LEASE_LEN {
        return Stored::Lease;
    }
    if bytes.len() > max_len {
        return Stored::Bad(BadValue::Oversized);
    }
    if is_body_of(bytes, key.id_text()) {
        Stored::Body
    } else {
        Stored::Bad(BadValue::Foreign)
    }
}

/// `{"id":"<id_text>"` … `}`: the id as the key already spells it, so it is not formatted again.
fn is_body_of(bytes: &[u8], id_text: &[u8]) -> bool {
    bytes
        .strip_prefix(b"{\"id\":\"")
        .and_then(|rest| rest.strip_prefix(id_text))
        .is_some_and(|rest| rest.starts_with(b"\""))
        && bytes.ends_with(b"}")
}

impl LeaseToken {
    /// A token no other reader, in this process or another, holds (`unique_bits`).
    pub(crate) fn new() -> LeaseToken {
        let bits = crate::http::unique_bits::next();
        let mut token = [0u8; LEASE_LEN];
        token[..LEASE_PREFIX.len()].copy_from_slice(LEASE_PREFIX);
        crate::http::unique_bits::write_lower_hex(&bits[..8], &mut token[LEASE_PREFIX.len()..]);
        LeaseToken(token)
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const ID: Uuid = Uuid::from_u128(0x5b6c1f0e_9a7d_4c3b_8e21_0f4d6a7b8c9d);

    #[test]
    fn values_are_told_apart_by_their_bytes() {
        let body = br#"{"id":"5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d","name":"Ada"}"#;
        let key = KeyBuf::body("p:user:", ID);
        let lease = LeaseToken::new();
        let other_id = br#"{"id":"00000000-9a7d-4c3b-8e21-0f4d6a7b8c9d","name":"Ada"}"#;
        let cases: [(&[u8], Stored); 7] = [
            (body, Stored::Body),
            (b"", Stored::Absent),
            (lease.as_bytes(), Stored::Lease),
            (other_id, Stored::Bad(BadValue::Foreign)),
            (b"hello", Stored::Bad(BadValue::Foreign)),
            (&body[..body.len() - 1], Stored::Bad(BadValue::Foreign)),
            (b"lease:too-short", Stored::Bad(BadValue::Foreign)),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                classify(bytes, &key, 1_000),
                expected,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert_eq!(classify(body, &key, 20), Stored::Bad(BadValue::Oversized));
    }

    #[test]
    fn lease_tokens_do_not_repeat() {
        let tokens: std::collections::HashSet<_> = (0..10_000).map(|_| LeaseToken::new()).collect();
        assert_eq!(tokens.len(), 10_000);
    }
}
