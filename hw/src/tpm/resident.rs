//! The TPM-resident ECC P-256 signing key and the thread that owns the TPM connection.
//!
//! TPM2_Sign blocks for the TPM's whole signing time (swtpm ~0.4 ms, discrete TPMs 40-70 ms).
//! One thread owns the connection and the loaded key; callers send a digest over a channel
//! and wait for the signature. That serialises TPM access (swtpm serves one client and has no
//! resource manager) and keeps exactly one transient object loaded however many signatures
//! are made.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Digest, EccScheme, HashScheme, HashcheckTicket, Public, Signature, SignatureScheme,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;
use tss_esapi::utils::create_unrestricted_signing_ecc_public;

use super::conn::Tpm;
use super::seal::load_object;
use crate::keys::KeyError;

/// How long a caller waits for a signature before giving up (a hung TPM must not hang the
/// handshake forever; a healthy discrete TPM answers in well under a second).
const SIGN_TIMEOUT: Duration = Duration::from_secs(10);

/// A resident key as stored in its blob: TPM public and private areas, and the public point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResidentKey {
    pub(crate) public: Vec<u8>,
    pub(crate) private: Vec<u8>,
    /// Uncompressed SEC1 point `04 || x || y`.
    pub(crate) point: Vec<u8>,
}

/// Creates a new non-exportable ECDSA P-256 key under the primary.
pub(crate) fn create_resident(tpm: &mut Tpm) -> Result<ResidentKey, KeyError> {
    let template = create_unrestricted_signing_ecc_public(
        EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
        EccCurve::NistP256,
    )
    .map_err(|e| tpm.err("build signing key template", e))?;
    let primary = tpm.create_primary()?;
    let created = tpm
        .ctx
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.create(primary, template, None, None, None, None)
        });
    tpm.flush(primary);
    let created = created.map_err(|e| tpm.err("create signing key", e))?;
    let point = ecc_point(&created.out_public).ok_or_else(|| KeyError::Tpm {
        op: "create signing key",
        detail: "the TPM returned a key that is not a P-256 point".into(),
    })?;
    Ok(ResidentKey {
        public: created
            .out_public
            .marshall()
            .map_err(|e| tpm.err("marshal signing key", e))?,
        private: created.out_private.value().to_vec(),
        point,
    })
}

/// The uncompressed point of an ECC public area, coordinates left-padded to 32 bytes.
pub(crate) fn ecc_point(public: &Public) -> Option<Vec<u8>> {
    let Public::Ecc { unique, .. } = public else {
        return None;
    };
    let (x, y) = (unique.x().value(), unique.y().value());
    if x.len() > 32 || y.len() > 32 {
        return None;
    }
    let mut point = vec![0u8; 65];
    point[0] = 4;
    point[33 - x.len()..33].copy_from_slice(x);
    point[65 - y.len()..].copy_from_slice(y);
    Some(point)
}

/// The point stored in a marshalled public area.
pub(crate) fn point_from_public(public: &[u8]) -> Option<Vec<u8>> {
    Public::unmarshall(public).ok().as_ref().and_then(ecc_point)
}

/// DER `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` from big-endian r and s.
pub(crate) fn ecdsa_der(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn integer(v: &[u8]) -> Vec<u8> {
        let start = v.iter().position(|b| *b != 0).unwrap_or(v.len());
        let mut body = v[start..].to_vec();
        // An INTEGER is signed: a set top bit needs a zero byte in front; zero is one byte.
        if body.first().is_none_or(|b| b & 0x80 != 0) {
            body.insert(0, 0);
        }
        let mut out = vec![0x02, u8::try_from(body.len()).unwrap_or(0)];
        out.extend_from_slice(&body);
        out
    }
    let (ri, si) = (integer(r), integer(s));
    // Both integers are at most 33 bytes + 2 for P-256, so the short length form always fits.
    let mut out = vec![0x30, u8::try_from(ri.len() + si.len()).unwrap_or(0)];
    out.extend_from_slice(&ri);
    out.extend_from_slice(&si);
    out
}

struct SignRequest {
    key: Arc<ResidentKey>,
    digest: [u8; 32],
    reply: SyncSender<Result<Vec<u8>, KeyError>>,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SignerStats {
    /// Signatures made.
    pub signatures: u64,
    /// Signing requests that failed.
    pub failures: u64,
    /// TPM connections opened (1 plus reconnects after the TPM went away).
    pub connections: u64,
}

#[derive(Debug, Default)]
struct Counters {
    signatures: AtomicU64,
    failures: AtomicU64,
    connections: AtomicU64,
}

/// The thread that owns one TPM connection and signs digests for any resident key.
#[derive(Debug)]
pub(crate) struct TpmSigner {
    tx: Mutex<Option<Sender<SignRequest>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for SignRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignRequest")
    }
}

