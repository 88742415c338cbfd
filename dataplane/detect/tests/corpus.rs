//! Detection and false-positive rates on public data fetched at test setup, never committed:
//!
//! - the Big List of Naughty Strings (`fetch-corpus.sh`; point `VIGIL_ATTACK_CORPUS` at its
//!   `blns.txt`): its attack sections must be flagged, its other sections (Unicode, emoji,
//!   quotes, numbers, reserved words, Scunthorpe names) must not;
//! - every string value of the OpenAPI documents that `dataplane/policy/fetch-test-data.sh`
//!   fetches (descriptions, examples, enums, paths: ordinary API text), from
//!   `VIGIL_OPENAPI_EXAMPLES` or `target/test-data/openapi`.
//!
//! Each test prints its rates and fails, saying which script fetches its data, when the data is
//! missing (scripts/test.sh fetches it first). The floors it asserts are the rates measured when the detector was written, so a
//! change that loses detections or adds false positives fails here.

use std::collections::BTreeMap;

use common::{json_files, openapi_dir};
use vigil_detect::detect;

mod common;

/// blns sections whose strings are attacks (`true`) or hard benign strings (`false`); sections
/// not listed (XML entity expansion, interpolation, CVE strings, terminal escapes, ...) are
/// counted in neither rate.
fn section_is_attack(name: &str) -> Option<bool> {
    match name {
        "Script Injection" | "SQL Injection" | "Server Code Injection" | "File Inclusion" => {
            Some(true)
        }
        "Reserved Strings"
        | "Numeric Strings"
        | "Special Characters"
        | "Unicode Symbols"
        | "Unicode Subscript/Superscript"
        | "Quotation Marks"
        | "Two-Byte Characters"
        | "Japanese Emoticons"
        | "Emoji"
        | "Unicode Numbers"
        | "Right-To-Left Strings"
        | "Unicode Spaces"
        | "Trick Unicode"
        | "Zalgo Text"
        | "Unicode Upsidedown"
        | "Unicode font"
        | "MSDOS/Windows Special Filenames"
        | "Scunthorpe Problem" => Some(false),
        _ => None,
    }
}

#[derive(Default)]
struct Tally {
    total: usize,
    flagged: usize,
}

impl Tally {
    fn rate(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.flagged as f64 / self.total as f64
        }
    }
}

#[test]
fn naughty_strings_corpus() {
    let path = common::test_data(
        "VIGIL_ATTACK_CORPUS",
        "attack-corpus/blns.txt",
        "dataplane/detect/fetch-corpus.sh",
    );
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) => panic!("cannot read VIGIL_ATTACK_CORPUS={}: {e}", path.display()),
    };

    let mut sections: BTreeMap<String, (bool, Tally)> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut expect_title = true;
    for line in text.split(|&b| b == b'\n') {
        if line.is_empty() {
            expect_title = true;
            continue;
        }
        if let Some(comment) = line.strip_prefix(b"#\t") {
            // A section is a title comment line, then description comment lines.
            if expect_title {
                current = Some(String::from_utf8_lossy(comment).trim().to_owned());
                expect_title = false;
            }
            continue;
        }
        expect_title = false;
        let Some(name) = current.as_deref() else {
            continue;
        };
        let Some(is_attack) = section_is_attack(name) else {
            continue;
        };
        let entry = sections
            .entry(name.to_owned())
            .or_insert_with(|| (is_attack, Tally::default()));
        entry.1.total += 1;
        let finding = detect(line);
        if finding.is_some() {
            entry.1.flagged += 1;
        }
        if finding.is_some() != is_attack {
            let what = if is_attack {
                "missed"
            } else {
                "false positive"
            };
            println!(
                "  {what} [{name}] {:?} -> {:?}",
                String::from_utf8_lossy(line),
                finding.map(|f| f.signature())
            );
        }
    }

    let mut attacks = Tally::default();
    let mut benign = Tally::default();
    for (name, (is_attack, t)) in &sections {
        println!(
            "{:<32} {:>4}/{:<4} flagged ({:.1}%)",
            name,
            t.flagged,
            t.total,
            100.0 * t.rate()
        );
        let sum = if *is_attack {
            &mut attacks
        } else {
            &mut benign
        };
        sum.total += t.total;
        sum.flagged += t.flagged;
    }
    println!(
        "attacks: {}/{} detected ({:.1}%); benign: {}/{} flagged ({:.1}%)",
        attacks.flagged,
        attacks.total,
        100.0 * attacks.rate(),
        benign.flagged,
        benign.total,
        100.0 * benign.rate()
    );
    assert!(
        attacks.total > 200,
        "corpus looks truncated: {} attacks",
        attacks.total
    );
    assert!(
        benign.total > 200,
        "corpus looks truncated: {} benign",
        benign.total
    );
    assert!(
        attacks.rate() >= ATTACK_FLOOR,
        "detection rate {:.3}",
        attacks.rate()
    );
    assert!(
        benign.rate() <= BENIGN_CEILING,
        "false-positive rate {:.3}",
        benign.rate()
    );
}

const ATTACK_FLOOR: f64 = 0.85;
const BENIGN_CEILING: f64 = 0.0;
const OPENAPI_CEILING: f64 = 0.006;

/// Every string value, each with whether it sits under an `example`, `examples`, `default` or
/// `enum` key: those are sample request and response data, the closest thing to API traffic in
/// a description (the rest is descriptions, patterns, names and paths).
fn strings<'a>(v: &'a serde_json::Value, in_example: bool, out: &mut Vec<(&'a str, bool)>) {
    match v {
        serde_json::Value::String(s) => out.push((s, in_example)),
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, in_example, out)),
        serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| {
            let example =
                in_example || matches!(k.as_str(), "example" | "examples" | "default" | "enum");
            strings(x, example, out)
        }),
        _ => {}
    }
}

#[test]
fn openapi_documents_are_benign() {
    let dir = openapi_dir();
    let files = json_files(&dir);
    assert!(
        !files.is_empty(),
        "no OpenAPI JSON under {}: run dataplane/policy/fetch-test-data.sh (or set \
         VIGIL_OPENAPI_EXAMPLES)",
        dir.display()
    );
    let mut tally = Tally::default();
    let mut examples = Tally::default();
    let mut by_signature: BTreeMap<String, usize> = BTreeMap::new();
    for file in &files {
        let Ok(bytes) = std::fs::read(file) else {
            continue;
        };
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        let mut values = Vec::new();
        strings(&doc, false, &mut values);
        for (s, in_example) in values {
            tally.total += 1;
            examples.total += usize::from(in_example);
            if let Some(f) = detect(s.as_bytes()) {
                tally.flagged += 1;
                examples.flagged += usize::from(in_example);
                *by_signature.entry(f.signature()).or_default() += 1;
                println!(
                    "  flagged {:?} -> {}",
                    s.chars().take(120).collect::<String>(),
                    f.signature()
                );
            }
        }
    }
    println!(
        "OpenAPI string values: {}/{} flagged ({:.2}%) in {} documents; by signature: {:?}",
        tally.flagged,
        tally.total,
        100.0 * tally.rate(),
        files.len(),
        by_signature
    );
    println!(
        "  of which example/default/enum values: {}/{} flagged ({:.2}%)",
        examples.flagged,
        examples.total,
        100.0 * examples.rate()
    );
    assert!(tally.total > 1000, "too few values: {}", tally.total);
    assert!(
        tally.rate() <= OPENAPI_CEILING,
        "false-positive rate {:.4}",
        tally.rate()
    );
}
