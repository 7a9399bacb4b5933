//! Keyset pagination of the user list: the `limit` and `cursor` query parameters.
//!
//! The list is ordered newest first by `(created_at, id)`; a cursor names the last row of a page
//! and the next page starts strictly after it, so rows inserted or deleted between requests never
//! cause a gap or a repeat. The cursor is opaque to clients; today it is 48 hex digits: the
//! creation time in microseconds since the Unix epoch (16) and the id (32). Any 48 hex digits
//! name a position, so a cursor the service did not issue is not an error: its time is clamped to
//! what Postgres can compare (a time outside that lies before or after every stored user anyway).

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Error;

pub(crate) const DEFAULT_LIMIT: u8 = 20;
pub(crate) const MAX_LIMIT: u8 = 100;
const CURSOR_LEN: usize = 48;
/// The earliest moment a `timestamptz` holds (4714-11-24 BC), in microseconds since the Unix epoch;
/// binding an earlier one fails in Postgres, which would make a forged cursor a 500.
const EARLIEST_CURSOR_MICROS: i64 = -210_866_803_200_000_000;
/// The latest moment `OffsetDateTime` holds (9999-12-31T23:59:59.999999Z).
const LATEST_CURSOR_MICROS: i64 = 253_402_300_799_999_999;

/// Where a page of users starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u8,
    pub after: Option<Cursor>,
}

/// The position just after the last user of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: OffsetDateTime,
    pub id: Uuid,
}

impl PageRequest {
    /// Reads `limit` and `cursor` from a query string; anything else there is refused, so that a
    /// misspelt parameter (`limt=5`) is not silently ignored.
    pub fn from_query(query: Option<&str>) -> Result<PageRequest, Error> {
        let mut limit = None;
        let mut after = None;
        for pair in query.unwrap_or_default().split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "limit" if limit.is_none() => limit = Some(parse_limit(value)?),
                "cursor" if after.is_none() => after = Some(Cursor::decode(value)?),
                "limit" | "cursor" => return Err(Error::BadRequest(format!("{name} is given more than once"))),
                other => {
                    return Err(Error::BadRequest(format!(
                        "unknown query parameter {:?}; this list takes limit and cursor",
                        super::truncate(other, 64)
                    )));
                }
            }
        }
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        Ok(PageRequest { limit, after })
    }
}

fn parse_limit(value: &str) -> Result<u8, Error> {
    let valid = !value.is_empty() && value.len() <= 3 && value.bytes().all(|byte| byte.is_ascii_digit());
    match value.parse::<u8>() {
        Ok(limit) if valid && (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(Error::BadRequest(format!(
            "limit must be a whole number from 1 to {MAX_LIMIT}"
        ))),
    }
}

impl Cursor {
    pub fn encode(&self) -> String {
        let micros = (self.created_at.unix_timestamp_nanos() / 1_000) as i64;
        format!("{:016x}{}", micros as u64, self.id.simple())
    }

    pub fn decode(text: &str) -> Result<Cursor, Error> {
        let invalid = || Error::BadRequest("cursor is not one this service issued".to_owned());
        if text.len() != CURSOR_LEN || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let micros = (u64::from_str_radix(&text[..16], 16).map_err(|_| invalid())? as i64)
            .clamp(EARLIEST_CURSOR_MICROS, LATEST_CURSOR_MICROS);
        let created_at =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).map_err(|_| invalid())?;
        let id = Uuid::try_parse(&text[16..]).map_err(|_| invalid())?;
        Ok(Cursor { created_at, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn defaults_apply_without_a_query() {
        let page = PageRequest::from_query(None).unwrap();
        assert_eq!(page, PageRequest { limit: 20, after: None });
        assert_eq!(PageRequest::from_query(Some("")).unwrap(), page);
    }

    #[test]
    fn a_cursor_survives_a_round_trip() {
        let cursor = Cursor {
            created_at: datetime!(2026-11-24 10:34:03.123456 UTC),
            id: Uuid::parse_str("5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d").unwrap(),
        };
        let text = cursor.encode();
        assert_eq!(text.len(), CURSOR_LEN);
        assert_eq!(Cursor::decode(&text).unwrap(), cursor);
        let page = PageRequest::from_query(Some(&format!("limit=5&cursor={text}"))).unwrap();
        assert_eq!(
            page,
            PageRequest {
                limit: 5,
                after: Some(cursor)
            }
        );
    }

    #[test]
    fn bad_limits_and_cursors_are_refused() {
        for query in [
            "limit=0",
            "limit=101",
            "limit=-1",
            "limit=abc",
            "limit=",
            "limit=1e2",
            "limit=+5",
            "limit=99999999999999999999",
            "cursor=zz",
            "cursor=",
            "limit=5&limit=6",
            "limt=5",
        ] {
            assert!(PageRequest::from_query(Some(query)).is_err(), "{query}");
        }
    }

    #[test]
    fn a_cursor_outside_the_stored_range_is_clamped_into_it() {
        let id = "5b6c1f0e9a7d4c3b8e210f4d6a7b8c9d";
        let latest = Cursor::decode(&format!("7fffffffffffffff{id}")).unwrap();
        assert_eq!(latest.created_at, datetime!(9999-12-31 23:59:59.999999 UTC));
        let earliest = Cursor::decode(&format!("8000000000000000{id}")).unwrap();
        assert_eq!(
            earliest.created_at.unix_timestamp_nanos() / 1_000,
            i128::from(EARLIEST_CURSOR_MICROS)
        );
        // Within the range, nothing changes: -1 µs is 1969-12-31T23:59:59.999999Z.
        let before_epoch = Cursor::decode(&format!("ffffffffffffffff{id}")).unwrap();
        assert_eq!(before_epoch.created_at, datetime!(1969-12-31 23:59:59.999999 UTC));
    }
}
