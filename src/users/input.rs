//! Client input for creating and changing users, parsed into types that are valid by construction.
//!
//! A `NewUser` or `UserPatch` exists only if every field passed its rule, so the database layer
//! never sees an unchecked string. Parsing collects every broken rule, not just the first, because
//! the contract's 422 lists each offending field.

use serde_json::Value;

use crate::error::{Error, FieldError};
use crate::http::body::JsonObject;

pub const NAME_MAX_CHARS: usize = 255;
pub const EMAIL_MAX_CHARS: usize = 255;
pub const AVATAR_URL_MAX_CHARS: usize = 2048;

/// A display name: trimmed, 1–255 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

/// An email address: one `@` with text on both sides, stored in lower case.
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

const READ_ONLY_FIELDS: [&str; 3] = ["id", "created_at", "updated_at"];

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
        let (patch, errors) = parse_fields(object);
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(Error::InvalidFields(errors))
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
            read_only if READ_ONLY_FIELDS.contains(&read_only) => Err("is read-only"),
            _ => Err("is not a known field"),
        };
        if let Err(message) = outcome {
            errors.push(FieldError::new(super::truncate(&field, 64), message));
        }
    }
    (patch, errors)
}

fn parse_nullable<T>(value: Value, parse: fn(Value) -> Result<T, &'static str>) -> Result<Option<T>, &'static str> {
    match value {
        Value::Null => Ok(None),
        other => parse(other).map(Some),
    }
}

/// A string of at most `max_chars` characters without white space or control characters: the
/// shared shape of an email and a URL.
fn unspaced_text(value: Value, max_chars: usize, too_long: &'static str) -> Result<String, &'static str> {
    let Value::String(text) = value else {
        return Err("must be a string or null");
    };
    if text.chars().count() > max_chars {
        return Err(too_long);
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain white space or control characters");
    }
    Ok(text)
}

fn has_control_characters(text: &str) -> bool {
    text.chars().any(char::is_control)
}

impl UserName {
    pub fn parse(value: Value) -> Result<UserName, &'static str> {
        let Value::String(text) = value else {
            return Err("must be a string");
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("must not be empty");
        }
        if trimmed.chars().count() > NAME_MAX_CHARS {
            return Err("must be at most 255 characters");
        }
        if has_control_characters(trimmed) {
            return Err("must not contain control characters");
        }
        Ok(UserName(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Email {
    pub fn parse(value: Value) -> Result<Email, &'static str> {
        let text = unspaced_text(value, EMAIL_MAX_CHARS, "must be at most 255 characters")?;
        let mut parts = text.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err("must contain exactly one @");
        };
        if local.is_empty() || domain.is_empty() {
            return Err("must have text before and after the @");
        }
        // Lower-casing can lengthen text ('İ' becomes 'i̇'), and the stored form must fit the column.
        let lower = text.to_lowercase();
        if lower.chars().count() > EMAIL_MAX_CHARS {
            return Err("must be at most 255 characters");
        }
        Ok(Email(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AvatarUrl {
    pub fn parse(value: Value) -> Result<AvatarUrl, &'static str> {
        let text = unspaced_text(value, AVATAR_URL_MAX_CHARS, "must be at most 2048 characters")?;
        if !has_http_scheme_and_host(&text) {
            return Err("must be an http or https URL with a host");
        }
        Ok(AvatarUrl(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `http://` or `https://` (any case), then an authority whose host is not empty and whose port,
/// if any, is a number up to 65535.
fn has_http_scheme_and_host(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_and_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let (host, port) = if let Some(literal) = host_and_port.strip_prefix('[') {
        // An IPv6 literal such as [::1]:8080.
        let Some((inside, after)) = literal.split_once(']') else {
            return false;
        };
        if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return false;
        }
        (inside, after.strip_prefix(':'))
    } else {
        match host_and_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_and_port, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '%' | ':'));
    let port_ok = port.is_none_or(|port| port.is_empty() || port.parse::<u16>().is_ok());
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

    fn field_errors(result: Result<impl std::fmt::Debug, Error>) -> Vec<(String, &'static str)> {
        match result {
            Err(Error::InvalidFields(errors)) => errors.into_iter().map(|e| (e.field, e.message)).collect(),
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
        assert_eq!(field_errors(new_user("{}")), vec![("name".into(), "is required")]);
        assert_eq!(
            field_errors(new_user(r#"{"email":"nope"}"#)),
            vec![
                ("name".into(), "is required"),
                ("email".into(), "must contain exactly one @")
            ]
        );
    }

    #[test]
    fn name_length_counts_characters_not_bytes() {
        let at_limit = "é".repeat(255);
        assert!(new_user(&format!(r#"{{"name":"{at_limit}"}}"#)).is_ok());
        let over = "é".repeat(256);
        assert_eq!(
            field_errors(new_user(&format!(r#"{{"name":"{over}"}}"#))),
            vec![("name".into(), "must be at most 255 characters")]
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
                ("name".into(), "must not be empty"),
                ("email".into(), "must contain exactly one @"),
                ("avatar_url".into(), "must be an http or https URL with a host"),
                ("id".into(), "is read-only"),
                ("role".into(), "is not a known field"),
            ]
        );
    }

    #[test]
    fn wrong_types_are_named() {
        let errors = field_errors(new_user(r#"{"name":5,"email":true,"avatar_url":[]}"#));
        assert_eq!(
            errors,
            vec![
                ("name".into(), "must be a string"),
                ("email".into(), "must be a string or null"),
                ("avatar_url".into(), "must be a string or null"),
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
        assert_eq!(
            field_errors(patch(r#"{"name":null}"#)),
            vec![("name".into(), "must be a string")]
        );
    }
}
