//! TPM2_PolicyAuthorize: objects that unseal under any PCR policy a policy key signs.
//!
//! Sealing sets the object's authPolicy to PolicyAuthorize(name of the policy key, empty
//! policyRef). Unsealing runs PolicyPCR over the PCRs a signed policy names, has the TPM check
//! the policy's signature (TPM2_VerifySignature, which returns a ticket), and hands the ticket
//! to PolicyAuthorize, which replaces the session's digest by the authorized one.

use std::path::Path;

use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_VERIFIED};
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Digest, EccParameter, EccPoint, EccScheme, EccSignature, HashScheme, Name, Nonce, Public,
    PublicEccParametersBuilder, Signature, VerifiedTicket,
};
use tss_esapi::tss2_esys::{TPM2B_DIGEST, TPMT_TK_VERIFIED};

use super::conn::{Tpm, ecc_public, rc_kind};
use super::locked::LockedBuffer;
use super::seal::{
    Unsealed, create_sealed, flush_session, pcr_policy, read_pcrs, start_session, trial_digest,
    unseal_object,
};
use crate::keys::{KeyError, PolicyKey, SignedPcrPolicy};

/// The public area of a policy key as TPM2_LoadExternal loads it: an unrestricted
/// ECDSA-SHA256 P-256 signing key. The key's name, and so the policy of every object sealed to
/// it, hashes this whole area: it must never change.
fn template(key: &PolicyKey) -> tss_esapi::Result<Public> {
    // `04 || X || Y`; PolicyKey holds only such points.
    let (x, y) = key
        .point()
        .get(1..)
        .and_then(|xy| xy.split_at_checked(32))
        .unwrap_or_default();
    let attributes = ObjectAttributesBuilder::new()
        .with_sign_encrypt(true)
        .with_user_with_auth(true)
        .build()?;
    let parameters = PublicEccParametersBuilder::new_unrestricted_signing_key(
        EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
        EccCurve::NistP256,
    )
    .build()?;
    let point = EccPoint::new(EccParameter::try_from(x)?, EccParameter::try_from(y)?);
    ecc_public(attributes, parameters, point)
}

/// Loads the public part of the policy key and returns its handle and TPM name. Into the owner
/// hierarchy, not the null one: TPM2_VerifySignature answers a key of the null hierarchy with a
/// null ticket, which PolicyAuthorize refuses. The caller flushes the handle.
fn load_key(tpm: &mut Tpm, key: &PolicyKey) -> Result<(KeyHandle, Name), KeyError> {
    let public = template(key).map_err(|e| tpm.err("build policy key template", e))?;
    let handle = tpm
        .ctx
        .execute_without_session(|c| c.load_external_public(public, Hierarchy::Owner))
        .map_err(|e| tpm.err("load policy key", e))?;
    match tpm.ctx.execute_without_session(|c| c.read_public(handle)) {
        Ok((_, name, _)) => Ok((handle, name)),
        Err(e) => {
            tpm.flush(handle);
            Err(tpm.err("read policy key name", e))
        }
    }
}

/// A trial session checks no ticket, but PolicyAuthorize still takes one.
fn null_ticket() -> tss_esapi::Result<VerifiedTicket> {
    VerifiedTicket::try_from(TPMT_TK_VERIFIED {
        tag: TPM2_ST_VERIFIED,
        hierarchy: TPM2_RH_NULL,
        digest: TPM2B_DIGEST::default(),
    })
}

/// Applies PolicyAuthorize(`approved`, empty policyRef, `name`, `ticket`) to `session`;
/// flushes the session if the TPM refuses.
fn authorize(
    tpm: &mut Tpm,
    session: AuthSession,
    approved: Digest,
    name: &Name,
    ticket: tss_esapi::Result<VerifiedTicket>,
) -> Result<(), tss_esapi::Error> {
    let applied = PolicySession::try_from(session).and_then(|policy| {
        let ticket = ticket?;
        tpm.ctx.execute_without_session(|c| {
            c.policy_authorize(policy, approved, Nonce::default(), name, ticket)
        })
    });
    if applied.is_err() {
        flush_session(tpm, session);
    }
    applied
}

/// The authPolicy of an object that any PCR policy signed by `key` unseals, computed by the
/// TPM in a trial session.
pub(crate) fn authorized_policy(tpm: &mut Tpm, key: &PolicyKey) -> Result<Digest, KeyError> {
    let (handle, name) = load_key(tpm, key)?;
    tpm.flush(handle);
    let trial = start_session(tpm, SessionType::Trial)?;
    authorize(tpm, trial, Digest::default(), &name, null_ticket())
        .map_err(|e| tpm.err("compute PolicyAuthorize digest", e))?;
    trial_digest(tpm, trial)
}

/// Seals `secret` so that policies signed by `key` unseal it. Returns the object's marshalled
/// public area and its private area.
pub(crate) fn seal(
    tpm: &mut Tpm,
    secret: &[u8],
    key: &PolicyKey,
) -> Result<(Vec<u8>, Vec<u8>), KeyError> {
    let policy = authorized_policy(tpm, key)?;
    create_sealed(tpm, secret, policy)
}

/// The files an unseal names in its errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Files<'a> {
    pub(crate) blob: &'a Path,
    pub(crate) policy: &'a Path,
}

