//! `[audit]`: where decision records go and what is kept out of them.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Destination of audit lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditSink {
    /// One JSON line per decision on standard output.
    Stdout,
    /// Appended to `path`.
    File,
    /// RFC 5424 messages to `syslog_address`.
    Syslog,
}

/// Transport for the syslog sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    /// One datagram per message (RFC 5426).
    Udp,
    /// Octet-counted frames over one connection (RFC 6587).
    Tcp,
}

/// `[audit]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// "stdout", "file" or "syslog".
    pub sink: AuditSink,
    /// File written by the "file" sink.
    pub path: PathBuf,
    /// Collector for the "syslog" sink.
    pub syslog_address: SocketAddr,
    /// "udp" or "tcp".
    pub syslog_transport: SyslogTransport,
    /// Lines buffered between the request path and the writer; beyond it lines are dropped
    /// and counted, never waited for.
    pub queue_capacity: usize,
    /// Request headers recorded in each line (by name, case-insensitive).
    pub headers: Vec<String>,
    /// Extra header or query-parameter names never logged, on top of Authorization, Cookie
    /// and Set-Cookie.
    pub redact: Vec<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            sink: AuditSink::Stdout,
            path: PathBuf::from("/var/log/vigil/audit.log"),
            syslog_address: SocketAddr::from(([127, 0, 0, 1], 514)),
            syslog_transport: SyslogTransport::Udp,
            queue_capacity: 8192,
            headers: vec!["user-agent".to_owned()],
            redact: Vec::new(),
        }
    }
}
