#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The registry file's JSON Schema (docs/registry-as-code.schema.json), checked by the
//! `jsonschema` crate — an implementation of JSON Schema that knows nothing of our serde types
//! — against the documented examples (docs/examples/), and against bad files that both the
//! schema and `vouch apply` itself must refuse (the two readers agree).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

fn schema() -> Value {
    let path = docs().join("registry-as-code.schema.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} is missing: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A YAML (or JSON) document as JSON.
fn document(text: &str) -> Value {
    yaml_serde::from_str(text).unwrap()
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// `vouch apply -f FILE --plan` against an origin that is not there: a file that reads stops
/// at the network (exit 3), one that does not stops before it (exit 2).
fn vouch_reads(path: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(["--url", "http://127.0.0.1:9", "--token", "vk_admin_unused"])
        .args(["apply", "--plan", "-f"])
        .arg(path)
        .env_remove("VOUCH_URL")
        .env_remove("VOUCH_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_schema_is_draft_2020_12() {
    let schema = schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    jsonschema::draft202012::meta::validate(&schema)
        .unwrap_or_else(|e| panic!("not a valid draft 2020-12 schema: {e}"));
}

#[test]
fn every_example_is_valid_and_reads() {
    let validator = jsonschema::draft202012::new(&schema()).unwrap();
    let dir = docs().join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        if !matches!(ext, "yaml" | "yml" | "json") {
            continue;
        }
        let instance = document(&std::fs::read_to_string(&path).unwrap());
        let found = errors(&validator, &instance);
        assert!(found.is_empty(), "{}: {found:#?}", path.display());
        let (code, stderr) = vouch_reads(&path);
        assert_eq!(
            code,
            3,
            "{} should read and stop at the network:\n{stderr}",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 1, "no example files in {}", dir.display());
}

#[test]
fn bad_files_are_refused_by_the_schema_and_by_vouch() {
    let validator = jsonschema::draft202012::new(&schema()).unwrap();
    let example = document(&std::fs::read_to_string(docs().join("examples/agents.yaml")).unwrap());
    let with = |pointer: &str, value: Value| {
        let mut doc = example.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        match doc.pointer_mut(parent).unwrap() {
            Value::Object(map) => {
                map.insert(key.to_owned(), value);
            }
            Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
            other => panic!("{parent} is {other}"),
        }
        doc
    };
    let without = |pointer: &str| {
        let mut doc = example.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        doc.pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove(key);
        doc
    };
    let cases = [
        ("an unknown top-level field", with("/agnets", json!([]))),
        (
            "an unknown agent field",
            with("/agents/0/colour", json!("red")),
        ),
        (
            "a secret in the file",
            with("/webhooks/0/secret", json!("whsec_x")),
        ),
        ("an agent without owner", without("/agents/1/owner")),
        (
            "an owner without contact",
            without("/agents/1/owner/contact"),
        ),
        ("a bad status", with("/agents/0/status", json!("paused"))),
        (
            "a bad capability id",
            with("/agents/0/capabilities/2/id", json!("Tickets.Read")),
        ),
        (
            "a bad region",
            with("/agents/0/regions/1", json!("California")),
        ),
        (
            "a region twice",
            with("/agents/0/regions", json!(["US", "US"])),
        ),
        ("a bad tier", with("/agents/0/tier", json!("gold"))),
        (
            "null inside limits",
            with("/agents/0/limits/allow_pii", Value::Null),
        ),
        (
            "a number in metadata",
            with("/agents/0/metadata/environment", json!(1)),
        ),
        (
            "a private JWK",
            with(
                "/agents/0/public_jwk",
                json!({ "kty": "OKP", "crv": "Ed25519", "x": "a", "d": "b" }),
            ),
        ),
        (
            "a grant too short",
            with("/delegations/0/ttl_seconds", json!(30)),
        ),
        (
            "a grant too deep",
            with("/delegations/0/max_depth", json!(6)),
        ),
        (
            "a grant without scopes",
            with("/delegations/0/scopes", json!([])),
        ),
        (
            "a webhook that is not http",
            with("/webhooks/0/url", json!("ftp://hooks.acme.example/")),
        ),
        ("a bad org id", with("/org_id", json!("acme"))),
        ("agents that are not a list", with("/agents", json!({}))),
    ];
    let scratch = tempfile::tempdir().unwrap();
    for (what, bad) in cases {
        assert!(
            !errors(&validator, &bad).is_empty(),
            "the schema accepts {what}"
        );
        let path = scratch.path().join("bad.json");
        std::fs::write(&path, bad.to_string()).unwrap();
        let (code, stderr) = vouch_reads(&path);
        assert_eq!(code, 2, "vouch apply accepts {what}:\n{stderr}");
        assert!(stderr.contains("bad.json: "), "{what}: {stderr}");
    }
}
