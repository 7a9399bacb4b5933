//! The one error type of the request path, and its one mapping to HTTP.
//!
//! Variants are shaped by what the client sees, not by where the failure came from: driver errors
//! become `Unavailable` or `Internal` through `From`, and the decisions that need context (a unique
//! violation on the email is a conflict) are made where the query runs. `into_response` is the only
//! place that picks a status code and writes an RFC 9457 problem body. Causes of 5xx answers are
//! kept for the log and never sent to the client.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::{ALLOW, CONNECTION, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use serde::Serialize;

use crate::http::MAX_TARGET_BYTES;
use crate::http::bearer::Refusal;
use crate::http::body::{BODY_LIMIT, BodyError};
use crate::http::response::{HttpResponse, PROBLEM_JSON, with_content_type};

/// Why a request failed.
#[derive(Debug)]
pub enum Error {
    /// 400: the request cannot be understood (bad JSON, bad id, bad query parameter).
    BadRequest(String),
    /// 400, 401 or 403 with `WWW-Authenticate` (RFC 6750): no bearer token, a bad one, or one
    /// without the scope the route needs.
    Bearer(Refusal),
    /// 404
    NotFound(String),
    /// 405: the path exists; `allow` lists the methods it takes.
    MethodNotAllowed { allow: &'static str },
    /// 408: the client stopped sending its body.
    BodyTimeout,
    /// 408: at the connection limit, a body so slow that its connection is closed for room.
    BodyCutShort,
    /// 409: the request collides with existing data (an email already taken).
    Conflict(String),
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 414: the request target (path and query) is over the limit.
    UriTooLong,
    /// 415: the body is not declared as JSON.
    UnsupportedMediaType,
    /// 422: well-formed JSON whose fields break the rules; every offending field is listed.
    InvalidFields(Vec<FieldError>),
    /// 422: an `Idempotency-Key` already used for a different request (method, path or body).
    IdempotencyKeyReused,
    /// 409: a request with the same `Idempotency-Key` is still in progress (its outcome may not be
    /// known yet); this one did nothing, and a retry with the key later gets its answer.
    IdempotencyKeyInProgress,
    /// 503: Postgres does not answer; the client may retry shortly.
    Unavailable(Cause),
    /// 503: a write that did not happen (cancelled by Postgres at its deadline, no connection in
    /// time, refused before commit): nothing was written, so a retry is safe.
    WriteNotApplied(Cause),
    /// 503: a write refused before it was sent because the cache every replica reads could not be
    /// fenced (`cache::fence`): nothing was written.
    WriteRefused(Cause),
    /// 503: a repeat of a write already made (its Idempotency-Key seen before) whose answer is
    /// not given because its record could not be read, or the cache every replica reads could not
    /// be fenced (`writes::single`): nothing more was written, and a retry with the same key
    /// replays it.
    ReplayRefused(Cause),
    /// 503: Postgres answers with a schema that is not this release's (never migrated, behind, dirty);
    /// the detail (`db::schema::SchemaGap`) names the missing migration and the command.
    SchemaBehind(String),
    /// 503: the request came on a connection just chosen to close for room; it was not run.
    NoRoom,
    /// 503: a write whose outcome the service cannot know (its connection died after the commit
    /// was sent, Postgres stopped answering past the deadline, or a keyed write was cut off while
    /// another request with its key may still commit).
    WriteOutcomeUnknown(Cause),
    /// 503 from `/ready`: Postgres does not answer, or authentication has no keys yet.
    NotReady {
        postgres: &'static str,
        redis: &'static str,
        auth: &'static str,
        cause: Cause,
    },
    /// 503: authentication is on and the issuer's keys have not been fetched yet.
    KeysUnavailable,
    /// 503: the request ran past its deadline.
    Timeout,
    /// 500: a bug or an unexpected failure; the details go to the log only.
    Internal(Cause),
}

/// A refused body is the client's error, each kind with its own status.
impl From<BodyError> for Error {
    fn from(error: BodyError) -> Error {
        match error {
            BodyError::NotJson => Error::UnsupportedMediaType,
            BodyError::TooLarge => Error::PayloadTooLarge,
            BodyError::TooSlow => Error::BodyTimeout,
            BodyError::CutShort => Error::BodyCutShort,
            BodyError::Malformed(detail) => Error::BadRequest(detail),
        }
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Error {
        Error::Bearer(refusal)
    }
}

/// One field that breaks a rule, as listed in a 422 body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: Cow<'static, str>,
}

/// The underlying failure behind a 5xx, for the log.
pub(crate) type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
    /// `/ready`'s 503 only: each part's state, as members of the body.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    readiness: Option<Readiness>,
}

