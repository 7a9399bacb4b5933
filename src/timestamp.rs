//! The one timestamp format of the service: RFC 3339 in UTC with six fractional digits, as
//! Postgres stores `timestamptz` (e.g. `2026-11-24T10:34:03.123456Z`). Used in bodies and logs.
//!
//! The text has a fixed width, so it is written digit by digit into a 27-byte array on the stack:
//! every user in every response carries two timestamps, and a general formatter's machinery and
//! a heap string each time showed up in the list endpoint's profile.

use time::{OffsetDateTime, UtcOffset};

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`
const LEN: usize = 27;

/// A formatted timestamp, held on the stack.
pub(crate) struct Rfc3339Micros([u8; LEN]);

impl Rfc3339Micros {
    /// Formats `moment` in UTC. Years outside 0–9999 cannot be written in four digits and are
    /// clamped; the service only formats times Postgres gave it for rows it wrote, and `now`.
    pub(crate) fn new(moment: OffsetDateTime) -> Rfc3339Micros {
        let utc = moment.to_offset(UtcOffset::UTC);
        let mut text = *b"0000-00-00T00:00:00.000000Z";
        write_digits(&mut text[0..4], utc.year().clamp(0, 9999) as u32);
        write_digits(&mut text[5..7], u8::from(utc.month()).into());
        write_digits(&mut text[8..10], utc.day().into());
        write_digits(&mut text[11..13], utc.hour().into());
        write_digits(&mut text[14..16], utc.minute().into());
        write_digits(&mut text[17..19], utc.second().into());
        write_digits(&mut text[20..26], utc.microsecond());
        Rfc3339Micros(text)
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("only ASCII digits and separators are written")
    }
}

/// Writes `value` as decimal digits filling `slot`, zero-padded on the left.
fn write_digits(slot: &mut [u8], mut value: u32) {
    for digit in slot.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

pub(crate) fn write_now(buffer: &mut Vec<u8>) {
    buffer.extend_from_slice(&Rfc3339Micros::new(OffsetDateTime::now_utc()).0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn rfc3339_micros(moment: OffsetDateTime) -> String {
        Rfc3339Micros::new(moment).as_str().to_owned()
    }

    #[test]
    fn timestamps_have_six_fractional_digits_in_utc() {
        assert_eq!(
            rfc3339_micros(datetime!(2026-11-24 10:34:03.1 UTC)),
            "2026-11-24T10:34:03.100000Z"
        );
        assert_eq!(
            rfc3339_micros(datetime!(2026-01-02 03:04:05.000007 +02:00)),
            "2026-01-02T01:04:05.000007Z"
        );
        assert_eq!(
            rfc3339_micros(datetime!(0999-12-31 23:59:59.999999 UTC)),
            "0999-12-31T23:59:59.999999Z"
        );
    }

    #[test]
    fn it_agrees_with_the_time_crates_formatter() {
        let format =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
        let mut moment = datetime!(1970-01-01 00:00:00 UTC);
        for _ in 0..2_000 {
            moment += time::Duration::microseconds(86_399_999_937);
            assert_eq!(rfc3339_micros(moment), moment.format(&format).unwrap());
        }
    }
}
