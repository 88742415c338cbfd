//! A TPM-resident key signs in the TPM: 0.4 ms on swtpm, 40-70 ms on a discrete chip. rustls
//! signs synchronously inside the handshake, so the signature is run under
//! `tokio::task::block_in_place`: the worker thread hands its other tasks to the rest of the
//! runtime while it waits, and the accept loop (its own task) keeps accepting. Each handshake
//! already runs in its own task, so one slow signature delays only its own connection.

use std::sync::Arc;

use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};

/// Wraps the key of `ck` so signatures are offloaded.
pub fn wrap(ck: &CertifiedKey) -> Arc<CertifiedKey> {
    let mut out = CertifiedKey::new(ck.cert.clone(), Arc::new(OffloadKey(ck.key.clone())));
    out.ocsp = ck.ocsp.clone();
    Arc::new(out)
}

#[derive(Debug)]
struct OffloadKey(Arc<dyn SigningKey>);

impl SigningKey for OffloadKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        self.0
            .choose_scheme(offered)
            .map(|s| Box::new(OffloadSigner(s)) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        self.0.public_key()
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.0.algorithm()
    }
}

#[derive(Debug)]
struct OffloadSigner(Box<dyn Signer>);

impl Signer for OffloadSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread {
            tokio::task::block_in_place(|| self.0.sign(message))
        } else {
            // block_in_place panics on a current-thread runtime; there nothing else could run
            // meanwhile anyway.
            self.0.sign(message)
        }
    }

    fn scheme(&self) -> SignatureScheme {
        self.0.scheme()
    }
}
