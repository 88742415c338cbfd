//! What a stage is and sees: the [`Stage`] trait (and [`SyncStage`] for the stages that never
//! wait), the per-request [`RequestCtx`], the connection facts it carries, and the two answers
//! a stage gives ([`Outcome`], [`Rejection`]) with the helpers several stages share.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{ALLOW, RETRY_AFTER};
use http::request::Parts;
use http::{HeaderName, HeaderValue, StatusCode};
use tracing::info;
use vigil_hw::thermal::Level;
use vigil_policy::Deny;

/// The TLS protocol version of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2
    Tls12,
    /// TLS 1.3
    Tls13,
}

impl TlsVersion {
    /// `"TLSv1.2"` / `"TLSv1.3"`, as written in audit lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls12 => "TLSv1.2",
            Self::Tls13 => "TLSv1.3",
        }
    }
}

/// Identity from a verified client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientIdentity {
    /// Subject distinguished name, e.g. `CN=svc-a, O=Example`.
    pub subject: String,
    /// Subject alternative names, prefixed by kind: `dns:`, `uri:`, `email:`, `ip:`.
    pub sans: Vec<String>,
}

/// What the TLS handshake established for a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// Negotiated protocol version.
    pub version: TlsVersion,
    /// Negotiated ALPN protocol, if any.
    pub alpn: Option<String>,
    /// The verified client certificate's identity (mTLS), if one was presented.
    pub identity: Option<ClientIdentity>,
    /// The client's JA4 fingerprint (from its ClientHello; see `tls::ja4`).
    pub ja4: Option<String>,
}

/// Facts about the connection a request arrived on, shared by its requests.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address as seen by the socket.
    pub client: SocketAddr,
    /// TLS facts; `None` on the plain-HTTP listener.
    pub tls: Option<TlsInfo>,
    /// `client` as text (`ip:port`), and its address alone: written once per connection, read
    /// by every request's audit line and forwarding headers.
    pub client_text: String,
    pub ip_text: String,
    /// `ip_text` as a header value (`X-Forwarded-For`), shared by the connection's requests.
    pub ip_header: Option<HeaderValue>,
}

impl ConnInfo {
    pub fn new(client: SocketAddr, tls: Option<TlsInfo>) -> Self {
        Self {
            client,
            tls,
            client_text: client.to_string(),
            ip_header: HeaderValue::from_str(&client.ip().to_string()).ok(),
            ip_text: client.ip().to_string(),
        }
    }
}

/// How a request's identity was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// A verified bearer JWT.
    Jwt,
    /// A verified client certificate.
    Mtls,
}

/// Who a request is, once the identity stage has verified it: what rate limits (`sub`) and
/// ownership rules read.
#[derive(Debug, Clone)]
pub struct Principal {
    /// JWT `sub`, or the mTLS identity chosen by the security scheme.
    pub subject: String,
    /// Where it came from.
    pub via: AuthMethod,
    /// The verified claims (for a certificate: `sub` and the scopes the scheme grants it).
    pub claims: Arc<vigil_identity::Claims>,
}

