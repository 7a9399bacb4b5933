//! W3C Trace Context: every request belongs to a trace, and the service is one span in it.
//!
//! A valid `traceparent` from the caller (a mesh, an ingress, an APM agent) is continued, and a
//! missing, repeated or invalid one ignored, as docs/API.md (HTTP) lists and the specification
//! requires of a receiver (<https://www.w3.org/TR/trace-context/#traceparent-header>). A higher
//! version is read as version `00` when its first 55 characters parse and are followed by the end
//! or a `-`, as the specification asks for forward compatibility.
//!
//! The ids go into the request's log line and back to the caller in the response's `traceparent`
//! (version `00`, this request's span as the parent), so they are kept as the hex text both need:
//! a continued trace id is copied as the caller wrote it (once checked), a new id is encoded once.
//! Nothing here allocates but the response's header value: ids come from `unique_bits` and their
//! text lives on the stack. The service records no spans of its own, so it never decides
//! sampling: a continued trace keeps the caller's sampled flag and a new one is not sampled.

use hyper::header::{HeaderMap, HeaderName, HeaderValue};

use crate::http::unique_bits;

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The length of a version `00` `traceparent`: `00-` + 32 + `-` + 16 + `-` + 2.
const TRACEPARENT_LEN: usize = 55;

/// This request's place in its trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lower-case hex digits, never all zeros.
    trace_id: [u8; 32],
    /// This request's own span: 16 lower-case hex digits, never all zeros.
    span_id: [u8; 16],
    /// The sampled flag, the only one version `00` defines; other bits are not ours to pass on.
    sampled: bool,
}

impl TraceContext {
    /// Continues the caller's trace if its `traceparent` is valid, else starts a new one.
    pub fn continue_or_start(headers: &HeaderMap) -> TraceContext {
        let mut values = headers.get_all(TRACEPARENT).iter();
        let parent = match (values.next(), values.next()) {
            (Some(value), None) => parse(value.as_bytes()),
            _ => None,
        };
        let span_id = hex_id(&unique_bits::next()[..8]);
        let (trace_id, sampled) = parent.unwrap_or_else(|| (hex_id(&unique_bits::next()), false));
        TraceContext {
            trace_id,
            span_id,
            sampled,
        }
    }

    /// The trace id: 32 lower-case hex digits.
    pub fn trace_id(&self) -> &[u8; 32] {
        &self.trace_id
    }

    /// This request's span id: 16 lower-case hex digits.
    pub fn span_id(&self) -> &[u8; 16] {
        &self.span_id
    }

    /// The `traceparent` that names this request's span, for the response.
    pub fn traceparent(&self) -> HeaderValue {
        let mut text = [0u8; TRACEPARENT_LEN];
        text[..3].copy_from_slice(b"00-");
        text[3..35].copy_from_slice(&self.trace_id);
        text[35] = b'-';
        text[36..52].copy_from_slice(&self.span_id);
        text[52..].copy_from_slice(if self.sampled { b"-01" } else { b"-00" });
        HeaderValue::from_bytes(&text).expect("hex digits and dashes are a valid header value")
    }
}

/// A `traceparent` value's trace id and sampled flag (what the service keeps of it), or `None`
/// when the specification says to ignore it.
fn parse(value: &[u8]) -> Option<([u8; 32], bool)> {
    if value.len() < TRACEPARENT_LEN || !is_hex_id(&value[0..2]) {
        return None;
    }
    match &value[0..2] {
        b"ff" => return None,
        b"00" if value.len() != TRACEPARENT_LEN => return None,
        // A later version may append fields, each after a dash.
        _ if value.len() > TRACEPARENT_LEN && value[TRACEPARENT_LEN] != b'-' => return None,
        _ => {}
    }
    let (trace_id, parent_id, flags) = (&value[3..35], &value[36..52], &value[53..55]);
    let separated = value[2] == b'-' && value[35] == b'-' && value[52] == b'-';
    let all_zeros = |id: &[u8]| id.iter().all(|&digit| digit == b'0');
    if !separated || !is_hex_id(trace_id) || !is_hex_id(parent_id) || !is_hex_id(flags) {
        return None;
    }
    if all_zeros(trace_id) || all_zeros(parent_id) {
        return None;
    }
    // The sampled flag is the lowest bit of the flags' second hex digit.
    let sampled = matches!(flags[1], b'1' | b'3' | b'5' | b'7' | b'9' | b'b' | b'd' | b'f');
    Some((trace_id.try_into().expect("32 digits"), sampled))
}

