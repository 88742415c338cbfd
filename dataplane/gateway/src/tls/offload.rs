//! A TPM-resident key signs in the TPM: 0.4 ms on swtpm, 40-70 ms on a discrete chip. rustls
//! signs synchronously inside the handshake, so the signature is run under
//! `tokio::task::block_in_place`: the worker thread hands its other tasks to the rest of the
//! runtime while it waits, and the accept loop (its own task) keeps accepting. Each handshake
//! already runs in its own task, so one slow signature delays only its own connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::SignStats;

use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};

/// Wraps the key of `ck` so signatures are offloaded.
pub fn wrap(ck: &CertifiedKey, stats: Arc<SignStats>) -> Arc<CertifiedKey> {
    let mut out = CertifiedKey::new(ck.cert.clone(), Arc::new(OffloadKey(ck.key.clone(), stats)));
    out.ocsp = ck.ocsp.clone();
    Arc::new(out)
}

#[derive(Debug)]
struct OffloadKey(Arc<dyn SigningKey>, Arc<SignStats>);

impl SigningKey for OffloadKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        self.0
            .choose_scheme(offered)
            .map(|s| Box::new(OffloadSigner(s, self.1.clone())) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        self.0.public_key()
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.0.algorithm()
    }
}

#[derive(Debug)]
struct OffloadSigner(Box<dyn Signer>, Arc<SignStats>);

impl Signer for OffloadSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let start = std::time::Instant::now();
        let signed = if multi_thread {
            tokio::task::block_in_place(|| self.0.sign(message))
        } else {
            // block_in_place panics on a current-thread runtime; there nothing else could run
            // meanwhile anyway.
            self.0.sign(message)
        };
        let s = &self.1;
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        s.count.fetch_add(1, Ordering::Relaxed);
        s.nanos.fetch_add(ns, Ordering::Relaxed);
        s.last_failed.store(signed.is_err(), Ordering::Relaxed);
        if signed.is_err() {
            s.failures.fetch_add(1, Ordering::Relaxed);
        }
        signed
    }

    fn scheme(&self) -> SignatureScheme {
        self.0.scheme()
    }
}
