//! Bearer tokens: who may read and write users. Real keys (RSA from openssl, EC and Ed25519
//! from ring), a real JWKS endpoint (tests/support/issuer.rs), the real service. Every attack
//! gets its documented status and changes nothing; keys rotate, and the issuer goes down and
//! comes back, without a restart.

use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestResponse, eventually, spawn_app_with_auth, spawn_app_with_settings};
use crate::hostile::exchange;
use crate::slow_bodies::trickle;
use crate::support::issuer::{
    Algorithm, JwksServer, READ_WRITE, SigningKey, b64, claims, jwks, now, signing_input, with,
};
use crate::support::metric_value;
use crate::support::proxy::Proxy;
use crate::users_create::count_users;

/// Both scopes, for `user-1`, signed by `key`.
fn token(key: &SigningKey) -> String {
    key.token(&claims("user-1", READ_WRITE))
}

/// An app checking tokens of one ES256 key, and that key.
async fn app_with_one_key() -> (TestApp, JwksServer, SigningKey) {
    let key = SigningKey::generate(Algorithm::Es256, "key-1");
    let server = JwksServer::start(jwks(&[&key])).await;
    let app = spawn_app_with_auth(&server.jwks_url(), |_| {}).await;
    (app, server, key)
}

async fn metric(app: &TestApp, series: &str) -> f64 {
    let page = String::from_utf8_lossy(&app.get("/metrics").await.body).into_owned();
    metric_value(&page, series).unwrap_or(0.0)
}

