//! `[tls]`: certificate, protocol versions, ALPN and client certificates.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Lowest TLS version accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MinVersion {
    /// TLS 1.2 and 1.3; TLS 1.2 is limited to ECDHE key exchange with AEAD ciphers.
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

/// Whether a client certificate is demanded when `client_ca` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Handshakes without a certificate signed by `client_ca` fail.
    Required,
    /// A certificate is verified if sent; clients without one are admitted anonymously.
    Optional,
}

/// `[tls]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Certificate chain (PEM, leaf first). Read by the key provider.
    pub cert: PathBuf,
    /// Private key (PEM). Read by the key provider; unused (vigild warns) when the daemon's
    /// `[keys]` names a key set.
    pub key: PathBuf,
    /// Lowest protocol version: "1.3" (default) or "1.2".
    pub min_version: MinVersion,
    /// ALPN protocols offered, in order of preference ("h2", "http/1.1").
    pub alpn: Vec<String>,
    /// CA bundle (PEM) that client certificates must chain to; enables mTLS.
    pub client_ca: Option<PathBuf>,
    /// "required" or "optional"; only meaningful with `client_ca`.
    pub client_auth: ClientAuth,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: PathBuf::from("/etc/vigil/tls/cert.pem"),
            key: PathBuf::from("/etc/vigil/tls/key.pem"),
            min_version: MinVersion::Tls13,
            alpn: vec!["h2".to_owned(), "http/1.1".to_owned()],
            client_ca: None,
            client_auth: ClientAuth::Required,
        }
    }
}
