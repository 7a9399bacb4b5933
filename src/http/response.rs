//! Response builders with the contract's content types as static header values.
//!
//! Every header value on the hot path is `from_static`, so building a response allocates only the
//! header map itself.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

/// Every response the service sends: the whole body is known before the first byte goes out.
pub type HttpResponse = Response<Full<Bytes>>;

pub const JSON: HeaderValue = HeaderValue::from_static("application/json; charset=utf-8");
pub const PROBLEM_JSON: HeaderValue = HeaderValue::from_static("application/problem+json");
pub const PROMETHEUS_TEXT: HeaderValue = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
pub const HIT: HeaderValue = HeaderValue::from_static("HIT");
pub const MISS: HeaderValue = HeaderValue::from_static("MISS");

/// A JSON body with the given status.
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> HttpResponse {
    with_content_type(status, JSON, body.into())
}

/// An RFC 9457 problem body; only `Error::into_response` should need this.
pub fn problem(status: StatusCode, body: Bytes) -> HttpResponse {
    with_content_type(status, PROBLEM_JSON, body)
}

/// A response with a body of the given type.
pub fn with_content_type(status: StatusCode, content_type: HeaderValue, body: Bytes) -> HttpResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}

/// A response without a body (204).
pub fn empty(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}
