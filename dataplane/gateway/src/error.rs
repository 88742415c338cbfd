//! Errors from starting, reloading and stopping the gateway.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigError;

/// Why the gateway could not start or apply a new config. On reload the running config keeps
/// serving whatever the error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The config failed validation.
    #[error("invalid config: {source}")]
    Config {
        /// The offending key and why.
        #[from]
        source: ConfigError,
    },
    /// A listener socket could not be bound.
    #[error(
        "cannot listen on {addr} for {what}: {source}; check that no other process uses \
        the address and that vigild may bind it"
    )]
    Bind {
        /// Which listener (`listener.https`, `listener.http`, `metrics.listen`).
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The key provider could not produce a certificate and key.
    #[error("cannot load the TLS certificate and key: {source}")]
    Keys {
        /// The provider's error.
        #[from]
        source: vigil_hw::keys::KeyError,
    },
    /// The client CA bundle for mTLS is unusable.
    #[error("tls.client_ca {}: {detail}; point it at a PEM file of CA certificates",
        path.display())]
    ClientCa {
        /// The configured file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The client CA file was refused before parsing: missing, unreadable, not a regular file
    /// or over its size limit.
    #[error("tls.client_ca: {file}")]
    ClientCaFile {
        /// What is wrong with the file (names it and says what to do; kept out of `source`
        /// because the message already carries it).
        file: vigil_files::FileError,
    },
    /// rustls refused the TLS settings.
    #[error("TLS settings rejected: {detail}; check [tls]")]
    Tls {
        /// rustls' error.
        detail: String,
    },
    /// A worker thread or its runtime could not be started (`listener.workers`).
    #[error(
        "cannot start worker {worker} of listener.workers: {source}; lower listener.workers \
        or check the process's thread limit"
    )]
    Worker {
        /// 1 to `listener.workers`.
        worker: usize,
        /// The OS error.
        source: std::io::Error,
    },
    /// The audit sink could not be opened.
    #[error("cannot open the audit sink ({what}): {source}; check [audit]")]
    AuditSink {
        /// Which sink and target.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The new config changes a key that only takes effect at start.
    #[error(
        "{key} cannot change on reload (running: {running}, new: {new}); restart vigild \
        to apply it"
    )]
    NeedsRestart {
        /// The key path.
        key: &'static str,
        /// The running value.
        running: String,
        /// The requested value.
        new: String,
    },
}
