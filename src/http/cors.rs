//! CORS for the browser frontend: which origins may call the API from a page, and the headers
//! that tell the browser so (the Fetch standard's CORS protocol; docs/API.md, CORS, has the rules,
//! their reasons and the headers byte for byte). Only exact origins are allowed, and with none
//! listed no CORS header is sent at all.

use hyper::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, HeaderMap, HeaderValue,
    ORIGIN, VARY,
};
use hyper::{Method, StatusCode};

use crate::http::response::{HttpResponse, empty};

/// The request headers a page may send: the token, JSON bodies, the write key and the tracing
/// and correlation headers the service reads.
const ALLOW_HEADERS: HeaderValue =
    HeaderValue::from_static("authorization, content-type, idempotency-key, traceparent, tracestate, x-request-id");
/// The response headers a page's script may read beside the CORS-safelisted ones.
const EXPOSE_HEADERS: HeaderValue =
    HeaderValue::from_static("Location, X-Request-Id, X-Cache, Retry-After, Idempotent-Replayed, WWW-Authenticate");
/// How long a browser may reuse a preflight's answer: 10 minutes, so a changed policy reaches
/// pages soon (Chromium caps it at 2 hours anyway) while a page that calls often preflights rarely.
const MAX_AGE: HeaderValue = HeaderValue::from_static("600");
const ORIGIN_VARIES: HeaderValue = HeaderValue::from_static("origin");

/// The origins allowed to call the API from a browser; the policy is off when there are none.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    origins: Vec<HeaderValue>,
}

/// One origin as a browser serialises it: `scheme://host[:port]`, lower case, without a path or
/// the scheme's default port, so that comparing the `Origin` header byte for byte is exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigin(String);

impl AllowedOrigin {
    /// One entry of `CORS_ALLOWED_ORIGINS`; the error says what a browser would send instead.
    pub fn parse(text: &str) -> Result<AllowedOrigin, String> {
        if text == "*" || text == "null" {
            return Err(format!(
                "must list exact origins, got {text:?}: that would let any web page call the API with its visitors' tokens"
            ));
        }
        let as_browsers_send_it = || {
            format!(
                "must list origins as browsers send them (http or https://host[:port], lower case, no path, no default port), got {text:?}"
            )
        };
        let (scheme, authority) = text.split_once("://").ok_or_else(as_browsers_send_it)?;
        let default_port = match scheme {
            "http" => "80",
            "https" => "443",
            _ => return Err(as_browsers_send_it()),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (host, Some(port)),
            _ => (authority, None),
        };
        let (name, allowed): (&str, fn(u8) -> bool) =
            match host.strip_prefix('[').and_then(|inner| inner.strip_suffix(']')) {
                Some(ipv6) => (ipv6, |byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f' | b':' | b'.')),
                None => (host, |byte| matches!(byte, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.')),
            };
        let host_is_valid = !name.is_empty() && name.bytes().all(allowed);
        let port_is_valid = port.is_none_or(|port| {
            port != default_port && !port.starts_with('0') && port.parse::<u16>().is_ok_and(|number| number > 0)
        });
        if !host_is_valid || !port_is_valid {
            return Err(as_browsers_send_it());
        }
        Ok(AllowedOrigin(text.to_owned()))
    }
}

impl CorsPolicy {
    /// The policy for these origins; `None` (no CORS headers at all) when there are none.
    pub fn new(origins: &[AllowedOrigin]) -> Option<CorsPolicy> {
        let origins: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|origin| HeaderValue::from_str(&origin.0).ok())
            .collect();
        (!origins.is_empty()).then_some(CorsPolicy { origins })
    }

    /// The request's origin when it is an allowed one.
    pub fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(ORIGIN)?;
        self.origins.iter().find(|allowed| *allowed == origin).cloned()
    }

    /// The answer to a preflight from an allowed origin, when this request is one: the methods a
    /// route with `allow` takes.
    pub fn preflight(method: &Method, headers: &HeaderMap, allow: &'static str) -> Option<HttpResponse> {
        if method != Method::OPTIONS || !headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD) || allow.is_empty() {
            return None;
        }
        let mut response = empty(StatusCode::NO_CONTENT);
        let headers = response.headers_mut();
        headers.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(allow));
        headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS);
        headers.insert(ACCESS_CONTROL_MAX_AGE, MAX_AGE);
        Some(response)
    }

    /// Marks a response for the origin that asked: `Vary: Origin` always, and the grant when the
    /// origin is allowed.
    pub fn mark(response: &mut HttpResponse, allowed_origin: Option<HeaderValue>) {
        let headers = response.headers_mut();
        headers.append(VARY, ORIGIN_VARIES);
        if let Some(origin) = allowed_origin {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_taken_only_as_browsers_send_them() {
        for good in [
            "https://app.example.com",
            "http://localhost:5173",
            "https://app.example.com:8443",
            "http://127.0.0.1:3000",
            "http://[::1]:8080",
        ] {
            assert_eq!(AllowedOrigin::parse(good), Ok(AllowedOrigin(good.to_owned())), "{good}");
        }
        for bad in [
            "*",
            "null",
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://App.example.com",
            "HTTPS://app.example.com",
            "https://app.example.com:443",
            "http://app.example.com:80",
            "https://app.example.com:0",
            "https://app.example.com:99999",
            "https://app.example.com:08080",
            "https://user@app.example.com",
            "ftp://app.example.com",
            "https://",
            "https://[]",
            "https://app example.com",
        ] {
            assert!(AllowedOrigin::parse(bad).is_err(), "{bad}");
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn only_a_listed_origin_is_allowed_byte_for_byte() {
        let policy = CorsPolicy::new(&[AllowedOrigin::parse("https://app.example.com").unwrap()]).unwrap();
        let allowed = policy.allowed_origin(&headers(&[("origin", "https://app.example.com")]));
        assert_eq!(allowed.unwrap(), "https://app.example.com");
        for other in [
            "https://evil.example.com",
            "https://app.example.com.evil.test",
            "null",
            "https://APP.example.com",
        ] {
            assert!(
                policy.allowed_origin(&headers(&[("origin", other)])).is_none(),
                "{other}"
            );
        }
        assert!(policy.allowed_origin(&HeaderMap::new()).is_none());
        assert!(CorsPolicy::new(&[]).is_none(), "no origins, no policy");
    }

    #[test]
    fn a_preflight_is_an_options_request_that_names_a_method() {
        let asks = headers(&[("access-control-request-method", "PATCH")]);
        let response = CorsPolicy::preflight(&Method::OPTIONS, &asks, "GET, HEAD, PATCH, DELETE").unwrap();
        assert_eq!(response.status(), 204);
        assert_eq!(
            response.headers()["access-control-allow-methods"],
            "GET, HEAD, PATCH, DELETE"
        );
        assert_eq!(response.headers()["access-control-max-age"], "600");
        assert!(CorsPolicy::preflight(&Method::OPTIONS, &HeaderMap::new(), "GET").is_none());
        assert!(CorsPolicy::preflight(&Method::GET, &asks, "GET").is_none());
        assert!(
            CorsPolicy::preflight(&Method::OPTIONS, &asks, "").is_none(),
            "no route, no preflight"
        );
    }
}
