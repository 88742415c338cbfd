//! Sealing a secret to PCR values, and unsealing it only while they still hold.

use std::collections::BTreeMap;

use tss_esapi::abstraction::pcr;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Digest, KeyedHashScheme, PcrSelectionList, PcrSlot, Private, Public, PublicBuilder,
    PublicKeyedHashParameters, SensitiveData, SymmetricDefinition,
};
use tss_esapi::traits::{Marshall, UnMarshall};

use super::conn::{Tpm, rc_kind};
use super::locked::LockedBuffer;
use crate::keys::KeyError;

/// Highest PCR index of a PC-client TPM.
const MAX_PCR: u8 = 23;

/// A sealed object: marshalled public area, private area, and the PCR values it is bound to.
#[derive(Debug, Clone)]
pub(crate) struct Sealed {
    pub(crate) public: Vec<u8>,
    pub(crate) private: Vec<u8>,
    pub(crate) pcr_values: BTreeMap<u8, Vec<u8>>,
}

/// Checks a PCR index list: 0..=23, no duplicates, at least one.
pub(crate) fn check_pcrs(pcrs: &[u8]) -> Result<(), KeyError> {
    let invalid = |detail: String| KeyError::Invalid { detail };
    if pcrs.is_empty() {
        return Err(invalid(
            "a sealed key needs at least one PCR in its policy".into(),
        ));
    }
    if let Some(p) = pcrs.iter().find(|p| **p > MAX_PCR) {
        return Err(invalid(format!("PCR {p} does not exist (0 to {MAX_PCR})")));
    }
    let mut sorted = pcrs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != pcrs.len() {
        return Err(invalid(format!("PCR list {pcrs:?} has duplicates")));
    }
    Ok(())
}

fn selection(tpm: &Tpm, pcrs: &[u8]) -> Result<PcrSelectionList, KeyError> {
    let slots = pcrs
        .iter()
        .map(|p| PcrSlot::try_from(1u32 << p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tpm.err("select PCRs", e))?;
    PcrSelectionList::builder()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(|e| tpm.err("select PCRs", e))
}

/// Reads the SHA-256 bank values of `pcrs`.
pub(crate) fn read_pcrs(tpm: &mut Tpm, pcrs: &[u8]) -> Result<BTreeMap<u8, Vec<u8>>, KeyError> {
    let sel = selection(tpm, pcrs)?;
    let data = tpm
        .ctx
        .execute_without_session(|c| pcr::read_all(c, sel))
        .map_err(|e| tpm.err("read PCRs", e))?;
    let bank = data
        .pcr_bank(HashingAlgorithm::Sha256)
        .ok_or_else(|| KeyError::Tpm {
            op: "read PCRs",
            detail: "the TPM has no SHA-256 PCR bank enabled".into(),
        })?;
    let mut out = BTreeMap::new();
    for p in pcrs {
        let slot = PcrSlot::try_from(1u32 << p).map_err(|e| tpm.err("read PCRs", e))?;
        let digest = bank.get_digest(slot).ok_or_else(|| KeyError::Tpm {
            op: "read PCRs",
            detail: format!("PCR {p} missing from the SHA-256 bank"),
        })?;
        out.insert(*p, digest.value().to_vec());
    }
    Ok(out)
}

/// Starts a policy (or trial) session and applies PolicyPCR over `pcrs` at their current
/// values. The caller flushes the returned session.
pub(crate) fn pcr_policy(
    tpm: &mut Tpm,
    pcrs: &[u8],
    kind: SessionType,
) -> Result<AuthSession, KeyError> {
    let sel = selection(tpm, pcrs)?;
    let session = start_session(tpm, kind)?;
    let policy = PolicySession::try_from(session).map_err(|e| tpm.err("policy session", e))?;
    let applied = tpm
        .ctx
        .execute_without_session(|c| c.policy_pcr(policy, Digest::default(), sel));
    if let Err(e) = applied {
        flush_session(tpm, session);
        return Err(tpm.err("apply PCR policy", e));
    }
    Ok(session)
}

/// Starts a policy or trial session (SHA-256). The caller flushes it.
pub(crate) fn start_session(tpm: &mut Tpm, kind: SessionType) -> Result<AuthSession, KeyError> {
    tpm.ctx
        .execute_without_session(|c| {
            c.start_auth_session(
                None,
                None,
                None,
                kind,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
        })
        .map_err(|e| tpm.err("start policy session", e))?
        .ok_or_else(|| KeyError::Tpm {
            op: "start policy session",
            detail: "the TPM returned no session".into(),
        })
}

/// The policy digest a trial session computed; flushes the session.
pub(crate) fn trial_digest(tpm: &mut Tpm, trial: AuthSession) -> Result<Digest, KeyError> {
    let digest = PolicySession::try_from(trial)
        .and_then(|p| tpm.ctx.execute_without_session(|c| c.policy_get_digest(p)));
    flush_session(tpm, trial);
    digest.map_err(|e| tpm.err("compute policy digest", e))
}

pub(crate) fn flush_session(tpm: &mut Tpm, session: AuthSession) {
    let handle = tss_esapi::handles::SessionHandle::from(session);
    // Fails harmlessly if the TPM already dropped the session after its last use.
    let _ = tpm.ctx.flush_context(handle.into());
}

/// Seals `secret` (at most 128 bytes) under a policy on the current values of `pcrs`.
pub(crate) fn seal(tpm: &mut Tpm, secret: &[u8], pcrs: &[u8]) -> Result<Sealed, KeyError> {
    check_pcrs(pcrs)?;
    let pcr_values = read_pcrs(tpm, pcrs)?;
    let trial = pcr_policy(tpm, pcrs, SessionType::Trial)?;
    let digest = trial_digest(tpm, trial)?;
    let (public, private) = create_sealed(tpm, secret, digest)?;
    Ok(Sealed {
        public,
        private,
        pcr_values,
    })
}

/// Creates a sealed data object holding `secret` under `policy` (its authPolicy); returns its
/// marshalled public area and its private area.
pub(crate) fn create_sealed(
    tpm: &mut Tpm,
    secret: &[u8],
    policy: Digest,
) -> Result<(Vec<u8>, Vec<u8>), KeyError> {
    let public = sealed_template(policy).map_err(|e| tpm.err("build sealed template", e))?;
    let data = SensitiveData::try_from(secret.to_vec()).map_err(|e| tpm.err("seal", e))?;
    let primary = tpm.create_primary()?;
    let created = tpm
        .ctx
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.create(primary, public, None, Some(data), None, None)
        });
    tpm.flush(primary);
    let created = created.map_err(|e| tpm.err("create sealed object", e))?;
    let public = created
        .out_public
        .marshall()
        .map_err(|e| tpm.err("marshal sealed object", e))?;
    Ok((public, created.out_private.value().to_vec()))
}

