//! Connecting to the TPM and turning TSS errors into [`KeyError`]s an operator can act on.

use std::str::FromStr;

use tss_esapi::constants::response_code::{Tss2ResponseCode, Tss2ResponseCodeKind};
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    EccPoint, Public, PublicBuilder, PublicEccParameters, PublicEccParametersBuilder,
    SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::{
    Context,
    attributes::{ObjectAttributes, ObjectAttributesBuilder},
};

use crate::keys::KeyError;

/// The TSS layer of TCTI (transport) errors: the TPM is not there or went away.
const TSS2_TCTI_LAYER: u32 = 10 << 16;

/// One open connection to a TPM, with the TCTI string kept for error messages.
#[derive(Debug)]
pub(crate) struct Tpm {
    pub(crate) ctx: Context,
    pub(crate) tcti: String,
}

impl Tpm {
    /// Opens the TCTI (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`, ...). Commands
    /// that need authorisation use empty auth through a password session, which needs no TPM
    /// session slot; the others run without sessions.
    pub(crate) fn connect(tcti: &str) -> Result<Self, KeyError> {
        let unreachable = |detail: String| KeyError::TpmUnreachable {
            tcti: tcti.to_owned(),
            detail,
        };
        let conf = TctiNameConf::from_str(tcti).map_err(|e| unreachable(e.to_string()))?;
        let ctx = Context::new(conf).map_err(|e| unreachable(e.to_string()))?;
        Ok(Self {
            ctx,
            tcti: tcti.to_owned(),
        })
    }

    /// Maps a TSS error of operation `op` to a [`KeyError`].
    pub(crate) fn err(&self, op: &'static str, e: tss_esapi::Error) -> KeyError {
        map_err(&self.tcti, op, e)
    }

    /// Creates the storage primary key under the owner hierarchy. The template is fixed, so
    /// the TPM derives the same key from its owner seed every time: blobs wrapped by it stay
    /// loadable across TPM restarts without persisting anything in the TPM.
    pub(crate) fn create_primary(&mut self) -> Result<KeyHandle, KeyError> {
        let public = primary_template().map_err(|e| self.err("build primary template", e))?;
        let res = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.create_primary(Hierarchy::Owner, public, None, None, None, None)
            });
        res.map(|r| r.key_handle)
            .map_err(|e| self.err("create primary key", e))
    }

    /// Flushes a transient object; swtpm has three object slots and no resource manager.
    pub(crate) fn flush(&mut self, handle: KeyHandle) {
        // A failed flush leaves a slot in use until the TPM restarts; nothing better to do here,
        // and the object-memory error that would follow names the cause.
        let _ = self.ctx.flush_context(handle.into());
    }
}

/// The TCG "SRK" style template: ECC P-256 restricted decryption key with AES-128-CFB.
fn primary_template() -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()?;
    let parameters = PublicEccParametersBuilder::new_restricted_decryption_key(
        SymmetricDefinitionObject::AES_128_CFB,
        EccCurve::NistP256,
    )
    .build()?;
    ecc_public(attributes, parameters, EccPoint::default())
}

/// An ECC public area with a SHA-256 name.
pub(crate) fn ecc_public(
    attributes: ObjectAttributes,
    parameters: PublicEccParameters,
    unique: EccPoint,
) -> tss_esapi::Result<Public> {
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(parameters)
        .with_ecc_unique_identifier(unique)
        .build()
}

/// The raw TSS2_RC of an error, if it came from the TSS or TPM.
pub(crate) fn raw_rc(e: &tss_esapi::Error) -> Option<u32> {
    // tss-esapi 7 does not expose the raw code; its Display of the code is "...: 0x<hex>".
    let text = match e {
        tss_esapi::Error::Tss2Error(Tss2ResponseCode::FormatZero(rc)) => rc.to_string(),
        tss_esapi::Error::Tss2Error(Tss2ResponseCode::FormatOne(rc)) => rc.to_string(),
        _ => return None,
    };
    let hex = text.rsplit("0x").next()?;
    u32::from_str_radix(hex.trim(), 16).ok()
}

/// The response-code kind of a TPM error.
pub(crate) fn rc_kind(e: &tss_esapi::Error) -> Option<Tss2ResponseCodeKind> {
    match e {
        tss_esapi::Error::Tss2Error(rc) => rc.kind(),
        tss_esapi::Error::WrapperError(_) => None,
    }
}

pub(crate) fn map_err(tcti: &str, op: &'static str, e: tss_esapi::Error) -> KeyError {
    let raw = raw_rc(&e);
    if raw.is_some_and(|rc| rc & 0x00FF_0000 == TSS2_TCTI_LAYER) {
        return KeyError::TpmUnreachable {
            tcti: tcti.to_owned(),
            detail: format!("{op}: connection lost ({e})"),
        };
    }
    // Only TPM-layer codes (layer 0) carry TPM meanings; other layers reuse the numbers.
    let tpm_layer = raw.is_some_and(|rc| rc & 0x00FF_0000 == 0);
    if tpm_layer && rc_kind(&e) == Some(Tss2ResponseCodeKind::ObjectMemory) {
        return KeyError::ObjectSlotsExhausted {
            tcti: tcti.to_owned(),
        };
    }
    let code = raw
        .map(|rc| format!(" (TPM_RC {rc:#x})"))
        .unwrap_or_default();
    KeyError::Tpm {
        op,
        detail: format!("{e}{code}"),
    }
}