/// Per-request state handed to every stage. Later stages (rate limit, identity, route match)
/// fill in `identity`, `route` and `upstream`; the proxy and the audit log read them.
#[derive(Debug)]
pub struct RequestCtx {
    /// Unique id, sent upstream and returned to the client as `x-request-id`.
    pub request_id: RequestId,
    /// The connection the request came on.
    pub conn: Arc<ConnInfo>,
    /// Identity established by a stage (defaults to the mTLS identity).
    pub identity: Option<ClientIdentity>,
    /// The verified identity, once the identity stage has run.
    pub principal: Option<Principal>,
    /// Matched route (OpenAPI operation), when a stage has matched one.
    pub route: Option<String>,
    /// The route stage's match, kept for the stages after it.
    pub matched: Option<vigil_policy::Matched>,
    /// Name of the upstream to use; `None` means round-robin over the default pool.
    pub upstream: Option<String>,
    /// When the request head was received.
    pub started: Instant,
    /// Inspection depth in force when the request arrived (the thermal governor's level).
    /// Costly stages consult it when the operator chose to degrade rather than shed.
    pub depth: Level,
    /// A policy violation let through because the policy (or route) is log-only: counted in
    /// metrics so a new description can be judged on live traffic before it enforces.
    pub log_only_violation: Option<&'static str>,
    /// The request announces a body (a length over 0, chunked framing, or an HTTP/2 stream
    /// still open): known before a byte of it is read.
    pub body_announced: bool,
    /// Virtual patches the request matched (the audit line names them).
    pub patches: Vec<String>,
    /// Injection findings, whatever the detection mode (the audit line lists them).
    pub detections: Vec<DetectionHit>,
    /// The `[bots]` rule the User-Agent matched, whatever the action.
    pub bot: Option<String>,
    /// How the response is inspected for sensitive data, when it is.
    pub response_data: Option<vigil_policy::ResponseDataMode>,
    /// The sensitive kinds the response carried (filled while it streams).
    pub response_found: Option<crate::response_data::Found>,
    /// Where the response contradicted the description (filled while it streams).
    pub response_verdict: Option<crate::response_check::Verdict>,
}

/// A request's id, with its header value made once for the upstream and the client: the two
/// cannot disagree, since only [`RequestId::new`] makes either.
#[derive(Debug, Clone)]
pub struct RequestId {
    text: String,
    /// `None` only for an id that is not a valid header value (ids are generated here, so never).
    header: Option<HeaderValue>,
}

impl RequestId {
    pub fn new(text: String) -> Self {
        Self {
            header: HeaderValue::from_str(&text).ok(),
            text,
        }
    }

    /// The id as an `x-request-id` value.
    pub fn header(&self) -> Option<&HeaderValue> {
        self.header.as_ref()
    }

    pub fn into_string(self) -> String {
        self.text
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// One injection finding: its kind's code (for metrics) and `signature@location`
/// (`sqli:s&sos@query.q`, for the audit line); never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectionHit {
    pub kind: &'static str,
    pub entry: String,
}

impl RequestCtx {
    /// The context of a request that has just arrived on `conn`, at inspection depth `depth`.
    pub fn new(request_id: String, conn: Arc<ConnInfo>, depth: Level) -> Self {
        Self::arrived(request_id, conn, depth, Instant::now())
    }

    /// [`new`](Self::new) for a request whose head the caller has already timed.
    pub fn arrived(
        request_id: String,
        conn: Arc<ConnInfo>,
        depth: Level,
        started: Instant,
    ) -> Self {
        Self {
            request_id: RequestId::new(request_id),
            identity: conn.tls.as_ref().and_then(|t| t.identity.clone()),
            conn,
            principal: None,
            route: None,
            matched: None,
            upstream: None,
            started,
            depth,
            log_only_violation: None,
            body_announced: false,
            patches: Vec::new(),
            detections: Vec::new(),
            bot: None,
            response_data: None,
            response_found: None,
            response_verdict: None,
        }
    }
}

/// An answer given instead of forwarding: status, stable reason code, extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable reason code (appears in the body, the audit log and metrics).
    pub reason: &'static str,
    /// Extra response headers (e.g. `Retry-After`, `Allow`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Where the request failed a check (`query.limit`, a JSON pointer into the body) and the
    /// schema keyword, for the response body: names of places, never submitted values.
    pub location: Option<String>,
    pub keyword: Option<String>,
}

impl Rejection {
    /// A rejection without extra headers.
    pub fn new(status: StatusCode, reason: &'static str) -> Self {
        Self {
            status,
            reason,
            headers: Vec::new(),
            location: None,
            keyword: None,
        }
    }

