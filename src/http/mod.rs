//! HTTP plumbing shared by every handler: response builders, request ids, trace context,
//! reading bodies, bearer tokens in `Authorization`, CORS, and what every request head must hold.
//!
//! Nothing here knows about users or databases; handlers combine these pieces.

pub mod bearer;
pub mod body;
pub mod cors;
pub mod request_id;
pub mod response;
pub mod trace_context;
pub(crate) mod unique_bits;

use hyper::Version;
use hyper::header::{HOST, HeaderMap};

/// The longest request target (path and query) the service takes: 414 above it. The longest
/// target it serves is a page request with a cursor, under 100 bytes; 8 KiB is the limit most
/// servers and proxies apply, so nothing legitimate that reached the service is refused.
pub const MAX_TARGET_BYTES: usize = 8 << 10;

/// What is wrong with a request's `Host`, if anything: RFC 9112 (3.2) has a server answer 400 to
/// an HTTP/1.1 request without one, to a request with several, and to an invalid one. The service
/// answers whatever name it is reached by and reads the header for nothing else.
pub fn host_problem(version: Version, headers: &HeaderMap) -> Option<&'static str> {
    let mut hosts = headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if version == Version::HTTP_11 => Some("an HTTP/1.1 request must name its host in a Host header"),
        (Some(_), Some(_)) => Some("the request has more than one Host header"),
        (Some(host), None) if !is_host(host.as_bytes()) => {
            Some("the Host header is not a host name or address with an optional port")
        }
        _ => None,
    }
}

/// Whether `value` is `uri-host [":" port]` (RFC 3986): a bracketed IP literal, or a name or IPv4
/// address of the characters a URI host may hold, then digits after a colon. Empty is valid (RFC
/// 9110 7.2, for a target without an authority). `http::uri::Authority` parses the same form but
/// copies the value first, and this runs for every request.
fn is_host(value: &[u8]) -> bool {
    let host_byte = |byte: &u8| HOST_BYTES[usize::from(*byte)];
    let (host_is_valid, after_host) = match value {
        [b'[', bracketed @ ..] => match bracketed.iter().position(|&byte| byte == b']') {
            Some(end) => {
                let literal = &bracketed[..end];
                let valid = !literal.is_empty() && literal.iter().all(|byte| *byte == b':' || host_byte(byte));
                (valid, &bracketed[end + 1..])
            }
            None => return false,
        },
        name => (
            true,
            &name[name.iter().position(|byte| !host_byte(byte)).unwrap_or(name.len())..],
        ),
    };
    host_is_valid
        && match after_host {
            [] => true,
            [b':', port @ ..] => port.iter().all(u8::is_ascii_digit),
            _ => false,
        }
}

/// The bytes of a URI host (unreserved, sub-delims and `%` of percent-encoding).
const HOST_BYTES: [bool; 256] = byte_table(b"-._~!$&'()*+,;=%");

/// A table of the ASCII letters and digits and `others`, by byte value: for what runs on every
/// request (`Host`, a token), a look-up per byte is the cheapest test.
pub(crate) const fn byte_table(others: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = (byte as u8).is_ascii_alphanumeric();
        byte += 1;
    }
    let mut other = 0;
    while other < others.len() {
        table[others[other] as usize] = true;
        other += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    #[test]
    fn a_host_is_a_name_or_address_with_an_optional_port() {
        for valid in [
            "",
            "x",
            "api.example.com",
            "api.example.com:8080",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8080",
            "xn--bcher-kva.example",
            "a~_!$&'()*+,;=b",
            "%41.example",
        ] {
            assert!(is_host(valid.as_bytes()), "{valid:?}");
        }
        for invalid in [
            "a b",
            "a:b:c",
            "host:port",
            "[::1",
            "[]",
            "a/b",
            "a@b",
            "a\tb",
            "[::1]x",
            "é.example",
        ] {
            assert!(!is_host(invalid.as_bytes()), "{invalid:?}");
        }
    }

    #[test]
    fn http_1_1_needs_one_host_and_http_1_0_at_most_one() {
        let with = |hosts: &[&'static str]| {
            let mut headers = HeaderMap::new();
            for host in hosts {
                headers.append(HOST, HeaderValue::from_static(host));
            }
            headers
        };
        assert_eq!(host_problem(Version::HTTP_11, &with(&["x"])), None);
        assert_eq!(host_problem(Version::HTTP_10, &with(&[])), None);
        assert!(host_problem(Version::HTTP_11, &with(&[])).is_some());
        assert!(host_problem(Version::HTTP_10, &with(&["x", "y"])).is_some());
        assert!(host_problem(Version::HTTP_11, &with(&["x", "x"])).is_some());
        assert!(host_problem(Version::HTTP_11, &with(&["x y"])).is_some());
    }
}