/// A keyed-hash data object usable only through the policy: no password (userWithAuth clear),
/// bound to this TPM and parent.
fn sealed_template(policy: Digest) -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_no_da(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_auth_policy(policy)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
}

/// Loads a TPM object (public + private blob) under a fresh primary. The caller flushes it.
pub(crate) fn load_object(
    tpm: &mut Tpm,
    public: &[u8],
    private: &[u8],
) -> Result<KeyHandle, KeyError> {
    let public = Public::unmarshall(public).map_err(|e| tpm.err("read key blob public", e))?;
    let private =
        Private::try_from(private.to_vec()).map_err(|e| tpm.err("read key blob private", e))?;
    let primary = tpm.create_primary()?;
    let loaded = tpm
        .ctx
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.load(primary, private, public)
        });
    tpm.flush(primary);
    loaded.map_err(|e| {
        if rc_kind(&e) == Some(Tss2ResponseCodeKind::Integrity) {
            // The private area is bound to the primary key, i.e. to this TPM's owner seed.
            KeyError::Tpm {
                op: "load key blob",
                detail: "the blob was created by another TPM, or this TPM's owner hierarchy \
                    was cleared since (TPM_RC_INTEGRITY); create the key again with \
                    `vigilctl keys init` or `vigilctl keys seal`"
                    .into(),
            }
        } else {
            tpm.err("load key blob", e)
        }
    })
}

/// What unsealing an object returned.
pub(crate) enum Unsealed {
    /// The secret.
    Data(LockedBuffer),
    /// The session did not satisfy the object's policy (TPM_RC_POLICY_FAIL).
    PolicyFailed,
}

/// Loads a sealed object, satisfies its policy with the session `policy` starts, and unseals.
/// Flushes everything it loads.
pub(crate) fn unseal_object(
    tpm: &mut Tpm,
    public: &[u8],
    private: &[u8],
    policy: impl FnOnce(&mut Tpm) -> Result<AuthSession, KeyError>,
) -> Result<Unsealed, KeyError> {
    let object = load_object(tpm, public, private)?;
    let session = match policy(tpm) {
        Ok(s) => s,
        Err(e) => {
            tpm.flush(object);
            return Err(e);
        }
    };
    let result = tpm
        .ctx
        .execute_with_session(Some(session), |c| c.unseal(object.into()));
    flush_session(tpm, session);
    tpm.flush(object);
    match result {
        Ok(data) => LockedBuffer::copy_of(data.value()).map(Unsealed::Data),
        Err(e) if rc_kind(&e) == Some(Tss2ResponseCodeKind::PolicyFail) => {
            Ok(Unsealed::PolicyFailed)
        }
        Err(e) => Err(tpm.err("unseal", e)),
    }
}

/// Unseals into locked memory. If a policy PCR no longer holds its sealed value, the error
/// names every PCR that changed.
pub(crate) fn unseal(
    tpm: &mut Tpm,
    sealed: &Sealed,
    blob_path: &std::path::Path,
) -> Result<LockedBuffer, KeyError> {
    let pcrs: Vec<u8> = sealed.pcr_values.keys().copied().collect();
    check_pcrs(&pcrs)?;
    let changed = |tpm: &mut Tpm| -> Result<Vec<u8>, KeyError> {
        let now = read_pcrs(tpm, &pcrs)?;
        Ok(pcrs
            .iter()
            .filter(|p| now.get(p) != sealed.pcr_values.get(p))
            .copied()
            .collect())
    };
    // Checking first gives the precise answer without spending a TPM policy failure.
    let diff = changed(tpm)?;
    if !diff.is_empty() {
        return Err(KeyError::PcrMismatch {
            blob: blob_path.to_path_buf(),
            pcrs: diff,
        });
    }
    let unsealed = unseal_object(tpm, &sealed.public, &sealed.private, |tpm| {
        pcr_policy(tpm, &pcrs, SessionType::Policy)
    })?;
    match unsealed {
        Unsealed::Data(data) => Ok(data),
        Unsealed::PolicyFailed => {
            // A PCR may have been extended between the check and the unseal.
            let diff = changed(tpm)?;
            if diff.is_empty() {
                Err(KeyError::Tpm {
                    op: "unseal",
                    detail: "the PCR policy failed although the PCRs hold their sealed values; \
                        the blob was probably sealed on another TPM"
                        .into(),
                })
            } else {
                Err(KeyError::PcrMismatch {
                    blob: blob_path.to_path_buf(),
                    pcrs: diff,
                })
            }
        }
    }
}
