//! Signed PCR policies: what lets a sealed key survive a genuine firmware update.
//!
//! A key sealed with a policy key (`vigilctl keys seal --policy-key`) has the authPolicy
//! TPM2_PolicyAuthorize(name of that key, empty policyRef). It unseals in any boot whose PCR
//! values one of the key's signed policies names: each image ships the policy signed for its
//! own measurements, and the box never needs re-sealing after an update.
//!
//! Signing needs no TPM: the policy digest is computed here exactly as the TPM computes
//! TPM2_PolicyPCR in a fresh session, and signed as TPM2_VerifySignature expects (ECDSA-SHA256
//! over aHash = SHA-256(approvedPolicy || policyRef), policyRef empty). A unit test holds the
//! digest against the TPM's own trial session.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use ring::digest::{Context, SHA256};
use rustls::SignatureScheme;
use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::pki_types::pem::PemObject;

use super::KeyError;
use crate::tpm::blob::{hex, unhex, write_atomic};
use crate::tpm::seal::check_pcrs;

/// Format version of a signed policy file.
const VERSION: u32 = 1;
/// The only PCR bank a policy covers.
const BANK: &str = "sha256";
/// TPM_CC_PolicyPCR.
const TPM_CC_POLICY_PCR: u32 = 0x0000_017F;
/// TPM_ALG_SHA256.
const TPM_ALG_SHA256: u16 = 0x000B;
/// Bytes of a TPMS_PCR_SELECTION bitmap on a PC-client TPM (PCRs 0 to 23); tss-esapi selects
/// with the same size, so the TPM hashes the same selection.
const SELECT_BYTES: u8 = 3;
/// DER SubjectPublicKeyInfo of an ECC P-256 key up to its uncompressed point
/// (id-ecPublicKey, prime256v1, BIT STRING of 66 bytes with no unused bits).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// One PCR and the SHA-256 bank value a genuine boot leaves in it; parses `9=<64 hex digits>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcrValue {
    /// The PCR index (0 to 23).
    pub index: u8,
    /// Its SHA-256 bank value.
    pub value: [u8; 32],
}

impl FromStr for PcrValue {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (index, value) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?} is not N=HEX (e.g. 9=<64 hex digits>)"))?;
        let index: u8 = index
            .trim()
            .parse()
            .map_err(|_| format!("{index:?} is not a PCR index (0 to 23)"))?;
        check_indices(&[index])?;
        let value = unhex(value.trim())
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or_else(|| {
                format!("the value of PCR {index} must be 64 hex digits (a SHA-256 bank value)")
            })?;
        Ok(Self { index, value })
    }
}

/// The public half of a policy-signing key: ECC P-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyKey {
    /// DER SubjectPublicKeyInfo: [`P256_SPKI_PREFIX`] then the uncompressed point.
    spki: Vec<u8>,
}

impl PolicyKey {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of an ECC P-256 key.
    pub fn read_public(path: &Path) -> Result<Self, KeyError> {
        let bad = |detail: &str| KeyError::PolicyKey {
            path: path.to_path_buf(),
            half: "public",
            detail: detail.to_owned(),
        };
        // Same size limit as a certificate; vigil-files has no kind of its own for public keys.
        let pem = match vigil_files::read(path, vigil_files::FileKind::Certificate) {
            Ok(pem) => pem,
            Err(vigil_files::FileError::Io { error, .. }) => {
                return Err(bad(&format!("cannot read it: {error}")));
            }
            Err(e) => return Err(e.into()),
        };
        let spki = match SubjectPublicKeyInfoDer::from_pem_slice(&pem) {
            Ok(spki) => spki,
            Err(_) if contains(&pem, b"PRIVATE KEY-----") => {
                return Err(bad(
                    "it holds a private key; give boxes only the public half, \
                     `openssl pkey -in KEY -pubout`: the private key stays where policies are \
                     signed",
                ));
            }
            Err(_) => return Err(bad("no PEM PUBLIC KEY block")),
        };
        Self::from_spki(spki.as_ref())
            .ok_or_else(|| bad("the public key is not an ECC key on curve P-256"))
    }

