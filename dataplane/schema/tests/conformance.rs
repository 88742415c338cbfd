//! The official JSON-Schema-Test-Suite (drafts 4, 7 and 2020-12) against every validation path
//! (bytes through the fused pass or simd-json, borrowed or owned, and `serde_json::Value`). The
//! fused pass must also give exactly the tape walk's answer, violations included, with room for
//! one, two or the default number of violations. Fetch the suite with
//! `scripts/fetch-test-data.sh`, or point `VIGIL_JSON_SCHEMA_SUITE` at a copy.
//!
//! Rules: every test whose group schema compiles must give the suite's answer; a group whose
//! schema uses an unsupported keyword is skipped and counted under that keyword. Files under
//! `optional/` are included only for the formats the validator asserts. The suite's `remotes/`
//! documents are handed to the compiler under the URIs the suite expects
//! (`http://localhost:1234/...`); nothing is fetched over a network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use vigil_schema::{CompileError, CompileOptions, Dialect, Limits, Validator};

/// `optional/format/` files for the formats this validator asserts.
const FORMAT_FILES: &[&str] = &[
    "date-time",
    "date",
    "time",
    "email",
    "uuid",
    "ipv4",
    "ipv6",
    "hostname",
    "uri",
];

fn suite_dir() -> PathBuf {
    let dir = std::env::var_os("VIGIL_JSON_SCHEMA_SUITE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/test-data/json-schema-test-suite")
        });
    assert!(
        dir.join("tests").is_dir(),
        "JSON-Schema-Test-Suite not found at {}: run scripts/fetch-test-data.sh (or set \
         VIGIL_JSON_SCHEMA_SUITE to a copy of the suite)",
        dir.display()
    );
    dir
}

/// Every file under `remotes/` as (URI, document).
fn remotes() -> Vec<(String, Value)> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, Value)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let r = format!("{rel}{name}");
            if p.is_dir() {
                walk(&p, &format!("{r}/"), out);
            } else if name.ends_with(".json") {
                let doc = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                out.push((format!("http://localhost:1234/{r}"), doc));
            }
        }
    }
    let mut out = Vec::new();
    walk(&suite_dir().join("remotes"), "", &mut out);
    assert!(!out.is_empty(), "no remotes in the suite");
    out
}

#[derive(Default)]
struct Tally {
    passed: usize,
    skipped: BTreeMap<String, usize>,
    failures: Vec<String>,
    /// Runs the fused pass decided, and runs it left to the tape walk.
    fused: usize,
    tape_only: usize,
}

