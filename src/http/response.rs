//! Response builders with the contract's content types as static header values.
//!
//! Every header value on the hot path is `from_static`, so building a response allocates only the
//! header map itself.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

/// Every response the service sends: the whole body is known before the first byte goes out.
pub(crate) type HttpResponse = Response<Full<Bytes>>;

pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json; charset=utf-8");
pub(crate) const PROBLEM_JSON: HeaderValue = HeaderValue::from_static("application/problem+json");
pub(crate) const PROMETHEUS_TEXT: HeaderValue = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
pub(crate) const HIT: HeaderValue = HeaderValue::from_static("HIT");
pub(crate) const MISS: HeaderValue = HeaderValue::from_static("MISS");

/// A JSON body with the given status.
pub(crate) fn json(status: StatusCode, body: impl Into<Bytes>) -> HttpResponse {
    with_content_type(status, JSON, body.into())
}

/// A response with a body of the given type.
pub(crate) fn with_content_type(status: StatusCode, content_type: HeaderValue, body: Bytes) -> HttpResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}

/// A response without a body (204).
pub(crate) fn empty(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}
