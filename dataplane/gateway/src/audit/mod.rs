//! The audit log: one JSON line per decision, queued without ever blocking the request path and
//! written by one thread to stdout, a file or syslog. Secrets (Authorization, Cookie, Set-Cookie
//! and configured names) never reach a line; query values are never logged.

mod sink;
mod writer;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;

use http::{HeaderMap, HeaderName, Uri};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::config::AuditConfig;
use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::pipeline::ClientIdentity;

/// Written in place of a redacted header value.
const REDACTED: &str = "[redacted]";
/// Never logged, whatever the config says.
const ALWAYS_REDACTED: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// A line of the audit log: a request's decision, or an event of the box itself (a thermal
/// level change...), written to the same sinks.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
// The request line is the common case: boxing it would cost an allocation per request to save
// bytes on rare system events.
#[allow(clippy::large_enum_variant)]
pub enum AuditLine {
    Request(AuditEvent),
    System(SystemEvent),
}

impl AuditLine {
    /// RFC 3339 time of the line (the syslog header carries it too).
    pub fn time(&self) -> &str {
        match self {
            AuditLine::Request(e) => &e.time,
            AuditLine::System(e) => &e.time,
        }
    }
}

/// An event of the box rather than of a request: `{"time","event",...fields}`.
#[derive(Debug, Clone, Serialize)]
pub struct SystemEvent {
    pub time: String,
    pub event: &'static str,
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// One decision, as written to the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    /// RFC 3339 UTC time the request head arrived.
    pub time: String,
    /// The request id (`x-request-id`).
    pub request_id: String,
    /// Client address (`ip:port`).
    pub client: String,
    /// `TLSv1.3`, `TLSv1.2`, or null on the plain listener.
    pub tls: Option<&'static str>,
    /// Client identity (mTLS subject and SANs), if any.
    pub identity: Option<ClientIdentity>,
    /// The verified identity's subject (JWT `sub` or the mTLS subject), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// How that identity was verified (`jwt`, `mtls`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<crate::pipeline::AuthMethod>,
    /// Request method.
    pub method: String,
    /// Path with query parameter names only (values dropped).
    pub path: String,
    /// Matched route, if any.
    pub route: Option<String>,
    /// Upstream the request went to, if any.
    pub upstream: Option<String>,
    /// Response status.
    pub status: u16,
    /// Reason code (`ok` when forwarded).
    pub reason: &'static str,
    /// Microseconds from request head to end of response.
    pub latency_us: u64,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Recorded request headers (`audit.headers`), secrets replaced by `[redacted]`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Virtual patches the request matched (ids), whatever their action.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<String>,
    /// The client's JA4 TLS fingerprint (HTTPS only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja4: Option<String>,
    /// Where the upstream's response contradicted the description (`reason@location`),
    /// whatever the route's `responses` setting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_violation: Option<String>,
    /// Sensitive kinds the response carried (`card`, `jwt`, ...), whatever the action.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_data: Vec<&'static str>,
    /// The `[bots]` rule the User-Agent matched, whatever the action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    /// Injection findings (`sqli:s&sos@query.q`), whatever the detection mode.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detections: Vec<String>,
}

/// Decides what of a request may appear in a line.
#[derive(Debug, Clone)]
pub struct Redactor {
    record: Vec<HeaderName>,
    redact: HashSet<String>,
}

impl Redactor {
    /// From `[audit] headers` and `redact` (names compared case-insensitively).
    pub fn new(cfg: &AuditConfig) -> Self {
        let mut redact: HashSet<String> = ALWAYS_REDACTED.iter().map(|s| (*s).to_owned()).collect();
        redact.extend(cfg.redact.iter().map(|s| s.to_ascii_lowercase()));
        let record = cfg
            .headers
            .iter()
            .filter_map(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok())
            .collect();
        Self { record, redact }
    }

    /// The recorded headers of a request.
    pub fn headers(&self, headers: &HeaderMap) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for name in &self.record {
            let Some(v) = headers.get(name) else { continue };
            let value = if self.redact.contains(name.as_str()) {
                REDACTED.to_owned()
            } else {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            };
            out.insert(name.as_str().to_owned(), value);
        }
        out
    }

    /// The path with query values removed and redacted parameter names dropped.
    pub fn path(&self, uri: &Uri) -> String {
        let query = uri.query();
        let mut out = String::with_capacity(uri.path().len() + query.map_or(0, |q| q.len() + 2));
        out.push_str(uri.path());
        let names = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|kv| kv.split('=').next())
            .filter(|k| !k.is_empty() && !self.redacts(k));
        for (i, name) in names.enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(name);
            out.push('=');
        }
        out
    }

    /// Whether a query parameter of this name is left out (names compared case-insensitively;
    /// a lowercase name, the usual one, is looked up without a copy).
    fn redacts(&self, name: &str) -> bool {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.redact.contains(&name.to_ascii_lowercase())
        } else {
            self.redact.contains(name)
        }
    }
}

