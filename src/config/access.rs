//! Who may call the service: the authentication settings (`AUTH_*`) and the browser origins
//! allowed by CORS (`CORS_ALLOWED_ORIGINS`), typed and checked like every other setting.
//!
//! Secure by default: a service told neither which issuer's tokens to accept nor, in so many
//! words, to accept none (`AUTH_DISABLED=true`) does not serve (`Authentication::NotConfigured`,
//! refused by `App::build` with exit code 2). `migrate` and `--health` need neither.

use std::path::PathBuf;
use std::time::Duration;

use hyper::Uri;

use super::ConfigError;
use super::table::Vars;
use crate::http::cors::AllowedOrigin;

/// How often the issuer's keys are fetched again while they are held: issuers publish a new key
/// well before signing with it (days, for the big ones), so 5 minutes picks it up in time, and
/// an unknown `kid` fetches at once anyway.
const KEY_REFRESH_EVERY: Duration = Duration::from_secs(300);
/// At most one fetch per this interval is caused by tokens naming an unknown `kid`, so a flood
/// of made-up ones cannot turn the service against its issuer.
const UNKNOWN_KEY_FETCH_EVERY: Duration = Duration::from_secs(30);

/// Whether, and how, requests are authenticated.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// `AUTH_DISABLED=true`: every route is open, as for local development.
    Disabled,
    /// Bearer tokens signed by one issuer.
    Bearer(BearerSettings),
    /// Neither `AUTH_ISSUER` nor `AUTH_DISABLED=true`: the service refuses to serve.
    NotConfigured,
}

#[derive(Debug, Clone)]
pub struct BearerSettings {
    /// The required `iss`, exactly as the issuer writes it (Auth0's ends with a `/`).
    pub issuer: String,
    /// The required `aud`: the API's identifier at the issuer.
    pub audience: String,
    pub keys: KeySource,
    /// How often held keys are fetched again (`KEY_REFRESH_EVERY`). Not a setting: tests shorten it.
    pub refresh_every: Duration,
    /// At most one fetch per interval for unknown `kid`s (`UNKNOWN_KEY_FETCH_EVERY`). Not a
    /// setting: tests shorten it.
    pub unknown_key_fetch_every: Duration,
}

/// Where the issuer's JSON Web Key Set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// OpenID Connect discovery: `{AUTH_ISSUER}/.well-known/openid-configuration` names `jwks_uri`.
    Discovery(Uri),
    /// `AUTH_JWKS_URL` over http or https.
    Web(Uri),
    /// `AUTH_JWKS_URL=file:///…`: a mounted file (a ConfigMap, a Docker config), read again on
    /// the same schedule.
    File(PathBuf),
}

/// `AUTH_*`: whether tokens are checked, and whose.
pub(super) fn authentication(vars: &Vars) -> Result<Authentication, ConfigError> {
    let disabled = vars.one_of("AUTH_DISABLED")? == "true";
    // Half a configuration beside `AUTH_DISABLED=true` (an audience or key set, its issuer
    // forgotten) is a mistake to name, not a reason to serve every route open.
    let named = ["AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_JWKS_URL"]
        .into_iter()
        .find(|name| vars.text(name).is_some());
    if let (true, Some(name)) = (disabled, named) {
        let problem =
            format!("is true while {name} is set: unset one of them, so that it is clear whether tokens are checked");
        return Err(ConfigError::new("AUTH_DISABLED", problem));
    }
    let issuer = match (disabled, vars.text("AUTH_ISSUER")) {
        (true, _) => return Ok(Authentication::Disabled),
        (false, None) => return Ok(Authentication::NotConfigured),
        (false, Some(issuer)) => issuer,
    };
    let issuer_uri = parse_web_url("AUTH_ISSUER", &issuer)?;
    let missing = "is required when AUTH_ISSUER is set: the aud of the tokens the service accepts (the API's identifier at the issuer)";
    let audience = vars
        .text("AUTH_AUDIENCE")
        .ok_or_else(|| ConfigError::new("AUTH_AUDIENCE", missing))?;
    let keys = match vars.text("AUTH_JWKS_URL") {
        Some(url) => parse_jwks_url(&url)?,
        None => KeySource::Discovery(discovery_url(&issuer_uri)?),
    };
    Ok(Authentication::Bearer(BearerSettings {
        issuer,
        audience,
        keys,
        refresh_every: KEY_REFRESH_EVERY,
        unknown_key_fetch_every: UNKNOWN_KEY_FETCH_EVERY,
    }))
}

