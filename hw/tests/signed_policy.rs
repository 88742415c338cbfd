//! Keys sealed to signed PCR policies (TPM2_PolicyAuthorize) against a private swtpm per test:
//! a genuine change of boot comes with a newly signed policy and the same blob unseals; a
//! changed boot without one, or a policy from another key, is refused in words.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use vigil_hw::keys::{
    self, CERT_FILE, KeyError, KeyInfo, KeyMode, PcrValue, PolicyKey, SEALED_FILE, SealPolicy,
    SignedPcrPolicy,
};
use vigil_testkit::swtpm::Swtpm;

const NAME: &str = "gw.vigil.test";
/// The debug PCR: resettable and unused by firmware, so a test may extend it freely.
const PCR: u8 = 16;

/// A P-256 policy key: (private PEM path, public PEM path).
fn policy_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    std::fs::write(&private, kp.serialize_pem()).unwrap();
    std::fs::write(&public, kp.public_key_pem()).unwrap();
    (private, public)
}

/// The SHA-256 bank value of `pcr` now, read with tpm2-tools as an image build would not need
/// to (it predicts the values), but as a test may.
fn pcr_now(tpm: &Swtpm, pcr: u8) -> PcrValue {
    let out = tempfile::NamedTempFile::new().unwrap();
    let path = out.path().to_str().unwrap();
    tpm.tool("tpm2_pcrread", &[&format!("sha256:{pcr}"), "-o", path])
        .unwrap();
    let value = std::fs::read(out.path()).unwrap();
    PcrValue {
        index: pcr,
        value: value.try_into().unwrap(),
    }
}

/// Signs a policy for `pcrs` with `key` into `dir/name`.
fn sign(key: &Path, pcrs: &[PcrValue], dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    SignedPcrPolicy::sign(key, pcrs)
        .unwrap()
        .write(&path)
        .unwrap();
    path
}

/// Signs a policy for the current values of PCR 7 and [`PCR`], as an image build would for the
/// values it predicts.
fn sign_now(tpm: &Swtpm, key: &Path, dir: &Path, name: &str) -> PathBuf {
    sign(key, &[pcr_now(tpm, 7), pcr_now(tpm, PCR)], dir, name)
}

fn load(dir: &Path, tpm: &Swtpm, policy: Option<&Path>) -> Result<(), KeyError> {
    let provider = keys::provider_with_policy(dir, &tpm.tcti(), policy)?;
    let ck = provider.load()?;
    let spki = ck.key.public_key().unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, spki.as_ref());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(keys::show(dir).unwrap().spki_sha256, hex);
    Ok(())
}

#[test]
fn a_key_sealed_to_a_policy_key_unseals_under_each_newly_signed_policy() {
    let tpm = Swtpm::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (private, public) = policy_key(tmp.path(), "policy");
    let key = PolicyKey::read_public(&public).unwrap();
    let dir = tmp.path().join("keys");
    let seal_to = SealPolicy::Signed(key.clone());
    let info: KeyInfo =
        keys::init_with(KeyMode::TpmSealed, &dir, &tpm.tcti(), NAME, &seal_to).unwrap();
    assert_eq!(info.policy_key_sha256, Some(key.sha256_hex()));
    assert!(info.pcrs.is_empty(), "{info:?}");
    let blob = std::fs::read(dir.join(SEALED_FILE)).unwrap();

    // The image's signed policy for this boot unseals the key.
    let first = sign_now(&tpm, &private, tmp.path(), "a.json");
    load(&dir, &tpm, Some(&first)).unwrap();
    keys::check_pcr_policy(&dir, Some(&first)).unwrap();

    // A changed boot: the policy's values no longer hold, and the error names the PCR.
    tpm.pcr_extend(PCR).unwrap();
    let err = load(&dir, &tpm, Some(&first)).unwrap_err();
    match &err {
        KeyError::PcrPolicyMismatch { pcrs, .. } => assert_eq!(pcrs, &[PCR]),
        other => panic!("expected a PCR policy mismatch, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("this boot does not match the measurements that"),
        "{text}"
    );
    assert!(text.contains(&format!("PCR {PCR} differs")), "{text}");

    // The update's newly signed policy for the new values: the same blob unseals, unchanged.
    let second = sign_now(&tpm, &private, tmp.path(), "b.json");
    load(&dir, &tpm, Some(&second)).unwrap();
    assert_eq!(std::fs::read(dir.join(SEALED_FILE)).unwrap(), blob);
    // The old policy stays refused on the new boot.
    assert!(load(&dir, &tpm, Some(&first)).is_err());
}

#[test]
fn policies_from_another_key_or_none_at_all_are_refused_in_words() {
    let tpm = Swtpm::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (_, public) = policy_key(tmp.path(), "policy");
    let (other, _) = policy_key(tmp.path(), "other");
    // An operator's existing key, sealed with `keys seal`.
    let pem = tmp.path().join("old.key");
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(&pem, kp.serialize_pem()).unwrap();
    let dir = tmp.path().join("keys");
    let seal_to = SealPolicy::Signed(PolicyKey::read_public(&public).unwrap());
    keys::seal(&pem, &dir, &tpm.tcti(), &seal_to).unwrap();
    let cert = rcgen::CertificateParams::new(vec![NAME.to_owned()])
        .unwrap()
        .self_signed(&kp)
        .unwrap();
    std::fs::write(dir.join(CERT_FILE), cert.pem()).unwrap();

    let forged = sign(&other, &[pcr_now(&tpm, PCR)], tmp.path(), "forged.json");
    let err = load(&dir, &tpm, Some(&forged)).unwrap_err();
    assert!(
        matches!(err, KeyError::PcrPolicyKeyMismatch { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    let other_key = SignedPcrPolicy::read(&forged).unwrap().key().sha256_hex();
    assert!(text.contains(&other_key), "{text}");
    assert!(text.contains("only accepts policies signed by"), "{text}");
    assert!(keys::check_pcr_policy(&dir, Some(&forged)).is_err());

    for path in [None, Some(tmp.path().join("absent.json"))] {
        let err = load(&dir, &tpm, path.as_deref()).unwrap_err();
        assert!(matches!(err, KeyError::NoPcrPolicy { .. }), "{err:?}");
        assert!(err.to_string().contains("keys.pcr_policy"), "{err}");
        assert!(keys::check_pcr_policy(&dir, path.as_deref()).is_err());
    }
}
