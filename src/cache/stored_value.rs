//! What a value at a body key is, told from its bytes alone: that user's body (a hit), a reader's
//! fill lease or a writer's fence (misses that fill nothing), nothing, or a bad value (a miss that
//! is replaced and counted). A body for `id` starts with `{"id":"<id in lower case>"` and ends with
//! `}`, as every body the service writes does: a few dozen byte comparisons on the hot path that
//! catch values written by anything else. Leases and fences start with prefixes no body can have.

use super::keys::KeyBuf;

/// A value at a body key that is not a body for that id: that one key's problem, replaced by the
/// next fill and counted by kind (`gravity_cache_bad_values_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadValue {
    /// Not a Redis string (a list, a hash, …).
    WrongType,
    /// A string, but not a body for this id.
    Foreign,
    /// Longer than any user's body can be.
    Oversized,
}

impl BadValue {
    /// Every kind, with its `kind` label of `gravity_cache_bad_values_total`.
    pub(crate) const ALL: [(BadValue, &str); 3] = [
        (BadValue::WrongType, "wrong_type"),
        (BadValue::Foreign, "foreign"),
        (BadValue::Oversized, "oversized"),
    ];
}

/// What a fill lease's value starts with; its token follows.
const LEASE_PREFIX: &[u8] = b"lease:";
/// What a fence's value starts with; the tokens of the writes it stands for follow.
const FENCE_PREFIX: &[u8] = b"fence:";
/// Hex digits in a `Token`.
const TOKEN_LEN: usize = 16;

/// What was found at a body key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    Body,
    Absent,
    Lease,
    Fence,
    Bad(BadValue),
}

/// A reader's fill lease (stored after `lease:`) or one write's part of a fence (after `fence:`):
/// 64 process-unique, randomly seeded bits (`unique_bits`) as lower-case hex, held by no other
/// reader or write in this process or another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Token([u8; TOKEN_LEN]);

/// Classifies the first `max_len + 1` bytes of a string value (what `GETRANGE key 0 max_len`
/// returns) read at `key`.
pub(crate) fn classify(bytes: &[u8], key: &KeyBuf, max_len: usize) -> Stored {
    if bytes.is_empty() {
        return Stored::Absent;
    }
    if bytes.starts_with(LEASE_PREFIX) && bytes.len() == LEASE_PREFIX.len() + TOKEN_LEN {
        return Stored::Lease;
    }
    let tokens = bytes.len().wrapping_sub(FENCE_PREFIX.len());
    if bytes.starts_with(FENCE_PREFIX) && tokens > 0 && tokens.is_multiple_of(TOKEN_LEN) {
        return Stored::Fence;
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

impl Token {
    pub(crate) fn new() -> Token {
        let bits = crate::http::unique_bits::next();
        let mut hex = [0u8; TOKEN_LEN];
        crate::http::unique_bits::write_lower_hex(&bits[..TOKEN_LEN / 2], &mut hex);
        Token(hex)
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
        let lease = [LEASE_PREFIX, Token::new().as_bytes()].concat();
        let other_id = br#"{"id":"00000000-9a7d-4c3b-8e21-0f4d6a7b8c9d","name":"Ada"}"#;
        let one_write = [FENCE_PREFIX, Token::new().as_bytes()].concat();
        let two_writes = [one_write.as_slice(), Token::new().as_bytes()].concat();
        let cases: [(&[u8], Stored); 10] = [
            (body, Stored::Body),
            (b"", Stored::Absent),
            (&lease, Stored::Lease),
            (&one_write, Stored::Fence),
            (&two_writes, Stored::Fence),
            (b"fence:", Stored::Bad(BadValue::Foreign)),
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
    fn tokens_do_not_repeat() {
        let tokens: std::collections::HashSet<_> = (0..10_000).map(|_| Token::new()).collect();
        assert_eq!(tokens.len(), 10_000);
    }
}