/// The request path's handle on the audit queue.
#[derive(Debug)]
pub struct Auditor {
    tx: SyncSender<writer::Msg>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    /// Set to make the writer open the audit file again (after logrotate moved it).
    reopen: Arc<AtomicBool>,
    done: std::sync::Mutex<Option<oneshot::Receiver<()>>>,
}

impl Auditor {
    /// Opens the sink and starts the writer thread.
    pub async fn start(cfg: &AuditConfig, metrics: Arc<Metrics>) -> Result<Self, GatewayError> {
        let sink = sink::Sink::open(cfg)?;
        let what = match cfg.sink {
            crate::config::AuditSink::Stdout => "stdout".to_owned(),
            crate::config::AuditSink::File => format!("file {}", cfg.path.display()),
            crate::config::AuditSink::Syslog => format!("syslog {}", cfg.syslog_address),
        };
        // Plain blocking writes on a thread of its own: no trip through tokio's blocking pool
        // per batch, and a stuck sink stalls only this thread.
        let (tx, rx) = std::sync::mpsc::sync_channel(cfg.queue_capacity);
        let stop = Arc::new(AtomicBool::new(false));
        let reopen = Arc::new(AtomicBool::new(false));
        let (done_tx, done) = oneshot::channel();
        writer::spawn(
            writer::Setup {
                sink,
                cfg: cfg.clone(),
                what: what.clone(),
                capacity: cfg.queue_capacity,
                metrics: metrics.clone(),
                stop: stop.clone(),
                reopen: reopen.clone(),
            },
            rx,
            done_tx,
        )
        .map_err(|source| GatewayError::AuditSink {
            what: format!("{what} (writer thread)"),
            source,
        })?;
        Ok(Self {
            tx,
            metrics,
            stop,
            reopen,
            done: std::sync::Mutex::new(Some(done)),
        })
    }

    /// Makes the writer close the audit file and open `audit.path` again before its next
    /// batch (after a rotation moved the file away); other sinks ignore it.
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
        let _ = self.tx.try_send(None);
    }

    /// Queues a line; if the queue is full the line is dropped and counted, never waited for.
    pub fn record(&self, event: AuditEvent) {
        self.send(AuditLine::Request(event));
    }

    /// Queues an event of the box itself (same queue, same sinks, same drop policy).
    pub fn record_system(&self, event: SystemEvent) {
        self.send(AuditLine::System(event));
    }

    fn send(&self, line: AuditLine) {
        if self.tx.try_send(Some(line)).is_err() {
            self.metrics.audit_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes what is queued and stops the writer (waits at most 5 s for a stuck sink).
    pub async fn flush_and_stop(&self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the thread if it is waiting; a full queue wakes it anyway.
        let _ = self.tx.try_send(None);
        let done = self
            .done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(done) = done {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), done).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets_and_query_values() {
        let cfg = AuditConfig {
            headers: vec![
                "User-Agent".into(),
                "authorization".into(),
                "x-api-key".into(),
            ],
            redact: vec!["X-Api-Key".into(), "token".into()],
            ..AuditConfig::default()
        };
        let r = Redactor::new(&cfg);
        let mut h = HeaderMap::new();
        h.insert("user-agent", http::HeaderValue::from_static("curl/8"));
        h.insert(
            "authorization",
            http::HeaderValue::from_static("Bearer s3cret"),
        );
        h.insert("x-api-key", http::HeaderValue::from_static("k3y"));
        let got = r.headers(&h);
        assert_eq!(got.get("user-agent").map(String::as_str), Some("curl/8"));
        assert_eq!(got.get("authorization").map(String::as_str), Some(REDACTED));
        assert_eq!(got.get("x-api-key").map(String::as_str), Some(REDACTED));
        let uri: Uri = "/a/b?id=42&token=zzz&q=x".parse().unwrap_or_default();
        assert_eq!(r.path(&uri), "/a/b?id=&q=");
    }
}
