//! Values drawn from the patterns of openapi.yaml (as build.rs embeds it), so the fuzz targets can
//! check that the parsers accept everything the published contract calls valid.

use proptest::prelude::*;
use proptest::string::string_regex;
use serde_json::Value;

const OPENAPI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// The pattern at a JSON pointer into the document, without its `^`/`$` anchors (the patterns
/// match whole values; proptest generates whole values and does not take anchors).
fn pattern(pointer: &str) -> String {
    let document: Value = serde_json::from_str(OPENAPI_JSON).expect("the embedded document is JSON");
    let pattern = document
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("openapi.yaml has a pattern at {pointer}"));
    let unanchored = pattern.strip_prefix('^').and_then(|rest| rest.strip_suffix('$'));
    unanchored
        .unwrap_or_else(|| panic!("the pattern at {pointer} is anchored at both ends"))
        .to_owned()
}

fn matching(pointer: &str) -> impl Strategy<Value = String> + use<> {
    string_regex(&pattern(pointer)).unwrap_or_else(|error| panic!("the pattern at {pointer} compiles: {error}"))
}

pub fn name() -> impl Strategy<Value = String> {
    matching("/components/schemas/NameInput/pattern")
}

pub fn email() -> impl Strategy<Value = String> {
    matching("/components/schemas/EmailInput/pattern")
        .prop_filter("maxLength 255", |email| email.chars().count() <= 255)
}

pub fn avatar_url() -> impl Strategy<Value = String> {
    matching("/components/schemas/AvatarUrlInput/pattern")
        .prop_filter("maxLength 2048", |url| url.chars().count() <= 2048)
}

pub fn user_id() -> impl Strategy<Value = String> {
    matching("/components/parameters/UserId/schema/pattern")
}

pub fn cursor() -> impl Strategy<Value = String> {
    matching("/components/parameters/Cursor/schema/pattern")
}
