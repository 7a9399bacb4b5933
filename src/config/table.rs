//! Every setting the service reads, declared once: its name, its default, what it may be, and what
//! it means. Parsing takes each setting's default and limits from here (`Vars`), `--help` prints
//! it, and a test holds `.env.example`, docs/API.md and the deployment manifests to it, so a new
//! setting is a row here, the code that uses it, and its lines in docs/API.md and `.env.example`.

use std::collections::HashMap;

use super::ConfigError;

/// One setting.
pub struct Setting {
    pub name: &'static str,
    pub rule: Rule,
    /// One phrase; docs/API.md says the rest.
    pub meaning: &'static str,
}

/// What a setting may be, and what it is when unset or empty.
pub enum Rule {
    /// Must be set.
    Required,
    /// A whole number from `min` to `max`.
    Number { default: u64, min: u64, max: u64 },
    /// A port number; 0 (any free port) only where `any` allows it.
    Port { default: u16, any: bool },
    /// One of `words`.
    OneOf {
        default: &'static str,
        words: &'static [&'static str],
    },
    /// Free text (its checks are the code's), `default` when unset: shown as written.
    Text { default: &'static str },
}

// A row of `SETTINGS` is its rule's constructor, then `.means(…)`.
const fn required(name: &'static str) -> Setting {
    Setting::new(name, Rule::Required)
}

const fn number(name: &'static str, default: u64, min: u64, max: u64) -> Setting {
    Setting::new(name, Rule::Number { default, min, max })
}

const fn port(name: &'static str, default: u16, any: bool) -> Setting {
    Setting::new(name, Rule::Port { default, any })
}

const fn one_of(name: &'static str, default: &'static str, words: &'static [&'static str]) -> Setting {
    Setting::new(name, Rule::OneOf { default, words })
}

const fn text(name: &'static str, default: &'static str) -> Setting {
    Setting::new(name, Rule::Text { default })
}

impl Setting {
    const fn new(name: &'static str, rule: Rule) -> Setting {
        Setting {
            name,
            rule,
            meaning: "",
        }
    }

    const fn means(self, meaning: &'static str) -> Setting {
        Setting { meaning, ..self }
    }
}

/// The settings, in the order docs/API.md lists them.
pub const SETTINGS: [Setting; 27] = [
    port("API_PORT", 8080, true).means("listen port (0: any free port)"),
    required("DB_HOST").means("Postgres host"),
    port("DB_PORT", 5432, false).means("Postgres port"),
    required("DB_USER").means("Postgres role"),
    text("DB_PASSWORD", "").means("its password; never logged"),
    text("DB_PASSWORD_FILE", "").means("a file holding DB_PASSWORD (a mounted secret)"),
    required("DB_NAME").means("Postgres database"),
    one_of("DB_SSL_MODE", "disable", &["disable", "require", "verify-full"]).means("TLS to Postgres"),
    text("DB_SSL_ROOT_CERT", "public web roots").means("PEM bundle of the CAs verify-full trusts; only with it"),
    number("DB_POOL_SIZE", 4, 2, 64).means("Postgres connections per process, half for writes"),
    number("DB_EXTRA_WRITE_CONNECTIONS", 4, 0, 64).means("extra write connections while all are stuck"),
    text("REDIS_HOST", "").means("Redis host; empty: no cache"),
    port("REDIS_PORT", 6379, false).means("Redis port"),
    text("REDIS_PASSWORD", "").means("sent with AUTH when set; never logged"),
    text("REDIS_PASSWORD_FILE", "").means("a file holding REDIS_PASSWORD (a mounted secret)"),
    number("CACHE_TTL_SECONDS", 300, 0, 7 * 24 * 3600)
        .means("lifetime of a cached user; 0: no cached reads (writes still fence)"),
    text("CACHE_KEY_PREFIX", "gravity").means("Redis keys are {prefix}:user:{id}"),
    number("CACHE_LOCAL_ENTRIES", 0, 0, 1_000_000).means("in-process copies of cached users; 0: none"),
    one_of("LOG_LEVEL", "info", &["debug", "info", "warn", "error"]).means("the least severe events written"),
    number("SHUTDOWN_GRACE_SECONDS", 10, 0, 3600).means("how long in-flight requests may finish"),
    number("KEEP_ALIVE_SECONDS", 75, 1, 3600)
        .means("how long an idle keep-alive connection waits for its next request"),
    text("MAX_CONNECTIONS", "derived")
        .means("open client connections at most, 1–1048576; derived from the descriptor limit"),
    text("AUTH_ISSUER", "").means("the OpenID Connect issuer whose tokens are accepted"),
    text("AUTH_AUDIENCE", "").means("the aud its tokens must carry"),
    text("AUTH_JWKS_URL", "OpenID discovery").means("its key set: https://, http:// or file:///"),
    one_of("AUTH_DISABLED", "false", &["true", "false"]).means("true: no route needs a token (development)"),
    text("CORS_ALLOWED_ORIGINS", "").means("browser origins (exact, comma-separated) allowed"),
];

