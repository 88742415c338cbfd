//! A slow signer (as with a TPM-resident key) delays only its own handshake: other handshakes
//! and requests on other connections keep going.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::clients::{client_config, exchange, status_of, tls_connect};
use common::config;
use common::upstream::Upstream;
use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};
use vigil_gateway::Gateway;
use vigil_hw::keys::{FileKeyProvider, KeyError, KeyMode, KeyProvider};
use vigil_testkit::pki::Pki;

const DELAY: Duration = Duration::from_millis(300);

/// A file key that answers like a slow TPM: every signature blocks its thread for DELAY.
#[derive(Debug)]
struct SlowTpm(FileKeyProvider);

#[derive(Debug)]
struct SlowKey(Arc<dyn SigningKey>);

#[derive(Debug)]
struct SlowSigner(Box<dyn Signer>);

impl KeyProvider for SlowTpm {
    fn mode(&self) -> KeyMode {
        KeyMode::TpmResident
    }

    fn load(&self) -> Result<Arc<CertifiedKey>, KeyError> {
        let ck = self.0.load()?;
        Ok(Arc::new(CertifiedKey::new(
            ck.cert.clone(),
            Arc::new(SlowKey(ck.key.clone())),
        )))
    }
}

impl SigningKey for SlowKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        self.0
            .choose_scheme(offered)
            .map(|s| Box::new(SlowSigner(s)) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        self.0.public_key()
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.0.algorithm()
    }
}

impl Signer for SlowSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        std::thread::sleep(DELAY);
        self.0.sign(message)
    }

    fn scheme(&self) -> SignatureScheme {
        self.0.scheme()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_signatures_do_not_stall_other_connections() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path()).unwrap();
    let up = Upstream::start("a").await;
    let cfg = config(dir.path(), &pki, &[up.url()]);
    let keys = Arc::new(SlowTpm(FileKeyProvider::new(&cfg.tls.cert, &cfg.tls.key)));
    let gw = Gateway::start(cfg, keys).await.unwrap();
    let (https, http) = (gw.https_addr(), gw.http_addr().unwrap());
    let t = Instant::now();
    // Six handshakes at once on a two-worker runtime: two at a time they would take
    // 3 x DELAY; offloaded they overlap.
    let handshakes: Vec<_> = (0..6)
        .map(|_| {
            let cfg = client_config(&pki, &["http/1.1"], None);
            tokio::spawn(async move { tls_connect(https, cfg).await.map(drop) })
        })
        .collect();
    tokio::time::sleep(DELAY / 2).await;
    // Meanwhile a request on the plain listener is served at once.
    let q = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(http).await.unwrap();
    let raw = exchange(
        &mut tcp,
        b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    let quick = q.elapsed();
    assert_eq!(status_of(&raw), 200, "{raw}");
    for h in handshakes {
        h.await.unwrap().unwrap();
    }
    let all = t.elapsed();
    assert!(
        quick < DELAY / 3,
        "plain request waited {quick:?} behind slow signatures"
    );
    assert!(all < DELAY * 2, "handshakes were serialised: {all:?}");
    gw.shutdown(Duration::from_secs(1)).await;
}
