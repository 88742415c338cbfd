//! `vigilctl fleet keygen|pubkey`: the box keys that sign fleet blocks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt as _;

use common::{fails, ok, ok_json};

#[test]
fn keygen_writes_a_private_key_and_prints_the_line_for_every_box() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("edge-1.key");
    let k = key.to_str().unwrap();
    let out = ok(&["fleet", "keygen", "--box", "edge-1", "--out", k]);
    let line = out
        .lines()
        .find(|l| l.starts_with("edge-1 = \"ed25519:"))
        .unwrap_or_else(|| panic!("no [fleet.boxes] line: {out}"));
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{text}");
    // pubkey reads the same key back; the printed line is valid TOML.
    let v = ok_json(&["fleet", "pubkey", k, "--box", "edge-1", "--json"]);
    let table: toml::Table = toml::from_str(line).unwrap();
    assert_eq!(table["edge-1"].as_str(), v["public_key"].as_str());
    // An existing key is kept unless --force.
    fails(
        &["fleet", "keygen", "--box", "edge-1", "--out", k],
        &["--force"],
    );
    let again = ok_json(&["fleet", "pubkey", k, "--json"]);
    assert_eq!(again["public_key"], v["public_key"]);
    ok(&["fleet", "keygen", "--box", "edge-1", "--out", k, "--force"]);
    let replaced = ok_json(&["fleet", "pubkey", k, "--json"]);
    assert_ne!(replaced["public_key"], v["public_key"]);
}

#[test]
fn bad_names_and_keys_are_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("k");
    let o = out.to_str().unwrap();
    fails(
        &["fleet", "keygen", "--box", "edge 1", "--out", o],
        &["--box", "' '"],
    );
    fails(
        &["fleet", "keygen", "--box", &"a".repeat(32), "--out", o],
        &["31"],
    );
    assert!(!out.exists());
    std::fs::write(&out, "not a key").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
    fails(&["fleet", "pubkey", o], &["chmod 600"]);
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o600)).unwrap();
    fails(
        &["fleet", "pubkey", o],
        &["BEGIN PRIVATE KEY", "vigilctl fleet keygen"],
    );
}
