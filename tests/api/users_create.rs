//! `POST /v1/users`: 201 with Location, and every error the contract lists.

use hyper::Method;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn create_returns_201_with_location_and_the_user() {
    let app = spawn_app().await;
    let response = app
        .post_json("/v1/users", &json!({"name": "  Ada Lovelace ", "email": "Ada@Example.COM", "avatar_url": "https://img.example/ada.png"}))
        .await;
    assert_eq!(response.status, 201);
    let user = response.json();
    let id = user["id"].as_str().unwrap();
    assert_eq!(response.header("location"), Some(format!("/v1/users/{id}").as_str()));
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["avatar_url"], "https://img.example/ada.png");
    assert_eq!(user["created_at"], user["updated_at"]);
    let keys: Vec<&String> = user.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 6, "exactly the contract's keys: {keys:?}");
    let created_at = user["created_at"].as_str().unwrap();
    assert!(
        created_at.ends_with('Z') && created_at.len() == 27,
        "microseconds, UTC: {created_at}"
    );

    let row = app
        .database
        .client
        .query_one("SELECT name, email FROM users WHERE id = $1::text::uuid", &[&id])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Ada Lovelace");
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("ada@example.com"));
}

#[tokio::test]
async fn create_with_only_a_name_leaves_the_rest_null() {
    let app = spawn_app().await;
    let user = app.create_user(json!({"name": "Grace"})).await;
    assert_eq!(user["email"], serde_json::Value::Null);
    assert_eq!(user["avatar_url"], serde_json::Value::Null);
}

#[tokio::test]
async fn malformed_or_non_object_json_is_a_400() {
    let app = spawn_app().await;
    for body in [
        &b"{"[..],
        b"not json",
        b"[]",
        b"\"Ada\"",
        b"42",
        b"null",
        br#"{"name":"a","name":"b"}"#,
        b"",
        b"{}{}",
    ] {
        let response = app
            .request(Method::POST, "/v1/users", &[("content-type", "application/json")], body)
            .await;
        response.problem(400);
    }
    assert_eq!(count_users(&app).await, 0);
}

#[tokio::test]
async fn a_body_not_declared_as_json_is_a_415() {
    let app = spawn_app().await;
    let body = br#"{"name":"Ada"}"#;
    app.request(Method::POST, "/v1/users", &[], &body[..])
        .await
        .problem(415);
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "application/jsonp"] {
        app.request(Method::POST, "/v1/users", &[("content-type", content_type)], &body[..])
            .await
            .problem(415);
    }
    let accepted = app
        .request(
            Method::POST,
            "/v1/users",
            &[("content-type", "application/json; charset=utf-8")],
            &body[..],
        )
        .await;
    assert_eq!(accepted.status, 201);
}

#[tokio::test]
async fn a_body_over_64_kib_is_a_413_with_or_without_content_length() {
    let app = spawn_app().await;
    let name = "a".repeat(70_000);
    let body = serde_json::to_vec(&json!({ "name": name })).unwrap();
    app.request(
        Method::POST,
        "/v1/users",
        &[("content-type", "application/json")],
        body.clone(),
    )
    .await
    .problem(413);
    let chunked = crate::faults::raw_chunked_post(app.port, "/v1/users", &body).await;
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
    assert_eq!(count_users(&app).await, 0);
}

#[tokio::test]
async fn a_body_of_exactly_64_kib_is_read() {
    let app = spawn_app().await;
    // Padding with spaces keeps the JSON valid; only the size matters here.
    let mut body = br#"{"name":"Ada"}"#.to_vec();
    body.resize(65_536, b' ');
    let response = app
        .request(Method::POST, "/v1/users", &[("content-type", "application/json")], body)
        .await;
    assert_eq!(response.status, 201);
}

#[tokio::test]
async fn invalid_fields_are_a_422_listing_each_field() {
    let app = spawn_app().await;
    let cases = [
        (json!({}), vec!["name"]),
        (json!({"name": "   "}), vec!["name"]),
        (json!({"name": "a".repeat(256)}), vec!["name"]),
        (json!({"name": 7}), vec!["name"]),
        (json!({"name": "Ada", "email": "no-at-sign"}), vec!["email"]),
        (json!({"name": "Ada", "email": "two@@signs"}), vec!["email"]),
        (json!({"name": "Ada", "email": "@example.com"}), vec!["email"]),
        (
            json!({"name": "Ada", "email": format!("{}@x.io", "a".repeat(255))}),
            vec!["email"],
        ),
        (
            json!({"name": "Ada", "avatar_url": "ftp://example.com/a.png"}),
            vec!["avatar_url"],
        ),
        (json!({"name": "Ada", "avatar_url": "https://"}), vec!["avatar_url"]),
        (
            json!({"name": "Ada", "avatar_url": format!("https://x.io/{}", "a".repeat(2048))}),
            vec!["avatar_url"],
        ),
        (
            json!({"name": "Ada", "id": "5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d"}),
            vec!["id"],
        ),
        (
            json!({"name": "Ada", "created_at": "2020-01-01T00:00:00Z"}),
            vec!["created_at"],
        ),
        (
            json!({"name": "Ada", "updated_at": "2020-01-01T00:00:00Z"}),
            vec!["updated_at"],
        ),
        (json!({"name": "Ada", "role": "admin"}), vec!["role"]),
        (
            json!({"name": "", "email": "x", "avatar_url": "y", "extra": 1}),
            vec!["name", "email", "avatar_url", "extra"],
        ),
        (json!({"name": "Ada\u{0}"}), vec!["name"]),
    ];
    for (body, fields) in cases {
        let response = app.post_json("/v1/users", &body).await;
        let problem = response.problem(422);
        let mut listed: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|error| {
                assert!(error["message"].is_string());
                error["field"].as_str().unwrap()
            })
            .collect();
        listed.sort_unstable();
        let mut fields = fields;
        fields.sort_unstable();
        assert_eq!(listed, fields, "{body}");
    }
    assert_eq!(count_users(&app).await, 0);
}

