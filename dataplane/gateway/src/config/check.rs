//! What a start reads from disk beyond the config itself, checked without binding anything:
//! the OpenAPI description compiled, its JWKS files parsed, the shadow inventory read back, the
//! client CA bundle, the audit file's directory. vigild runs this for `--check`, at start and before every reload.

use std::path::Path;

use rustls::pki_types::{CertificateDer, pem::PemObject};
use vigil_identity::{Jwks, JwksLocation, JwksOptions};
use vigil_policy::{Policy, SchemeKind, ShadowInventory};

use super::{AuditSink, ConfigError, GatewayConfig};

impl GatewayConfig {
    /// Reads and compiles what the config points at, as [`crate::Gateway::start`] will; the
    /// error names the key whose file is wrong. Call after [`GatewayConfig::validate`].
    pub fn check_files(&self) -> Result<(), ConfigError> {
        if let Some(b) = &self.bots {
            super::BotList::load(&b.file)?;
        }
        if let Some(pc) = &self.policy {
            let bad = |e: &dyn std::fmt::Display| {
                ConfigError::new("policy.file", format!("{}: {e}", pc.file.display()))
            };
            let policy = Policy::load(&pc.file, &pc.options()).map_err(|e| bad(&e))?;
            if let Some(f) = &pc.shadow_file {
                // Only read back: how many entries are kept does not matter here.
                ShadowInventory::load(f, 1).map_err(|e| {
                    ConfigError::new("policy.shadow_file", format!("{}: {e}", f.display()))
                })?;
            }
            let dir = pc.file.parent().unwrap_or(Path::new("."));
            for s in policy.schemes() {
                if let SchemeKind::Jwt(j) = &s.kind
                    && let Some(f) = &j.jwks_file
                {
                    Jwks::new(JwksLocation::File(dir.join(f)), JwksOptions::default())
                        .map_err(|e| bad(&format!("securitySchemes.{}: {e}", s.name)))?;
                }
            }
        }
        if let Some(ca) = &self.tls.client_ca {
            let bad = |detail: String| {
                ConfigError::new(
                    "tls.client_ca",
                    format!(
                        "{}: {detail}; point it at a PEM file of CA certificates",
                        ca.display()
                    ),
                )
            };
            let pem = vigil_files::read(ca, vigil_files::FileKind::CaCertificates)
                .map_err(|e| ConfigError::new("tls.client_ca", e.to_string()))?;
            let mut certs = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                cert.map_err(|e| bad(e.to_string()))?;
                certs += 1;
            }
            if certs == 0 {
                return Err(bad("holds no CERTIFICATE block".to_owned()));
            }
        }
        if self.audit.sink == AuditSink::File {
            let dir = self
                .audit
                .path
                .parent()
                .filter(|d| !d.as_os_str().is_empty());
            if let Some(dir) = dir
                && !dir.is_dir()
            {
                return Err(ConfigError::new(
                    "audit.path",
                    format!(
                        "{} is not a directory: create it, or point audit.path elsewhere",
                        dir.display()
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::PolicyConfig;

    fn with_policy(file: PathBuf) -> GatewayConfig {
        GatewayConfig {
            policy: Some(PolicyConfig {
                file,
                mode: Default::default(),
                strict_query: false,
                strict_objects: false,
                shadow_file: None,
            }),
            ..GatewayConfig::default()
        }
    }

    fn key_of(cfg: &GatewayConfig) -> Option<String> {
        cfg.check_files().err().map(|e| e.key)
    }

    #[test]
    fn a_missing_or_uncompilable_policy_names_policy_file() {
        let dir = tempfile::tempdir().ok();
        let dir = dir.as_ref().map_or(Path::new("/nonexistent"), |d| d.path());
        let missing = with_policy(dir.join("missing.yaml"));
        assert_eq!(key_of(&missing).as_deref(), Some("policy.file"));
        let bad = dir.join("bad.yaml");
        let _ = std::fs::write(&bad, "openapi: 3.0.3\npaths: 7\n");
        let e = with_policy(bad).check_files().err();
        assert_eq!(e.as_ref().map(|e| e.key.as_str()), Some("policy.file"));
        assert!(
            e.is_some_and(|e| e.reason.contains("bad.yaml")),
            "the message names the file"
        );
        let good = dir.join("good.yaml");
        let _ = std::fs::write(
            &good,
            "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      \
             responses: {'200': {description: ok}}\n",
        );
        assert_eq!(with_policy(good.clone()).check_files(), Ok(()));
        // A shadow inventory that is not one is refused; a missing one starts empty.
        let mut cfg = with_policy(good);
        let shadow = dir.join("shadow.json");
        let _ = std::fs::write(&shadow, "not json");
        if let Some(p) = cfg.policy.as_mut() {
            p.shadow_file = Some(shadow.clone());
        }
        assert_eq!(key_of(&cfg).as_deref(), Some("policy.shadow_file"));
        let _ = std::fs::remove_file(&shadow);
        assert_eq!(cfg.check_files(), Ok(()));
    }

    #[test]
    fn client_ca_and_audit_directory_are_read() {
        let mut cfg = GatewayConfig::default();
        cfg.tls.client_ca = Some(PathBuf::from("/nonexistent/ca.pem"));
        assert_eq!(key_of(&cfg).as_deref(), Some("tls.client_ca"));
        let mut cfg = GatewayConfig::default();
        cfg.audit.sink = AuditSink::File;
        cfg.audit.path = PathBuf::from("/nonexistent/dir/audit.log");
        assert_eq!(key_of(&cfg).as_deref(), Some("audit.path"));
        cfg.audit.path = std::env::temp_dir().join("audit.log");
        assert_eq!(cfg.check_files(), Ok(()));
    }
}