/// The setting named `name`, if the service has one.
pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|setting| setting.name == name)
}

/// The settings as `--help` prints them: one line each, name, default, range, meaning.
pub fn help() -> String {
    let rows: Vec<[String; 4]> = SETTINGS
        .iter()
        .map(|setting| {
            let (default, range) = match &setting.rule {
                Rule::Required => ("required".to_owned(), String::new()),
                Rule::Number { default, min, max } => (default.to_string(), format!("{min}–{max}")),
                Rule::Port { default, any } => (default.to_string(), format!("{}–65535", u8::from(!*any))),
                Rule::OneOf { default, words } => ((*default).to_owned(), words.join("|")),
                Rule::Text { default: "" } => ("unset".to_owned(), String::new()),
                Rule::Text { default } => ((*default).to_owned(), String::new()),
            };
            [setting.name.to_owned(), default, range, setting.meaning.to_owned()]
        })
        .collect();
    let width = |column: usize| rows.iter().map(|row| row[column].chars().count()).max().unwrap_or(0);
    let (name, default, range) = (width(0), width(1), width(2));
    let line = |[n, d, r, m]: &[String; 4]| format!("  {n:<name$}  {d:<default$}  {r:<range$}  {m}");
    rows.iter().map(|row| line(row).trim_end().to_owned() + "\n").collect()
}

/// The service's own variables, as envy read them: only names of the table, so that an unrelated
/// variable with a strange value can never stop the service from starting.
pub(super) struct Vars(HashMap<String, String>);

impl Vars {
    pub(super) fn read(vars: impl IntoIterator<Item = (String, String)>) -> Result<Vars, ConfigError> {
        let ours = vars.into_iter().filter(|(name, _)| find(name).is_some());
        let read = envy::from_iter(ours).map_err(|error| ConfigError::new("environment", error.to_string()))?;
        Ok(Vars(read))
    }

    /// The value as given (envy keys are lower case), or `None` when unset.
    pub(super) fn raw(&self, name: &'static str) -> Option<String> {
        self.0.get(&name.to_ascii_lowercase()).cloned()
    }

    /// The value, trimmed, or `None` when unset or blank.
    pub(super) fn text(&self, name: &'static str) -> Option<String> {
        self.raw(name)
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty())
    }

    pub(super) fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.text(name)
            .ok_or_else(|| ConfigError::new(name, "is required but not set"))
    }

    /// A number within the table's limits, or its default.
    pub(super) fn number(&self, name: &'static str) -> Result<u64, ConfigError> {
        let Some(Rule::Number { default, min, max }) = find(name).map(|setting| &setting.rule) else {
            unreachable!("{name} is a number in the table")
        };
        self.text(name)
            .map_or(Ok(*default), |text| within(name, &text, *min, *max))
    }

    /// A port number within the table's limits, or its default.
    pub(super) fn port(&self, name: &'static str) -> Result<u16, ConfigError> {
        let Some(Rule::Port { default, any }) = find(name).map(|setting| &setting.rule) else {
            unreachable!("{name} is a port in the table")
        };
        let Some(text) = self.text(name) else {
            return Ok(*default);
        };
        let lowest = u16::from(!*any);
        let problem = || format!("must be a port number from {lowest} to 65535, got {text:?}");
        let port = text.parse::<u16>().ok().filter(|port| *port >= lowest);
        port.ok_or_else(|| ConfigError::new(name, problem()))
    }

    /// One of the table's words (in any letter case), or its default.
    pub(super) fn one_of(&self, name: &'static str) -> Result<&'static str, ConfigError> {
        let Some(Rule::OneOf { default, words }) = find(name).map(|setting| &setting.rule) else {
            unreachable!("{name} is a choice in the table")
        };
        let Some(text) = self.text(name) else {
            return Ok(default);
        };
        let word = words.iter().find(|word| word.eq_ignore_ascii_case(&text));
        word.copied()
            .ok_or_else(|| ConfigError::new(name, format!("must be {}, got {text:?}", words.join(", "))))
    }
}

