//! `PATCH` and `DELETE /v1/users/{id}`.

use hyper::Method;
use serde_json::{Value, json};

use crate::helpers::spawn_app;
use crate::users_create::count_users;

#[tokio::test]
async fn patch_changes_only_the_fields_given_and_moves_updated_at() {
    let app = spawn_app().await;
    let created = app
        .create_user(json!({"name": "Ada", "email": "ada@example.com", "avatar_url": "https://x.io/a.png"}))
        .await;
    let path = format!("/v1/users/{}", created["id"].as_str().unwrap());
    let response = app.patch_json(&path, &json!({"name": "Ada King"})).await;
    assert_eq!(response.status, 200);
    let patched = response.json();
    assert_eq!(patched["name"], "Ada King");
    assert_eq!(patched["email"], "ada@example.com");
    assert_eq!(patched["avatar_url"], "https://x.io/a.png");
    assert_eq!(patched["created_at"], created["created_at"]);
    assert!(patched["updated_at"].as_str().unwrap() > created["updated_at"].as_str().unwrap());
}

#[tokio::test]
async fn patch_with_null_clears_email_and_avatar_url() {
    let app = spawn_app().await;
    let created = app
        .create_user(json!({"name": "Ada", "email": "ada@example.com", "avatar_url": "https://x.io/a.png"}))
        .await;
    let path = format!("/v1/users/{}", created["id"].as_str().unwrap());
    let patched = app
        .patch_json(&path, &json!({"email": null, "avatar_url": null}))
        .await
        .json();
    assert_eq!(patched["email"], Value::Null);
    assert_eq!(patched["avatar_url"], Value::Null);
    assert_eq!(patched["name"], "Ada");
    // The cleared email can be used again.
    app.create_user(json!({"name": "Other", "email": "ada@example.com"}))
        .await;
}

#[tokio::test]
async fn an_empty_patch_changes_nothing_and_returns_200() {
    let app = spawn_app().await;
    let created = app.create_user(json!({"name": "Ada"})).await;
    let path = format!("/v1/users/{}", created["id"].as_str().unwrap());
    let response = app.patch_json(&path, &json!({})).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json(), created);
}

#[tokio::test]
async fn patch_errors_follow_the_contract() {
    let app = spawn_app().await;
    let ada = app
        .create_user(json!({"name": "Ada", "email": "ada@example.com"}))
        .await;
    let grace = app.create_user(json!({"name": "Grace"})).await;
    let grace_path = format!("/v1/users/{}", grace["id"].as_str().unwrap());
    let unknown = "/v1/users/5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d";

    app.patch_json("/v1/users/nope", &json!({"name": "x"}))
        .await
        .problem(400);
    let malformed = app
        .request(Method::PATCH, &grace_path, &[("content-type", "application/json")], "{")
        .await;
    malformed.problem(400);
    app.patch_json(unknown, &json!({"name": "x"})).await.problem(404);
    app.patch_json(unknown, &json!({})).await.problem(404);
    app.patch_json(&grace_path, &json!({"email": "ADA@example.com"}))
        .await
        .problem(409);
    let big = json!({"name": "a".repeat(70_000)});
    app.patch_json(&grace_path, &big).await.problem(413);
    app.request(Method::PATCH, &grace_path, &[("content-type", "text/plain")], "{}")
        .await
        .problem(415);
    // The id in the path comes before the body; the Idempotency-Key after the fields.
    app.request(Method::PATCH, "/v1/users/nope", &[("content-type", "text/plain")], "{}")
        .await
        .problem(400);
    let json_with_bad_key = [("content-type", "application/json"), ("idempotency-key", "")];
    app.request(Method::PATCH, &grace_path, &json_with_bad_key, r#"{"name":null}"#)
        .await
        .problem(422);
    app.request(Method::PATCH, &grace_path, &json_with_bad_key, r#"{"name":"x"}"#)
        .await
        .problem(400);
    let invalid = app
        .patch_json(&grace_path, &json!({"name": null, "email": "x", "id": "y"}))
        .await
        .problem(422);
    let mut fields: Vec<&str> = invalid["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["email", "id", "name"]);

    let unchanged = app.get(&grace_path).await.json();
    assert_eq!(unchanged, grace, "bad input loses nothing");
    let ada_path = format!("/v1/users/{}", ada["id"].as_str().unwrap());
    assert_eq!(
        app.get(&ada_path).await.json()["email"],
        "ada@example.com",
        "the taken email stayed Ada's"
    );
}

#[tokio::test]
async fn delete_returns_204_and_the_row_is_gone() {
    let app = spawn_app().await;
    let created = app
        .create_user(json!({"name": "Ada", "email": "ada@example.com"}))
        .await;
    let path = format!("/v1/users/{}", created["id"].as_str().unwrap());
    let response = app.delete(&path).await;
    assert_eq!(response.status, 204);
    assert!(response.body.is_empty());
    assert_eq!(count_users(&app).await, 0);
    app.get(&path).await.problem(404);
    app.create_user(json!({"name": "Ada again", "email": "ada@example.com"}))
        .await;
}

#[tokio::test]
async fn delete_errors_follow_the_contract() {
    let app = spawn_app().await;
    app.delete("/v1/users/not-a-uuid").await.problem(400);
    app.delete("/v1/users/5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d")
        .await
        .problem(404);
}