    /// Names the failing location and keyword in the response body.
    pub fn at(mut self, location: Option<String>, keyword: Option<String>) -> Self {
        self.location = location;
        self.keyword = keyword;
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// What a stage decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Go on to the next stage.
    Continue,
    /// Answer now; later stages and the upstream never see the request.
    Respond(Rejection),
}

/// The future a stage returns.
pub type StageFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// One step of the pipeline.
pub trait Stage: Send + Sync + std::fmt::Debug {
    /// Short name for logs.
    fn name(&self) -> &'static str;
    /// Whether this stage needs the whole body buffered (up to `limits.max_body_bytes`)
    /// before it runs; the body is streamed to the upstream otherwise.
    fn needs_body(&self) -> bool {
        false
    }
    /// Inspects (and may rewrite) the request head. `body` is `Some` only when some stage of
    /// the chain asked for it.
    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx,
        head: &'a mut Parts,
        body: Option<&'a Bytes>,
    ) -> StageFuture<'a>;
    /// The outcome, when the stage can decide without waiting; `None` (having done nothing)
    /// sends the chain through [`on_request`](Self::on_request). The chain asks this first, so
    /// a stage that never waits costs a request no boxed future.
    fn decide_now(
        &self,
        _ctx: &mut RequestCtx,
        _head: &mut Parts,
        _body: Option<&Bytes>,
    ) -> Option<Outcome> {
        None
    }
}

/// A ready outcome as a [`StageFuture`], for stages that never wait.
pub fn ready<'a>(outcome: Outcome) -> StageFuture<'a> {
    Box::pin(std::future::ready(outcome))
}

/// A stage that decides without waiting: the blanket [`Stage`] impl wraps its answer in a ready
/// future, so the stage itself is a plain function of the request.
pub trait SyncStage: Send + Sync + std::fmt::Debug {
    /// Short name for logs.
    fn name(&self) -> &'static str;
    /// See [`Stage::needs_body`].
    fn needs_body(&self) -> bool {
        false
    }
    /// Inspects (and may rewrite) the request head.
    fn check(&self, ctx: &mut RequestCtx, head: &mut Parts, body: Option<&Bytes>) -> Outcome;
}

impl<T: SyncStage> Stage for T {
    fn name(&self) -> &'static str {
        SyncStage::name(self)
    }

    fn needs_body(&self) -> bool {
        SyncStage::needs_body(self)
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx,
        head: &'a mut Parts,
        body: Option<&'a Bytes>,
    ) -> StageFuture<'a> {
        ready(self.check(ctx, head, body))
    }

    fn decide_now(
        &self,
        ctx: &mut RequestCtx,
        head: &mut Parts,
        body: Option<&Bytes>,
    ) -> Option<Outcome> {
        Some(self.check(ctx, head, body))
    }
}

/// The 503 a request gets when the box sheds for heat.
pub fn thermal_shed(retry_after: &HeaderValue) -> Outcome {
    Outcome::Respond(
        Rejection::new(StatusCode::SERVICE_UNAVAILABLE, "thermal_shed")
            .with_header(RETRY_AFTER, retry_after.clone()),
    )
}

/// What a policy denial becomes: logged and let through (log-only), or refused.
pub fn deny_outcome(ctx: &mut RequestCtx, deny: &Deny, log_only: bool) -> Outcome {
    if log_only {
        // Location and keyword name the failing part, never the submitted value.
        info!(
            request_id = %ctx.request_id, reason = deny.reason, location = %deny.location,
            keyword = ?deny.keyword, "policy violation (log-only: forwarded)"
        );
        ctx.log_only_violation = Some(deny.reason);
        return Outcome::Continue;
    }
    let status = StatusCode::from_u16(deny.status).unwrap_or(StatusCode::BAD_REQUEST);
    // Routing denials locate by the request path itself: leave that out of the body.
    let routed = !matches!(
        deny.reason,
        "route_not_found" | "method_not_allowed" | "path_invalid"
    );
    let location = routed.then(|| deny.location.clone());
    let mut rej = Rejection::new(status, deny.reason).at(location, deny.keyword.clone());
    if let Some(allow) = deny
        .allow_header()
        .and_then(|a| HeaderValue::from_str(&a).ok())
    {
        rej = rej.with_header(ALLOW, allow);
    }
    Outcome::Respond(rej)
}

/// Which part of the operation a stage checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Parameters and the body's media type: everything the head shows, before any body byte
    /// is read.
    Head,
    /// The body against its schema.
    Body,
}
