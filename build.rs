//! Build-time embedding, so the image needs no files beside the binary:
//! - `migrations/*.sql` become a static list of migrations;
//! - `openapi.yaml` becomes the JSON document served at `/openapi.json`, converted once here and
//!   written in the YAML's own order (it is ordered for people; a JSON map would sort it);
//! - the source revision becomes `GRAVITY_REVISION` (for `--version` and `gravity_build_info`):
//!   `REVISION` from the environment (the Dockerfile's build argument, since the image's build
//!   context has no `.git`), else `git rev-parse --short HEAD`, else `unknown`.
//!
//! Every file must match golang-migrate's pattern `^([0-9]+)_(.*)\.(down|up)\.sql$`; a file that
//! does not, a version with two up files, or an up file without its down fails the build, so a
//! mistake is caught before it ships rather than when a replica starts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

fn main() {
    embed_migrations();
    embed_openapi();
    embed_revision();
}

fn embed_revision() {
    println!("cargo:rerun-if-env-changed=REVISION");
    let revision = match std::env::var("REVISION") {
        Ok(revision) if !revision.trim().is_empty() => revision.trim().to_owned(),
        _ => git_short_head().unwrap_or_else(|| "unknown".to_owned()),
    };
    // It becomes a Prometheus label value and part of `--version`: nothing there needs escaping.
    assert!(
        revision.len() <= 64
            && revision
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-' | b'+')),
        "REVISION must be at most 64 characters of [A-Za-z0-9._+-], got {revision:?}"
    );
    println!("cargo:rustc-env=GRAVITY_REVISION={revision}");
}

/// The checked-out commit, and a note to cargo to look again when it moves.
fn git_short_head() -> Option<String> {
    let revision = git(&["rev-parse", "--short", "HEAD"])?;
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])?];
    watched.extend(git(&["rev-parse", "--git-path", "packed-refs"]));
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.extend(git(&["rev-parse", "--git-path", &branch]));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for path in watched.iter().map(|path| root.join(path)).filter(|path| path.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    Some(revision)
}

fn git(arguments: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(arguments)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

fn embed_openapi() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml");
    println!("cargo:rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(&path).expect("openapi.yaml exists at the repository root");
    let documents = yaml_rust2::YamlLoader::load_from_str(&text).expect("openapi.yaml is valid YAML");
    assert_eq!(documents.len(), 1, "openapi.yaml holds exactly one document");
    let mut json = String::with_capacity(text.len());
    write_json(&documents[0], &mut json);
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("openapi.json");
    std::fs::write(out, json).unwrap();
}

/// Writes YAML as compact JSON, keeping every mapping's key order (serde_json's map would sort).
fn write_json(yaml: &yaml_rust2::Yaml, out: &mut String) {
    use yaml_rust2::Yaml;
    match yaml {
        Yaml::Null => out.push_str("null"),
        Yaml::Boolean(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Yaml::Integer(number) => write!(out, "{number}").unwrap(),
        Yaml::Real(text) => {
            let number = text.parse::<f64>().expect("a YAML real is a number");
            let number = serde_json::Number::from_f64(number).expect("openapi.yaml has no infinite or NaN number");
            out.push_str(&number.to_string());
        }
        Yaml::String(text) => out.push_str(&serde_json::to_string(text).unwrap()),
        Yaml::Array(items) => {
            out.push('[');
            for (position, item) in items.iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Yaml::Hash(map) => {
            out.push('{');
            for (position, (key, value)) in map.iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                let key = match key {
                    Yaml::String(text) => text.clone(),
                    Yaml::Integer(number) => number.to_string(),
                    Yaml::Boolean(flag) => flag.to_string(),
                    other => panic!("openapi.yaml has a key that JSON cannot hold: {other:?}"),
                };
                out.push_str(&serde_json::to_string(&key).unwrap());
                out.push(':');
                write_json(value, out);
            }
            out.push('}');
        }
        Yaml::Alias(_) | Yaml::BadValue => panic!("openapi.yaml uses an alias or a value that cannot be read"),
    }
}

fn embed_migrations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut versions: BTreeMap<u64, (String, Option<String>, Option<String>)> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("migrations/ exists") {
        let path = entry.expect("readable entry").path();
        let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
        println!("cargo:rerun-if-changed={}", path.display());
        let (version, name, direction) = parse_file_name(&file_name)
            .unwrap_or_else(|| panic!("migrations/{file_name} does not match NNNN_name.(up|down).sql"));
        let slot = versions.entry(version).or_insert_with(|| (name.clone(), None, None));
        assert_eq!(slot.0, name, "version {version} has two names: {} and {name}", slot.0);
        let target = if direction == "up" { &mut slot.1 } else { &mut slot.2 };
        assert!(target.is_none(), "version {version} has two {direction} files");
        *target = Some(path.display().to_string());
    }
    let mut code = String::from("&[\n");
    for (version, (name, up, down)) in &versions {
        let up = up
            .as_ref()
            .unwrap_or_else(|| panic!("version {version} has no up file"));
        let down = down
            .as_ref()
            .unwrap_or_else(|| panic!("version {version} has no down file"));
        writeln!(
            code,
            "    Migration {{ version: {version}, name: {name:?}, up: include_str!({up:?}), down: include_str!({down:?}) }},"
        )
        .unwrap();
    }
    code.push(']');
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("migrations.rs");
    std::fs::write(out, code).unwrap();
}

fn parse_file_name(file_name: &str) -> Option<(u64, String, &'static str)> {
    let (stem, direction) = if let Some(stem) = file_name.strip_suffix(".up.sql") {
        (stem, "up")
    } else {
        (file_name.strip_suffix(".down.sql")?, "down")
    };
    let (digits, name) = stem.split_once('_')?;
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, name.to_owned(), direction))
}
