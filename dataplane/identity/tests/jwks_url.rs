//! `Jwks` from an https:// URL, against a local HTTPS server.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Key, TestResult, claims_now, jwks_json, test_key};
use vigil_identity::{
    Algorithm, Jwks, JwksError, JwksLocation, JwksOptions, JwtError, Validation, Verifier,
};
use vigil_testkit::jwt::{JwksServer, Mode};
use vigil_testkit::ports::free_port;

fn options(cache_ttl_ms: u64, min_refresh_ms: u64) -> JwksOptions {
    JwksOptions {
        cache_ttl: Duration::from_millis(cache_ttl_ms),
        min_refresh: Duration::from_millis(min_refresh_ms),
        timeout: Duration::from_secs(5),
    }
}

fn jwks_for(server: &JwksServer, options: JwksOptions) -> Arc<Jwks> {
    let location = JwksLocation::Url {
        url: server.url(),
        ca_file: Some(server.ca_file.clone()),
    };
    Arc::new(Jwks::new(location, options).unwrap_or_else(|e| panic!("jwks: {e}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_once_then_serves_from_cache() -> TestResult {
    let key = test_key(Algorithm::Es256, "a", 0);
    let server = JwksServer::start(jwks_json(&[key.jwk()]))?;
    let jwks = jwks_for(&server, options(60_000, 10_000));
    assert_eq!(
        server.requests(),
        0,
        "nothing is fetched before it is needed"
    );
    assert_eq!(jwks.generation(), 0);
    let first = jwks.current().await?;
    assert_eq!(first.kids(), ["a"]);
    assert_eq!(server.requests(), 1);
    let second = jwks.current().await?;
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(server.requests(), 1);
    let status = jwks.status();
    assert_eq!(
        (status.keys, status.fetches, status.failed_fetches),
        (1, 1, 0)
    );
    assert_eq!(status.seconds_since_fetch, Some(0));
    assert_eq!(status.location, server.url());
    assert_eq!(jwks.generation(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_callers_share_one_fetch() -> TestResult {
    let key = test_key(Algorithm::EdDsa, "a", 0);
    let server = JwksServer::start(jwks_json(&[key.jwk()]))?;
    let jwks = jwks_for(&server, options(60_000, 10_000));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let jwks = Arc::clone(&jwks);
            tokio::spawn(async move { jwks.current().await.map(|k| k.len()) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await?, Ok(1));
    }
    assert_eq!(server.requests(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_refetches_and_finds_the_rotated_key() -> TestResult {
    let old = test_key(Algorithm::Es256, "old", 0);
    let new = test_key(Algorithm::Rs256, "new", 0);
    let server = JwksServer::start(jwks_json(&[old.jwk()]))?;
    let jwks = jwks_for(&server, options(300_000, 300));
    let verifier = Verifier::new(Arc::clone(&jwks), Validation::default(), 100);
    verifier.verify(&old.token(&claims_now())).await?;
    assert_eq!((server.requests(), jwks.generation()), (1, 1));

    server.serve(jwks_json(&[new.jwk()]));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let claims = verifier.verify(&new.token(&claims_now())).await?;
    assert_eq!(claims.subject(), Some("user-1"));
    assert_eq!(server.requests(), 2, "exactly one refetch");
    assert_eq!(jwks.generation(), 2);
    assert_eq!(jwks.current().await?.kids(), ["new"]);
    // The old key is gone with the rotation.
    assert_eq!(
        verifier.verify(&old.token(&claims_now())).await.err(),
        Some(JwtError::UnknownKey)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_unknown_kids_costs_at_most_one_fetch() -> TestResult {
    let old = test_key(Algorithm::Es256, "old", 0);
    let new = test_key(Algorithm::Es256, "new", 0);
    let server = JwksServer::start(jwks_json(&[old.jwk()]))?;
    let jwks = jwks_for(&server, options(300_000, 2_000));
    let verifier = Arc::new(Verifier::new(Arc::clone(&jwks), Validation::default(), 100));
    jwks.current().await?;
    assert_eq!(server.requests(), 1);
    server.serve(jwks_json(&[old.jwk(), new.jwk()]));
    tokio::time::sleep(Duration::from_millis(2_100)).await;

    // 50 concurrent verifications of distinct tokens (the verified-token cache cannot help).
    let burst = |key: &Key| {
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let mut c = claims_now();
                c["jti"] = serde_json::json!(i);
                let (verifier, token) = (Arc::clone(&verifier), key.token(&c));
                tokio::spawn(async move { verifier.verify(&token).await.map(|_| ()) })
            })
            .collect();
        async move {
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap_or_else(|e| panic!("task: {e}")));
            }
            out
        }
    };
    // Tokens of the rotated-in key: one fetch finds it, all verify.
    let results = burst(&new).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(server.requests(), 2);
    // Tokens naming a kid nobody publishes, within min_refresh: no fetch at all.
    let ghost = test_key(Algorithm::Es256, "ghost", 0);
    let results = burst(&ghost).await;
    assert!(
        results.iter().all(|r| *r == Err(JwtError::UnknownKey)),
        "{results:?}"
    );
    assert_eq!(server.requests(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_error() -> TestResult {
    let key = test_key(Algorithm::Ps256, "k", 0);
    let mut server = JwksServer::start(jwks_json(&[key.jwk()]))?;
    let jwks = jwks_for(&server, options(500, 800));
    let verifier = Verifier::new(Arc::clone(&jwks), Validation::default(), 0);
    let before = jwks.current().await?;

    server.set_mode(Mode::Status(500));
    tokio::time::sleep(Duration::from_millis(900)).await;
    let after = jwks.current().await?;
    assert!(
        Arc::ptr_eq(&before, &after),
        "the previous set is still served"
    );
    assert_eq!(server.requests(), 2, "the stale set was refetched");
    let status = jwks.status();
    assert_eq!(
        (status.fetches, status.failed_fetches, status.keys),
        (2, 1, 1)
    );
    assert!(
        status.last_error.as_deref().unwrap_or("").contains("500"),
        "{status:?}"
    );
    // After a failure the next try waits min_refresh: no request per verification.
    verifier.verify(&key.token(&claims_now())).await?;
    assert_eq!(server.requests(), 2);

    // The server is gone altogether: the refetch fails, the old set still verifies.
    server.stop();
    tokio::time::sleep(Duration::from_millis(900)).await;
    verifier.verify(&key.token(&claims_now())).await?;
    let status = jwks.status();
    assert_eq!((status.fetches, status.failed_fetches), (3, 2));
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("cannot connect")
    );
    assert_eq!(jwks.generation(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_refresh_also_bounds_a_short_cache_ttl() -> TestResult {
    let key = test_key(Algorithm::EdDsa, "k", 0);
    let server = JwksServer::start(jwks_json(&[key.jwk()]))?;
    let jwks = jwks_for(&server, options(0, 500));
    for _ in 0..20 {
        jwks.current().await?;
    }
    assert_eq!(server.requests(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    jwks.current().await?;
    assert_eq!(server.requests(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_fetched_and_unreachable_is_unavailable() -> TestResult {
    let dir = tempfile::tempdir()?;
    let key = test_key(Algorithm::Es256, "k", 0);
    let server = JwksServer::start(jwks_json(&[key.jwk()]))?;
    let url = format!("https://127.0.0.1:{}/jwks", free_port()?);
    let ca = dir.path().join("ca.pem");
    std::fs::copy(&server.ca_file, &ca)?;
    let jwks = Arc::new(Jwks::new(
        JwksLocation::Url {
            url,
            ca_file: Some(ca),
        },
        options(60_000, 10_000),
    )?);
    let e = jwks.current().await.err();
    assert!(
        matches!(&e, Some(JwtError::KeysUnavailable { .. })),
        "{e:?}"
    );
    let e = e.unwrap_or(JwtError::UnknownKey);
    assert_eq!(e.reason(), "jwks_unavailable");
    assert!(!e.is_client_error());
    assert!(e.to_string().contains("cannot connect"), "{e}");
    let verifier = Verifier::new(Arc::clone(&jwks), Validation::default(), 10);
    let e = verifier.verify(&key.token(&claims_now())).await.err();
    assert!(matches!(e, Some(JwtError::KeysUnavailable { .. })));
    assert!(matches!(
        jwks.refresh_for_unknown_kid().await,
        Err(JwtError::KeysUnavailable { .. })
    ));
    let status = jwks.status();
    assert_eq!(
        (status.keys, status.fetches, status.failed_fetches),
        (0, 1, 1)
    );
    assert!(status.last_error.is_some() && status.seconds_since_fetch.is_none());
    Ok(())
}

#[test]
fn only_https_urls_and_readable_ca_files() {
    let new = |url: &str, ca: Option<&str>| {
        Jwks::new(
            JwksLocation::Url {
                url: url.into(),
                ca_file: ca.map(Into::into),
            },
            JwksOptions::default(),
        )
    };
    let e = new("http://127.0.0.1/jwks", Some("/nonexistent")).err();
    assert!(matches!(&e, Some(JwksError::Url { .. })), "{e:?}");
    assert!(
        e.map(|e| e.to_string())
            .unwrap_or_default()
            .contains("https://")
    );
    let e = new("https://127.0.0.1/jwks", Some("/nonexistent/ca.pem")).err();
    assert!(
        e.map(|e| e.to_string())
            .unwrap_or_default()
            .contains("/nonexistent/ca.pem")
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "hello").unwrap_or_else(|e| panic!("{e}"));
    let e = new("https://127.0.0.1/jwks", not_pem.to_str()).err();
    assert!(matches!(e, Some(JwksError::Tls { .. })), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused() -> TestResult {
    let key = test_key(Algorithm::Es256, "k", 0);
    let server = JwksServer::start(jwks_json(&[key.jwk()]))?;
    for content_length in [true, false] {
        server.set_mode(Mode::Oversize {
            len: 1 << 20,
            content_length,
        });
        let jwks = jwks_for(&server, options(60_000, 10_000));
        let e = jwks.current().await.err();
        let msg = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("larger than"),
            "content-length {content_length}: {msg}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_wrong_status_wrong_ca_timeout() -> TestResult {
    let key = test_key(Algorithm::Es256, "k", 0);
    let server = JwksServer::start(jwks_json(&[key.jwk()]))?;
    server.set_mode(Mode::Status(404));
    let e = jwks_for(&server, options(60_000, 10_000))
        .current()
        .await
        .err();
    assert!(e.map(|e| e.to_string()).unwrap_or_default().contains("404"));

    // A server whose certificate the configured CA did not issue.
    let other = JwksServer::start(jwks_json(&[key.jwk()]))?;
    let jwks = Jwks::new(
        JwksLocation::Url {
            url: server.url(),
            ca_file: Some(other.ca_file.clone()),
        },
        options(60_000, 10_000),
    )?;
    let e = jwks.current().await.err();
    let msg = e.map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("TLS") && msg.contains("certificate"), "{msg}");

    server.set_mode(Mode::Hang);
    let jwks = jwks_for(
        &server,
        JwksOptions {
            timeout: Duration::from_millis(300),
            ..options(60_000, 10_000)
        },
    );
    let started = Instant::now();
    let e = jwks.current().await.err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        e.map(|e| e.to_string())
            .unwrap_or_default()
            .contains("within")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_is_honoured_with_a_floor_and_host_names_work() -> TestResult {
    let key = test_key(Algorithm::Es256, "k", 0);
    let server = JwksServer::start("")?;
    server.set_mode(Mode::Serve {
        body: jwks_json(&[key.jwk()]).into_bytes(),
        headers: vec!["Cache-Control: public, max-age=1".into()],
    });
    // By name: SNI and certificate check against "localhost".
    let url = format!("https://localhost:{}/jwks", server.port);
    let jwks = Jwks::new(
        JwksLocation::Url {
            url,
            ca_file: Some(server.ca_file.clone()),
        },
        options(100, 0),
    )?;
    jwks.current().await?;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    // max-age=1 is raised to the 60 s floor and overrides the 100 ms cache_ttl.
    jwks.current().await?;
    assert_eq!(server.requests(), 1);
    Ok(())
}
