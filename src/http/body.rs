//! Reading a JSON object from a request body, with the contract's checks in the contract's order
//! (415, 413, 408, 400: docs/API.md, Which error). The size limit is decided from `Content-Length`
//! before reading and enforced while reading, so an oversized chunked body is never buffered.
//! What the fields mean is the caller's business.
//!
//! While a body is arriving, its connection may be closed for room (`Arrival`): a client that
//! sends its body slowly holds a connection as an idle one does, and at the connection limit
//! it is treated like one.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderMap};
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, Visitor};
use serde_json::Value;
use tokio::time::Instant;

/// The largest body accepted, in bytes.
pub(crate) const BODY_LIMIT: usize = 65_536;

/// The longest gap between two chunks of a body (or before the first): as long as the header
/// timeout.
pub(crate) const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long after the head the whole body must have arrived, however steadily it trickles (and
/// however long the request waited before reading it, for a key fetch say): well within the 10 s
/// request deadline, so that the client is told 408 rather than 503.
pub(crate) const BODY_TIME_LIMIT: Duration = Duration::from_secs(8);

/// The connection a body arrives on, as far as reading the body is concerned. At the connection
/// limit the server may close a connection whose body has stalled, as it closes idle ones.
pub(crate) trait Arrival: Sync {
    /// The body is being read from now on; `false` if the connection is already closing.
    fn receiving(&self) -> bool;
    /// A chunk arrived.
    fn chunk_arrived(&self);
    /// The body is complete; `false` if the connection was chosen to close meanwhile.
    fn received(&self) -> bool;
    /// Completes once the connection is chosen to close while the body is being read.
    fn cut_short(&self) -> tokio::sync::futures::Notified<'_>;
}

/// Why a body was refused. `crate::error` turns each into its problem response, so this module
/// needs nothing from it.
#[derive(Debug, PartialEq)]
pub enum BodyError {
    /// 415: the body is not declared as JSON.
    NotJson,
    /// 413: over `BODY_LIMIT`, declared or sent.
    TooLarge,
    /// 408: the client stopped sending before the body was complete.
    TooSlow,
    /// 408: the body was arriving so slowly, while the server was at its connection limit, that
    /// its connection was closed for room.
    CutShort,
    /// 400: unreadable, not one JSON object, or a repeated key; the detail says which.
    Malformed(String),
}

/// A JSON object's members in the order sent; keys are unique.
#[derive(Debug, Default, PartialEq)]
pub struct JsonObject(pub Vec<(String, Value)>);

/// A request body that holds one JSON object: the bytes as sent, and the object.
#[derive(Debug)]
pub(crate) struct JsonBody {
    pub(crate) bytes: Bytes,
    pub(crate) object: JsonObject,
}

/// Reads the body of a request that must carry one JSON object, whose head arrived at `head_arrived`.
pub(crate) async fn read_json_body(
    headers: &HeaderMap,
    body: Incoming,
    arrival: &dyn Arrival,
    head_arrived: Instant,
) -> Result<JsonBody, BodyError> {
    if !declares_json(headers) {
        return Err(BodyError::NotJson);
    }
    // The `Content-Length` hyper read (none, so 0, for a chunked body).
    if body.size_hint().lower() > BODY_LIMIT as u64 {
        return Err(BodyError::TooLarge);
    }
    if !arrival.receiving() {
        return Err(BodyError::CutShort);
    }
    let collected = tokio::select! {
        biased;
        () = arrival.cut_short() => Err(BodyError::CutShort),
        collected = tokio::time::timeout_at(head_arrived + BODY_TIME_LIMIT, collect(body, arrival)) => {
            collected.unwrap_or(Err(BodyError::TooSlow))
        }
    };
    if !arrival.received() {
        return Err(BodyError::CutShort);
    }
    let bytes = collected?;
    let object = parse_json_object(&bytes)?;
    Ok(JsonBody { bytes, object })
}

/// The body's bytes, at most `BODY_LIMIT` of them, each chunk within `BODY_IDLE_TIMEOUT` of the
/// one before.
async fn collect(mut body: Incoming, arrival: &dyn Arrival) -> Result<Bytes, BodyError> {
    let mut bytes = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
            Err(_) => return Err(BodyError::TooSlow),
            Ok(None) => return Ok(bytes.freeze()),
            Ok(Some(Err(_))) => return Err(BodyError::Malformed("the body could not be read".into())),
            Ok(Some(Ok(frame))) => frame,
        };
        arrival.chunk_arrived();
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > BODY_LIMIT {
                return Err(BodyError::TooLarge);
            }
            bytes.extend_from_slice(&data);
        }
    }
}

/// `application/json`, with any parameters (`; charset=utf-8`), in any letter case.
pub(crate) fn declares_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let media_type = value.split(';').next().unwrap_or_default().trim();
    media_type.eq_ignore_ascii_case("application/json")
}

/// Parses bytes that must hold exactly one JSON object with unique keys.
pub fn parse_json_object(bytes: &[u8]) -> Result<JsonObject, BodyError> {
    serde_json::from_slice::<JsonObject>(bytes).map_err(|error| {
        let detail = if error.is_data() {
            // Raised by the visitor below: valid JSON, wrong shape.
            error.to_string()
        } else {
            format!("the body is not valid JSON: {error}")
        };
        BodyError::Malformed(detail)
    })
}

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<JsonObject, D::Error> {
        deserializer.deserialize_any(ObjectVisitor)
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = JsonObject;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("the body to be a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonObject, A::Error> {
        let mut members: Vec<(String, Value)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.iter().any(|(seen, _)| *seen == key) {
                return Err(A::Error::custom(format_args!("the key {key:?} appears more than once")));
            }
            let value = map.next_value::<Value>()?;
            members.push((key, value));
        }
        Ok(JsonObject(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers_with(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        headers
    }

    #[test]
    fn json_content_types_are_recognised() {
        for accepted in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
        ] {
            assert!(declares_json(&headers_with(accepted)), "{accepted}");
        }
        for refused in [
            "text/plain",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "",
        ] {
            assert!(!declares_json(&headers_with(refused)), "{refused}");
        }
        assert!(!declares_json(&HeaderMap::new()));
    }

    #[test]
    fn an_object_is_parsed_in_order() {
        let object = parse_json_object(br#"{"name":"Ada","email":null}"#).unwrap();
        assert_eq!(object.0[0].0, "name");
        assert_eq!(object.0[1], ("email".to_string(), Value::Null));
    }

    #[test]
    fn anything_but_one_object_is_a_bad_request() {
        let deep = "[".repeat(10_000);
        for body in [
            &b"[1,2]"[..],
            b"\"text\"",
            b"42",
            b"null",
            b"{",
            b"{}{}",
            b"",
            b"\xff\xfe",
            deep.as_bytes(),
        ] {
            let error = parse_json_object(body).unwrap_err();
            assert!(
                matches!(error, BodyError::Malformed(_)),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_repeated_key_is_a_bad_request() {
        let error = parse_json_object(br#"{"name":"a","name":"b"}"#).unwrap_err();
        let BodyError::Malformed(detail) = error else {
            panic!("expected 400")
        };
        assert!(detail.contains("more than once"), "{detail}");
    }
}
