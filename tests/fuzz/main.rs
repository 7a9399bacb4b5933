//! Fuzzing on the stable toolchain: property tests of every function that parses client input.
//!
//! cargo-fuzz needs nightly and CI has one stable toolchain, so this is proptest, fed two ways:
//! mutations of the checked-in corpus (tests/fuzz/corpus/<target>/, one input per file) and
//! structured generators (arbitrary JSON members, values drawn from openapi.yaml's own patterns).
//! The properties: nothing panics; every error caused by input alone maps to a 4xx through
//! `Error::status()`; what parses is valid (trimmed names, lower-case emails, ids that round-trip,
//! limits in range); and whatever the OpenAPI document calls valid, the parsers accept.
//!
//! Bounded: `FUZZ_CASES` cases per target (default 1024, a few seconds in all; `make fuzz` runs
//! 100,000). Every corpus input is replayed first. A failure is shrunk and its seed saved in
//! tests/fuzz/regressions.txt, which is replayed on every later run: commit it, and add the
//! shrunk input to the corpus.

mod corpus;
mod spec;

use std::fmt::Debug;

use gravity_bff::error::Error;
use gravity_bff::http::body::{JsonObject, parse_json_object};
use gravity_bff::router::{Route, resolve};
use gravity_bff::users::input::{NewUser, UserPatch};
use gravity_bff::users::page::{Cursor, PageRequest};
use gravity_bff::users::parse_user_id;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::Value;

fn config() -> ProptestConfig {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1024);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/fuzz/regressions.txt"))),
        ..ProptestConfig::default()
    }
}

/// An error caused by input alone must be the client's: a 4xx, never a 5xx.
fn assert_client_error(error: &Error, input: &dyn Debug) {
    assert!(
        error.status().is_client_error(),
        "input {input:?} caused {} ({error:?})",
        error.status()
    );
}

fn check_user_id(segment: &str) {
    match parse_user_id(segment) {
        Ok(id) => {
            assert_eq!(segment.len(), 36, "{segment:?}");
            assert!(id.hyphenated().to_string().eq_ignore_ascii_case(segment), "{segment:?}");
        }
        Err(error) => assert_client_error(&error, &segment),
    }
}

fn check_query(query: &str) {
    match PageRequest::from_query(Some(query)) {
        Ok(page) => assert!((1..=100).contains(&page.limit), "{query:?} gave limit {}", page.limit),
        Err(error) => assert_client_error(&error, &query),
    }
}

fn check_body(bytes: &[u8]) {
    match parse_json_object(bytes) {
        Ok(object) => {
            let parsed: Value = serde_json::from_slice(bytes).expect("an accepted body is JSON");
            let members = parsed.as_object().expect("an accepted body is an object");
            assert_eq!(members.len(), object.0.len(), "keys are unique");
            check_user_input(object);
        }
        Err(error) => assert_client_error(&error, &String::from_utf8_lossy(bytes)),
    }
}

/// Both parsers of user input, on the same object: valid by construction, or a 422 naming fields.
fn check_user_input(object: JsonObject) {
    let keys: Vec<String> = object.0.iter().map(|(key, _)| key.clone()).collect();
    let named = |error: &Error| match error {
        Error::InvalidFields(fields) => {
            assert!(!fields.is_empty(), "a 422 lists its fields");
            for field in fields {
                let known = field.field == "name" || keys.iter().any(|key| key.starts_with(&field.field));
                assert!(known, "{:?} is not among {keys:?}", field.field);
            }
        }
        other => panic!("user input gave {other:?}, not a 422"),
    };
    match NewUser::parse(JsonObject(object.0.clone())) {
        Ok(user) => {
            check_name(user.name.as_str());
            if let Some(email) = &user.email {
                check_email(email.as_str());
            }
            if let Some(url) = &user.avatar_url {
                assert!(url.as_str().chars().count() <= 2048);
            }
        }
        Err(error) => named(&error),
    }
    match UserPatch::parse(object) {
        Ok(patch) => {
            if let Some(name) = &patch.name {
                check_name(name.as_str());
            }
            if let Some(Some(email)) = &patch.email {
                check_email(email.as_str());
            }
        }
        Err(error) => named(&error),
    }
}

fn check_name(name: &str) {
    assert_eq!(name, name.trim(), "{name:?} is stored trimmed");
    assert!((1..=255).contains(&name.chars().count()), "{name:?}");
    assert!(!name.chars().any(char::is_control), "{name:?}");
}