/// `CORS_ALLOWED_ORIGINS`: comma-separated, each as a browser sends it.
pub(super) fn allowed_origins(vars: &Vars) -> Result<Vec<AllowedOrigin>, ConfigError> {
    let list = vars.text("CORS_ALLOWED_ORIGINS").unwrap_or_default();
    list.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| AllowedOrigin::parse(origin).map_err(|problem| ConfigError::new("CORS_ALLOWED_ORIGINS", problem)))
        .collect()
}

impl Authentication {
    /// The one line of a service that was told neither how to check tokens nor to check none.
    pub fn require_a_choice(&self) -> Result<(), ConfigError> {
        match self {
            Authentication::NotConfigured => Err(ConfigError::new(
                "AUTH_ISSUER",
                "is not set and AUTH_DISABLED is not true: set AUTH_ISSUER and AUTH_AUDIENCE to the OpenID Connect issuer \
                 whose tokens the service accepts, or AUTH_DISABLED=true to serve every route without authentication",
            )),
            Authentication::Disabled | Authentication::Bearer(_) => Ok(()),
        }
    }
}

/// An absolute http or https URL with a host.
fn parse_web_url(setting: &'static str, text: &str) -> Result<Uri, ConfigError> {
    let problem = || format!("must be an https:// (or http://) URL with a host, got {text:?}");
    let uri: Uri = text.parse().map_err(|_| ConfigError::new(setting, problem()))?;
    let web = matches!(uri.scheme_str(), Some("https" | "http"));
    if !web || uri.host().is_none_or(str::is_empty) || text.contains('@') {
        return Err(ConfigError::new(setting, problem()));
    }
    Ok(uri)
}

fn parse_jwks_url(text: &str) -> Result<KeySource, ConfigError> {
    match text.strip_prefix("file://") {
        Some(path) if path.starts_with('/') => Ok(KeySource::File(PathBuf::from(path))),
        Some(_) => Err(ConfigError::new(
            "AUTH_JWKS_URL",
            format!("must name an absolute path as file:///path, got {text:?}"),
        )),
        None => parse_web_url("AUTH_JWKS_URL", text).map(KeySource::Web),
    }
}

