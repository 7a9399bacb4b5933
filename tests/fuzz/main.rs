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
use gravity_bff::http::bearer::{MAX_TOKEN_BYTES, b64token, bearer_token};
use gravity_bff::http::body::{JsonObject, parse_json_object};
use gravity_bff::http::trace_context::{TRACEPARENT, TraceContext};
use gravity_bff::router::{Route, resolve};
use gravity_bff::user::input::{NewUser, UserPatch};
use gravity_bff::user::page::{Cursor, PageRequest};
use gravity_bff::user::parse_user_id;
use gravity_bff::user::visibility::{INVISIBLE, has_visible_character, is_invisible};
use hyper::header::{HeaderMap, HeaderValue};
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
        Err(error) => assert_client_error(&Error::from(error), &String::from_utf8_lossy(bytes)),
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
    assert!(has_visible_character(name), "{name:?} shows something");
}

fn check_email(email: &str) {
    assert_eq!(email, email.to_lowercase(), "{email:?} is stored lower-cased");
    assert!(email.chars().count() <= 255, "{email:?} fits varchar(255)");
    let (local, domain) = email.split_once('@').expect("an email has an @");
    assert!(
        !local.is_empty() && !domain.is_empty() && !domain.contains('@'),
        "{email:?}"
    );
    assert!(!email.chars().any(is_invisible), "{email:?} hides nothing");
}

fn check_path(path: &str) {
    if let Route::User(id) = resolve(path) {
        assert!(
            !id.is_empty() && !id.contains('/') && path.ends_with(id),
            "{path:?} → {id:?}"
        );
        check_user_id(id);
    }
}

/// Any `traceparent` a client can send: the answer is always a valid one of the service's own
/// span, and the caller's trace is kept only when its header passed the specification's rules.
fn check_traceparent(bytes: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(bytes) else {
        return; // not a header value: hyper refuses the request before the service sees it
    };
    let mut headers = HeaderMap::new();
    headers.insert(TRACEPARENT, value);
    let trace = TraceContext::continue_or_start(&headers);
    let sent = trace.traceparent();
    let sent = sent.as_bytes();
    let lower_hex = |digits: &[u8]| digits.iter().all(|digit| matches!(digit, b'0'..=b'9' | b'a'..=b'f'));
    let all_zeros = |digits: &[u8]| digits.iter().all(|&digit| digit == b'0');
    assert_eq!(sent.len(), 55, "{sent:?}");
    assert!(
        sent.starts_with(b"00-") && sent[35] == b'-' && sent[52] == b'-',
        "{sent:?}"
    );
    assert!(lower_hex(&sent[3..35]) && !all_zeros(&sent[3..35]), "{sent:?}");
    assert!(lower_hex(&sent[36..52]) && !all_zeros(&sent[36..52]), "{sent:?}");
    assert!(&sent[53..] == b"00" || &sent[53..] == b"01", "{sent:?}");
    if bytes.get(3..35) == Some(trace.trace_id().as_slice()) {
        // Continued: the caller's header must have been valid.
        assert!(
            bytes.len() >= 55 && &bytes[..2] != b"ff" && lower_hex(&bytes[..2]),
            "{bytes:?}"
        );
        assert!(!all_zeros(&bytes[3..35]) && !all_zeros(&bytes[36..52]), "{bytes:?}");
        assert!(lower_hex(&bytes[36..52]) && lower_hex(&bytes[53..55]), "{bytes:?}");
        assert_ne!(&sent[36..52], &bytes[36..52], "the service's span is its own");
    }
    // What the service sends, it would itself continue.
    let mut again = HeaderMap::new();
    again.insert(TRACEPARENT, trace.traceparent());
    assert_eq!(TraceContext::continue_or_start(&again).trace_id(), trace.trace_id());
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

/// A character that shows nothing: white space, a control, or one of the invisible ranges.
fn blank_character() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(INVISIBLE.to_vec()).prop_flat_map(|(first, last)| prop::char::range(first, last)),
        1 => prop::sample::select(vec![' ', '\t', '\u{a0}', '\u{3000}', '\u{2028}']),
    ]
}

/// Any `Authorization` value: a token comes back only for the Bearer scheme, within the limit
/// and of RFC 6750's characters; everything else is no token or the client's error.
fn check_authorization(bytes: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(bytes) else {
        return; // not a header value: hyper refuses the request before the service sees it
    };
    let mut headers = HeaderMap::new();
    headers.insert(hyper::header::AUTHORIZATION, value);
    let token = match bearer_token(&headers) {
        Ok(Some(token)) => token,
        Ok(None) => return,
        Err(refusal) => return assert_client_error(&Error::from(refusal), &bytes),
    };
    assert!(bytes[..7].eq_ignore_ascii_case(b"bearer "), "{bytes:?}");
    assert!(!token.is_empty() && token.len() <= MAX_TOKEN_BYTES, "{bytes:?}");
    match b64token(token) {
        Ok(text) => {
            let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
            assert!(text.chars().all(allowed) && !text.starts_with('='), "{text:?}");
        }
        Err(refusal) => assert_client_error(&Error::from(refusal), &bytes),
    }
}

/// Inserts each character at a position in `text` chosen by its index.
fn insert_at(text: &str, inserted: &[(prop::sample::Index, char)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for (index, c) in inserted {
        let at = index.index(chars.len() + 1);
        chars.insert(at, *c);
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn names_that_show_nothing_are_a_422(blank in prop::collection::vec(blank_character(), 1..40)) {
        let name: String = blank.into_iter().collect();
        let object = JsonObject(vec![("name".to_owned(), Value::String(name.clone()))]);
        prop_assert!(NewUser::parse(object).is_err(), "{:?} was accepted", name);
    }

    #[test]
    fn invisible_characters_inside_a_visible_name_are_kept(
        name in spec::name(),
        inserted in prop::collection::vec((any::<prop::sample::Index>(), blank_character().prop_filter("not white space", |c| is_invisible(*c))), 1..4),
    ) {
        let trimmed = name.trim();
        prop_assume!(trimmed.chars().count() + inserted.len() <= 255);
        let with_hidden = insert_at(trimmed, &inserted);
        let object = JsonObject(vec![("name".to_owned(), Value::String(with_hidden.clone()))]);
        let parsed = NewUser::parse(object);
        prop_assert!(parsed.is_ok(), "{:?}: {:?}", with_hidden, parsed);
    }

    #[test]
    fn an_email_with_a_hidden_character_is_a_422(
        email in spec::email(),
        inserted in prop::collection::vec((any::<prop::sample::Index>(), blank_character()), 1..3),
    ) {
        let hidden = insert_at(&email, &inserted);
        let object = JsonObject(vec![
            ("name".to_owned(), Value::String("x".to_owned())),
            ("email".to_owned(), Value::String(hidden.clone())),
        ]);
        prop_assert!(NewUser::parse(object).is_err(), "{:?} was accepted", hidden);
    }

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
    fn traceparents_are_continued_only_when_valid(bytes in prop_oneof![corpus::mutated("traceparent"), any::<Vec<u8>>()]) {
        check_traceparent(&bytes);
    }

    #[test]
    fn authorization_headers_give_a_bearer_token_or_a_4xx(bytes in prop_oneof![corpus::mutated("authorization"), any::<Vec<u8>>()]) {
        check_authorization(&bytes);
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
    for input in corpus::load("authorization") {
        check_authorization(&input);
    }
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
    for input in corpus::load("traceparent") {
        check_traceparent(&input);
    }
}
