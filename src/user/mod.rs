//! The user resource: what a user is, how it is written as JSON, and the client input that makes
//! or changes one.
//!
//! `User` is the stored row. Its JSON form is produced here once per database read; the bytes are
//! what the cache stores and what a cache hit sends back unchanged.

pub mod input;
pub mod page;
pub mod visibility;

use bytes::Bytes;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Error;
use crate::timestamp::Rfc3339Micros;

/// A stored user. Its JSON shape is exactly these keys, in this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct User {
    #[serde(serialize_with = "hyphenated_lower")]
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) email: Option<String>,
    pub(crate) avatar_url: Option<String>,
    #[serde(serialize_with = "rfc3339_micros")]
    pub(crate) created_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339_micros")]
    pub(crate) updated_at: OffsetDateTime,
}

/// Room for a typical user's JSON, so that writing it rarely reallocates.
pub(crate) const USER_JSON_CAPACITY: usize = 256;

/// The longest body a user can have: every character of every text field 4 bytes long (JSON
/// escapes at most double an ASCII character; control characters are refused), plus the fixed
/// parts. The cache never reads more than this (plus one byte) of a stored value.
pub(crate) const MAX_USER_JSON_LEN: usize =
    4 * (input::NAME_MAX_CHARS + input::EMAIL_MAX_CHARS + input::AVATAR_URL_MAX_CHARS) + 256;

impl User {
    /// The user as the response body the contract describes.
    pub(crate) fn to_json(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("a user always serializes"))
    }
}

fn hyphenated_lower<S: serde::Serializer>(id: &Uuid, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(id.hyphenated().encode_lower(&mut [0; uuid::fmt::Hyphenated::LENGTH]))
}

fn rfc3339_micros<S: serde::Serializer>(moment: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(Rfc3339Micros::new(*moment).as_str())
}

/// Reads a user id from a path segment: a hyphenated UUID in any letter case.
pub fn parse_user_id(segment: &str) -> Result<Uuid, Error> {
    // `try_parse` also takes the simple, braced and URN forms, none of them 36 bytes long.
    match Uuid::try_parse(segment) {
        Ok(id) if segment.len() == uuid::fmt::Hyphenated::LENGTH => Ok(id),
        _ => Err(Error::BadRequest(format!(
            "{:?} is not a user id; ids are hyphenated UUIDs",
            truncate(segment, 64)
        ))),
    }
}

/// At most `limit` characters of client text, for echoing it in an error.
pub(crate) fn truncate(text: &str, limit: usize) -> &str {
    text.char_indices().nth(limit).map_or(text, |(end, _)| &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn sample_user() -> User {
        User {
            id: Uuid::parse_str("5B6C1F0E-9A7D-4C3B-8E21-0F4D6A7B8C9D").unwrap(),
            name: "Ada Lovelace".into(),
            email: Some("ada@example.com".into()),
            avatar_url: None,
            created_at: datetime!(2026-11-24 10:34:03.1 UTC),
            updated_at: datetime!(2026-11-24 12:34:03.123456 +02:00),
        }
    }

    #[test]
    fn a_user_is_written_with_exactly_the_contract_keys() {
        let json: serde_json::Value = serde_json::from_slice(&sample_user().to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d",
                "name": "Ada Lovelace",
                "email": "ada@example.com",
                "avatar_url": null,
                "created_at": "2026-11-24T10:34:03.100000Z",
                "updated_at": "2026-11-24T10:34:03.123456Z"
            })
        );
    }

    #[test]
    fn no_user_body_is_longer_than_the_bound() {
        let widest = |count: usize| "\u{1F600}".repeat(count);
        let quotes = |count: usize| "\"".repeat(count);
        for name in [widest(input::NAME_MAX_CHARS), quotes(input::NAME_MAX_CHARS)] {
            let user = User {
                name,
                email: Some(widest(input::EMAIL_MAX_CHARS)),
                avatar_url: Some(widest(input::AVATAR_URL_MAX_CHARS)),
                ..sample_user()
            };
            assert!(user.to_json().len() <= MAX_USER_JSON_LEN, "{}", user.to_json().len());
        }
    }

    #[test]
    fn ids_are_hyphenated_uuids_in_any_case() {
        let lower = parse_user_id("5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d").unwrap();
        assert_eq!(parse_user_id("5B6C1F0E-9A7D-4C3B-8E21-0F4D6A7B8C9D").unwrap(), lower);
        for bad in [
            "5b6c1f0e9a7d4c3b8e210f4d6a7b8c9d",
            "{5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d}",
            "urn:uuid:5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d",
            "5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9g",
            "42",
            "",
            "5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9dé",
        ] {
            assert!(parse_user_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("héllo", 2), "hé");
        assert_eq!(truncate("hi", 10), "hi");
    }
}