/// OpenID Connect Discovery 1.0 §4: the issuer without a trailing `/`, then the well-known path.
fn discovery_url(issuer: &Uri) -> Result<Uri, ConfigError> {
    let base = issuer.to_string();
    let url = format!("{}/.well-known/openid-configuration", base.trim_end_matches('/'));
    let problem = || format!("cannot be the base of a discovery URL: {base:?}");
    url.parse().map_err(|_| ConfigError::new("AUTH_ISSUER", problem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings a test gives, as the service reads them.
    struct AccessVars(Vec<(&'static str, String)>);

    impl AccessVars {
        fn vars(&self) -> Vars {
            Vars::read(self.0.iter().map(|(name, value)| (name.to_string(), value.clone()))).unwrap()
        }

        fn authentication(&self) -> Result<Authentication, ConfigError> {
            authentication(&self.vars())
        }

        fn allowed_origins(&self) -> Result<Vec<AllowedOrigin>, ConfigError> {
            allowed_origins(&self.vars())
        }
    }

    fn vars(issuer: &str, audience: &str, jwks: &str, disabled: &str) -> AccessVars {
        let names = ["AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_JWKS_URL", "AUTH_DISABLED"];
        let values = [issuer, audience, jwks, disabled].map(str::to_owned);
        AccessVars(names.into_iter().zip(values).collect())
    }

    #[test]
    fn neither_an_issuer_nor_disabled_is_a_choice_not_made() {
        let authentication = vars("", "", "", "").authentication().unwrap();
        assert!(matches!(authentication, Authentication::NotConfigured));
        let error = authentication.require_a_choice().unwrap_err();
        assert_eq!(error.setting, "AUTH_ISSUER");
        assert!(error.to_string().contains("AUTH_DISABLED"), "{error}");
        assert!(matches!(
            vars("", "", "", "false").authentication(),
            Ok(Authentication::NotConfigured)
        ));
        let disabled = vars("", "", "", "true").authentication().unwrap();
        assert!(matches!(disabled, Authentication::Disabled));
        assert!(
            matches!(vars("", "", "", "TRUE").authentication(), Ok(Authentication::Disabled)),
            "in any letter case, as every other choice"
        );
        assert!(disabled.require_a_choice().is_ok());
    }

    #[test]
    fn an_issuer_gets_its_keys_by_discovery_unless_a_jwks_url_names_them() {
        let Authentication::Bearer(settings) = vars("https://id.example.com/", "api", "", "").authentication().unwrap()
        else {
            panic!("bearer settings expected");
        };
        assert_eq!(
            settings.issuer, "https://id.example.com/",
            "kept as written: iss is compared exactly"
        );
        assert_eq!(settings.audience, "api");
        assert_eq!(
            settings.keys,
            KeySource::Discovery(
                "https://id.example.com/.well-known/openid-configuration"
                    .parse()
                    .unwrap()
            )
        );
        let realm = vars("https://kc.example.com/realms/gravity", "api", "", "")
            .authentication()
            .unwrap();
        let Authentication::Bearer(realm) = realm else { panic!() };
        assert_eq!(
            realm.keys,
            KeySource::Discovery(
                "https://kc.example.com/realms/gravity/.well-known/openid-configuration"
                    .parse()
                    .unwrap()
            )
        );
        for (jwks, expected) in [
            (
                "https://id.example.com/jwks.json",
                KeySource::Web("https://id.example.com/jwks.json".parse().unwrap()),
            ),
            (
                "http://issuer:8080/certs",
                KeySource::Web("http://issuer:8080/certs".parse().unwrap()),
            ),
            (
                "file:///etc/gravity/jwks.json",
                KeySource::File("/etc/gravity/jwks.json".into()),
            ),
        ] {
            let Authentication::Bearer(settings) = vars("https://id.example.com", "api", jwks, "")
                .authentication()
                .unwrap()
            else {
                panic!()
            };
            assert_eq!(settings.keys, expected, "{jwks}");
        }
    }

    #[test]
    fn bad_authentication_settings_are_named() {
        let cases = [
            (vars("", "", "", "yes"), "AUTH_DISABLED"),
            (vars("https://id.example.com", "api", "", "true"), "AUTH_DISABLED"),
            (vars("https://id.example.com", "", "", ""), "AUTH_AUDIENCE"),
            (vars("id.example.com", "api", "", ""), "AUTH_ISSUER"),
            (vars("ftp://id.example.com", "api", "", ""), "AUTH_ISSUER"),
            (vars("https://user:pw@id.example.com", "api", "", ""), "AUTH_ISSUER"),
            (
                vars("https://id.example.com", "api", "file://relative/jwks.json", ""),
                "AUTH_JWKS_URL",
            ),
            (vars("https://id.example.com", "api", "jwks.json", ""), "AUTH_JWKS_URL"),
        ];
        for (vars, setting) in cases {
            assert_eq!(vars.authentication().unwrap_err().setting, setting);
        }
    }

    #[test]
    fn auth_disabled_beside_any_other_auth_setting_is_refused_naming_it() {
        for (vars, named) in [
            (vars("https://id.example.com", "", "", "true"), "AUTH_ISSUER"),
            (vars("", "api", "", "true"), "AUTH_AUDIENCE"),
            (
                vars("", "", "https://id.example.com/jwks.json", "true"),
                "AUTH_JWKS_URL",
            ),
        ] {
            let error = vars.authentication().unwrap_err();
            assert_eq!(error.setting, "AUTH_DISABLED");
            assert!(error.to_string().contains(named), "{error}");
        }
        assert!(matches!(
            vars("", "", "", "true").authentication(),
            Ok(Authentication::Disabled)
        ));
    }

    #[test]
    fn allowed_origins_are_a_comma_separated_list_checked_one_by_one() {
        let origins = |list: &str| AccessVars(vec![("CORS_ALLOWED_ORIGINS", list.to_owned())]).allowed_origins();
        assert_eq!(
            origins(" https://app.example.com, http://localhost:5173 ,")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            origins("https://app.example.com,*").unwrap_err().setting,
            "CORS_ALLOWED_ORIGINS"
        );
        assert!(vars("", "", "", "").allowed_origins().unwrap().is_empty());
    }
}