/// Lower-case hex digits only: the specification allows no upper case.
fn is_hex_id(digits: &[u8]) -> bool {
    digits.iter().all(|digit| matches!(digit, b'0'..=b'9' | b'a'..=b'f'))
}

/// `bytes` as lower-case hex digits; all zeros, the one invalid id, becomes `…01` (a one-in-2^64
/// draw at worst).
fn hex_id<const DIGITS: usize>(bytes: &[u8]) -> [u8; DIGITS] {
    let mut text = [b'0'; DIGITS];
    unique_bits::write_lower_hex(bytes, &mut text);
    if text.iter().all(|&digit| digit == b'0') {
        text[DIGITS - 1] = b'1';
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const TRACE_ID: &[u8; 32] = b"4bf92f3577b34da6a3ce929d0e0e4736";

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(TRACEPARENT, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let trace = TraceContext::continue_or_start(&headers(&[VALID]));
        assert_eq!(trace.trace_id(), TRACE_ID);
        assert_ne!(trace.span_id(), b"00f067aa0ba902b7");
        let sent = trace.traceparent();
        let sent = sent.to_str().unwrap();
        assert_eq!(sent.len(), TRACEPARENT_LEN);
        assert!(sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{sent}");
        assert!(sent.ends_with("-01"), "the sampled flag is kept: {sent}");
        assert_eq!(&parse(sent.as_bytes()).unwrap().0, trace.trace_id());
    }

    #[test]
    fn only_the_sampled_flag_is_passed_on() {
        let trace =
            TraceContext::continue_or_start(&headers(&["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe"]));
        assert_eq!(trace.trace_id(), TRACE_ID);
        assert!(trace.traceparent().to_str().unwrap().ends_with("-00"));
    }

    #[test]
    fn a_later_version_is_read_as_version_00() {
        for value in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds",
        ] {
            let trace = TraceContext::continue_or_start(&headers(&[value]));
            assert_eq!(trace.trace_id(), TRACE_ID, "{value}");
            assert!(trace.traceparent().to_str().unwrap().starts_with("00-"));
        }
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace() {
        let too_long = format!("{VALID}-00");
        let cases = [
            ("version ff", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            (
                "all-zero trace id",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            ),
            (
                "all-zero parent id",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            ),
            (
                "upper-case hex",
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            ),
            (
                "non-hex digit",
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            ),
            (
                "short trace id",
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            ),
            (
                "short parent id",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            ),
            (
                "one-digit flags",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            ),
            ("version 00 with more", too_long.as_str()),
            (
                "later version, no dash after",
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            ),
            (
                "wrong separator",
                "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            ),
            (
                "version not hex",
                "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("empty", ""),
            ("not a traceparent", "hello"),
        ];
        for (why, value) in cases {
            let trace = TraceContext::continue_or_start(&headers(&[value]));
            assert_ne!(trace.trace_id(), TRACE_ID, "{why}: {value}");
            assert!(trace.traceparent().to_str().unwrap().ends_with("-00"), "{why}");
        }
    }

    #[test]
    fn ids_are_lower_case_hex_and_never_all_zeros() {
        assert_eq!(hex_id::<4>(&[0xab, 0x09]), *b"ab09");
        assert_eq!(hex_id::<4>(&[0, 0]), *b"0001");
    }

    #[test]
    fn two_traceparent_headers_start_a_new_trace() {
        let trace = TraceContext::continue_or_start(&headers(&[VALID, VALID]));
        assert_ne!(trace.trace_id(), TRACE_ID);
    }

    #[test]
    fn without_a_traceparent_a_new_trace_starts_with_valid_ids() {
        let first = TraceContext::continue_or_start(&HeaderMap::new());
        let second = TraceContext::continue_or_start(&HeaderMap::new());
        assert_ne!(first.trace_id, second.trace_id);
        assert_ne!(first.span_id, second.span_id);
        let sent = first.traceparent();
        let (trace_id, _) = parse(sent.as_bytes()).expect("what the service sends is itself valid");
        assert_eq!(trace_id, first.trace_id);
    }
}
