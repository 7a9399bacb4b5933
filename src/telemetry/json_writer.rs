//! Appending JSON values to a log line, and the `FieldValue` trait that lets an event's fields be
//! text, numbers or flags.
//!
//! The request line is written on every request, and `write!` with its formatting machinery cost
//! more than the rest of the line, so values go through serde_json's writers (`itoa` for numbers),
//! which write straight into the line.

use serde::Serialize;

/// A value of an event's field, written as the JSON type it is: text as a string, counts and
/// ports as numbers, flags as booleans. Call sites pass `&value` whatever its type. Only these
/// types are fields, so no structure (a user, a body) can be logged whole by mistake.
pub(crate) trait FieldValue {
    fn write_json(&self, line: &mut Vec<u8>);
}

macro_rules! field_value {
    ($($type:ty),*) => {$(
        impl FieldValue for $type {
            fn write_json(&self, line: &mut Vec<u8>) {
                write_json(line, self);
            }
        }
    )*};
}

field_value!(&str, String, bool, u16, u32, u64, usize);

/// Appends `value` as JSON: a number as its digits, text quoted and escaped.
pub(crate) fn write_json(line: &mut Vec<u8>, value: &(impl Serialize + ?Sized)) {
    let _ = serde_json::to_writer(&mut *line, value);
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
