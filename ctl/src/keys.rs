//! `vigilctl keys init|show|seal`: key directories on this box. These talk to the TPM directly,
//! not to vigild, so a key can be made before the daemon's first start. `keys policy` signs
//! and shows PCR policies offline, where the policy key is kept (an image build).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use vigil_hw::keys::{self, KeyInfo, KeyMode, PolicyKey, SealPolicy, SignedPcrPolicy};

use crate::cli::{KeysCmd, KeysPolicyCmd, TctiArg};
use crate::render;

/// The kernel's TPM resource manager: what a real box uses.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";

/// `--tcti`, else `VIGIL_TCTI`, else the resource manager device.
pub fn resolve_tcti(flag: Option<&str>, env: Option<String>) -> String {
    flag.map(str::to_owned)
        .or(env)
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_TCTI.to_owned())
}

fn tcti(arg: &TctiArg) -> String {
    resolve_tcti(arg.tcti.as_deref(), std::env::var("VIGIL_TCTI").ok())
}

/// Runs a local key command; `rotate` goes to vigild and is not handled here.
pub fn run(cmd: &KeysCmd, json: bool) -> anyhow::Result<String> {
    let (data, text) = match cmd {
        KeysCmd::Init(a) => {
            let mode = KeyMode::from(a.mode);
            let subject = match &a.subject {
                Some(s) => s.clone(),
                None => host_name()?,
            };
            if a.policy_key.is_some() && mode != KeyMode::TpmSealed {
                return Err(crate::exit::usage(
                    "--policy-key applies to --mode sealed only: other keys are not sealed",
                ));
            }
            let policy = seal_policy(Vec::new(), a.policy_key.as_ref())?;
            let info = keys::init_with(mode, &a.dir, &tcti(&a.tpm), &subject, &policy)
                .with_context(|| {
                    format!(
                        "creating a {} key in {}",
                        render::keys::mode_name(mode),
                        a.dir.display()
                    )
                })?;
            let data = with_files(&info, &a.dir)?;
            let text = render::keys::created(&data);
            (data, text)
        }
        KeysCmd::Show { dir } => {
            let info = keys::show(dir)?;
            let data = serde_json::to_value(&info)?;
            let text = render::keys::info(&data);
            (data, text)
        }
        KeysCmd::Seal(a) => {
            let policy = seal_policy(a.pcrs.clone(), a.policy_key.as_ref())?;
            let info = keys::seal(&a.file, &a.dir, &tcti(&a.tpm), &policy).with_context(|| {
                format!("sealing {} into {}", a.file.display(), a.dir.display())
            })?;
            let mut data = with_files(&info, &a.dir)?;
            data["sealed_from"] = json!(a.file);
            let text = render::keys::sealed(&data);
            (data, text)
        }
        KeysCmd::Policy(KeysPolicyCmd::Sign(a)) => {
            let policy = SignedPcrPolicy::sign(&a.key, &a.pcrs)
                .with_context(|| format!("signing a PCR policy with {}", a.key.display()))?;
            policy.write(&a.out)?;
            let data = policy_data(&policy, &a.out)?;
            let text = format!(
                "signed {}\n{}",
                a.out.display(),
                render::keys::pcr_policy(&data)
            );
            (data, text)
        }
        KeysCmd::Policy(KeysPolicyCmd::Show { file }) => {
            let policy = SignedPcrPolicy::read(file)?;
            let data = policy_data(&policy, file)?;
            let text = render::keys::pcr_policy(&data);
            (data, text)
        }
        KeysCmd::Rotate => bail!("keys rotate is sent to vigild, not run locally"),
    };
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&data)?));
    }
    Ok(text)
}

/// What a sealed key is bound to: `--policy-key` if given, else the PCRs (empty: the default).
fn seal_policy(pcrs: Vec<u8>, policy_key: Option<&PathBuf>) -> anyhow::Result<SealPolicy> {
    Ok(match policy_key {
        Some(path) => SealPolicy::Signed(PolicyKey::read_public(path)?),
        None => SealPolicy::Pcrs(pcrs),
    })
}

/// A signed policy as its file holds it, plus the file and the signing key's fingerprint.
fn policy_data(policy: &SignedPcrPolicy, file: &Path) -> anyhow::Result<Value> {
    let mut data = serde_json::to_value(policy)?;
    data["file"] = json!(file);
    data["key_sha256"] = json!(policy.key().sha256_hex());
    Ok(data)
}

/// The key info plus the directory and the files it now holds.
fn with_files(info: &KeyInfo, dir: &Path) -> anyhow::Result<Value> {
    let key_file = match info.mode {
        KeyMode::File => keys::KEY_FILE,
        KeyMode::TpmSealed => keys::SEALED_FILE,
        KeyMode::TpmResident => keys::RESIDENT_FILE,
    };
    let files: Vec<String> = [keys::INFO_FILE, key_file, keys::CSR_FILE, keys::CERT_FILE]
        .into_iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    let mut data = serde_json::to_value(info)?;
    data["dir"] = json!(dir);
    data["files"] = json!(files);
    Ok(data)
}

/// The certificate subject when `--subject` is not given.
fn host_name() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = name.trim();
    if name.is_empty() || name == "(none)" {
        return Err(crate::exit::usage(
            "cannot tell this host's name; give the certificate's DNS name with --subject",
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn tcti_flag_beats_env_beats_default() {
        assert_eq!(
            resolve_tcti(Some("swtpm:port=1"), Some("device:/dev/tpm0".into())),
            "swtpm:port=1"
        );
        assert_eq!(
            resolve_tcti(None, Some("device:/dev/tpm0".into())),
            "device:/dev/tpm0"
        );
        assert_eq!(resolve_tcti(None, None), DEFAULT_TCTI);
        assert_eq!(resolve_tcti(None, Some(" ".into())), DEFAULT_TCTI);
    }
}