    /// The key of a P-256 SubjectPublicKeyInfo; `None` for any other key.
    pub(crate) fn from_spki(spki: &[u8]) -> Option<Self> {
        let point = spki.strip_prefix(P256_SPKI_PREFIX.as_slice())?;
        (point.len() == 65 && point[0] == 4).then(|| Self {
            spki: spki.to_vec(),
        })
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// SHA-256 of the SubjectPublicKeyInfo, lowercase hex: how errors and `show` name the key.
    pub fn sha256_hex(&self) -> String {
        hex(ring::digest::digest(&SHA256, &self.spki).as_ref())
    }

    /// The uncompressed point `04 || X || Y`.
    pub(crate) fn point(&self) -> &[u8] {
        &self.spki[P256_SPKI_PREFIX.len()..]
    }
}

/// [`check_pcrs`] with its bare reason, for messages that say themselves what was checked.
fn check_indices(pcrs: &[u8]) -> Result<(), String> {
    match check_pcrs(pcrs) {
        Ok(()) => Ok(()),
        Err(KeyError::Invalid { detail }) => Err(detail),
        Err(e) => Err(e.to_string()),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A PCR policy signed by a policy key, validated: the digest matches the PCR values and the
/// signature verifies with the key. Serialises to the JSON of a policy file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "PolicyFile", into = "PolicyFile")]
pub struct SignedPcrPolicy {
    key: PolicyKey,
    pcrs: BTreeMap<u8, [u8; 32]>,
    digest: [u8; 32],
    /// ECDSA r || s, 32 bytes each.
    signature: [u8; 64],
}

/// The file form (JSON, binary fields in lowercase hex).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: u32,
    /// PCR bank of the values: always `sha256`.
    bank: String,
    /// DER SubjectPublicKeyInfo of the policy key.
    key: String,
    /// PCR index -> value.
    pcrs: BTreeMap<u8, String>,
    /// The TPM2_PolicyPCR digest of `pcrs` from a fresh session: the approvedPolicy.
    policy_digest: String,
    signature: SignatureFile,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    /// ECDSA r, 32 bytes big-endian.
    r: String,
    /// ECDSA s, 32 bytes big-endian.
    s: String,
}

impl From<SignedPcrPolicy> for PolicyFile {
    fn from(p: SignedPcrPolicy) -> Self {
        let (r, s) = p.signature.split_at(32);
        Self {
            version: VERSION,
            bank: BANK.to_owned(),
            key: hex(&p.key.spki),
            pcrs: p.pcrs.iter().map(|(i, v)| (*i, hex(v))).collect(),
            policy_digest: hex(&p.digest),
            signature: SignatureFile {
                r: hex(r),
                s: hex(s),
            },
        }
    }
}

impl TryFrom<PolicyFile> for SignedPcrPolicy {
    type Error = String;

    fn try_from(f: PolicyFile) -> Result<Self, String> {
        fn bytes<const N: usize>(name: &str, value: &str) -> Result<[u8; N], String> {
            unhex(value)
                .and_then(|v| <[u8; N]>::try_from(v).ok())
                .ok_or_else(|| format!("{name} is not {} hex digits", 2 * N))
        }
        if f.version != VERSION {
            return Err(format!("format version {} is not {VERSION}", f.version));
        }
        if f.bank != BANK {
            return Err(format!("bank {:?} is not {BANK:?}", f.bank));
        }
        let key = unhex(&f.key)
            .and_then(|spki| PolicyKey::from_spki(&spki))
            .ok_or("key is not the SubjectPublicKeyInfo of an ECC P-256 key, in hex")?;
        let mut pcrs = BTreeMap::new();
        for (i, v) in &f.pcrs {
            pcrs.insert(*i, bytes::<32>(&format!("pcrs.{i}"), v)?);
        }
        let indices: Vec<u8> = pcrs.keys().copied().collect();
        check_indices(&indices)?;
        let digest = bytes::<32>("policy_digest", &f.policy_digest)?;
        if digest != pcr_policy_digest(&pcrs) {
            return Err(
                "policy_digest is not the PolicyPCR digest of pcrs: the file was \
                 edited after signing"
                    .into(),
            );
        }
        let r = bytes::<32>("signature.r", &f.signature.r)?;
        let s = bytes::<32>("signature.s", &f.signature.s)?;
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&r);
        signature[32..].copy_from_slice(&s);
        let policy = Self {
            key,
            pcrs,
            digest,
            signature,
        };
        if !policy.verifies() {
            return Err(
                "the signature does not verify with the key the file names: the \
                 file was altered after signing"
                    .into(),
            );
        }
        Ok(policy)
    }
}

impl SignedPcrPolicy {
    /// Signs the policy that `pcrs` hold these values with the ECC P-256 private key in
    /// `key_pem` (PKCS#8 or SEC1 PEM). Needs no TPM.
    pub fn sign(key_pem: &Path, pcrs: &[PcrValue]) -> Result<Self, KeyError> {
        let mut map = BTreeMap::new();
        for p in pcrs {
            if map.insert(p.index, p.value).is_some() {
                return Err(KeyError::Invalid {
                    detail: format!("PCR {} is given twice", p.index),
                });
            }
        }
        let indices: Vec<u8> = map.keys().copied().collect();
        check_pcrs(&indices)?;
        let (signer, key) = read_private(key_pem)?;
        let digest = pcr_policy_digest(&map);
        // ring hashes the message with SHA-256: the signature is over aHash, as the TPM needs.
        let der = signer.sign(&digest).map_err(|e| KeyError::Invalid {
            detail: format!("signing with {} failed: {e}", key_pem.display()),
        })?;
        let signature = fixed_signature(&der).ok_or_else(|| KeyError::Invalid {
            detail: "the signer returned a malformed ECDSA signature".into(),
        })?;
        let policy = Self {
            key,
            pcrs: map,
            digest,
            signature,
        };
        debug_assert!(policy.verifies());
        Ok(policy)
    }

