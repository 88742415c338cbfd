//! `Jwks` from a file.

mod common;

use std::sync::Arc;

use common::{TestResult, claims_now, jwks_json, test_key};
use serde_json::json;
use vigil_identity::{
    Algorithm, Jwks, JwksError, JwksLocation, JwksOptions, JwtError, Validation, Verifier,
};
use vigil_testkit::jwt::{b64, hs256_token};

fn load(path: &std::path::Path) -> Result<Jwks, JwksError> {
    Jwks::new(JwksLocation::File(path.to_owned()), JwksOptions::default())
}

#[tokio::test]
async fn loads_and_skips_symmetric_and_encryption_keys() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("jwks.json");
    let key = test_key(Algorithm::Es384, "sig", 0);
    let mut enc = test_key(Algorithm::Rs256, "enc", 0).jwk();
    enc["use"] = json!("enc");
    let oct = json!({"kty":"oct","kid":"sig","k":b64("hunter2"),"alg":"HS256"});
    std::fs::write(&path, jwks_json(&[oct, key.jwk(), enc]))?;
    let jwks = Arc::new(load(&path)?);
    let keys = jwks.current().await?;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys.skipped(), 2);
    assert_eq!(keys.kids(), ["sig"]);
    assert_eq!(jwks.generation(), 1);
    let status = jwks.status();
    assert_eq!(status.location, path.display().to_string());
    assert_eq!(
        (status.keys, status.fetches, status.failed_fetches),
        (1, 1, 0)
    );
    assert_eq!(status.last_error, None);
    assert!(serde_json::to_string(&status)?.contains("\"keys\":1"));

    // The oct key shares the kid and is never used: an HS256 token with its secret is refused.
    let verifier = Verifier::new(Arc::clone(&jwks), Validation::default(), 16);
    let hs = hs256_token(
        &json!({"alg":"HS256","kid":"sig"}),
        &claims_now(),
        b"hunter2",
    );
    let e = verifier.verify(&hs).await.err();
    assert_eq!(
        e,
        Some(JwtError::AlgorithmRefused {
            alg: "HS256".into()
        })
    );
    assert_eq!(
        verifier.verify(&key.token(&claims_now())).await?.subject(),
        Some("user-1")
    );
    // A file set is never refetched; an unknown kid gets the same set back.
    let again = jwks.refresh_for_unknown_kid().await?;
    assert!(Arc::ptr_eq(&again, &keys));
    assert_eq!(jwks.status().fetches, 1);
    Ok(())
}

#[test]
fn bad_files_name_the_path() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let missing = dir.path().join("missing.json");
    let e = load(&missing)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains(&missing.display().to_string()), "{e}");

    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("garbage.json", b"{not json".to_vec(), "not a JWKS"),
        ("empty.json", br#"{"keys":[]}"#.to_vec(), "no usable"),
        (
            "oct-only.json",
            br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.to_vec(),
            "no usable",
        ),
    ];
    for (name, content, expect) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("{e}"));
        let e = load(&path).err();
        assert!(matches!(e, Some(JwksError::File { .. })), "{name}: {e:?}");
        let msg = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains(expect),
            "{msg}"
        );
    }
}

#[test]
fn files_that_are_not_small_regular_files_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let big = dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; (1 << 20) + 1]).unwrap_or_else(|e| panic!("{e}"));
    let fifo = dir.path().join("fifo.json");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()));
    let cases = [
        (big.as_path(), "over the 1 MiB limit for a JWKS file"),
        (fifo.as_path(), "is a FIFO, not a regular file"),
        (
            std::path::Path::new("/dev/zero"),
            "is a character device, not a regular file",
        ),
    ];
    for (path, expect) in cases {
        let e = load(path).err();
        assert!(matches!(e, Some(JwksError::Unreadable { .. })), "{e:?}");
        let msg = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains(expect),
            "{msg}"
        );
    }
}
