//! `GET /v1/users`: keyset pagination, newest first.

use std::collections::HashSet;

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn an_empty_list_has_no_next_cursor() {
    let app = spawn_app().await;
    let response = app.get("/v1/users").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json(), json!({"items": [], "next_cursor": null}));
}

#[tokio::test]
async fn pagination_walks_45_users_without_gaps_or_duplicates() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for n in 0..45 {
        created.push(
            app.create_user(json!({"name": format!("user {n}")})).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut seen = Vec::new();
    let mut path = "/v1/users?limit=10".to_owned();
    let mut pages = 0;
    loop {
        let page = app.get(&path).await;
        assert_eq!(page.status, 200);
        let body = page.json();
        let items = body["items"].as_array().unwrap();
        pages += 1;
        seen.extend(items.iter().map(|user| user["id"].as_str().unwrap().to_owned()));
        match body["next_cursor"].as_str() {
            Some(cursor) => {
                assert_eq!(items.len(), 10, "a page with a next_cursor is full");
                path = format!("/v1/users?limit=10&cursor={cursor}");
            }
            None => break,
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(seen.len(), 45);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 45, "no duplicates");
    created.reverse();
    assert_eq!(seen, created, "newest first");
}

#[tokio::test]
async fn the_default_limit_is_20_and_a_full_last_page_has_no_cursor() {
    let app = spawn_app().await;
    for n in 0..20 {
        app.create_user(json!({"name": format!("user {n}")})).await;
    }
    let body = app.get("/v1/users").await.json();
    assert_eq!(body["items"].as_array().unwrap().len(), 20);
    assert_eq!(
        body["next_cursor"],
        serde_json::Value::Null,
        "nothing follows, so no cursor"
    );
    app.create_user(json!({"name": "one more"})).await;
    let body = app.get("/v1/users").await.json();
    assert!(body["next_cursor"].is_string());
}

#[tokio::test]
async fn users_deleted_between_pages_cause_no_gap() {
    let app = spawn_app().await;
    for n in 0..6 {
        app.create_user(json!({"name": format!("user {n}")})).await;
    }
    let first = app.get("/v1/users?limit=3").await.json();
    let cursor = first["next_cursor"].as_str().unwrap();
    let last_of_first = first["items"][2]["id"].as_str().unwrap();
    assert_eq!(app.delete(&format!("/v1/users/{last_of_first}")).await.status, 204);
    let second = app.get(&format!("/v1/users?limit=3&cursor={cursor}")).await.json();
    assert_eq!(second["items"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn bad_limits_and_cursors_are_a_400() {
    let app = spawn_app().await;
    for query in [
        "limit=0",
        "limit=101",
        "limit=-5",
        "limit=ten",
        "limit=",
        "cursor=bogus",
        "cursor=",
        "limit=5&limit=6",
        "unknown=1",
        "cursor=%27%20OR%201=1--",
    ] {
        app.get(&format!("/v1/users?{query}")).await.problem(400);
    }
    assert_eq!(app.get("/v1/users?limit=100").await.status, 200);
    assert_eq!(app.get("/v1/users?limit=1").await.status, 200);
}
