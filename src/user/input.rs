//! Client input for creating and changing users, parsed into types that are valid by construction.
//!
//! A `NewUser` or `UserPatch` exists only if every field passed its rule, so the database layer
//! never sees an unchecked string. Parsing collects every broken rule, not just the first, because
//! the contract's 422 lists each offending field.

use std::borrow::Cow;

use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use super::visibility::{has_visible_character, is_invisible};
use crate::error::{Error, FieldError};
use crate::http::body::JsonObject;

pub(crate) const NAME_MAX_CHARS: usize = 255;
pub(crate) const EMAIL_MAX_CHARS: usize = 255;
pub(crate) const AVATAR_URL_MAX_CHARS: usize = 2048;

/// The rule a field's value breaks, as the 422 body says it.
type BrokenRule = Cow<'static, str>;

/// A display name: trimmed, 1–255 characters, no control characters, something visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

/// An email address: one `@` with text on both sides, nothing hidden, stored in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

/// An `http` or `https` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvatarUrl(String);

/// The body of `POST /v1/users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub name: UserName,
    pub email: Option<Email>,
    pub avatar_url: Option<AvatarUrl>,
}

/// The body of `PATCH /v1/users/{id}`: `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    pub name: Option<UserName>,
    pub email: Option<Option<Email>>,
    pub avatar_url: Option<Option<AvatarUrl>>,
}

impl NewUser {
    pub fn parse(object: JsonObject) -> Result<NewUser, Error> {
        let (patch, mut errors) = parse_fields(object);
        match patch.name {
            Some(name) if errors.is_empty() => Ok(NewUser {
                name,
                email: patch.email.flatten(),
                avatar_url: patch.avatar_url.flatten(),
            }),
            name => {
                // A broken name is listed already; an absent one is listed here, first.
                if name.is_none() && !errors.iter().any(|error| error.field == "name") {
                    errors.insert(0, FieldError::new("name", "is required"));
                }
                Err(Error::InvalidFields(errors))
            }
        }
    }
}

impl UserPatch {
    pub fn parse(object: JsonObject) -> Result<UserPatch, Error> {
        match parse_fields(object) {
            (patch, errors) if errors.is_empty() => Ok(patch),
            (_, errors) => Err(Error::InvalidFields(errors)),
        }
    }

    /// `{}`: nothing to change.
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.email.is_none() && self.avatar_url.is_none()
    }
}

/// Every field that parses, and every field that does not.
fn parse_fields(object: JsonObject) -> (UserPatch, Vec<FieldError>) {
    let mut patch = UserPatch::default();
    let mut errors = Vec::new();
    for (field, value) in object.0 {
        let outcome = match field.as_str() {
            "name" => UserName::parse(value).map(|name| patch.name = Some(name)),
            "email" => parse_nullable(value, Email::parse).map(|email| patch.email = Some(email)),
            "avatar_url" => parse_nullable(value, AvatarUrl::parse).map(|url| patch.avatar_url = Some(url)),
            "id" | "created_at" | "updated_at" => Err("is read-only".into()),
            _ => Err("is not a known field".into()),
        };
        if let Err(message) = outcome {
            errors.push(FieldError::new(super::truncate(&field, 64), message));
        }
    }
    (patch, errors)
}

fn parse_nullable<T>(value: Value, parse: fn(Value) -> Result<T, BrokenRule>) -> Result<Option<T>, BrokenRule> {
    match value {
        Value::Null => Ok(None),
        other => parse(other).map(Some),
    }
}

/// A string of at most `max_chars` characters without white space or control characters: the
/// shared shape of an email and a URL.
fn unspaced_text(value: Value, max_chars: usize) -> Result<String, BrokenRule> {
    let Value::String(text) = value else {
        return Err("must be a string or null".into());
    };
    if text.chars().count() > max_chars {
        return Err(too_long(max_chars));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain white space or control characters".into());
    }
    Ok(text)
}

