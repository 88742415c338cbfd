//! `Verifier`: the verified-token cache.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestResult, claims_now, jwks_json, now, test_key};
use serde_json::json;
use vigil_identity::{Algorithm, Jwks, JwksLocation, JwksOptions, JwtError, Validation, Verifier};
use vigil_testkit::jwt::JwksServer;

fn url_jwks(server: &JwksServer, cache_ttl: Duration, min_refresh: Duration) -> Arc<Jwks> {
    let location = JwksLocation::Url {
        url: server.url(),
        ca_file: Some(server.ca_file.clone()),
    };
    let options = JwksOptions {
        cache_ttl,
        min_refresh,
        ..JwksOptions::default()
    };
    Arc::new(Jwks::new(location, options).unwrap_or_else(|e| panic!("jwks: {e}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_does_not_verify_again() -> TestResult {
    let key = test_key(Algorithm::Rs384, "k", 0);
    let server = JwksServer::start(jwks_json(&[key.jwk()]))?;
    let jwks = url_jwks(
        &server,
        Duration::from_millis(300),
        Duration::from_millis(300),
    );
    let verifier = Verifier::new(Arc::clone(&jwks), Validation::default(), 100);
    let token = key.token(&claims_now());
    let first = verifier.verify(&token).await?;
    assert_eq!((verifier.cache_len(), server.requests()), (1, 1));
    // The key set is stale now: anything that consults it fetches. A hit does not.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = verifier.verify(&token).await?;
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!((verifier.cache_len(), server.requests()), (1, 1));
    // Another token is a miss, and the miss consults the (stale) key set.
    let mut c = claims_now();
    c["jti"] = json!("2");
    verifier.verify(&key.token(&c)).await?;
    assert_eq!((verifier.cache_len(), server.requests()), (2, 2));
    // The uncached path never touches the cache.
    verifier
        .verify_uncached(&key.token(&json!({"exp": now() + 60})))
        .await?;
    assert_eq!(verifier.cache_len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_set_change_empties_the_cache() -> TestResult {
    let old = test_key(Algorithm::Es256, "old", 0);
    let new = test_key(Algorithm::Es256, "new", 0);
    let server = JwksServer::start(jwks_json(&[old.jwk()]))?;
    let jwks = url_jwks(
        &server,
        Duration::from_secs(300),
        Duration::from_millis(200),
    );
    let verifier = Verifier::new(Arc::clone(&jwks), Validation::default(), 100);
    let old_token = old.token(&claims_now());
    verifier.verify(&old_token).await?;
    verifier.verify(&old_token).await?;
    assert_eq!(verifier.cache_len(), 1);

    // Rotation: the old key is withdrawn. A token of the new key makes the set refresh.
    server.serve(jwks_json(&[new.jwk()]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let new_token = new.token(&claims_now());
    verifier.verify(&new_token).await?;
    assert_eq!(jwks.generation(), 2);
    // Only the new token is cached: the entries of the old generation are gone.
    assert_eq!(verifier.cache_len(), 1);
    // The old token was cached, but is not served from the cache any more.
    assert_eq!(
        verifier.verify(&old_token).await.err(),
        Some(JwtError::UnknownKey)
    );
    assert_eq!(verifier.cache_len(), 1);
    verifier.verify(&new_token).await?;
    assert_eq!(verifier.cache_len(), 1);
    Ok(())
}

#[tokio::test]
async fn an_entry_is_not_served_after_exp() -> TestResult {
    let key = test_key(Algorithm::EdDsa, "k", 0);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks_json(&[key.jwk()]))?;
    let jwks = Arc::new(Jwks::new(JwksLocation::File(path), JwksOptions::default())?);
    let v = Validation {
        leeway: Duration::ZERO,
        ..Validation::default()
    };
    let verifier = Verifier::new(jwks, v, 100);
    let token = key.token(&json!({"sub":"s","exp": now() + 2}));
    verifier.verify(&token).await?;
    assert_eq!(verifier.cache_len(), 1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(verifier.verify(&token).await.err(), Some(JwtError::Expired));
    assert_eq!(verifier.cache_len(), 0);
    Ok(())
}

#[tokio::test]
async fn only_successes_are_cached_and_the_cache_is_bounded() -> TestResult {
    let key = test_key(Algorithm::Es384, "k", 0);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks_json(&[key.jwk()]))?;
    let jwks = Arc::new(Jwks::new(JwksLocation::File(path), JwksOptions::default())?);
    let v = Validation {
        audiences: vec!["api".into()],
        ..Validation::default()
    };
    let verifier = Verifier::new(jwks, v, 3);
    let mut wrong = claims_now();
    wrong["aud"] = json!("elsewhere");
    let bad = key.token(&wrong);
    for _ in 0..3 {
        assert_eq!(verifier.verify(&bad).await.err(), Some(JwtError::Audience));
    }
    assert_eq!(verifier.cache_len(), 0);
    for i in 0..10 {
        let mut c = claims_now();
        c["jti"] = json!(i);
        verifier.verify(&key.token(&c)).await?;
        assert!(verifier.cache_len() <= 3);
    }
    assert!(verifier.cache_len() >= 1);
    Ok(())
}
