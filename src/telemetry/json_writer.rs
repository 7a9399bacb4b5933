//! Appending JSON values to a log line: numbers digit by digit, strings escaped, and the
//! `FieldValue` trait that lets an event's fields be text, numbers or flags.
//!
//! The request line is written on every request, and `write!` with its formatting machinery cost
//! more than the rest of the line, so numbers are written by hand here.

/// A value of an event's field, written as the JSON type it is: text as a string, counts and
/// ports as numbers, flags as booleans. Call sites pass `&value` whatever its type.
pub(crate) trait FieldValue {
    fn write_json(&self, line: &mut Vec<u8>);
}

impl FieldValue for &str {
    fn write_json(&self, line: &mut Vec<u8>) {
        write_string(line, self);
    }
}

impl FieldValue for String {
    fn write_json(&self, line: &mut Vec<u8>) {
        write_string(line, self);
    }
}

impl FieldValue for bool {
    fn write_json(&self, line: &mut Vec<u8>) {
        line.extend_from_slice(if *self { b"true" } else { b"false" });
    }
}

macro_rules! unsigned_field_value {
    ($($type:ty),*) => {$(
        impl FieldValue for $type {
            fn write_json(&self, line: &mut Vec<u8>) {
                write_decimal(line, u64::try_from(*self).unwrap_or(u64::MAX));
            }
        }
    )*};
}

unsigned_field_value!(u16, u32, u64, usize);

pub(crate) fn write_decimal(line: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    // At least one digit: 0 is written as `0`.
    while start == digits.len() || value > 0 {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
    }
    line.extend_from_slice(&digits[start..]);
}

/// Appends `text` as a JSON string, quoted and escaped.
pub(crate) fn write_string(line: &mut Vec<u8>, text: &str) {
    let _ = serde_json::to_writer(&mut *line, text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(value: &dyn FieldValue) -> String {
        let mut line = Vec::new();
        value.write_json(&mut line);
        String::from_utf8(line).unwrap()
    }

    #[test]
    fn numbers_are_json_numbers_and_text_is_a_json_string() {
        let cases: [(&dyn FieldValue, &str); 7] = [
            (&0u64, "0"),
            (&18777u16, "18777"),
            (&u64::MAX, "18446744073709551615"),
            (&20usize, "20"),
            (&true, "true"),
            (&"a \"quoted\"\nline", r#""a \"quoted\"\nline""#),
            (&"503".to_owned(), r#""503""#),
        ];
        for (value, expected) in cases {
            assert_eq!(written(value), expected);
        }
    }
}