/// A whole number from `min` to `max`.
pub(super) fn within(name: &'static str, text: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    match text.parse::<u64>() {
        Ok(number) if (min..=max).contains(&number) => Ok(number),
        _ => Err(ConfigError::new(
            name,
            format!("must be a whole number from {min} to {max}, got {text:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Names of `.env.example` that are not the service's: compose's own (host ports, image tags,
    /// replicas, profiles), documented there and in docs/API.md as never read by the service.
    const COMPOSE_ONLY: [&str; 9] = [
        "API_BIND",
        "COMPOSE_PROJECT_NAME",
        "DEV_DB_PORT",
        "DEV_REDIS_PORT",
        "IMAGE_TAG",
        "DEV_IMAGE_TAG",
        "API_REPLICAS",
        "COMPOSE_PROFILES",
        "PROMETHEUS_PORT",
    ];

    fn names_of_the_table() -> BTreeSet<&'static str> {
        SETTINGS.iter().map(|setting| setting.name).collect()
    }

    /// A file of the repository, read when the test runs (not compiled in: the binary's build
    /// must not depend on documentation and manifests).
    fn repo_file(path: &str) -> String {
        let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        std::fs::read_to_string(&full).unwrap_or_else(|error| panic!("{}: {error}", full.display()))
    }

    /// `NAME=` and `# NAME=` lines.
    fn assigned(text: &str) -> BTreeSet<String> {
        text.lines()
            .filter_map(|line| line.trim_start_matches(['#', ' ']).split_once('='))
            .map(|(name, _)| name.to_owned())
            .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .collect()
    }

    #[test]
    fn env_example_names_every_setting_and_no_other_but_composes_own() {
        let named = assigned(&repo_file(".env.example"));
        let table = names_of_the_table();
        let missing: Vec<_> = table.iter().filter(|name| !named.contains(**name)).collect();
        let unknown: Vec<_> = named
            .iter()
            .filter(|name| !table.contains(name.as_str()) && !COMPOSE_ONLY.contains(&name.as_str()))
            .collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "missing {missing:?}, unknown {unknown:?}"
        );
    }

    #[test]
    fn the_contracts_settings_table_is_this_table() {
        let api = repo_file("docs/API.md");
        let section = api
            .split("## Settings")
            .nth(1)
            .expect("docs/API.md has a Settings section");
        let section = section.split("\n## ").next().unwrap_or(section);
        let documented: BTreeSet<&str> = section
            .lines()
            .filter(|line| line.starts_with("| `"))
            .flat_map(|line| line.split('|').nth(1).unwrap_or("").split(','))
            .map(|name| name.trim().trim_matches('`'))
            .collect();
        assert_eq!(documented, names_of_the_table());
    }

    #[test]
    fn the_deployment_manifests_set_only_settings_of_this_table() {
        let table = names_of_the_table();
        let manifests = [
            ("deploy/swarm/settings.env", repo_file("deploy/swarm/settings.env")),
            (
                "deploy/k8s/base/configmap.yaml",
                repo_file("deploy/k8s/base/configmap.yaml"),
            ),
        ];
        for (file, text) in manifests {
            let set: BTreeSet<String> = text
                .lines()
                .filter(|line| !line.trim_start().starts_with('#'))
                .filter_map(|line| line.trim().split_once(['=', ':']))
                .map(|(name, _)| name.trim().to_owned())
                .filter(|name| name.len() > 2 && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                .collect();
            let unknown: Vec<_> = set.iter().filter(|name| !table.contains(name.as_str())).collect();
            assert!(
                unknown.is_empty(),
                "{file} sets {unknown:?}, which the service does not read"
            );
            assert!(!set.is_empty(), "{file} sets settings");
        }
    }

    #[test]
    fn help_lists_every_setting_with_its_default() {
        let help = help();
        for setting in &SETTINGS {
            assert!(help.contains(setting.name), "{}", setting.name);
        }
        assert!(help.contains("DB_POOL_SIZE") && help.contains("2–64"), "{help}");
    }
}
