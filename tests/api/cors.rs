//! CORS for the browser frontend: an allowed origin's preflight is answered without a token,
//! its responses (errors included) name it and expose the API's headers; any other origin, and
//! every origin when none is allowed, gets no CORS header at all.

use hyper::Method;
use serde_json::json;

use crate::helpers::{TestApp, TestResponse, spawn_app, spawn_app_with_settings};
use crate::support::issuer::{Algorithm, JwksServer, READ_WRITE, SigningKey, claims, jwks};

const FRONTEND: &str = "https://app.example.com";
const LOCAL_FRONTEND: &str = "http://localhost:5173";

/// An app with authentication on that allows the two frontends, and a token for it.
async fn app_for_frontends() -> (TestApp, JwksServer, String) {
    let key = SigningKey::generate(Algorithm::Es256, "key-1");
    let server = JwksServer::start(jwks(&[&key])).await;
    let origins = format!("{FRONTEND}, {LOCAL_FRONTEND}");
    let app = spawn_app_with_settings(
        &[
            ("AUTH_DISABLED", ""),
            ("AUTH_ISSUER", crate::helpers::ISSUER),
            ("AUTH_AUDIENCE", crate::helpers::AUDIENCE),
            ("AUTH_JWKS_URL", &server.jwks_url()),
            ("CORS_ALLOWED_ORIGINS", &origins),
        ],
        |_| {},
    )
    .await;
    (app, server, key.token(&claims("user-1", READ_WRITE)))
}

async fn preflight(app: &TestApp, origin: &str, path: &str, method: &str) -> TestResponse {
    let headers = [
        ("origin", origin),
        ("access-control-request-method", method),
        (
            "access-control-request-headers",
            "authorization, content-type, idempotency-key",
        ),
    ];
    app.request(Method::OPTIONS, path, &headers, "").await
}

fn cors_headers(response: &TestResponse) -> Vec<String> {
    response
        .headers
        .keys()
        .map(|name| name.as_str().to_owned())
        .filter(|name| name.starts_with("access-control-"))
        .collect()
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_without_a_token() {
    let (app, _server, _token) = app_for_frontends().await;
    let cases = [
        (
            FRONTEND,
            "/v1/users/5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d",
            "PATCH",
            "GET, HEAD, PATCH, DELETE",
        ),
        (LOCAL_FRONTEND, "/v1/users", "POST", "GET, HEAD, POST"),
        (FRONTEND, "/health", "GET", "GET, HEAD"),
    ];
    for (origin, path, method, allowed) in cases {
        let response = preflight(&app, origin, path, method).await;
        assert_eq!(response.status, 204, "{origin} {path}");
        assert!(response.body.is_empty());
        assert_eq!(response.header("access-control-allow-origin"), Some(origin));
        assert_eq!(response.header("access-control-allow-methods"), Some(allowed));
        assert_eq!(
            response.header("access-control-allow-headers"),
            Some("authorization, content-type, idempotency-key, traceparent, tracestate, x-request-id")
        );
        assert_eq!(response.header("access-control-max-age"), Some("600"));
        assert_eq!(response.header("vary"), Some("origin"));
        assert!(response.header("access-control-allow-credentials").is_none());
        assert!(response.header("x-request-id").is_some());
    }
}

#[tokio::test]
async fn a_preflight_from_any_other_origin_is_an_options_request_like_any_other() {
    let (app, _server, _token) = app_for_frontends().await;
    for origin in [
        "https://evil.example.com",
        "https://app.example.com.evil.test",
        "http://app.example.com",
        "https://app.example.com:8443",
        "null",
    ] {
        let response = preflight(&app, origin, "/v1/users", "POST").await;
        response.problem(405);
        assert_eq!(response.header("allow"), Some("GET, HEAD, POST"), "{origin}");
        assert_eq!(cors_headers(&response), Vec::<String>::new(), "{origin}");
    }
}

#[tokio::test]
async fn answers_to_an_allowed_origin_name_it_and_expose_the_apis_headers_errors_included() {
    let (app, _server, token) = app_for_frontends().await;
    let caller = app.with_token(&token);
    let created = caller
        .send_json(
            Method::POST,
            "/v1/users",
            &[("origin", FRONTEND)],
            &json!({"name": "Ada"}),
        )
        .await;
    let refused = app.request(Method::GET, "/v1/users", &[("origin", FRONTEND)], "").await;
    let missing = app
        .request(Method::GET, "/nowhere", &[("origin", LOCAL_FRONTEND)], "")
        .await;
    let not_a_preflight = app
        .request(Method::OPTIONS, "/v1/users", &[("origin", FRONTEND)], "")
        .await;

    assert_eq!(created.status, 201);
    refused.problem(401);
    missing.problem(404);
    not_a_preflight.problem(405);
    for (response, origin) in [
        (&created, FRONTEND),
        (&refused, FRONTEND),
        (&missing, LOCAL_FRONTEND),
        (&not_a_preflight, FRONTEND),
    ] {
        assert_eq!(response.header("access-control-allow-origin"), Some(origin));
        assert_eq!(
            response.header("access-control-expose-headers"),
            Some("Location, X-Request-Id, X-Cache, Retry-After, Idempotent-Replayed, WWW-Authenticate")
        );
        assert_eq!(response.header("vary"), Some("origin"));
    }
}

#[tokio::test]
async fn answers_to_other_origins_carry_no_cors_header_but_vary_by_origin() {
    let (app, _server, token) = app_for_frontends().await;
    let caller = app.with_token(&token);
    for origin in [None, Some("https://evil.example.com")] {
        let headers: Vec<(&str, &str)> = origin.map(|origin| ("origin", origin)).into_iter().collect();
        let response = caller.get_with("/v1/users", &headers).await;
        assert_eq!(response.status, 200, "{origin:?}");
        assert_eq!(cors_headers(&response), Vec::<String>::new(), "{origin:?}");
        assert_eq!(
            response.header("vary"),
            Some("origin"),
            "a cache keeps answers apart by origin"
        );
    }
}

#[tokio::test]
async fn with_no_origin_allowed_no_cors_header_is_ever_sent() {
    let app = spawn_app().await;
    let asked = preflight(&app, FRONTEND, "/v1/users", "POST").await;
    let answered = app.request(Method::GET, "/v1/users", &[("origin", FRONTEND)], "").await;

    asked.problem(405);
    assert_eq!(answered.status, 200);
    for response in [&asked, &answered] {
        assert_eq!(cors_headers(response), Vec::<String>::new());
        assert!(response.header("vary").is_none());
    }
}