impl TpmSigner {
    /// Starts the signing thread. It connects on the first request, so starting never blocks
    /// on a TPM another client holds.
    pub(crate) fn start(tcti: &str) -> Result<Self, KeyError> {
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let (tcti, c) = (tcti.to_owned(), Arc::clone(&counters));
        let thread = std::thread::Builder::new()
            .name("vigil-tpm-sign".into())
            .spawn(move || serve(&tcti, &rx, &c))
            .map_err(|e| KeyError::Tpm {
                op: "start signing thread",
                detail: e.to_string(),
            })?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            counters,
        })
    }

    /// Signs a SHA-256 digest with `key`; returns a DER ECDSA signature. Blocks the caller for
    /// the TPM's signing time.
    pub(crate) fn sign_digest(
        &self,
        key: &Arc<ResidentKey>,
        digest: [u8; 32],
    ) -> Result<Vec<u8>, KeyError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let req = SignRequest {
            key: Arc::clone(key),
            digest,
            reply,
        };
        let gone = || KeyError::Tpm {
            op: "sign",
            detail: "the TPM signing thread has stopped".into(),
        };
        {
            let tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
            tx.as_ref()
                .ok_or_else(gone)?
                .send(req)
                .map_err(|_| gone())?;
        }
        match answer.recv_timeout(SIGN_TIMEOUT) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(KeyError::Tpm {
                op: "sign",
                detail: format!("no signature from the TPM within {SIGN_TIMEOUT:?}"),
            }),
            Err(RecvTimeoutError::Disconnected) => Err(gone()),
        }
    }

    pub(crate) fn stats(&self) -> SignerStats {
        SignerStats {
            signatures: self.counters.signatures.load(Ordering::Relaxed),
            failures: self.counters.failures.load(Ordering::Relaxed),
            connections: self.counters.connections.load(Ordering::Relaxed),
        }
    }
}

impl Drop for TpmSigner {
    fn drop(&mut self) {
        // Closing the channel ends the thread; joining makes sure the TPM connection is closed
        // when drop returns, so another client of a single-client swtpm can connect at once.
        self.tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// The connection and the key currently loaded in it.
struct Loaded {
    tpm: Tpm,
    key: Option<(Arc<ResidentKey>, KeyHandle)>,
}

fn serve(tcti: &str, rx: &Receiver<SignRequest>, counters: &Counters) {
    let mut state: Option<Loaded> = None;
    while let Ok(req) = rx.recv() {
        let mut result = sign_once(tcti, &mut state, &req, counters);
        // The TPM may have restarted (its transient objects are gone: TPM_RC_REFERENCE_H0) or
        // the connection dropped. Reconnect once and reload the key from its blob, which a
        // restarted TPM accepts because the primary key is re-derived from the same seed.
        if result.is_err() {
            state = None;
            result = sign_once(tcti, &mut state, &req, counters);
        }
        let counter = if result.is_ok() {
            &counters.signatures
        } else {
            state = None;
            &counters.failures
        };
        counter.fetch_add(1, Ordering::Relaxed);
        // The caller may have timed out and gone; nothing to do then.
        let _ = req.reply.send(result);
    }
    if let Some(Loaded {
        mut tpm,
        key: Some((_, handle)),
    }) = state
    {
        tpm.flush(handle);
    }
}

fn sign_once(
    tcti: &str,
    state: &mut Option<Loaded>,
    req: &SignRequest,
    counters: &Counters,
) -> Result<Vec<u8>, KeyError> {
    if state.is_none() {
        let tpm = Tpm::connect(tcti)?;
        counters.connections.fetch_add(1, Ordering::Relaxed);
        *state = Some(Loaded { tpm, key: None });
    }
    let Some(loaded) = state.as_mut() else {
        return Err(KeyError::TpmUnreachable {
            tcti: tcti.to_owned(),
            detail: "no connection".into(),
        });
    };
    let handle = match &loaded.key {
        Some((key, handle)) if Arc::ptr_eq(key, &req.key) || **key == *req.key => *handle,
        _ => {
            // A rotated key: swap the loaded object so only one slot is ever in use.
            if let Some((_, old)) = loaded.key.take() {
                loaded.tpm.flush(old);
            }
            let handle = load_object(&mut loaded.tpm, &req.key.public, &req.key.private)?;
            loaded.key = Some((Arc::clone(&req.key), handle));
            handle
        }
    };
    let digest = Digest::try_from(req.digest.to_vec()).map_err(|e| loaded.tpm.err("sign", e))?;
    let ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
    .map_err(|e| loaded.tpm.err("sign", e))?;
    let scheme = SignatureScheme::EcDsa {
        hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
    };
    let signature = loaded
        .tpm
        .ctx
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.sign(handle, digest, scheme, ticket)
        })
        .map_err(|e| loaded.tpm.err("sign", e))?;
    match signature {
        Signature::EcDsa(sig) => Ok(ecdsa_der(
            sig.signature_r().value(),
            sig.signature_s().value(),
        )),
        _ => Err(KeyError::Tpm {
            op: "sign",
            detail: "the TPM returned a non-ECDSA signature".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_encoding_strips_and_pads_integers() {
        let r = [0x00, 0x00, 0x7f, 0x01];
        let s = [0x80, 0x02];
        assert_eq!(
            ecdsa_der(&r, &s),
            vec![
                0x30, 0x09, 0x02, 0x02, 0x7f, 0x01, 0x02, 0x03, 0x00, 0x80, 0x02
            ]
        );
        assert_eq!(
            ecdsa_der(&[0, 0], &[1]),
            vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01]
        );
    }
}
