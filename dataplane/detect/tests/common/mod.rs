//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

/// xorshift64*: deterministic, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Fragments that drive the decoders and the SQL and HTML tokenizers into their edge cases.
pub const FRAGMENTS: &[&[u8]] = &[
    b"%",
    b"%2",
    b"%25",
    b"%u",
    b"%uD8",
    b"&#",
    b"&#x",
    b"&#1114112;",
    b"&lt",
    b"&",
    b";",
    b"\\u",
    b"\\x",
    b"\\",
    b"'",
    b"\"",
    b"`",
    b"/*",
    b"*/",
    b"--",
    b"#",
    b"<",
    b">",
    b"<script",
    b"on",
    b"onerror",
    b"=",
    b"..",
    b"/",
    b"(",
    b")",
    b"$(",
    b"${IFS}",
    b"|",
    b"\n",
    b"\t",
    b" ",
    b",",
    b"-",
    b"+",
    b"UNION",
    b"SELECT",
    b"OR",
    b"AND",
    b"1",
    b"a",
    b"0x",
    b"1e",
    b".",
    b"@@",
    b"!",
    b"/*!",
    b"N'",
    b"E'",
    b"q'[",
    b"$$",
    b"[",
    b"{",
    b"<img src=",
    b"<a href=",
    b"javascript:",
    b"\xC0\xAE",
    b"\xE2\x80",
    b"\xFF",
    b"\xEF\xBC\x9C",
    b"\0",
];

/// A value of up to `max_parts` fragments and random bytes (never NUL unless `nul`).
pub fn hostile_value(rng: &mut Rng, max_parts: u64, nul: bool) -> Vec<u8> {
    let mut v = Vec::new();
    for _ in 0..rng.next() % (max_parts + 1) {
        if rng.next().is_multiple_of(4) {
            let b = rng.next() as u8;
            v.push(if nul || b != 0 { b } else { 1 });
        } else {
            let piece = FRAGMENTS[(rng.next() as usize) % FRAGMENTS.len()];
            if nul || !piece.contains(&0) {
                v.extend_from_slice(piece);
            }
        }
    }
    v
}

/// Where the OpenAPI examples fetched by `dataplane/policy/fetch-test-data.sh` live.
/// Test data a fetch script puts under `target/test-data` (`rel`), or where `var` points:
/// panics with the command that fetches it when it is missing. Never skipped: the full tier
/// (scripts/test.sh) fetches it first.
pub fn test_data(var: &str, rel: &str, fetch: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/test-data")
            .join(rel)
    });
    assert!(
        path.exists(),
        "{} is missing: run {fetch} (or set {var})",
        path.display()
    );
    path
}

pub fn openapi_dir() -> PathBuf {
    std::env::var_os("VIGIL_OPENAPI_EXAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-data/openapi")
        })
}

/// Every `.json` file under `dir`, recursively.
pub fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