#[tokio::test]
async fn names_that_show_nothing_and_emails_that_hide_something_are_a_422() {
    let app = spawn_app().await;
    let blank_names = [
        ("ZERO WIDTH SPACE", "\u{200b}"),
        ("HANGUL FILLER", "\u{3164}"),
        ("HALFWIDTH HANGUL FILLER", "\u{ffa0}\u{ffa0}"),
        ("BRAILLE PATTERN BLANK", "\u{2800}"),
        ("BYTE ORDER MARK", "\u{feff}"),
        ("joiners and a word joiner", "\u{200c}\u{200d}\u{2060}"),
        ("a right-to-left override", "\u{202e}"),
        ("variation selectors", "\u{fe0f}\u{e0100}"),
        ("fillers among spaces", " \u{3164} \u{3000}\u{200b} "),
    ];
    for (what, name) in blank_names {
        let response = app.post_json("/v1/users", &json!({ "name": name })).await;
        let problem = response.problem(422);
        assert_eq!(problem["errors"][0]["field"], "name", "{what}");
        assert_eq!(
            problem["errors"][0]["message"], "must contain a visible character",
            "{what}"
        );
    }
    let hiding_emails = [
        ("ZERO WIDTH SPACE", "ada\u{200b}@example.org"),
        ("ZERO WIDTH JOINER", "ada@exa\u{200d}mple.org"),
        ("a right-to-left override", "ada@\u{202e}gro.elpmaxe"),
        ("a left-to-right isolate", "\u{2066}ada@example.org\u{2069}"),
        ("a soft hyphen", "a\u{ad}da@example.org"),
    ];
    for (what, email) in hiding_emails {
        let response = app
            .post_json("/v1/users", &json!({"name": "Ada", "email": email}))
            .await;
        assert_eq!(response.problem(422)["errors"][0]["field"], "email", "{what}");
    }
    assert_eq!(count_users(&app).await, 0, "nothing was stored");

    // Inside a visible name they are legitimate, and kept as sent.
    for name in ["👩\u{200d}💻", "\u{2764}\u{fe0f}", "\u{200f}שרה", "Ada\u{200b}"] {
        assert_eq!(app.create_user(json!({ "name": name })).await["name"], name);
    }
    let user = app.create_user(json!({"name": "Ada"})).await;
    let path = format!("/v1/users/{}", user["id"].as_str().unwrap());
    app.patch_json(&path, &json!({"name": "\u{3164}"})).await.problem(422);
    app.patch_json(&path, &json!({"email": "ada\u{200b}@example.org"}))
        .await
        .problem(422);
}

#[tokio::test]
async fn a_taken_email_is_a_409_regardless_of_case() {
    let app = spawn_app().await;
    app.create_user(json!({"name": "Ada", "email": "ada@example.com"}))
        .await;
    let response = app
        .post_json("/v1/users", &json!({"name": "Imposter", "email": "ADA@example.com"}))
        .await;
    response.problem(409);
    assert_eq!(count_users(&app).await, 1);
}

#[tokio::test]
async fn a_taken_email_is_a_409_however_its_accents_are_encoded() {
    let app = spawn_app().await;
    let created = app
        .create_user(json!({"name": "José", "email": "jos\u{e9}@example.es"}))
        .await;
    let response = app
        .post_json(
            "/v1/users",
            &json!({"name": "Imposter", "email": "JOSE\u{301}@example.es"}),
        )
        .await;
    response.problem(409);
    assert_eq!(count_users(&app).await, 1);
    assert_eq!(created["email"], "jos\u{e9}@example.es");
    // Stored in NFC however it was typed.
    let other = app
        .create_user(json!({"name": "Zoë", "email": "ZOE\u{308}@example.nl"}))
        .await;
    assert_eq!(other["email"], "zo\u{eb}@example.nl");
}

#[tokio::test]
async fn twenty_concurrent_creates_with_one_email_give_exactly_one_201() {
    let app = spawn_app().await;
    let attempts = (0..20).map(|n| {
        let body = json!({"name": format!("racer {n}"), "email": "race@example.com"});
        let app = &app;
        async move { app.post_json("/v1/users", &body).await.status.as_u16() }
    });
    let mut statuses = futures_join_all(attempts).await;
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|&&status| status == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&status| status == 409).count(),
        19,
        "{statuses:?}"
    );
    assert_eq!(count_users(&app).await, 1);
}

/// Runs futures concurrently on this task (no extra dependency for `join_all`).
pub async fn futures_join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut all_done = true;
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(context) {
                    std::task::Poll::Ready(output) => {
                        *result = Some(output);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.extend(results.into_iter().map(Option::unwrap));
    outputs
}

pub async fn count_users(app: &crate::helpers::TestApp) -> i64 {
    app.database
        .client
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0)
}