fn too_long(max_chars: usize) -> BrokenRule {
    format!("must be at most {max_chars} characters").into()
}

impl UserName {
    pub fn parse(value: Value) -> Result<UserName, BrokenRule> {
        let Value::String(text) = value else {
            return Err("must be a string".into());
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("must not be empty".into());
        }
        if trimmed.chars().count() > NAME_MAX_CHARS {
            return Err(too_long(NAME_MAX_CHARS));
        }
        if trimmed.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        // Blank means nothing visible: white space, format characters and fillers alone make a
        // name that looks empty (U+200B, U+3164, U+2800). Inside a visible name they may stay:
        // a zero-width joiner holds an emoji sequence together.
        if !has_visible_character(trimmed) {
            return Err("must contain a visible character".into());
        }
        Ok(UserName(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Email {
    pub fn parse(value: Value) -> Result<Email, BrokenRule> {
        let text = unspaced_text(value, EMAIL_MAX_CHARS)?;
        // An address with hidden characters reads as another one (a zero-width space, or a
        // right-to-left override that reverses what follows).
        if text.chars().any(is_invisible) {
            return Err("must not contain invisible characters such as zero-width or bidirectional controls".into());
        }
        let mut parts = text.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err("must contain exactly one @".into());
        };
        if local.is_empty() || domain.is_empty() {
            return Err("must have text before and after the @".into());
        }
        // Stored lower-cased and in NFC (an accent typed as a combining mark and precomposed is the
        // same address). Both can change the length ('İ' becomes 'i̇'); the stored form must fit.
        let stored: String = text.to_lowercase().nfc().collect();
        if stored.chars().count() > EMAIL_MAX_CHARS {
            return Err(too_long(EMAIL_MAX_CHARS));
        }
        Ok(Email(stored))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AvatarUrl {
    pub fn parse(value: Value) -> Result<AvatarUrl, BrokenRule> {
        let text = unspaced_text(value, AVATAR_URL_MAX_CHARS)?;
        if !has_http_scheme_and_host(&text) {
            return Err("must be an http or https URL with a host".into());
        }
        Ok(AvatarUrl(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `http://` or `https://` (any case), then an authority whose host is not empty and whose port,
/// if any, is digits of a number up to 65535. No backslash anywhere: it is no URL character (RFC
/// 3986), and browsers read it as `/`, so `http://a\@b/` would be a URL of another host to them.
fn has_http_scheme_and_host(url: &str) -> bool {
    if url.contains('\\') {
        return false;
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_and_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let (host, port) = if let Some(literal) = host_and_port.strip_prefix('[') {
        // An IPv6 literal such as [::1]:8080: a real address (URL parsers, Python's among them,
        // refuse `[91]`), then nothing or a port.
        let Some((inside, after)) = literal.split_once(']') else {
            return false;
        };
        if inside.parse::<std::net::Ipv6Addr>().is_err() || !(after.is_empty() || after.starts_with(':')) {
            return false;
        }
        (inside, after.strip_prefix(':'))
    } else {
        host_and_port
            .split_once(':')
            .map_or((host_and_port, None), |(host, port)| (host, Some(port)))
    };
    let host_character = |c: char| c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '%' | ':');
    let host_ok = !host.is_empty() && host.chars().all(host_character);
    let digits = |port: &str| port.bytes().all(|byte| byte.is_ascii_digit());
    let port_ok = port.is_none_or(|port| port.is_empty() || (digits(port) && port.parse::<u16>().is_ok()));
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::parse_json_object;

    fn patch(json: &str) -> Result<UserPatch, Error> {
        UserPatch::parse(parse_json_object(json.as_bytes()).unwrap())
    }

    fn new_user(json: &str) -> Result<NewUser, Error> {
        NewUser::parse(parse_json_object(json.as_bytes()).unwrap())
    }

    fn field_errors(result: Result<impl std::fmt::Debug, Error>) -> Vec<String> {
        match result {
            Err(Error::InvalidFields(errors)) => errors
                .into_iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect(),
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_new_user_is_trimmed_and_lower_cased() {
        let user = new_user(r#"{"name":"  Ada  ","email":"Ada@Example.COM","avatar_url":"https://img.example/a.png"}"#)
            .unwrap();
        assert_eq!(user.name.as_str(), "Ada");
        assert_eq!(user.email.unwrap().as_str(), "ada@example.com");
        assert_eq!(user.avatar_url.unwrap().as_str(), "https://img.example/a.png");
    }

    #[test]
    fn name_is_required_for_a_new_user() {
        assert_eq!(field_errors(new_user("{}")), vec!["name: is required"]);
        assert_eq!(
            field_errors(new_user(r#"{"email":"nope"}"#)),
            vec!["name: is required", "email: must contain exactly one @"]
        );
    }

    #[test]
    fn name_length_counts_characters_not_bytes() {
        let at_limit = "é".repeat(255);
        assert!(new_user(&format!(r#"{{"name":"{at_limit}"}}"#)).is_ok());
        let over = "é".repeat(256);
        assert_eq!(
            field_errors(new_user(&format!(r#"{{"name":"{over}"}}"#))),
            vec!["name: must be at most 255 characters"]
        );
    }

    #[test]
    fn every_offending_field_is_listed() {
        let errors = field_errors(new_user(
            r#"{"name":"   ","email":"a@b@c","avatar_url":"ftp://x","id":"1","role":"admin"}"#,
        ));
        assert_eq!(
            errors,
            vec![
                "name: must not be empty",
                "email: must contain exactly one @",
                "avatar_url: must be an http or https URL with a host",
                "id: is read-only",
                "role: is not a known field",
            ]
        );
    }

    #[test]
    fn wrong_types_are_named() {
        let errors = field_errors(new_user(r#"{"name":5,"email":true,"avatar_url":[]}"#));
        assert_eq!(
            errors,
            vec![
                "name: must be a string",
                "email: must be a string or null",
                "avatar_url: must be a string or null",
            ]
        );
    }

    #[test]
    fn email_rules() {
        for bad in ["@example.com", "ada@", "ada", "a@b@c", "a b@c.d", "a\u{0}@b.c"] {
            assert!(Email::parse(Value::String(bad.into())).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(Value::String(long)).is_err());
        // 255 characters as sent, 455 once lower-cased: too long for the column.
        let lengthened = format!("{}@{}", "İ".repeat(200), "x".repeat(54));
        assert_eq!(lengthened.chars().count(), 255);
        assert!(Email::parse(Value::String(lengthened)).is_err());
        assert!(Email::parse(Value::String("x@y".into())).is_ok());
    }

    #[test]
    fn an_email_is_stored_lower_cased_in_nfc_however_its_accents_were_typed() {
        let stored = |text: &str| Email::parse(Value::String(text.into())).unwrap().as_str().to_owned();
        assert_eq!(
            stored("JOSE\u{301}@X.ES"),
            "jos\u{e9}@x.es",
            "combining acute, upper case"
        );
        assert_eq!(stored("jos\u{e9}@x.es"), "jos\u{e9}@x.es");
    }

    #[test]
    fn a_name_must_show_something() {
        let blank = [
            ("\u{200b}", "ZERO WIDTH SPACE"),
            ("\u{3164}", "HANGUL FILLER"),
            ("\u{115f}\u{1160}", "HANGUL CHOSEONG and JUNGSEONG FILLERS"),
            ("\u{ffa0}", "HALFWIDTH HANGUL FILLER"),
            ("\u{2800}\u{2800}\u{2800}", "BRAILLE PATTERN BLANKs"),
            ("\u{feff}", "BYTE ORDER MARK"),
            ("\u{200d}\u{200c}\u{2060}", "joiners"),
            ("\u{202e}\u{2066}\u{200f}", "bidirectional controls"),
            ("\u{ad}", "SOFT HYPHEN"),
            ("\u{fe0f}", "VARIATION SELECTOR-16"),
            ("\u{e0041}\u{e007f}", "tags"),
            (" \u{200b} \u{3000}\u{3164} ", "fillers among white space"),
        ];
        for (name, what) in blank {
            let result = UserName::parse(Value::String(name.into()));
            assert_eq!(result, Err("must contain a visible character".into()), "{what}");
        }
        let shown = [
            ("Ada\u{200b}", "a zero-width space after a letter"),
            ("👩\u{200d}💻", "an emoji sequence held by a zero-width joiner"),
            ("\u{2764}\u{fe0f}", "a heart with its emoji variation selector"),
            ("\u{200f}שרה", "a right-to-left mark before a Hebrew name"),
            ("\u{3164}김", "a filler before a Hangul syllable"),
            ("\u{2801}", "a braille pattern with a dot"),
        ];
        for (name, what) in shown {
            let parsed = UserName::parse(Value::String(name.into()));
            assert_eq!(parsed.map(|name| name.0), Ok(name.to_owned()), "{what}");
        }
    }

    #[test]
    fn an_email_hides_nothing() {
        for (email, what) in [
            ("ada\u{200b}@example.org", "ZERO WIDTH SPACE"),
            ("ada@exa\u{200d}mple.org", "ZERO WIDTH JOINER"),
            ("\u{feff}ada@example.org", "BYTE ORDER MARK"),
            ("ada@\u{202e}gro.elpmaxe", "RIGHT-TO-LEFT OVERRIDE"),
            ("ada\u{2066}@example.org\u{2069}", "an isolate"),
            ("ada\u{200e}@example.org", "LEFT-TO-RIGHT MARK"),
            ("ad\u{ad}a@example.org", "SOFT HYPHEN"),
            ("ada@example.org\u{e0041}", "a tag character"),
            ("ada@\u{3164}.org", "HANGUL FILLER"),
        ] {
            let result = Email::parse(Value::String(email.into()));
            assert!(
                result.as_ref().is_err_and(|message| message.contains("invisible")),
                "{what}: {result:?}"
            );
        }
        for (email, what) in [
            ("ada\u{85}@example.org", "NEXT LINE, a control"),
            ("ada\u{2028}@example.org", "LINE SEPARATOR, white space"),
            ("ada\u{a0}@example.org", "NO-BREAK SPACE"),
        ] {
            assert!(Email::parse(Value::String(email.into())).is_err(), "{what}");
        }
        assert!(Email::parse(Value::String("zoë@exämple.org".into())).is_ok());
    }

    #[test]
    fn avatar_url_rules() {
        for good in [
            "http://example.com",
            "HTTPS://example.com/a.png?size=2#top",
            "https://user:pw@example.com:8443/x",
            "http://[::1]:8080/x",
            "http://127.0.0.1/",
        ] {
            assert!(AvatarUrl::parse(Value::String(good.into())).is_ok(), "{good}");
        }
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://",
            "https:///path",
            "https://exa mple.com",
            "javascript:alert(1)",
            "https://example.com:99999/",
            "https://[zz]/",
            "http://[91]/",
            "http://[1:2]/",
            "http://[::1]x/",
            "http://[fe80::1%25eth0]/",
            "http://example.com:+80/",
            "https://evil.example\\@good.example/",
            "https://example.com/a\\b.png",
        ] {
            assert!(AvatarUrl::parse(Value::String(bad.into())).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(2048));
        assert!(AvatarUrl::parse(Value::String(long)).is_err());
    }

    #[test]
    fn a_patch_tells_absent_from_null() {
        let cleared = patch(r#"{"email":null}"#).unwrap();
        assert_eq!(cleared.email, Some(None));
        assert_eq!(cleared.avatar_url, None);
        assert!(patch("{}").unwrap().is_empty());
        assert_eq!(field_errors(patch(r#"{"name":null}"#)), vec!["name: must be a string"]);
    }
}