/// Unseals an object sealed by [`seal`] with the signed `policy` (the caller checked that the
/// blob's policy key signed it). When the PCRs differ from the values the policy signs, the
/// error names them and the TPM is not asked to fail a policy.
pub(crate) fn unseal(
    tpm: &mut Tpm,
    public: &[u8],
    private: &[u8],
    policy: &SignedPcrPolicy,
    files: Files<'_>,
) -> Result<LockedBuffer, KeyError> {
    let pcrs: Vec<u8> = policy.pcrs().keys().copied().collect();
    let mismatch = |tpm: &mut Tpm| -> Result<Option<KeyError>, KeyError> {
        let now = read_pcrs(tpm, &pcrs)?;
        let differ: Vec<u8> = policy
            .pcrs()
            .iter()
            .filter(|(p, signed)| now.get(p).map(Vec::as_slice) != Some(signed.as_slice()))
            .map(|(p, _)| *p)
            .collect();
        Ok((!differ.is_empty()).then(|| KeyError::PcrPolicyMismatch {
            policy: files.policy.to_path_buf(),
            blob: files.blob.to_path_buf(),
            pcrs: differ,
        }))
    };
    if let Some(e) = mismatch(tpm)? {
        return Err(e);
    }
    let (ticket, name) = verify(tpm, policy, files.policy)?;
    let approved =
        Digest::try_from(policy.digest().as_slice()).map_err(|e| tpm.err("read policy", e))?;
    let unsealed = unseal_object(tpm, public, private, |tpm| {
        let session = pcr_policy(tpm, &pcrs, SessionType::Policy)?;
        match authorize(tpm, session, approved, &name, Ok(ticket)) {
            Ok(()) => Ok(session),
            // TPM_RC_VALUE: the session's PolicyPCR digest is not the approved one, so a PCR
            // was extended since the check above.
            Err(e) => match mismatch(tpm)? {
                Some(changed) => Err(changed),
                None => Err(tpm.err("apply PolicyAuthorize", e)),
            },
        }
    })?;
    match unsealed {
        Unsealed::Data(data) => Ok(data),
        Unsealed::PolicyFailed => Err(KeyError::Tpm {
            op: "unseal",
            detail: format!(
                "the TPM accepted the signed policy {} but {} does not unseal under it: the \
                 blob's policy was not made for this policy key; seal the key again with \
                 `vigilctl keys seal --policy-key`",
                files.policy.display(),
                files.blob.display()
            ),
        }),
    }
}

/// Has the TPM verify the policy's signature; returns the ticket and the policy key's name.
fn verify(
    tpm: &mut Tpm,
    policy: &SignedPcrPolicy,
    policy_path: &Path,
) -> Result<(VerifiedTicket, Name), KeyError> {
    let (handle, name) = load_key(tpm, policy.key())?;
    let (r, s) = policy.signature();
    let verified = EccParameter::try_from(r)
        .and_then(|r| Ok((r, EccParameter::try_from(s)?)))
        .and_then(|(r, s)| EccSignature::create(HashingAlgorithm::Sha256, r, s))
        .and_then(|sig| Ok((sig, Digest::try_from(policy.signed_digest().as_slice())?)))
        .and_then(|(sig, digest)| {
            tpm.ctx.execute_without_session(|c| {
                c.verify_signature(handle, digest, Signature::EcDsa(sig))
            })
        });
    tpm.flush(handle);
    match verified {
        Ok(ticket) => Ok((ticket, name)),
        Err(e) if rc_kind(&e) == Some(Tss2ResponseCodeKind::Signature) => {
            Err(KeyError::BadPcrPolicy {
                path: policy_path.to_path_buf(),
                detail: "the TPM does not accept its signature".into(),
            })
        }
        Err(e) => Err(tpm.err("verify policy signature", e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::keys::PcrValue;
    use vigil_testkit::swtpm::Swtpm;

    /// The TPM, not only Vigil's check before it, refuses a signed policy for other values.
    #[test]
    fn the_tpm_itself_enforces_the_signed_values() {
        let swtpm = Swtpm::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key_path = dir.path().join("policy.key");
        std::fs::write(&key_path, kp.serialize_pem()).unwrap();
        let mut tpm = Tpm::connect(&swtpm.tcti()).unwrap();
        let public_path = dir.path().join("policy.pub");
        std::fs::write(&public_path, kp.public_key_pem()).unwrap();
        let key = PolicyKey::read_public(&public_path).unwrap();
        let (public, private) = seal(&mut tpm, b"kek", &key).unwrap();
        let now = read_pcrs(&mut tpm, &[16]).unwrap()[&16].clone();
        let value = PcrValue {
            index: 16,
            value: now.try_into().unwrap(),
        };
        let policy = SignedPcrPolicy::sign(&key_path, &[value]).unwrap();
        let files = Files {
            blob: Path::new("sealed.blob"),
            policy: Path::new("pcr-policy.json"),
        };
        let data = unseal(&mut tpm, &public, &private, &policy, files).unwrap();
        assert_eq!(data.as_slice(), b"kek");

        swtpm.pcr_extend(16).unwrap();
        // Vigil's own check names the PCR...
        let err = unseal(&mut tpm, &public, &private, &policy, files).unwrap_err();
        assert!(matches!(err, KeyError::PcrPolicyMismatch { ref pcrs, .. } if pcrs == &[16]));
        // ...and without it, PolicyAuthorize refuses: the session's PolicyPCR digest is not the
        // approved one.
        let (ticket, name) = verify(&mut tpm, &policy, files.policy).unwrap();
        let session = pcr_policy(&mut tpm, &[16], SessionType::Policy).unwrap();
        let approved = Digest::try_from(policy.digest().as_slice()).unwrap();
        let err = authorize(&mut tpm, session, approved, &name, Ok(ticket)).unwrap_err();
        assert_eq!(rc_kind(&err), Some(Tss2ResponseCodeKind::Value), "{err}");
        // A PolicyPCR session alone does not satisfy the object either.
        let unsealed = unseal_object(&mut tpm, &public, &private, |tpm| {
            pcr_policy(tpm, &[16], SessionType::Policy)
        })
        .unwrap();
        assert!(matches!(unsealed, Unsealed::PolicyFailed));
    }
}
