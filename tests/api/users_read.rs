//! `GET /v1/users/{id}`.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn get_returns_the_user_created() {
    let app = spawn_app().await;
    let created = app
        .create_user(json!({"name": "Ada", "email": "ada@example.com"}))
        .await;
    let response = app.get(&format!("/v1/users/{}", created["id"].as_str().unwrap())).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json(), created);
}

#[tokio::test]
async fn no_answer_about_users_may_be_stored_by_a_browser_or_shared_cache() {
    let app = spawn_app().await;
    let created = app.post_json("/v1/users", &json!({"name": "Ada"})).await;
    let path = format!("/v1/users/{}", created.json()["id"].as_str().unwrap());
    let answers = [
        created,
        app.get(&path).await,
        app.get(&path).await,
        app.get("/v1/users").await,
        app.patch_json(&path, &json!({"name": "Ada L."})).await,
        app.get("/v1/users/not-a-uuid").await,
        app.delete(&path).await,
        app.get(&path).await,
    ];

    let statuses: Vec<u16> = answers.iter().map(|answer| answer.status.as_u16()).collect();
    assert_eq!(statuses, [201, 200, 200, 200, 200, 400, 204, 404]);
    for answer in &answers {
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{}", answer.status);
    }
    assert_eq!(
        app.get("/health").await.header("cache-control"),
        None,
        "not a user's data"
    );
}

#[tokio::test]
async fn get_accepts_ids_in_any_letter_case() {
    let app = spawn_app().await;
    let created = app.create_user(json!({"name": "Ada"})).await;
    let upper = created["id"].as_str().unwrap().to_uppercase();
    let response = app.get(&format!("/v1/users/{upper}")).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["id"], created["id"], "responses use lower case");
}

#[tokio::test]
async fn get_returns_400_for_a_malformed_id() {
    let app = spawn_app().await;
    for id in [
        "42",
        "not-a-uuid",
        "5b6c1f0e9a7d4c3b8e210f4d6a7b8c9d",
        "5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9",
        "%27%20OR%201=1",
    ] {
        app.get(&format!("/v1/users/{id}")).await.problem(400);
    }
}

#[tokio::test]
async fn get_returns_404_for_an_unknown_id() {
    let app = spawn_app().await;
    let problem = app
        .get("/v1/users/5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d")
        .await
        .problem(404);
    assert_eq!(problem["title"], "Not Found");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d")
    );
}

#[tokio::test]
async fn concurrent_uncached_reads_each_get_their_own_user_or_404() {
    let app = crate::helpers::spawn_app_with(|config| config.cache.redis = None).await;
    let mut expected = Vec::new();
    for number in 0..25 {
        let user = app.create_user(json!({"name": format!("reader {number}")})).await;
        expected.push((user["id"].as_str().unwrap().to_owned(), Some(user)));
        expected.push((uuid_like(number), None));
    }
    let mut reads = tokio::task::JoinSet::new();
    for (index, (id, _)) in expected.iter().enumerate() {
        let (address, path) = (app.address.clone(), format!("/v1/users/{id}"));
        reads.spawn(async move { (index, crate::helpers::http_get_json(&address, &path).await) });
    }
    for (index, (status, body)) in reads.join_all().await {
        match &expected[index].1 {
            Some(user) => assert_eq!((status, &body), (200, user)),
            None => assert_eq!(status, 404, "{body}"),
        }
    }
}

fn uuid_like(number: u32) -> String {
    format!("00000000-0000-4000-8000-{number:012}")
}
