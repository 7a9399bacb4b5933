//! The scopes of the API and what a token grants of them.
//!
//! Which route needs which scope, and how `scope` (RFC 8693 §4.2, RFC 9068) and `scp` are read
//! as the common issuers write them, is docs/API.md (Scopes).

use serde::Deserialize;

/// A permission a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    UsersRead,
    UsersWrite,
}

/// The API's scopes a token grants, as bits by `Scope`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Grants(u8);

/// `scope` or `scp` as a token carries it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum ScopeClaim {
    Text(String),
    List(Vec<String>),
}

impl Scope {
    const ALL: [Scope; 2] = [Scope::UsersRead, Scope::UsersWrite];

    /// The scope's name, as tokens and `WWW-Authenticate` write it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Scope::UsersRead => "users:read",
            Scope::UsersWrite => "users:write",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl Grants {
    /// What `scope` and `scp` grant together.
    pub(super) fn of(scope: Option<&ScopeClaim>, scp: Option<&ScopeClaim>) -> Grants {
        let mut grants = Grants::default();
        for claim in [scope, scp].into_iter().flatten() {
            match claim {
                ScopeClaim::Text(text) => text.split_ascii_whitespace().for_each(|name| grants.add(name)),
                ScopeClaim::List(names) => names.iter().for_each(|name| grants.add(name)),
            }
        }
        grants
    }

    fn add(&mut self, name: &str) {
        if let Some(scope) = Scope::ALL.into_iter().find(|scope| scope.name() == name) {
            self.0 |= scope.bit();
        }
    }

    pub(crate) fn allow(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(scope: Option<ScopeClaim>, scp: Option<ScopeClaim>) -> Vec<Scope> {
        let grants = Grants::of(scope.as_ref(), scp.as_ref());
        Scope::ALL.into_iter().filter(|scope| grants.allow(*scope)).collect()
    }

    fn text(text: &str) -> Option<ScopeClaim> {
        Some(ScopeClaim::Text(text.to_owned()))
    }

    fn list(names: &[&str]) -> Option<ScopeClaim> {
        Some(ScopeClaim::List(names.iter().map(|name| (*name).to_owned()).collect()))
    }

    #[test]
    fn scopes_come_from_scope_or_scp_in_either_form() {
        let both = vec![Scope::UsersRead, Scope::UsersWrite];
        let cases = [
            (text("openid users:read users:write"), None, both.clone()),
            (text("  users:read\tprofile "), None, vec![Scope::UsersRead]),
            (None, list(&["users:write", "email"]), vec![Scope::UsersWrite]),
            (None, text("users:read users:write"), both.clone()),
            (text("users:read"), list(&["users:write"]), both),
            (None, None, vec![]),
            (text("users:readwrite users users:* USERS:READ"), None, vec![]),
            (None, list(&["users:read users:write"]), vec![]),
        ];
        for (scope, scp, expected) in cases {
            let described = format!("{scope:?} {scp:?}");
            assert_eq!(granted(scope, scp), expected, "{described}");
        }
    }

    #[test]
    fn a_scope_claim_is_a_string_or_an_array_of_strings() {
        let parsed: ScopeClaim = serde_json::from_str(r#""users:read""#).unwrap();
        assert!(matches!(parsed, ScopeClaim::Text(_)));
        let parsed: ScopeClaim = serde_json::from_str(r#"["users:read"]"#).unwrap();
        assert!(matches!(parsed, ScopeClaim::List(_)));
        assert!(serde_json::from_str::<ScopeClaim>("42").is_err());
        assert!(serde_json::from_str::<ScopeClaim>("[1]").is_err());
    }
}