    /// Reads and validates a policy file.
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let bytes = vigil_files::read(path, vigil_files::FileKind::KeyBlob)?;
        serde_json::from_slice(&bytes).map_err(|e| KeyError::BadPcrPolicy {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
    }

    /// Writes the policy file atomically (mode 0644: it holds nothing secret).
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| KeyError::BadPcrPolicy {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        write_atomic(path, &json, 0o644)
    }

    /// The key that signed the policy.
    pub fn key(&self) -> &PolicyKey {
        &self.key
    }

    /// The PCR values (SHA-256 bank) the policy approves.
    pub fn pcrs(&self) -> &BTreeMap<u8, [u8; 32]> {
        &self.pcrs
    }

    /// The approved policy: the PolicyPCR digest of [`pcrs`](Self::pcrs).
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// aHash = SHA-256(approvedPolicy || policyRef), the digest the signature covers.
    pub(crate) fn signed_digest(&self) -> [u8; 32] {
        sha256(&[&self.digest])
    }

    /// ECDSA r and s, 32 bytes each.
    pub(crate) fn signature(&self) -> (&[u8], &[u8]) {
        self.signature.split_at(32)
    }

    fn verifies(&self) -> bool {
        let key = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            self.key.point(),
        );
        key.verify(&self.digest, &self.signature).is_ok()
    }
}

/// Reads an ECC P-256 private key for signing; anything else is refused in words.
fn read_private(path: &Path) -> Result<(Box<dyn rustls::sign::Signer>, PolicyKey), KeyError> {
    let pem = super::sealed::read_pem(path)?;
    let bad = |detail: String| KeyError::PolicyKey {
        path: path.to_path_buf(),
        half: "private",
        detail,
    };
    let key = match super::file::signing_key_from_pem(&pem, path) {
        Ok(key) => key,
        Err(KeyError::NoPrivateKey { .. }) if contains(&pem, b"PUBLIC KEY-----") => {
            return Err(bad(
                "it holds a public key; signing needs the private key".into()
            ));
        }
        Err(KeyError::NoPrivateKey { .. }) => return Err(bad("no PEM private key block".into())),
        Err(KeyError::BadPem { detail, .. } | KeyError::UnsupportedKey { detail, .. }) => {
            return Err(bad(detail));
        }
        Err(e) => return Err(e),
    };
    let public = key
        .public_key()
        .and_then(|spki| PolicyKey::from_spki(spki.as_ref()));
    let signer = key.choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256]);
    match (signer, public, key.algorithm()) {
        (Some(signer), Some(public), _) => Ok((signer, public)),
        (_, _, rustls::SignatureAlgorithm::ECDSA) => {
            Err(bad("it is an ECDSA key on another curve".into()))
        }
        (_, _, other) => Err(bad(format!("it is an {other:?} key, not ECDSA"))),
    }
}