fn check_email(email: &str) {
    assert_eq!(email, email.to_lowercase(), "{email:?} is stored lower-cased");
    assert!(email.chars().count() <= 255, "{email:?} fits varchar(255)");
    let (local, domain) = email.split_once('@').expect("an email has an @");
    assert!(
        !local.is_empty() && !domain.is_empty() && !domain.contains('@'),
        "{email:?}"
    );
}

fn check_path(path: &str) {
    let (route, id) = resolve(path);
    if route == Route::User {
        assert!(
            !id.is_empty() && !id.contains('/') && path.ends_with(id),
            "{path:?} → {id:?}"
        );
        check_user_id(id);
    } else {
        assert_eq!(id, "", "{path:?}");
    }
}

/// JSON members a user body might have: the real fields, read-only and unknown ones, any value.
fn members() -> impl Strategy<Value = Vec<(String, Value)>> {
    let key = prop_oneof![
        4 => prop::sample::select(vec!["name", "email", "avatar_url"]).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["id", "created_at", "updated_at", "NAME", "name "]).prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>().prop_map(|number| serde_json::json!(number)),
        any::<i64>().prop_map(|number| serde_json::json!(number)),
        any::<String>().prop_map(Value::String),
        spec::name().prop_map(Value::String),
        spec::email().prop_map(Value::String),
        spec::avatar_url().prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    });
    prop::collection::vec((key, value), 0..6).prop_map(|mut pairs| {
        // JsonObject's keys are unique: parse_json_object refuses repeats before this point.
        let mut seen = std::collections::HashSet::new();
        pairs.retain(|(key, _)| seen.insert(key.clone()));
        pairs
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn user_ids_parse_or_get_a_400(segment in prop_oneof![corpus::mutated_text("user_id"), any::<String>()]) {
        check_user_id(&segment);
    }

    #[test]
    fn queries_parse_or_get_a_400(query in prop_oneof![corpus::mutated_text("query"), any::<String>()]) {
        check_query(&query);
    }

    #[test]
    fn bodies_parse_or_get_a_4xx(bytes in prop_oneof![corpus::mutated("body"), any::<Vec<u8>>()]) {
        check_body(&bytes);
    }

    #[test]
    fn user_input_is_valid_by_construction_or_a_422(members in members()) {
        check_user_input(JsonObject(members.clone()));
        // The same object as bytes, through the body parser as a request would go.
        let bytes = serde_json::to_vec(&Value::Object(members.into_iter().collect())).unwrap();
        check_body(&bytes);
    }

    #[test]
    fn paths_resolve_without_panicking(path in prop_oneof![corpus::mutated_text("path"), any::<String>()]) {
        check_path(&path);
    }

    #[test]
    fn cursors_survive_a_round_trip(micros in -210_866_803_200_000_000i64..=253_402_300_799_999_999, id in any::<u128>()) {
        let created_at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).unwrap();
        let cursor = Cursor { created_at, id: uuid::Uuid::from_u128(id) };
        prop_assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
    }

    #[test]
    fn what_the_openapi_document_calls_valid_is_accepted(
        name in spec::name(),
        email in spec::email(),
        avatar_url in spec::avatar_url(),
        id in spec::user_id(),
        cursor in spec::cursor(),
        limit in 1u8..=100,
    ) {
        let body = serde_json::json!({"name": name, "email": email, "avatar_url": avatar_url});
        let object = parse_json_object(&serde_json::to_vec(&body).unwrap()).unwrap();
        // The one rule a pattern cannot say: an email that lower-casing lengthens past 255.
        if email.to_lowercase().chars().count() <= 255 {
            prop_assert!(NewUser::parse(object).is_ok(), "{}", body);
        }
        prop_assert!(parse_user_id(&id).is_ok(), "{}", id);
        let query = format!("limit={limit}&cursor={cursor}");
        prop_assert!(PageRequest::from_query(Some(&query)).is_ok(), "{}", query);
    }
}

#[test]
fn every_corpus_input_replays_clean() {
    for input in corpus::load("user_id") {
        check_user_id(&String::from_utf8_lossy(&input));
    }
    for input in corpus::load("query") {
        check_query(&String::from_utf8_lossy(&input));
    }
    for input in corpus::load("body") {
        check_body(&input);
    }
    for input in corpus::load("path") {
        check_path(&String::from_utf8_lossy(&input));
    }
}