#[derive(Serialize)]
struct Readiness {
    postgres: &'static str,
    redis: &'static str,
    auth: &'static str,
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Bearer(refusal) => refusal.status(),
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::BodyTimeout | Error::BodyCutShort => StatusCode::REQUEST_TIMEOUT,
            Error::Conflict(_) | Error::IdempotencyKeyInProgress => StatusCode::CONFLICT,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UriTooLong => StatusCode::URI_TOO_LONG,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::InvalidFields(_) | Error::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Unavailable(_)
            | Error::WriteNotApplied(_)
            | Error::WriteRefused(_)
            | Error::ReplayRefused(_)
            | Error::SchemaBehind(_)
            | Error::NoRoom
            | Error::WriteOutcomeUnknown(_)
            | Error::NotReady { .. }
            | Error::KeysUnavailable
            | Error::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The failure behind a 5xx answer, which the request log records (`error.message`); never
    /// sent to the client.
    pub(crate) fn log_cause(&self) -> Option<Cow<'static, str>> {
        match self {
            Error::Timeout => Some("the request ran past its 10 s deadline".into()),
            Error::NoRoom => Some("the connection was chosen to close for room as the request arrived".into()),
            Error::KeysUnavailable => Some("no key of the token issuer has been fetched yet".into()),
            Error::SchemaBehind(gap) => Some(gap.clone().into()),
            Error::Unavailable(cause)
            | Error::WriteNotApplied(cause)
            | Error::WriteRefused(cause)
            | Error::ReplayRefused(cause)
            | Error::WriteOutcomeUnknown(cause)
            | Error::NotReady { cause, .. }
            | Error::Internal(cause) => Some(chain(cause.as_ref()).into()),
            _ => None,
        }
    }

    /// The problem+json response a client sees.
    pub(crate) fn into_response(self) -> HttpResponse {
        let status = self.status();
        let detail: Cow<'_, str> = match &self {
            Error::BadRequest(detail) | Error::NotFound(detail) | Error::Conflict(detail) => detail.as_str().into(),
            Error::Bearer(refusal) => refusal.detail().into(),
            Error::MethodNotAllowed { .. } => "the path does not take this method".into(),
            Error::BodyTimeout => "the body did not arrive in time".into(),
            Error::BodyCutShort => "the body arrived too slowly while the service needed the connection for \
                 others; the connection is closed"
                .into(),
            Error::PayloadTooLarge => format!("the body is over {BODY_LIMIT} bytes").into(),
            Error::UriTooLong => format!("the path and query are over {MAX_TARGET_BYTES} bytes").into(),
            Error::UnsupportedMediaType => "the body must be sent as Content-Type: application/json".into(),
            Error::InvalidFields(_) => "some fields are invalid".into(),
            Error::IdempotencyKeyReused => {
                "this Idempotency-Key was already used for a different request (method, path or body)".into()
            }
            Error::IdempotencyKeyInProgress => "a request with this Idempotency-Key is still in progress, so this \
                 one did nothing; retry with the same Idempotency-Key shortly for its answer"
                .into(),
            Error::Unavailable(_) => "the database is not answering; try again shortly".into(),
            Error::WriteNotApplied(_) => {
                "the write could not be completed in time; nothing was written, so it is safe to retry".into()
            }
            Error::WriteRefused(_) => "the cache that every replica reads could not be told of this write, \
                 so it was not made; nothing was written, so it is safe to retry"
                .into(),
            Error::ReplayRefused(_) => "the write this Idempotency-Key stands for was already made, but its \
                 record could not be read, or the cache that every replica reads could not be told of it, so its \
                 answer is not given now; nothing more was written, and a retry with the same Idempotency-Key is safe"
                .into(),
            Error::NoRoom => "the service is at its connection limit and closed this connection to make room; \
                 nothing was done, so it is safe to send the request again"
                .into(),
            Error::WriteOutcomeUnknown(_) => "the database stopped answering after the write was sent, or the write \
                 was cut off while an earlier request with its Idempotency-Key may still commit: its outcome is \
                 unknown; a retry with the same Idempotency-Key is safe and tells"
                .into(),
            Error::SchemaBehind(gap) => gap.as_str().into(),
            Error::NotReady { postgres: "down", .. } => "postgres is not answering".into(),
            Error::NotReady { postgres, cause, .. } if *postgres == "schema_behind" => cause.to_string().into(),
            Error::NotReady { .. } => "no usable key of the token issuer is held: none fetched yet, or its key set \
                 lists none this service can use"
                .into(),
            Error::KeysUnavailable => {
                "the token issuer's keys have not been fetched yet, so no token can be checked; try again shortly"
                    .into()
            }
            Error::Timeout => "the request took too long".into(),
            Error::Internal(_) => "an unexpected error occurred".into(),
        };
        let (errors, readiness) = match &self {
            Error::InvalidFields(fields) => (Some(fields.as_slice()), None),
            &Error::NotReady {
                postgres, redis, auth, ..
            } => (None, Some(Readiness { postgres, redis, auth })),
            _ => (None, None),
        };
        let body = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: &detail,
            errors,
            readiness,
        };
        let bytes = serde_json::to_vec(&body).map(Bytes::from).unwrap_or_default();
        let mut response = with_content_type(status, PROBLEM_JSON, bytes);
        let headers = response.headers_mut();
        if matches!(self, Error::BodyCutShort | Error::NoRoom) {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        match self {
            Error::MethodNotAllowed { allow } => headers.insert(ALLOW, HeaderValue::from_static(allow)),
            Error::Bearer(refusal) => headers.insert(WWW_AUTHENTICATE, refusal.challenge()),
            // Every 503 says when to come back, and so does a key still in progress.
            _ if status == StatusCode::SERVICE_UNAVAILABLE || matches!(self, Error::IdempotencyKeyInProgress) => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"))
            }
            _ => None,
        };
        response
    }

    pub(crate) fn internal(cause: impl Into<Cause>) -> Error {
        Error::Internal(cause.into())
    }
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<Cow<'static, str>>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<tokio_postgres::Error> for Error {
    /// A lost connection means Postgres is (for now) unavailable; anything else is unexpected.
    fn from(error: tokio_postgres::Error) -> Error {
        if is_connection_loss(&error) {
            Error::Unavailable(Box::new(error))
        } else {
            Error::Internal(Box::new(error))
        }
    }
}

