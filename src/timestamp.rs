//! The one timestamp format of the service: RFC 3339 in UTC with six fractional digits, as
//! Postgres stores `timestamptz` (e.g. `2026-11-24T10:34:03.123456Z`). Used in bodies and logs.

use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

const RFC3339_MICROS: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

pub fn rfc3339_micros(moment: OffsetDateTime) -> String {
    moment
        .to_offset(time::UtcOffset::UTC)
        .format(RFC3339_MICROS)
        .expect("a four-digit year always formats")
}

/// Appends the current time to a buffer without an intermediate string.
pub fn write_now(buffer: &mut Vec<u8>) {
    let _ = OffsetDateTime::now_utc().format_into(buffer, RFC3339_MICROS);
}