fn run_file(
    path: &Path,
    dialect: Dialect,
    opts: &CompileOptions,
    resources: &[(&str, &Value)],
    tally: &mut Tally,
) {
    let text = std::fs::read_to_string(path).unwrap();
    let groups: Vec<Value> = serde_json::from_str(&text).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    for group in &groups {
        let gdesc = group["description"].as_str().unwrap_or("?");
        let tests = group["tests"].as_array().unwrap();
        let compiled =
            Validator::compile_with_resources(&group["schema"], dialect, opts, resources);
        let validator = match compiled {
            Ok(v) => v,
            Err(CompileError::Unsupported { first, .. }) => {
                *tally.skipped.entry(first.keyword).or_default() += tests.len();
                continue;
            }
            Err(e) => {
                tally
                    .failures
                    .push(format!("{name} / {gdesc}: schema does not compile: {e}"));
                continue;
            }
        };
        for t in tests {
            let tdesc = t["description"].as_str().unwrap_or("?");
            let want = t["valid"].as_bool().unwrap();
            let by_value = validator.validate_value(&t["data"]);
            let mut body = serde_json::to_vec(&t["data"]).unwrap();
            let by_bytes = validator.validate_bytes(&mut body, &Limits::default());
            let mut owned = serde_json::to_vec(&t["data"]).unwrap();
            let by_vec = validator.validate_vec(&mut owned, &Limits::default());
            let kept = serde_json::to_vec(&t["data"]).unwrap();
            let by_slice = validator.validate_slice(&kept, &Limits::default());
            let mut ok = true;
            for (how, got) in [
                ("value", &by_value),
                ("bytes", &by_bytes),
                ("owned bytes", &by_vec),
                ("kept bytes", &by_slice),
            ] {
                if got.is_ok() != want {
                    ok = false;
                    let detail = got.as_ref().err().map(|r| r.violations[0].to_string());
                    tally.failures.push(format!(
                        "{name} / {gdesc} / {tdesc}: expected {}, {how} path says {} {}",
                        if want { "valid" } else { "invalid" },
                        if got.is_ok() { "valid" } else { "invalid" },
                        detail.unwrap_or_default()
                    ));
                }
            }
            // The fused pass, where it decides, reports exactly what the tape walk reports.
            for max_errors in [1, 2, Limits::default().max_errors] {
                let limits = Limits {
                    max_errors,
                    ..Limits::default()
                };
                let text = serde_json::to_vec(&t["data"]).unwrap();
                let Some(fused) = validator.validate_fused(&text, &limits) else {
                    tally.tape_only += 1;
                    continue;
                };
                tally.fused += 1;
                let by_tape = validator.validate_bytes_by_tape(&mut text.clone(), &limits);
                if fused != by_tape {
                    ok = false;
                    tally.failures.push(format!(
                        "{name} / {gdesc} / {tdesc}: fused pass (max_errors {max_errors}) says \
                         {fused:?}, tape walk says {by_tape:?}"
                    ));
                }
            }
            if ok {
                tally.passed += 1;
            }
        }
    }
}

fn run_draft(draft: &str, dialect: Dialect) -> Tally {
    let dir = suite_dir().join("tests").join(draft);
    let mut tally = Tally::default();
    let owned = remotes();
    let resources: Vec<(&str, &Value)> = owned.iter().map(|(u, d)| (u.as_str(), d)).collect();
    // JSON Schema semantics: `format` is an annotation and `readOnly` is only an annotation.
    let base = CompileOptions {
        assert_formats: false,
        reject_read_only: false,
        ..Default::default()
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no test files in {}", dir.display());
    for f in &files {
        run_file(f, dialect, &base, &resources, &mut tally);
    }
    let asserting = CompileOptions {
        assert_formats: true,
        ..base
    };
    for fmt in FORMAT_FILES {
        let p = dir.join("optional/format").join(format!("{fmt}.json"));
        if p.exists() {
            run_file(&p, dialect, &asserting, &resources, &mut tally);
        }
    }
    let skipped: usize = tally.skipped.values().sum();
    let mut kws: Vec<String> = tally
        .skipped
        .iter()
        .map(|(k, n)| format!("{k} x{n}"))
        .collect();
    if kws.is_empty() {
        kws.push("none".to_string());
    }
    println!(
        "conformance {draft}: {} passed, {skipped} skipped (unsupported: {}), {} failed; \
         fused pass decided {} runs, left {} to the tape walk",
        tally.passed,
        kws.join(", "),
        tally.failures.len(),
        tally.fused,
        tally.tape_only
    );
    for f in &tally.failures {
        println!("  FAIL {f}");
    }
    tally
}

fn check(draft: &str, dialect: Dialect) {
    let t = run_draft(draft, dialect);
    assert!(t.passed > 0, "{draft}: nothing passed");
    assert!(
        t.fused > t.tape_only,
        "{draft}: the fused pass decided only {} of {} runs",
        t.fused,
        t.fused + t.tape_only
    );
    assert!(
        t.failures.is_empty(),
        "{draft}: {} conformance failure(s), listed above",
        t.failures.len()
    );
}

#[test]
fn draft2020_12() {
    check("draft2020-12", Dialect::Draft2020_12);
}

#[test]
fn draft7() {
    check("draft7", Dialect::Draft7);
}

#[test]
fn draft4() {
    check("draft4", Dialect::Draft4);
}
