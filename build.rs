//! Build-time embedding, so the image needs no files beside the binary:
//! - `migrations/*.sql` become a static list of migrations;
//! - `openapi.yaml` becomes the JSON document served at `/openapi.json`, converted once here.
//!
//! Every file must match golang-migrate's pattern `^([0-9]+)_(.*)\.(down|up)\.sql$`; a file that
//! does not, a version with two up files, or an up file without its down fails the build, so a
//! mistake is caught before it ships rather than when a replica starts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

fn main() {
    embed_migrations();
    embed_openapi();
}

fn embed_openapi() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml");
    println!("cargo:rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(&path).expect("openapi.yaml exists at the repository root");
    let documents = yaml_rust2::YamlLoader::load_from_str(&text).expect("openapi.yaml is valid YAML");
    assert_eq!(documents.len(), 1, "openapi.yaml holds exactly one document");
    let json = serde_json::to_vec(&yaml_to_json(&documents[0])).unwrap();
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("openapi.json");
    std::fs::write(out, json).unwrap();
}

fn yaml_to_json(yaml: &yaml_rust2::Yaml) -> serde_json::Value {
    use serde_json::Value;
    use yaml_rust2::Yaml;
    match yaml {
        Yaml::Null => Value::Null,
        Yaml::Boolean(flag) => Value::Bool(*flag),
        Yaml::Integer(number) => Value::from(*number),
        Yaml::Real(text) => Value::from(text.parse::<f64>().expect("a YAML real is a number")),
        Yaml::String(text) => Value::String(text.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let key = match key {
                        Yaml::String(text) => text.clone(),
                        Yaml::Integer(number) => number.to_string(),
                        Yaml::Boolean(flag) => flag.to_string(),
                        other => panic!("openapi.yaml has a key that JSON cannot hold: {other:?}"),
                    };
                    (key, yaml_to_json(value))
                })
                .collect(),
        ),
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
