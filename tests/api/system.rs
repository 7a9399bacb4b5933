//! `/health`, `/ready`, `/metrics`, `/openapi.json`, request ids, 404 and 405.

use hyper::Method;

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_answers_ok_and_touches_nothing() {
    let app = spawn_app().await;
    let response = app.get("/health").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json; charset=utf-8"));
    assert_eq!(response.json(), serde_json::json!({"status": "ok"}));
}

#[tokio::test]
async fn ready_reports_postgres_redis_and_authentication() {
    let app = spawn_app().await;
    let response = app.get("/ready").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.json(),
        serde_json::json!({"status": "ready", "postgres": "ok", "redis": "ok", "auth": "disabled"})
    );
}

#[tokio::test]
async fn ready_says_disabled_when_the_cache_is_off() {
    let app = crate::helpers::spawn_app_with(|config| config.cache.redis = None).await;
    let response = app.get("/ready").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["redis"], "disabled");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    for path in ["/health", "/nowhere", "/v1/users/not-a-uuid"] {
        let response = app.get(path).await;
        let id = response.header("x-request-id").expect("x-request-id is set");
        assert_eq!(id.len(), 36, "{path}: {id}");
    }
}

#[tokio::test]
async fn a_sane_client_request_id_is_echoed_and_an_insane_one_replaced() {
    let app = spawn_app().await;
    let echoed = app
        .request(Method::GET, "/health", &[("x-request-id", "client-42.a:b_c")], "")
        .await;
    assert_eq!(echoed.header("x-request-id"), Some("client-42.a:b_c"));
    let replaced = app
        .request(Method::GET, "/health", &[("x-request-id", "<script>")], "")
        .await;
    assert_ne!(replaced.header("x-request-id"), Some("<script>"));
    let too_long = "a".repeat(129);
    let replaced = app
        .request(Method::GET, "/health", &[("x-request-id", too_long.as_str())], "")
        .await;
    assert_eq!(replaced.header("x-request-id").unwrap().len(), 36);
    // Two lines, each sane: a proxy in front may have logged either, so neither is taken.
    let twice = [("x-request-id", "first-1"), ("x-request-id", "second-2")];
    let replaced = app.request(Method::GET, "/health", &twice, "").await;
    assert_eq!(replaced.header("x-request-id").unwrap().len(), 36);
}

#[tokio::test]
async fn unknown_paths_get_a_404_problem() {
    let app = spawn_app().await;
    for path in ["/", "/nowhere", "/v1/users/", "/v1/users/a/b", "/v2/users", "/health/"] {
        app.get(path).await.problem(404);
    }
}

#[tokio::test]
async fn known_paths_with_the_wrong_method_get_405_with_allow() {
    let app = spawn_app().await;
    let id = "5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d";
    let cases = [
        (Method::POST, "/health".to_owned(), "GET, HEAD"),
        (Method::DELETE, "/ready".to_owned(), "GET, HEAD"),
        (Method::PUT, "/metrics".to_owned(), "GET, HEAD"),
        (Method::PUT, "/v1/users".to_owned(), "GET, HEAD, POST"),
        (Method::DELETE, "/v1/users".to_owned(), "GET, HEAD, POST"),
        (Method::POST, format!("/v1/users/{id}"), "GET, HEAD, PATCH, DELETE"),
        (Method::PUT, format!("/v1/users/{id}"), "GET, HEAD, PATCH, DELETE"),
    ];
    for (method, path, allow) in cases {
        let response = app.request(method.clone(), &path, &[], "").await;
        response.problem(405);
        assert_eq!(response.header("allow"), Some(allow), "{method} {path}");
    }
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let app = spawn_app().await;
    let response = app.request(Method::HEAD, "/health", &[], "").await;
    assert_eq!(response.status, 200);
    assert!(response.body.is_empty());
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_status() {
    let app = spawn_app().await;
    app.get("/v1/users/5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d")
        .await
        .problem(404);
    app.get("/v1/users/5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9e")
        .await
        .problem(404);
    let response = app.get("/metrics").await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(response.body.to_vec()).unwrap();
    for expected in [
        r#"gravity_http_requests_total{method="GET",route="/v1/users/{id}",status="404"} 2"#,
        r#"gravity_http_request_duration_seconds_count{route="/v1/users/{id}"} 2"#,
        "# TYPE gravity_http_request_duration_seconds histogram",
        "gravity_cache_hits_total 0",
        "gravity_cache_misses_total",
        "gravity_cache_errors_total 0",
        "gravity_db_pool_connections{pool=\"read\",state=\"in_use\"}",
        "gravity_db_pool_connections{pool=\"write\",state=\"idle\"}",
        "gravity_cache_fences_left_total 0",
        "gravity_cache_bad_values_total{kind=\"wrong_type\"} 0",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

#[tokio::test]
async fn the_openapi_description_is_served_as_json() {
    let app = spawn_app().await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status, 200);
    let spec = response.json();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(spec["paths"]["/v1/users/{id}"].is_object());
}

#[tokio::test]
async fn metrics_include_the_build_the_process_and_the_runtime() {
    let app = spawn_app().await;
    let text = String::from_utf8(app.get("/metrics").await.body.to_vec()).unwrap();
    let build = format!(
        "gravity_build_info{{version=\"{}\",revision=\"{}\"}} 1\n",
        gravity_bff::build_info::VERSION,
        gravity_bff::build_info::REVISION
    );
    assert!(text.contains(&build), "missing {build:?} in\n{text}");
    for (family, kind) in [
        ("process_cpu_seconds_total", "counter"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_start_time_seconds", "gauge"),
        ("gravity_runtime_workers", "gauge"),
        ("gravity_runtime_alive_tasks", "gauge"),
        ("gravity_runtime_global_queue_depth", "gauge"),
        ("gravity_runtime_worker_busy_seconds_total", "counter"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "missing {family} in\n{text}"
        );
    }
    let value = |name: &str| -> f64 {
        let line = text.lines().find(|line| line.starts_with(&format!("{name} "))).unwrap();
        line[name.len() + 1..].parse().unwrap()
    };
    assert!(value("process_open_fds") > 0.0 && value("process_open_fds") <= value("process_max_fds"));
    assert!(value("process_resident_memory_bytes") > 0.0);
}

#[tokio::test]
async fn the_served_openapi_document_keeps_the_yaml_order() {
    let app = spawn_app().await;
    let served = String::from_utf8(app.get("/openapi.json").await.body.to_vec()).unwrap();
    let yaml = include_str!("../../openapi.yaml");
    // Top-level keys start a line; paths are the keys indented by two under `paths:`.
    let top_level: Vec<&str> = yaml
        .lines()
        .filter(|line| line.starts_with(|first: char| first.is_ascii_lowercase()))
        .filter_map(|line| line.split(':').next())
        .collect();
    let paths: Vec<&str> = yaml
        .lines()
        .filter(|line| line.starts_with("  /"))
        .filter_map(|line| line.trim().strip_suffix(':'))
        .collect();
    assert!(top_level.len() >= 5 && paths.len() >= 6, "{top_level:?} {paths:?}");
    for keys in [top_level, paths] {
        let positions: Vec<usize> = keys
            .iter()
            .map(|key| {
                served
                    .find(&format!("\"{key}\":"))
                    .unwrap_or_else(|| panic!("{key} is served"))
            })
            .collect();
        assert!(positions.is_sorted(), "served in another order than {keys:?}");
    }
}
