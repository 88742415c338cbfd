//! Errors from loading, creating and sealing TLS keys.

use std::path::PathBuf;

/// Formats a PCR index list as `7, 11` for error messages.
fn pcr_list(pcrs: &[u8]) -> String {
    let parts: Vec<String> = pcrs.iter().map(u8::to_string).collect();
    parts.join(", ")
}

/// Why a key could not be loaded, created or sealed. Each message says what to check or do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A file could not be read or written.
    #[error("cannot access {}: {source}; check that the file exists and is readable by vigild",
        path.display())]
    FileUnreadable {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A certificate, key or blob file was refused before parsing: missing, unreadable, not a
    /// regular file, or over its size limit.
    #[error(transparent)]
    File {
        /// What was wrong with the file (names the file and what to do).
        #[from]
        source: vigil_files::FileError,
    },
    /// A PEM file is malformed.
    #[error("{} is not valid PEM ({detail}); re-export it as PEM", path.display())]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser reported.
        detail: String,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("no certificate in {}; the file must hold the leaf certificate first, then any \
        intermediates, as PEM CERTIFICATE blocks", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The leaf certificate cannot be parsed.
    #[error("the leaf certificate in {} cannot be parsed ({detail}); replace it with a valid \
        X.509 certificate", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What the parser reported.
        detail: String,
    },
    /// The key file holds no private key block.
    #[error("no private key in {}; expected a PEM PRIVATE KEY (PKCS#8), EC PRIVATE KEY (SEC1) \
        or RSA PRIVATE KEY (PKCS#1) block", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The private key is of a type or curve that cannot sign for TLS.
    #[error("the private key in {} is not supported ({detail}); use ECDSA P-256/P-384, Ed25519 \
        or RSA (2048 bits or more)", path.display())]
    UnsupportedKey {
        /// The file (or blob) holding the key.
        path: PathBuf,
        /// What the key parser reported.
        detail: String,
    },
    /// The private key does not belong to the leaf certificate.
    #[error("the private key in {} does not match the leaf certificate in {}; install the \
        certificate issued for this key", key_path.display(), cert_path.display())]
    KeyMismatch {
        /// The certificate chain file.
        cert_path: PathBuf,
        /// The key file (or blob).
        key_path: PathBuf,
    },
    /// No TPM answers at the configured TCTI.
    #[error(
        "TPM unreachable at TCTI \"{tcti}\" ({detail}); check that the TPM device or swtpm \
        is running and that the TCTI string in the config is right"
    )]
    TpmUnreachable {
        /// The TCTI string used to connect.
        tcti: String,
        /// What the TSS reported.
        detail: String,
    },
    /// The PCR policy of a sealed key is not satisfied.
    #[error("the TPM refused to unseal {}: PCR {} changed since the key was sealed (firmware, \
        boot chain or measured config changed); if the change is legitimate, re-seal the key \
        with `vigilctl keys seal`", blob.display(), pcr_list(pcrs))]
    PcrMismatch {
        /// The sealed blob file.
        blob: PathBuf,
        /// The PCR indices (SHA-256 bank) whose current value differs from the sealed one.
        pcrs: Vec<u8>,
    },
    /// A key sealed to a signed PCR policy was loaded without the policy file.
    #[error("{} is sealed to signed PCR policies, but {}: set keys.pcr_policy in vigild's \
        config to the signed policy that ships with this image (made by `vigilctl keys policy \
        sign`)", blob.display(), match path {
            Some(p) => format!("the policy file {} does not exist", p.display()),
            None => "no policy file is configured".to_owned(),
        })]
    NoPcrPolicy {
        /// The sealed blob file.
        blob: PathBuf,
        /// The configured policy file, if one is configured.
        path: Option<PathBuf>,
    },
    /// A signed PCR policy file is malformed, was altered, or its signature does not verify.
    #[error("{} is not a valid signed PCR policy ({detail}); sign it again with `vigilctl keys \
        policy sign`", path.display())]
    BadPcrPolicy {
        /// The policy file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The signed policy is signed by a key other than the one the sealed key accepts.
    #[error("{} is signed by the policy key with SHA-256 {signed_by}, but {} only accepts \
        policies signed by the key with SHA-256 {sealed_to}; install the policy signed with \
        that key, or seal the key again with `vigilctl keys seal --policy-key`",
        policy.display(), blob.display())]
    PcrPolicyKeyMismatch {
        /// The policy file.
        policy: PathBuf,
        /// The sealed blob file.
        blob: PathBuf,
        /// SHA-256 of the SubjectPublicKeyInfo of the key that signed the policy.
        signed_by: String,
        /// SHA-256 of the SubjectPublicKeyInfo of the key the blob was sealed to.
        sealed_to: String,
    },
    /// The PCRs do not hold the values the signed policy approves.
    #[error("this boot does not match the measurements that {} signs: PCR {} {} from the \
        signed value (SHA-256 bank), so {} stays sealed; if this boot is genuine, install the \
        signed policy made for this image (`vigilctl keys policy show` lists the values a \
        policy signs, `tpm2_pcrread sha256:{}` the current ones)",
        policy.display(), pcr_list(pcrs), if pcrs.len() == 1 { "differs" } else { "differ" },
        blob.display(), pcr_list(pcrs).replace(' ', ""))]
    PcrPolicyMismatch {
        /// The policy file.
        policy: PathBuf,
        /// The sealed blob file.
        blob: PathBuf,
        /// The PCR indices (SHA-256 bank) whose current value differs from the signed one.
        pcrs: Vec<u8>,
    },
    /// A policy-signing key file is not the half of an ECC P-256 key that was needed.
    #[error("{}: not usable as the {half} half of an ECC P-256 policy key ({detail}); make a \
        policy key with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out \
        policy.key` and give boxes its public half (`openssl pkey -in policy.key -pubout -out \
        policy.pub`)", path.display())]
    PolicyKey {
        /// The key file.
        path: PathBuf,
        /// `private` (to sign policies) or `public` (to seal keys).
        half: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The TPM has no free transient object slots (TPM_RC_OBJECT_MEMORY, 0x902).
    #[error(
        "the TPM at \"{tcti}\" has no free object slots (TPM_RC 0x902): another program \
        left transient objects loaded; flush them (`tpm2_flushcontext -t`) or restart the TPM \
        simulator"
    )]
    ObjectSlotsExhausted {
        /// The TCTI string used to connect.
        tcti: String,
    },
    /// Another TPM command failed.
    #[error("TPM operation {op} failed: {detail}")]
    Tpm {
        /// The operation (e.g. `create primary`, `sign`).
        op: &'static str,
        /// What the TPM or TSS reported.
        detail: String,
    },
    /// A key blob or key directory file is malformed.
    #[error("{} is not a valid Vigil key file ({detail}); recreate it with `vigilctl keys init` \
        or `vigilctl keys seal`", path.display())]
    BadBlob {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The key directory has not been initialised.
    #[error("no key in {}; create one with `vigilctl keys init`", dir.display())]
    NotInitialized {
        /// The key directory.
        dir: PathBuf,
    },
    /// Locking unsealed key memory into RAM failed.
    #[error(
        "cannot lock key memory into RAM ({source}); raise the memlock limit of vigild \
        (systemd: LimitMEMLOCK=) so unsealed keys are never swapped out"
    )]
    MemoryLock {
        /// The OS error.
        source: std::io::Error,
    },
    /// A request was invalid (bad PCR index, bad subject, ...).
    #[error("invalid key request: {detail}")]
    Invalid {
        /// What is wrong.
        detail: String,
    },
    /// Building a certificate or CSR failed.
    #[error("cannot build the certificate or CSR: {detail}")]
    Certificate {
        /// What the builder reported.
        detail: String,
    },
}
