//! TLS termination: the rustls server config built from `[tls]`, a certificate resolver whose
//! key can be swapped atomically (rotation and reload never drop a connection: handshakes in
//! progress keep the key they started with), and facts read from a finished handshake.

mod identity;
pub mod ja4;
mod offload;
pub mod tickets;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite};
use vigil_hw::keys::{KeyMode, KeyProvider};

use crate::config::{ClientAuth, MinVersion, TlsConfig};
use crate::error::GatewayError;
use crate::pipeline::{TlsInfo, TlsVersion};

/// Serves the current certificate and key; [`CertResolver::store`] swaps them.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
    /// Signatures made in the TPM (TPM-resident keys only).
    sign_stats: Arc<SignStats>,
    /// Whether the current key signs in the TPM.
    tpm: std::sync::atomic::AtomicBool,
}

/// Signatures made by a TPM-resident key, for `/metrics`.
#[derive(Debug, Default)]
pub struct SignStats {
    pub count: AtomicU64,
    pub failures: AtomicU64,
    pub nanos: AtomicU64,
    /// Whether the last signature failed (the TPM went away, the key was flushed).
    pub last_failed: std::sync::atomic::AtomicBool,
}

impl CertResolver {
    /// Loads the first key from `keys`.
    pub fn new(keys: &dyn KeyProvider) -> Result<Self, GatewayError> {
        let sign_stats = Arc::new(SignStats::default());
        let key = load_key(keys, &sign_stats)?;
        Ok(Self {
            current: ArcSwap::new(key),
            sign_stats,
            tpm: (keys.mode() == KeyMode::TpmResident).into(),
        })
    }

    /// Loads a key from `keys` (not yet served: [`Self::store`] serves it).
    pub fn load(&self, keys: &dyn KeyProvider) -> Result<(Arc<CertifiedKey>, bool), GatewayError> {
        Ok((
            load_key(keys, &self.sign_stats)?,
            keys.mode() == KeyMode::TpmResident,
        ))
    }

    /// Whether the served key signs in the TPM (a slow signature per full handshake).
    pub fn signs_in_tpm(&self) -> bool {
        self.tpm.load(Ordering::Relaxed)
    }

    /// Makes `key` the one served to new handshakes.
    pub fn store(&self, (key, tpm): (Arc<CertifiedKey>, bool)) {
        self.current.store(key);
        self.tpm.store(tpm, Ordering::Relaxed);
        self.sign_stats.last_failed.store(false, Ordering::Relaxed);
    }

    /// When the served certificate expires (notAfter, seconds since the epoch).
    pub fn not_after(&self) -> Option<i64> {
        let current = self.current.load();
        current.cert.first().and_then(|c| {
            x509_parser::parse_x509_certificate(c.as_ref())
                .ok()
                .map(|(_, x)| x.validity().not_after.timestamp())
        })
    }

    /// The served certificate's expiry, whether the key signs, and TPM signature times.
    pub fn write_metrics(&self, e: &mut crate::metrics::Exposition<'_, '_>) -> std::fmt::Result {
        if let Some(t) = self.not_after() {
            e.gauge(
                "vigil_tls_certificate_expiry_timestamp_seconds",
                "When the served certificate expires (notAfter), in seconds since the epoch.",
                t,
            )?;
        }
        let s = &self.sign_stats;
        e.gauge(
            "vigil_tls_key_available",
            "1 while the TLS key is loaded and its last signature (TPM keys) succeeded.",
            i64::from(!s.last_failed.load(Ordering::Relaxed)),
        )?;
        if self.tpm.load(Ordering::Relaxed) {
            e.summary(
                "vigil_tpm_sign_seconds",
                "Time the TPM took per TLS handshake signature.",
                s.nanos.load(Ordering::Relaxed) as f64 / 1e9,
                s.count.load(Ordering::Relaxed),
            )?;
            e.counter(
                "vigil_tpm_sign_failures_total",
                "TLS handshake signatures the TPM failed.",
                s.failures.load(Ordering::Relaxed),
            )?;
        }
        Ok(())
    }
}