/// Whether a driver error means the connection (or the server) went away, rather than that the
/// statement itself failed: such a read can be retried on another connection.
pub(crate) fn is_connection_loss(error: &tokio_postgres::Error) -> bool {
    error.is_closed()
        || std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>())
        // 57P01 admin shutdown (a terminated backend), 57P02 crash shutdown, 57P03 cannot
        // connect now, and class 08: connection exceptions.
        || error
            .code()
            .is_some_and(|code| code.code().starts_with("57P") || code.code().starts_with("08"))
}

impl fmt::Display for Error {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unavailable(cause) => write!(formatter, "database unavailable: {}", chain(cause.as_ref())),
            Error::NotReady { cause, .. } => write!(formatter, "not ready: {}", chain(cause.as_ref())),
            Error::WriteNotApplied(cause) => write!(formatter, "write not applied: {}", chain(cause.as_ref())),
            Error::WriteRefused(cause) => write!(formatter, "write refused: {}", chain(cause.as_ref())),
            Error::ReplayRefused(cause) => write!(formatter, "replay refused: {}", chain(cause.as_ref())),
            Error::WriteOutcomeUnknown(cause) => write!(formatter, "write outcome unknown: {}", chain(cause.as_ref())),
            Error::Internal(cause) => write!(formatter, "internal error: {}", chain(cause.as_ref())),
            Error::SchemaBehind(gap) => write!(formatter, "{gap}"),
            other => write!(formatter, "{}", other.status()),
        }
    }
}