/// The TPM2_PolicyPCR digest of a fresh session for these SHA-256 bank values:
/// SHA-256(0^32 || TPM_CC_PolicyPCR || TPML_PCR_SELECTION || SHA-256(values in index order)).
pub(crate) fn pcr_policy_digest(pcrs: &BTreeMap<u8, [u8; 32]>) -> [u8; 32] {
    let mut select = [0u8; SELECT_BYTES as usize];
    for p in pcrs.keys() {
        // Indices past 23 were refused when the map was built; `get_mut` keeps this total.
        if let Some(byte) = select.get_mut(usize::from(p / 8)) {
            *byte |= 1 << (p % 8);
        }
    }
    let values: Vec<&[u8]> = pcrs.values().map(<[u8; 32]>::as_slice).collect();
    let pcr_digest = sha256(&values);
    sha256(&[
        &[0u8; 32],
        &TPM_CC_POLICY_PCR.to_be_bytes(),
        // TPML_PCR_SELECTION: one TPMS_PCR_SELECTION (hash, sizeofSelect, bitmap).
        &1u32.to_be_bytes(),
        &TPM_ALG_SHA256.to_be_bytes(),
        &[SELECT_BYTES],
        &select,
        &pcr_digest,
    ])
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = Context::new(&SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// `r || s` (32 bytes each) from a DER `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`.
fn fixed_signature(der: &[u8]) -> Option<[u8; 64]> {
    /// One short-form TLV of `tag`: its value and the rest.
    fn tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&t, rest) = input.split_first()?;
        let (&len, rest) = rest.split_first()?;
        // A P-256 signature is at most 72 bytes: short-form lengths only.
        if t != tag || len >= 0x80 {
            return None;
        }
        let len = usize::from(len);
        (rest.len() >= len).then(|| rest.split_at(len))
    }
    let (body, trailing) = tlv(der, 0x30)?;
    let (r, rest) = tlv(body, 0x02)?;
    let (s, rest) = tlv(rest, 0x02)?;
    if !trailing.is_empty() || !rest.is_empty() {
        return None;
    }
    let mut out = [0u8; 64];
    let (r_half, s_half) = out.split_at_mut(32);
    for (int, half) in [(r, r_half), (s, s_half)] {
        // Drop the sign byte, then left-pad to 32 bytes.
        let start = int.iter().position(|b| *b != 0).unwrap_or(int.len());
        let int = &int[start..];
        let pad = half.len().checked_sub(int.len())?;
        half[pad..].copy_from_slice(int);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::tpm::conn::Tpm;
    use crate::tpm::seal::{pcr_policy, read_pcrs, trial_digest};
    use std::path::PathBuf;
    use tss_esapi::constants::SessionType;
    use vigil_testkit::swtpm::Swtpm;

    /// A policy key pair in `dir`: `policy.key` (PKCS#8) and `policy.pub` (SPKI).
    fn key_pair(dir: &Path, alg: &'static rcgen::SignatureAlgorithm) -> (PathBuf, PathBuf) {
        let kp = rcgen::KeyPair::generate_for(alg).unwrap();
        let (private, public) = (dir.join("policy.key"), dir.join("policy.pub"));
        std::fs::write(&private, kp.serialize_pem()).unwrap();
        std::fs::write(&public, kp.public_key_pem()).unwrap();
        (private, public)
    }

    fn value(index: u8, byte: u8) -> PcrValue {
        PcrValue {
            index,
            value: [byte; 32],
        }
    }

    #[test]
    fn pcr_values_parse_from_the_command_line_form() {
        let v: PcrValue = format!("9={}", "Ab".repeat(32)).parse().unwrap();
        assert_eq!(v, value(9, 0xab));
        for (bad, says) in [
            ("9", "N=HEX"),
            ("x=00", "not a PCR index"),
            ("24=00", "PCR 24 does not exist"),
            ("9=abcd", "64 hex digits"),
            (&format!("9={}", "zz".repeat(32)), "64 hex digits"),
        ] {
            let err = bad.parse::<PcrValue>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn der_signatures_become_fixed_r_and_s() {
        // r with a sign byte, s shorter than 32 bytes.
        let mut der = vec![0x30, 0x44, 0x02, 0x21, 0x00];
        der.extend([0x80; 32]);
        der.extend([0x02, 0x1f]);
        der.extend([0x01; 31]);
        let fixed = fixed_signature(&der).unwrap();
        assert_eq!(&fixed[..32], &[0x80; 32]);
        assert_eq!(fixed[32], 0);
        assert_eq!(&fixed[33..], &[0x01; 31]);
        assert_eq!(fixed_signature(&der[..der.len() - 1]), None);
        der.push(0);
        assert_eq!(fixed_signature(&der), None);
    }

    #[test]
    fn signed_policies_round_trip_and_edits_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = key_pair(dir.path(), &rcgen::PKCS_ECDSA_P256_SHA256);
        let policy = SignedPcrPolicy::sign(&private, &[value(16, 1), value(9, 2)]).unwrap();
        assert_eq!(policy.key(), &PolicyKey::read_public(&public).unwrap());
        assert_eq!(policy.pcrs().keys().copied().collect::<Vec<_>>(), [9, 16]);
        let path = dir.path().join("pcr-policy.json");
        policy.write(&path).unwrap();
        assert_eq!(SignedPcrPolicy::read(&path).unwrap(), policy);

        let text = std::fs::read_to_string(&path).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["bank"], "sha256");
        assert_eq!(json["pcrs"]["9"], "02".repeat(32));
        assert_eq!(json["policy_digest"], hex(&policy.digest()));
        assert_eq!(json["signature"]["r"].as_str().unwrap().len(), 64);
        let edits = [
            // A value changed without signing again: the digest no longer matches.
            (text.replace(&"02".repeat(32), &"03".repeat(32)), "edited"),
            // Values and digest changed together: the signature no longer verifies.
            {
                let mut pcrs = policy.pcrs().clone();
                pcrs.insert(9, [3; 32]);
                let digest = hex(&pcr_policy_digest(&pcrs));
                let t = text
                    .replace(&"02".repeat(32), &"03".repeat(32))
                    .replace(&hex(&policy.digest()), &digest);
                (t, "signature does not verify")
            },
            (
                text.replace("\"bank\"", "\"extra\": 1, \"bank\""),
                "unknown field",
            ),
            (text.replace("\"sha256\"", "\"sha1\""), "bank"),
        ];
        for (edited, says) in edits {
            std::fs::write(&path, edited).unwrap();
            let err = SignedPcrPolicy::read(&path).unwrap_err();
            assert!(matches!(err, KeyError::BadPcrPolicy { .. }), "{err:?}");
            assert!(err.to_string().contains(says), "{says}: {err}");
        }
    }

    #[test]
    fn only_p256_keys_sign_and_seal() {
        let dir = tempfile::tempdir().unwrap();
        let pcrs = [value(9, 0)];
        for alg in [&rcgen::PKCS_ECDSA_P384_SHA384, &rcgen::PKCS_ED25519] {
            let (private, public) = key_pair(dir.path(), alg);
            let err = SignedPcrPolicy::sign(&private, &pcrs).unwrap_err();
            assert!(matches!(err, KeyError::PolicyKey { .. }), "{err:?}");
            assert!(
                err.to_string().contains("private half of an ECC P-256"),
                "{err}"
            );
            let err = PolicyKey::read_public(&public).unwrap_err();
            assert!(
                err.to_string().contains("not an ECC key on curve P-256"),
                "{err}"
            );
        }
        let (private, public) = key_pair(dir.path(), &rcgen::PKCS_ECDSA_P256_SHA256);
        // The halves swapped.
        let err = SignedPcrPolicy::sign(&public, &pcrs).unwrap_err();
        assert!(err.to_string().contains("holds a public key"), "{err}");
        let err = PolicyKey::read_public(&private).unwrap_err();
        assert!(err.to_string().contains("holds a private key"), "{err}");
        let err = PolicyKey::read_public(&dir.path().join("absent.pub")).unwrap_err();
        assert!(err.to_string().contains("cannot read it"), "{err}");
        std::fs::write(dir.path().join("junk"), "not a key").unwrap();
        let err = SignedPcrPolicy::sign(&dir.path().join("junk"), &pcrs).unwrap_err();
        assert!(err.to_string().contains("no PEM private key"), "{err}");
        let err = SignedPcrPolicy::sign(&private, &[value(9, 0), value(9, 1)]).unwrap_err();
        assert!(err.to_string().contains("PCR 9 is given twice"), "{err}");
        let err = SignedPcrPolicy::sign(&private, &[]).unwrap_err();
        assert!(err.to_string().contains("at least one PCR"), "{err}");
    }

    /// What makes offline signing trustworthy: the digest computed here is the one the TPM
    /// computes for PolicyPCR over the same values.
    #[test]
    fn offline_pcr_policy_digest_equals_the_tpms_trial_digest() {
        let swtpm = Swtpm::start().unwrap();
        // Give PCR 16 a value other than zeros.
        swtpm.pcr_extend(16).unwrap();
        let mut tpm = Tpm::connect(&swtpm.tcti()).unwrap();
        for pcrs in [&[16][..], &[9], &[0, 7, 9, 16, 23], &[8, 15]] {
            let values: BTreeMap<u8, [u8; 32]> = read_pcrs(&mut tpm, pcrs)
                .unwrap()
                .into_iter()
                .map(|(p, v)| (p, v.try_into().unwrap()))
                .collect();
            let trial = pcr_policy(&mut tpm, pcrs, SessionType::Trial).unwrap();
            let tpm_digest = trial_digest(&mut tpm, trial).unwrap();
            assert_eq!(
                tpm_digest.value(),
                pcr_policy_digest(&values),
                "PCRs {pcrs:?}"
            );
        }
    }
}
