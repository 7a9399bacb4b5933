//! The cache's key formats, built on the stack: the hot path makes no heap allocation for a key.
//! `{prefix}:user:{id}` holds a user's body (or a reader's fill lease, or a writer's fence);
//! `{prefix}:instance` names the Redis instance whose bodies are known to be current (`sweep`);
//! `{prefix}:copies` exists while any replica may serve in-process copies (`tracking`, `fence`).

use uuid::Uuid;

/// Room for `{prefix}:user:{uuid}` with the longest prefix the settings allow.
const KEY_CAPACITY: usize = 128;

pub(crate) struct KeyBuf {
    bytes: [u8; KEY_CAPACITY],
    len: usize,
}

impl KeyBuf {
    /// The body key of `id`, under `user_prefix` (`{prefix}:user:`).
    pub(crate) fn body(user_prefix: &str, id: Uuid) -> KeyBuf {
        let prefix = user_prefix.as_bytes();
        let len = prefix.len() + uuid::fmt::Hyphenated::LENGTH;
        let mut bytes = [0; KEY_CAPACITY];
        bytes[..prefix.len()].copy_from_slice(prefix);
        id.hyphenated().encode_lower(&mut bytes[prefix.len()..len]);
        KeyBuf { bytes, len }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The id as the key spells it (hyphenated, lower case): the key's last 36 bytes.
    pub(crate) fn id_text(&self) -> &[u8] {
        &self.bytes[self.len - uuid::fmt::Hyphenated::LENGTH..self.len]
    }
}

pub(crate) fn instance_key(prefix: &str) -> Vec<u8> {
    format!("{prefix}:instance").into_bytes()
}

pub(crate) fn copies_key(prefix: &str) -> String {
    format!("{prefix}:copies")
}

/// The id at the end of a body key under `user_prefix`, if it is one.
pub(crate) fn id_of_key(user_prefix: &[u8], key: &[u8]) -> Option<Uuid> {
    let id = key
        .strip_prefix(user_prefix)
        .filter(|id| id.len() == uuid::fmt::Hyphenated::LENGTH)?;
    Uuid::try_parse_ascii(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_contract() {
        let id = Uuid::parse_str("5B6C1F0E-9A7D-4C3B-8E21-0F4D6A7B8C9D").unwrap();
        let key = KeyBuf::body("gravity:user:", id);
        assert_eq!(key.as_bytes(), b"gravity:user:5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d");
        assert_eq!(id_of_key(b"gravity:user:", key.as_bytes()), Some(id));
        assert_eq!(id_of_key(b"other:user:", key.as_bytes()), None);
        assert_eq!(id_of_key(b"gravity:user:", b"gravity:user:nope"), None);
    }
}