#[tokio::test]
async fn every_user_route_needs_a_token_and_the_operational_routes_stay_open() {
    let (app, _server, _key) = app_with_one_key().await;
    let id = "5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d";
    let user = format!("/v1/users/{id}");
    let protected = [
        (Method::GET, "/v1/users"),
        (Method::HEAD, "/v1/users"),
        (Method::POST, "/v1/users"),
        (Method::GET, user.as_str()),
        (Method::HEAD, user.as_str()),
        (Method::PATCH, user.as_str()),
        (Method::DELETE, user.as_str()),
        (Method::GET, "/v1/users/not-a-uuid"),
    ];
    for (method, path) in protected {
        let response = app
            .request(method.clone(), path, &[("content-type", "application/json")], "{}")
            .await;
        assert_eq!(response.status, 401, "{method} {path}");
        assert_eq!(response.header("www-authenticate"), Some("Bearer"), "{method} {path}");
        if method != Method::HEAD {
            response.problem(401);
        }
    }
    for path in ["/health", "/ready", "/metrics", "/openapi.json"] {
        assert_eq!(app.get(path).await.status, 200, "{path}");
    }
    assert_eq!(count_users(&app).await, 0);
    assert_eq!(
        metric(&app, r#"gravity_auth_refusals_total{reason="no_token"}"#).await,
        8.0
    );
    assert_eq!(
        metric(
            &app,
            r#"gravity_http_requests_total{method="POST",route="/v1/users",status="401"}"#
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn a_token_with_both_scopes_reads_and_writes_users_whatever_the_key_type() {
    let keys = [
        SigningKey::generate(Algorithm::Rs256, "rsa"),
        SigningKey::generate(Algorithm::Es256, "ec"),
        SigningKey::generate(Algorithm::EdDsa, "ed"),
    ];
    let server = JwksServer::start(jwks(&keys.iter().collect::<Vec<_>>())).await;
    let app = spawn_app_with_auth(&server.jwks_url(), |_| {}).await;

    for key in &keys {
        let caller = app.with_token(&token(key));
        let created = caller
            .send_json(Method::POST, "/v1/users", &[], &json!({"name": key.kid}))
            .await;
        assert_eq!(created.status, 201, "{}: {:?}", key.kid, created.body);
        let path = created.header("location").unwrap().to_owned();
        assert_eq!(caller.get(&path).await.status, 200, "{}", key.kid);
        assert_eq!(caller.get("/v1/users").await.status, 200, "{}", key.kid);
        let patched = caller
            .send_json(Method::PATCH, &path, &[], &json!({"name": "renamed"}))
            .await;
        assert_eq!(patched.status, 200, "{}", key.kid);
        assert_eq!(caller.delete(&path).await.status, 204, "{}", key.kid);
    }
    assert_eq!(count_users(&app).await, 0);
}

#[tokio::test]
async fn each_bad_token_is_refused_with_invalid_token_and_writes_nothing() {
    let rsa = SigningKey::generate(Algorithm::Rs256, "rsa");
    let ec = SigningKey::generate(Algorithm::Es256, "ec");
    let stranger = SigningKey::generate(Algorithm::Es256, "ec");
    let server = JwksServer::start(jwks(&[&rsa, &ec])).await;
    let app = spawn_app_with_auth(&server.jwks_url(), |_| {}).await;
    let good = claims("user-1", READ_WRITE);
    let unsigned = format!("{}.", signing_input(&json!({"alg": "none", "typ": "JWT"}), &good));
    let hmac_header = json!({"alg": "HS256", "typ": "JWT", "kid": "rsa"});
    let hmac_input = signing_input(&hmac_header, &good);
    let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &rsa.public_bytes());
    let hmac_with_public_key = format!(
        "{hmac_input}.{}",
        b64(ring::hmac::sign(&hmac_key, hmac_input.as_bytes()).as_ref())
    );
    let tampered = {
        let signed = token(&ec);
        let (_, rest) = signed.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let admin = with(&good, "sub", json!("admin"));
        format!("{}.{signature}", signing_input(&ec.header(), &admin))
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("expired", ec.token(&with(&good, "exp", json!(now() - 120))), "expired"),
        (
            "not yet valid",
            ec.token(&with(&good, "nbf", json!(now() + 120))),
            "not_yet_valid",
        ),
        (
            "for another audience",
            ec.token(&with(&good, "aud", json!("another-api"))),
            "wrong_audience",
        ),
        (
            "from another issuer",
            ec.token(&with(&good, "iss", json!("https://evil.test"))),
            "wrong_issuer",
        ),
        ("tampered", tampered, "bad_signature"),
        (
            "signed by a stranger's key under a known kid",
            stranger.token(&good),
            "bad_signature",
        ),
        ("alg none", unsigned, "disallowed_algorithm"),
        (
            "HMAC with the RSA public key",
            hmac_with_public_key,
            "disallowed_algorithm",
        ),
        (
            "an EC key's kid with RS256",
            rsa.token_with_header(&json!({"alg": "RS256", "kid": "ec"}), &good),
            "disallowed_algorithm",
        ),
        (
            "an unknown kid",
            SigningKey::generate(Algorithm::Es256, "nobody").token(&good),
            "unknown_key",
        ),
        (
            "without sub",
            ec.token(&json!({"iss": good["iss"], "aud": good["aud"], "exp": good["exp"]})),
            "bad_claims",
        ),
        (
            "with an array of issuers, ours among them",
            ec.token(&with(&good, "iss", json!([good["iss"], "https://evil.test"]))),
            "bad_claims",
        ),
        (
            "with a scope claim that is neither a string nor an array of strings",
            ec.token(&with(&good, "scope", json!(7))),
            "bad_claims",
        ),
        (
            "with crit, even as null",
            ec.token_with_header(&json!({"alg": "ES256", "kid": "ec", "crit": null}), &good),
            "malformed",
        ),
        (
            "with a header jsonwebtoken cannot read (typ a number)",
            ec.token_with_header(&json!({"alg": "ES256", "kid": "ec", "typ": 5}), &good),
            "malformed",
        ),
        (
            "signed, over a payload that is not JSON",
            ec.token_over(b"not json"),
            "malformed",
        ),
        ("not a JWT", "abc.def".to_owned(), "malformed"),
        ("16,000 bytes, within the head limit", "a".repeat(16_000), "oversized"),
    ];

    for (name, token, reason) in &cases {
        let caller = app.with_token(token);
        let before = metric(&app, &format!("gravity_auth_refusals_total{{reason=\"{reason}\"}}")).await;
        let created = caller
            .send_json(Method::POST, "/v1/users", &[], &json!({"name": name}))
            .await;
        let body = created.problem(401);
        assert_eq!(
            created.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\""),
            "{name}"
        );
        assert!(
            !body.to_string().contains(token.as_str()),
            "{name}: the token is never echoed"
        );
        let after = metric(&app, &format!("gravity_auth_refusals_total{{reason=\"{reason}\"}}")).await;
        assert_eq!(after - before, 1.0, "{name} is counted as {reason}");
    }
    assert_eq!(count_users(&app).await, 0, "no refused request wrote anything");
}

#[tokio::test]
async fn a_token_is_read_only_from_one_authorization_header_with_the_bearer_scheme() {
    let (app, _server, key) = app_with_one_key().await;
    let token = token(&key);
    let cases: Vec<(&str, Vec<String>, u16, Option<&str>)> = vec![
        ("lower-case scheme", vec![format!("bearer {token}")], 200, None),
        ("upper-case scheme", vec![format!("BEARER {token}")], 200, None),
        (
            "Basic",
            vec!["Basic dXNlcjpwYXNzd29yZA==".to_owned()],
            401,
            Some("Bearer"),
        ),
        ("no space", vec![format!("Bearer{token}")], 401, Some("Bearer")),
        (
            "the scheme alone",
            vec!["Bearer".to_owned()],
            401,
            Some("Bearer error=\"invalid_token\""),
        ),
        (
            "two tokens in one header",
            vec![format!("Bearer {token} {token}")],
            401,
            Some("Bearer error=\"invalid_token\""),
        ),
        (
            "two Authorization headers",
            vec![format!("Bearer {token}"), format!("Bearer {token}")],
            400,
            Some("Bearer error=\"invalid_request\""),
        ),
    ];
    for (name, values, status, challenge) in cases {
        let headers: Vec<(&str, &str)> = values.iter().map(|value| ("authorization", value.as_str())).collect();
        let response = app.request(Method::GET, "/v1/users", &headers, "").await;
        assert_eq!(response.status, status, "{name}: {:?}", response.body);
        assert_eq!(response.header("www-authenticate"), challenge, "{name}");
    }
    let in_the_query = app.get(&format!("/v1/users?access_token={token}")).await;
    assert_eq!(in_the_query.status, 401, "a token in the query is not read");
}

#[tokio::test]
async fn a_head_of_40_kib_with_its_token_is_refused_by_hyper_before_routing() {
    let (app, _server, _key) = app_with_one_key().await;
    let request = format!(
        "GET /v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        "a".repeat(40 << 10)
    );
    let answer = exchange(app.port, request.as_bytes()).await;
    assert_eq!(answer.statuses, vec![431], "{}", answer.text);
}

#[tokio::test]
async fn a_token_without_the_routes_scope_is_403_insufficient_scope() {
    let (app, _server, key) = app_with_one_key().await;
    let writer = app.with_token(&token(&key));
    let created = writer
        .send_json(Method::POST, "/v1/users", &[], &json!({"name": "Ada"}))
        .await;
    let path = created.header("location").unwrap().to_owned();
    let reader = key.token(&claims("reader", "openid users:read"));
    let only_writes = key.token(&with(&claims("writer", ""), "scp", json!(["users:write"])));
    let nothing = key.token(&claims("nobody", "openid profile"));
    let cases = [
        (&reader, Method::POST, "/v1/users", "users:write"),
        (&reader, Method::PATCH, path.as_str(), "users:write"),
        (&reader, Method::DELETE, path.as_str(), "users:write"),
        (&only_writes, Method::GET, path.as_str(), "users:read"),
        (&only_writes, Method::GET, "/v1/users", "users:read"),
        (&nothing, Method::GET, path.as_str(), "users:read"),
        (&nothing, Method::POST, "/v1/users", "users:write"),
    ];
    for (token, method, path, scope) in cases {
        let response = app
            .with_token(token)
            .send_json(method.clone(), path, &[], &json!({"name": "Eve"}))
            .await;
        response.problem(403);
        assert_eq!(
            response.header("www-authenticate").unwrap(),
            format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\""),
            "{method} {path}"
        );
    }
    assert_eq!(app.with_token(&reader).get(&path).await.status, 200);
    let after = app.with_token(&reader).get(&path).await.json();
    assert_eq!(after["name"], "Ada", "no 403 changed anything");
    assert_eq!(count_users(&app).await, 1);
    assert_eq!(
        metric(&app, r#"gravity_auth_refusals_total{reason="insufficient_scope"}"#).await,
        7.0
    );
}

#[tokio::test]
async fn an_idempotency_key_replayed_by_another_subject_never_gets_the_first_answer() {
    let (app, _server, key) = app_with_one_key().await;
    let alice = app.with_token(&key.token(&claims("alice", READ_WRITE)));
    let mallory = app.with_token(&key.token(&claims("mallory", READ_WRITE)));
    let body = json!({"name": "Alice", "email": "alice@example.com"});
    let idempotency_key = [("idempotency-key", "8e03978e-40d5-43e8-bc93-6894a57f9324")];

    let first = alice
        .send_json(Method::POST, "/v1/users", &idempotency_key, &body)
        .await;
    let replayed = alice
        .send_json(Method::POST, "/v1/users", &idempotency_key, &body)
        .await;
    let stolen = mallory
        .send_json(Method::POST, "/v1/users", &idempotency_key, &body)
        .await;

    assert_eq!(first.status, 201);
    assert_eq!(replayed.status, 201);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(replayed.body, first.body);
    let problem = stolen.problem(422);
    assert!(stolen.header("idempotent-replayed").is_none());
    assert!(
        !String::from_utf8_lossy(&stolen.body).contains("alice@example.com"),
        "{problem}"
    );
    let owner: String = app
        .database
        .client
        .query_one("SELECT subject FROM idempotency_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, "alice");
    assert_eq!(count_users(&app).await, 1);
}

#[tokio::test]
async fn a_key_the_issuer_adds_is_used_at_once_and_one_it_withdraws_stops_working() {
    let old = SigningKey::generate(Algorithm::Es256, "old");
    let new = SigningKey::generate(Algorithm::Rs256, "new");
    let server = JwksServer::start(jwks(&[&old])).await;
    let app = spawn_app_with_auth(&server.jwks_url(), |_| {}).await;
    let old_token = token(&old);
    assert_eq!(app.with_token(&old_token).get("/v1/users").await.status, 200);

    server.publish(jwks(&[&new]));
    let with_new_key = app.with_token(&token(&new)).get("/v1/users").await;
    let with_withdrawn_key = app.with_token(&old_token).get("/v1/users").await;

    assert_eq!(with_new_key.status, 200, "an unknown kid fetches the key set again");
    assert_eq!(
        with_withdrawn_key.status, 401,
        "a token remembered from a withdrawn key is checked again"
    );
    assert_eq!(
        metric(&app, r#"gravity_auth_refusals_total{reason="unknown_key"}"#).await,
        1.0
    );
}

#[tokio::test]
async fn a_new_kid_arriving_during_a_fetch_is_checked_against_a_fetch_that_started_after_it() {
    let old = SigningKey::generate(Algorithm::Es256, "old");
    let new = SigningKey::generate(Algorithm::Es256, "new");
    let (server, path_to_issuer, jwks_url) = issuer_behind_a_proxy(&[&old]).await;
    let app = spawn_app_with_auth(&jwks_url, |config| {
        set_refresh(config, Duration::from_millis(200), None)
    })
    .await;
    let keys_in = eventually(Duration::from_secs(5), async || app.get("/ready").await.status == 200).await;
    assert!(keys_in, "the first key set arrived");

    // A scheduled fetch is under way, its answer (the old set) held on the way back, when the
    // issuer publishes a new key and a token signed with it arrives.
    path_to_issuer.hold_reply_containing(br#""kid":"old""#);
    path_to_issuer.holding().await;
    server.publish(jwks(&[&old, &new]));
    let answer = list_releasing_the_held_fetch(&app, &token(&new), &path_to_issuer).await;

    assert_eq!(
        answer.status, 200,
        "the fetch under way was sent before the key was published; the one after it has the key"
    );
}

#[tokio::test]
async fn an_unknown_kid_arriving_during_the_first_fetch_of_all_gets_that_fetch_only() {
    let published = SigningKey::generate(Algorithm::Es256, "published");
    let unknown = SigningKey::generate(Algorithm::Es256, "unknown");
    let (server, path_to_issuer, jwks_url) = issuer_behind_a_proxy(&[&published]).await;
    path_to_issuer.hold_reply_containing(br#""kid":"published""#);
    let app = spawn_app_with_auth(&jwks_url, |_| {}).await;
    path_to_issuer.holding().await;
    let answer = list_releasing_the_held_fetch(&app, &token(&unknown), &path_to_issuer).await;

    answer.problem(401);
    assert_eq!(
        metric(&app, r#"gravity_auth_refusals_total{reason="unknown_key"}"#).await,
        1.0,
        "refused as unknown at once, not after a second fetch or at the deadline"
    );
    assert_eq!(server.fetches(), 1, "the first fetch of all was the one it got");
}

#[tokio::test]
async fn a_body_still_coming_8_s_after_its_head_gets_408_even_when_its_token_waited_for_a_fetch() {
    let key = SigningKey::generate(Algorithm::Es256, "key");
    let rotated = SigningKey::generate(Algorithm::Es256, "rotated");
    let (server, path_to_issuer, jwks_url) = issuer_behind_a_proxy(&[&key]).await;
    let app = spawn_app_with_auth(&jwks_url, |_| {}).await;
    let keys_in = eventually(Duration::from_secs(5), async || app.get("/ready").await.status == 200).await;
    assert!(keys_in, "the first key set arrived");

    // The issuer rotates; the fetch that a token of the new key causes is held 4 s on its way back,
    // while the create's body trickles in: its reading starts 4 s after the head.
    server.publish(jwks(&[&key, &rotated]));
    path_to_issuer.hold_reply_containing(br#""kid":"rotated""#);
    let release_later = async {
        path_to_issuer.holding().await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        path_to_issuer.release();
    };
    let authorization = format!("Authorization: Bearer {}\r\n", token(&rotated));
    let body = vec![b' '; 100];
    let trickling = trickle(&app, &authorization, &body, Duration::from_millis(400));
    let ((status, text, took), ()) = tokio::join!(trickling, release_later);

    assert_eq!(status, 408, "{text}");
    assert!(
        took >= Duration::from_secs(8) && took < Duration::from_secs(10),
        "the whole-body limit counts from the head: {took:?}"
    );
}

/// An issuer publishing `keys`, the path to it through a proxy, and its key set's URL on that path.
async fn issuer_behind_a_proxy(keys: &[&SigningKey]) -> (JwksServer, Proxy, String) {
    let server = JwksServer::start(jwks(keys)).await;
    let path_to_issuer = Proxy::start(server.port).await;
    let jwks_url = format!("http://127.0.0.1:{}/jwks.json", path_to_issuer.port);
    (server, path_to_issuer, jwks_url)
}

/// `GET /v1/users` with `token`, the key set reply that `path_to_issuer` holds released a second
/// later: the request has found its kid unknown and waits for that fetch by then.
async fn list_releasing_the_held_fetch(app: &TestApp, token: &str, path_to_issuer: &Proxy) -> TestResponse {
    let release_soon = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        path_to_issuer.release();
    };
    let caller = app.with_token(token);
    let (answer, ()) = tokio::join!(caller.get("/v1/users"), release_soon);
    answer
}

/// An app whose issuer publishes `key` alone and whose keys are fetched every 100 ms, and a token
/// of that key it has accepted.
async fn app_fetching_often(key: &SigningKey) -> (TestApp, JwksServer, String) {
    let server = JwksServer::start(jwks(&[key])).await;
    let app = spawn_app_with_auth(&server.jwks_url(), |config| {
        set_refresh(config, Duration::from_millis(100), None)
    })
    .await;
    let accepted = token(key);
    assert_eq!(app.with_token(&accepted).get("/v1/users").await.status, 200);
    (app, server, accepted)
}

#[tokio::test]
async fn a_withdrawn_key_stops_working_at_the_next_scheduled_fetch() {
    let old = SigningKey::generate(Algorithm::EdDsa, "old");
    let new = SigningKey::generate(Algorithm::EdDsa, "new");
    let (app, server, old_token) = app_fetching_often(&old).await;

    server.publish(jwks(&[&new]));

    let refused = eventually(Duration::from_secs(5), async || {
        app.with_token(&old_token).get("/v1/users").await.status == 401
    })
    .await;
    assert!(refused, "the schedule fetched the key set and the withdrawn key went");
}

#[tokio::test]
async fn a_key_set_without_a_usable_key_still_withdraws_the_keys_it_no_longer_lists() {
    let old = SigningKey::generate(Algorithm::Es256, "old");
    let (app, server, old_token) = app_fetching_often(&old).await;

    // The issuer drops its key and lists only one of an algorithm this service does not take.
    let mut successor = SigningKey::generate(Algorithm::Rs256, "successor").jwk();
    successor["alg"] = json!("PS256");
    server.publish(json!({ "keys": [successor] }));

    let refused = eventually(Duration::from_secs(5), async || {
        app.with_token(&old_token).get("/v1/users").await.status == 401
    })
    .await;
    assert!(refused, "a token of the withdrawn key is refused, remembered or not");
    let refusal = app.with_token(&old_token).get("/v1/users").await;
    assert!(refusal.header("www-authenticate").unwrap().contains("invalid_token"));
    assert_eq!(app.get("/ready").await.problem(503)["auth"], "no_keys");
    assert_eq!(metric(&app, "gravity_auth_keys").await, 0.0);

    server.publish(jwks(&[&old]));
    let served = eventually(Duration::from_secs(5), async || {
        app.with_token(&old_token).get("/v1/users").await.status == 200
    })
    .await;
    assert!(served, "the key is trusted again once the issuer lists it");
    assert_eq!(app.get("/ready").await.json()["auth"], "ok");
}

#[tokio::test]
async fn a_replica_left_without_a_usable_key_fetches_again_within_seconds_not_on_the_schedule() {
    let key = SigningKey::generate(Algorithm::Es256, "key-1");
    let server = JwksServer::start(jwks(&[&key])).await;
    let app = spawn_app_with_auth(&server.jwks_url(), |config| {
        set_refresh(config, Duration::from_secs(300), Some(Duration::from_millis(200)))
    })
    .await;
    let keys_in = eventually(Duration::from_secs(5), async || app.get("/ready").await.status == 200).await;
    assert!(keys_in, "the first key set arrived");

    // The issuer empties its key set for a moment; a token naming a key the replica lacks makes
    // it fetch that set, which withdraws the key held.
    server.publish(json!({ "keys": [] }));
    let stranger = SigningKey::generate(Algorithm::Es256, "stranger");
    assert_eq!(app.with_token(&token(&stranger)).get("/v1/users").await.status, 401);
    assert_eq!(app.get("/ready").await.problem(503)["auth"], "no_keys");

    // The issuer lists its key again. No token arrives to cause a fetch, and the schedule is five
    // minutes away: the replica fetches again by itself within seconds.
    server.publish(jwks(&[&key]));
    let ready = eventually(Duration::from_secs(5), async || app.get("/ready").await.status == 200).await;
    assert!(ready, "the replica fetched the key set again at the retries' pace");
    assert_eq!(app.with_token(&token(&key)).get("/v1/users").await.status, 200);
}

#[tokio::test]
async fn a_flood_of_made_up_kids_costs_at_most_one_fetch_per_interval() {
    let (app, server, _key) = app_with_one_key().await;
    let keys_in = eventually(Duration::from_secs(5), async || app.get("/ready").await.status == 200).await;
    assert!(keys_in, "the first key set arrived");
    let fetches_before = server.fetches();
    let made_up: Vec<String> = (0..50)
        .map(|number| {
            SigningKey::generate(Algorithm::EdDsa, &format!("made-up-{number}")).token(&claims("x", READ_WRITE))
        })
        .collect();

    let answers = futures_of(&app, &made_up).await;

    assert!(answers.iter().all(|status| *status == 401), "{answers:?}");
    assert_eq!(server.fetches() - fetches_before, 1, "one fetch for fifty unknown kids");
}

#[tokio::test]
async fn a_slow_issuer_and_made_up_kids_leave_connections_to_callers_whose_keys_are_held() {
    let key = SigningKey::generate(Algorithm::Es256, "key-1");
    let server = JwksServer::start(jwks(&[&key])).await;
    let path_to_issuer = Proxy::start(server.port).await;
    let jwks_url = format!("http://127.0.0.1:{}/jwks.json", path_to_issuer.port);
    // At most a quarter of the connections, 10, wait for a fetch.
    let app = spawn_app_with_auth(&jwks_url, |config| config.max_connections = Some(40)).await;
    let keys_in = eventually(Duration::from_secs(5), async || app.get("/ready").await.status == 200).await;
    assert!(keys_in, "the first key set arrived");

    // The issuer stops answering; a made-up kid on every connection the replica has asks for a
    // fetch that takes its whole 5 s timeout.
    path_to_issuer.stall();
    let made_up: Vec<String> = (0..40)
        .map(|number| {
            SigningKey::generate(Algorithm::EdDsa, &format!("made-up-{number}")).token(&claims("x", READ_WRITE))
        })
        .collect();
    let flood = futures_of(&app, &made_up);
    let caller = async {
        // The flood has arrived and found its kids unknown by then.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = std::time::Instant::now();
        let answer = app.with_token(&token(&key)).get("/v1/users").await;
        (answer.status, started.elapsed())
    };
    let (answers, (status, waited)) = tokio::join!(flood, caller);

    assert!(answers.iter().all(|status| *status == 401), "{answers:?}");
    assert_eq!(status, 200, "a caller whose key is held is served");
    assert!(
        waited < Duration::from_secs(3),
        "served while the fetch is stalled, not after it ({waited:?}): the requests past the first \
         10 with unknown kids are refused at once, so they hold no connection"
    );
}

/// GET /v1/users with each token, all at once.
async fn futures_of(app: &TestApp, tokens: &[String]) -> Vec<u16> {
    let requests = tokens.iter().map(|token| {
        let address = app.address.clone();
        let authorization = format!("Bearer {token}");
        tokio::spawn(async move {
            crate::helpers::http_request(
                &address,
                Method::GET,
                "/v1/users",
                &[("authorization", &authorization)],
                b"",
            )
            .await
            .status
            .as_u16()
        })
    });
    let mut statuses = Vec::new();
    for request in requests.collect::<Vec<_>>() {
        statuses.push(request.await.unwrap());
    }
    statuses
}

#[tokio::test]
async fn the_keys_held_keep_working_while_the_issuer_is_down() {
    let key = SigningKey::generate(Algorithm::Es256, "key-1");
    let (app, mut server, _) = app_fetching_often(&key).await;

    server.stop();
    let failed = eventually(Duration::from_secs(10), async || {
        metric(&app, r#"gravity_auth_key_fetches_total{outcome="failed"}"#).await >= 2.0
    })
    .await;

    assert!(failed, "the scheduled fetches failed while the issuer was down");
    let fresh_token = key.token(&claims("user-2", READ_WRITE));
    assert_eq!(app.with_token(&fresh_token).get("/v1/users").await.status, 200);
    assert_eq!(app.get("/ready").await.status, 200);
    assert_eq!(metric(&app, "gravity_auth_keys").await, 1.0);
}

#[tokio::test]
async fn a_service_that_never_had_keys_answers_503_until_the_issuer_comes_up() {
    let key = SigningKey::generate(Algorithm::Es256, "key-1");
    let mut server = JwksServer::start(jwks(&[&key])).await;
    server.stop();
    let app = spawn_app_with_auth(&server.jwks_url(), |config| {
        set_refresh(config, Duration::from_secs(300), Some(Duration::from_millis(200)))
    })
    .await;
    let caller = app.with_token(&token(&key));

    let health = app.get("/health").await;
    let ready = app.get("/ready").await;
    let with_token = caller.get("/v1/users").await;
    let without = app.get("/v1/users").await;

    assert_eq!(health.status, 200, "start-up does not wait for the issuer");
    assert_eq!(ready.problem(503)["auth"], "no_keys");
    with_token.problem(503);
    assert_eq!(with_token.header("retry-after"), Some("1"));
    assert!(with_token.header("www-authenticate").is_none(), "not the token's fault");
    assert_eq!(without.status, 401, "no token is a 401 whatever the keys");

    server.restart().await;
    let served = eventually(Duration::from_secs(10), async || {
        caller.get("/v1/users").await.status == 200
    })
    .await;
    assert!(served, "the keys arrived once the issuer was up");
    assert_eq!(app.get("/ready").await.json()["auth"], "ok");
}

/// An app whose issuer is `server` itself (no `AUTH_JWKS_URL`: its keys come by OpenID
/// discovery).
async fn app_discovering(server: &JwksServer) -> TestApp {
    let issuer = server.issuer_url();
    let settings = [
        ("AUTH_DISABLED", ""),
        ("AUTH_ISSUER", issuer.as_str()),
        ("AUTH_AUDIENCE", crate::helpers::AUDIENCE),
    ];
    spawn_app_with_settings(&settings, |_| {}).await
}

/// A token of `key` for `server` as the issuer.
fn token_of_issuer(server: &JwksServer, key: &SigningKey) -> String {
    key.token(&with(&claims("user-1", READ_WRITE), "iss", json!(server.issuer_url())))
}

/// `GET /v1/users` on an app discovering `server`, with a token of `key` for that issuer.
async fn read_through_discovery(server: &JwksServer, key: &SigningKey) -> crate::helpers::TestResponse {
    let app = app_discovering(server).await;
    app.with_token(&token_of_issuer(server, key)).get("/v1/users").await
}

#[tokio::test]
async fn a_key_set_the_issuer_moves_is_followed_while_the_old_address_still_answers() {
    let old = SigningKey::generate(Algorithm::Es256, "old");
    let new = SigningKey::generate(Algorithm::Es256, "new");
    let issuer = JwksServer::start(jwks(&[&old])).await;
    let app = app_discovering(&issuer).await;
    assert_eq!(
        app.with_token(&token_of_issuer(&issuer, &old))
            .get("/v1/users")
            .await
            .status,
        200
    );

    // The issuer rotates to a key set at a new address; the old one keeps serving the old set.
    let moved = JwksServer::start(jwks(&[&new])).await;
    issuer.name_jwks_uri(&moved.jwks_url());
    let answer = app.with_token(&token_of_issuer(&issuer, &new)).get("/v1/users").await;

    assert_eq!(
        answer.status, 200,
        "the unknown kid's fetch reads discovery again: {:?}",
        answer.body
    );
    assert_eq!(moved.fetches(), 1);
}

#[tokio::test]
async fn keys_are_found_by_openid_discovery_at_the_issuer() {
    let key = SigningKey::generate(Algorithm::Rs256, "key-1");
    let server = JwksServer::start(jwks(&[&key])).await;

    let response = read_through_discovery(&server, &key).await;

    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(server.fetches(), 1);
}

#[tokio::test]
async fn a_discovery_document_that_names_another_issuer_brings_no_keys() {
    let key = SigningKey::generate(Algorithm::Es256, "key-1");
    let server = JwksServer::start(jwks(&[&key])).await;
    server.claim_issuer("https://impostor.test");

    let response = read_through_discovery(&server, &key).await;

    response.problem(503);
    assert_eq!(server.fetches(), 0, "the key set named by an impostor is never read");
}

#[tokio::test]
async fn keys_are_read_from_a_mounted_file_and_read_again_for_an_unknown_kid() {
    let first = SigningKey::generate(Algorithm::Es256, "first");
    let second = SigningKey::generate(Algorithm::EdDsa, "second");
    let file = std::env::temp_dir().join(format!("gravity-jwks-{}-{}.json", std::process::id(), now()));
    std::fs::write(&file, jwks(&[&first]).to_string()).unwrap();
    let app = spawn_app_with_auth(&format!("file://{}", file.display()), |_| {}).await;

    let before = app.with_token(&token(&first)).get("/v1/users").await;
    std::fs::write(&file, jwks(&[&first, &second]).to_string()).unwrap();
    let after = app.with_token(&token(&second)).get("/v1/users").await;
    let _ = std::fs::remove_file(&file);

    assert_eq!(before.status, 200);
    assert_eq!(after.status, 200, "the file was read again for the new kid");
}

#[tokio::test]
async fn ready_and_metrics_describe_authentication() {
    let (app, _server, key) = app_with_one_key().await;
    app.with_token(&token(&key)).get("/v1/users").await;

    let ready: Value = app.get("/ready").await.json();
    let page = String::from_utf8_lossy(&app.get("/metrics").await.body).into_owned();

    assert_eq!(ready["auth"], "ok");
    assert_eq!(metric_value(&page, "gravity_auth_keys"), Some(1.0));
    assert_eq!(metric_value(&page, "gravity_auth_tokens_remembered"), Some(1.0));
    assert!(metric_value(&page, r#"gravity_auth_key_fetches_total{outcome="ok"}"#).unwrap() >= 1.0);
}

/// Shortens how often the keys are fetched on schedule, and how often for unknown `kid`s.
fn set_refresh(config: &mut gravity_bff::Config, every: Duration, unknown_key_every: Option<Duration>) {
    let gravity_bff::config::Authentication::Bearer(settings) = &mut config.authentication else {
        panic!("authentication is on in these tests");
    };
    settings.refresh_every = every;
    if let Some(unknown_key_every) = unknown_key_every {
        settings.unknown_key_fetch_every = unknown_key_every;
    }
}

#[tokio::test]
async fn the_request_line_names_the_tokens_subject_and_nothing_logs_a_token() {
    let key = SigningKey::generate(Algorithm::Es256, "key-1");
    let server = JwksServer::start(jwks(&[&key])).await;
    let database = crate::helpers::TestDatabase::create().await;
    let jwks_url = server.jwks_url();
    let service = crate::service_process::on(
        &database,
        &[
            ("AUTH_DISABLED", "false"),
            ("AUTH_ISSUER", crate::helpers::ISSUER),
            ("AUTH_AUDIENCE", crate::helpers::AUDIENCE),
            ("AUTH_JWKS_URL", &jwks_url),
            ("LOG_LEVEL", "info"),
        ],
        None,
    )
    .await;
    let address = format!("http://127.0.0.1:{}", service.port);
    let good = key.token(&claims("auth0|alice \"the admin\"", READ_WRITE));
    let expired = key.token(&with(&claims("bob", READ_WRITE), "exp", json!(now() - 600)));
    let unscoped = key.token(&claims("carol", "openid"));

    let mut statuses = Vec::new();
    for token in [&good, &expired, &unscoped] {
        let authorization = format!("Bearer {token}");
        let headers = [("authorization", authorization.as_str())];
        let response = crate::helpers::http_request(&address, Method::GET, "/v1/users", &headers, b"").await;
        statuses.push(response.status.as_u16());
    }
    let finished = service.stop_with("TERM").await;

    assert_eq!(statuses, vec![200, 401, 403]);
    let lines: Vec<Value> = finished
        .request_lines()
        .into_iter()
        .filter(|line| line["http.route"] == "/v1/users")
        .collect();
    assert_eq!(lines.len(), 3, "{}", finished.stdout);
    assert_eq!(lines[0]["user.id"], "auth0|alice \"the admin\"");
    assert!(
        lines[1].get("user.id").is_none(),
        "a token that is not accepted names nobody"
    );
    assert_eq!(lines[2]["user.id"], "carol", "a 403 names whom it refused");
    for token in [&good, &expired, &unscoped] {
        let (_, signature) = token.rsplit_once('.').unwrap();
        assert!(!finished.stdout.contains(signature) && !finished.stderr.contains(signature));
    }
}

#[tokio::test]
async fn authentication_off_is_a_warning_at_start_up_and_said_by_ready() {
    let database = crate::helpers::TestDatabase::create().await;
    let service =
        crate::service_process::on(&database, &[("AUTH_DISABLED", "true"), ("LOG_LEVEL", "warn")], None).await;

    let ready = service.get("/ready").await;
    let listed = service.get("/v1/users").await;
    let finished = service.stop_with("TERM").await;

    assert_eq!((ready.status, listed.status), (200, 200), "{}", ready.text());
    assert_eq!(ready.json()["auth"], "disabled");
    let warning = finished
        .events()
        .into_iter()
        .find(|event| {
            event["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("authentication is off"))
        })
        .unwrap_or_else(|| panic!("no warning in:\n{}", finished.stderr));
    assert_eq!(warning["level"], "warn");
}

#[tokio::test]
async fn a_key_file_whose_reads_never_return_holds_one_thread_and_does_not_hold_up_the_exit() {
    // A FIFO nobody writes to stands for a key file on a hung mount: opening it never returns.
    let directory = std::env::temp_dir().join(format!("gravity-bff-hung-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).unwrap();
    let keys = directory.join("jwks.json");
    let made = std::process::Command::new("mkfifo").arg(&keys).status().unwrap();
    assert!(made.success());
    let database = crate::helpers::TestDatabase::create().await;
    let jwks_url = format!("file://{}", keys.display());
    let mut service = crate::service_process::on(
        &database,
        &[
            ("AUTH_DISABLED", "false"),
            ("AUTH_ISSUER", crate::helpers::ISSUER),
            ("AUTH_AUDIENCE", crate::helpers::AUDIENCE),
            ("AUTH_JWKS_URL", &jwks_url),
        ],
        None,
    )
    .await;

    // Three fetches fail: the first after its 5 s, the next two (1 s and 2 s later) at once, as
    // the first read has not returned.
    let series = r#"gravity_auth_key_fetches_total{outcome="failed"}"#;
    let failed = eventually(Duration::from_secs(25), async || service.metric(series).await >= 3.0).await;
    assert!(failed, "three fetches failed: {}", service.metric(series).await);
    assert_eq!(
        threads_opening_a_file(service.pid()),
        1,
        "one read waits, not one per fetch"
    );

    crate::support::signal(service.pid(), "TERM");
    let status = service.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(
        status.and_then(|status| status.code()),
        Some(0),
        "the drain ends the process though a read never returns"
    );
    let _ = std::fs::remove_dir_all(&directory);
}

/// The threads of process `pid` inside `openat(2)`, as `/proc` tells.
fn threads_opening_a_file(pid: u32) -> usize {
    let openat = if cfg!(target_arch = "aarch64") { "56" } else { "257" };
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.unwrap().path().join("syscall")).ok())
        .filter(|syscall| syscall.split_whitespace().next() == Some(openat))
        .count()
}