/// Loads a key; a TPM-resident key is wrapped so its slow signature runs off the async
/// workers' hot path and is timed (see `offload`).
fn load_key(
    keys: &dyn KeyProvider,
    stats: &Arc<SignStats>,
) -> Result<Arc<CertifiedKey>, GatewayError> {
    let ck = keys.load()?;
    Ok(match keys.mode() {
        KeyMode::TpmResident => offload::wrap(&ck, stats.clone()),
        KeyMode::File | KeyMode::TpmSealed => ck,
    })
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The ring provider restricted to what `[tls]` allows. TLS 1.2 keeps only ECDHE key
/// exchange with AEAD ciphers (forward secrecy, no CBC).
fn provider(min: MinVersion) -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.retain(|s| match s {
        SupportedCipherSuite::Tls13(_) => true,
        SupportedCipherSuite::Tls12(_) => {
            let name = format!("{:?}", s.suite());
            min == MinVersion::Tls12
                && name.starts_with("TLS_ECDHE_")
                && (name.contains("_GCM_") || name.contains("CHACHA20_POLY1305"))
        }
    });
    Arc::new(p)
}

/// Builds the server config for `cfg`, serving keys from `resolver`.
pub fn server_config(
    cfg: &TlsConfig,
    resolver: Arc<CertResolver>,
) -> Result<Arc<ServerConfig>, GatewayError> {
    let provider = provider(cfg.min_version);
    let versions: &[&rustls::SupportedProtocolVersion] = match cfg.min_version {
        MinVersion::Tls13 => &[&rustls::version::TLS13],
        MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let tls_err = |e: rustls::Error| GatewayError::Tls {
        detail: e.to_string(),
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(tls_err)?;
    let builder = match &cfg.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let ca_err = |detail: String| GatewayError::ClientCa {
                path: path.clone(),
                detail,
            };
            let mut roots = RootCertStore::empty();
            let pem = vigil_files::read(path, vigil_files::FileKind::CaCertificates)
                .map_err(|file| GatewayError::ClientCaFile { file })?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| ca_err(e.to_string()))?;
                roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ca_err("holds no CERTIFICATE block".to_owned()));
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = match cfg.client_auth {
                ClientAuth::Required => v,
                ClientAuth::Optional => v.allow_unauthenticated(),
            };
            builder.with_client_cert_verifier(v.build().map_err(|e| ca_err(e.to_string()))?)
        }
    };
    let mut sc = builder.with_cert_resolver(resolver);
    sc.alpn_protocols = cfg.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    // Resumption with stateless tickets spares clients (and a slow TPM) a full handshake.
    sc.ticketer = rustls::crypto::ring::Ticketer::new().map_err(tls_err)?;
    Ok(Arc::new(sc))
}

/// Facts of a finished handshake.
pub fn info(conn: &rustls::ServerConnection) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_2) => TlsVersion::Tls12,
        _ => TlsVersion::Tls13,
    };
    TlsInfo {
        version,
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        identity: conn
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|leaf| identity::from_der(leaf.as_ref())),
        ja4: None,
    }
}

/// Stable label for a failed handshake (metrics).
pub fn failure_reason(err: &std::io::Error) -> &'static str {
    use rustls::Error as E;
    match err.get_ref().and_then(|e| e.downcast_ref::<E>()) {
        Some(E::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered
            | rustls::PeerIncompatible::SupportedVersionsExtensionRequired,
        )) => "protocol_version",
        Some(E::NoApplicationProtocol) => "no_alpn",
        Some(E::PeerIncompatible(_)) => "incompatible",
        Some(E::NoCertificatesPresented) | Some(E::InvalidCertificate(_)) => "client_certificate",
        Some(E::AlertReceived(_)) => "alert_received",
        Some(E::InvalidMessage(_)) | Some(E::PeerMisbehaved(_)) => "protocol_error",
        Some(_) => "other",
        None if err.kind() == std::io::ErrorKind::UnexpectedEof => "eof",
        None => "io",
    }
}