impl std::error::Error for Error {}

/// An error and its sources on one line, for the log.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    for cause in std::iter::successors(error.source(), |cause| cause.source()) {
        let next = cause.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
    }
    // Postgres puts its DETAIL and HINT on lines of their own; a log field or an operator's
    // message is one line.
    if text.contains('\n') {
        text = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(response: HttpResponse) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_problem_body_follows_rfc_9457() {
        let response = Error::NotFound("no user with id x".into()).into_response();
        assert_eq!(response.status(), 404);
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let body = body_of(response).await;
        assert_eq!(
            body,
            serde_json::json!({"type":"about:blank","title":"Not Found","status":404,"detail":"no user with id x"})
        );
    }

    #[tokio::test]
    async fn invalid_fields_are_each_listed() {
        let response =
            Error::InvalidFields(vec![FieldError::new("email", "must contain exactly one @")]).into_response();
        assert_eq!(response.status(), 422);
        let body = body_of(response).await;
        assert_eq!(
            body["errors"],
            serde_json::json!([{"field":"email","message":"must contain exactly one @"}])
        );
    }

    #[test]
    fn every_5xx_names_its_cause_for_the_log() {
        let cause = || "a cause".into();
        let failures = [
            Error::Unavailable(cause()),
            Error::WriteNotApplied(cause()),
            Error::WriteRefused(cause()),
            Error::ReplayRefused(cause()),
            Error::SchemaBehind("migration 0007 is missing".into()),
            Error::NoRoom,
            Error::WriteOutcomeUnknown(cause()),
            Error::NotReady {
                postgres: "down",
                redis: "ok",
                auth: "ok",
                cause: cause(),
            },
            Error::KeysUnavailable,
            Error::Timeout,
            Error::Internal(cause()),
        ];
        for failure in failures {
            assert!(failure.status().is_server_error(), "{failure:?}");
            assert!(failure.log_cause().is_some(), "{failure:?}");
        }
    }

    #[tokio::test]
    async fn internal_causes_are_not_sent_to_the_client() {
        let response = Error::internal("password=hunter2 leaked in a driver message").into_response();
        assert_eq!(response.status(), 500);
        let body = body_of(response).await;
        assert!(!body.to_string().contains("hunter2"));
    }

    #[tokio::test]
    async fn a_bearer_refusal_carries_its_challenge_and_never_a_token() {
        use crate::http::bearer::TokenProblem;
        let cases = [
            (Refusal::NoToken, 401, "Bearer"),
            (Refusal::RepeatedHeader, 400, "Bearer error=\"invalid_request\""),
            (
                Refusal::InvalidToken(TokenProblem::Expired),
                401,
                "Bearer error=\"invalid_token\"",
            ),
            (
                Refusal::InsufficientScope("users:write"),
                403,
                "Bearer error=\"insufficient_scope\", scope=\"users:write\"",
            ),
        ];
        for (refusal, status, challenge) in cases {
            let response = Error::Bearer(refusal).into_response();
            assert_eq!(response.status(), status);
            assert_eq!(response.headers()["www-authenticate"], challenge);
            assert_eq!(body_of(response).await["status"], status);
        }
        let unavailable = Error::KeysUnavailable.into_response();
        assert_eq!(unavailable.status(), 503);
        assert_eq!(unavailable.headers()["retry-after"], "1");
        assert!(unavailable.headers().get("www-authenticate").is_none());
    }

    #[test]
    fn method_not_allowed_carries_allow() {
        let response = Error::MethodNotAllowed { allow: "GET, HEAD" }.into_response();
        assert_eq!(response.headers()["allow"], "GET, HEAD");
    }
}
