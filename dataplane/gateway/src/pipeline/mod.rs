//! The request pipeline: a chain of stages, one file each, run in the order written once in
//! [`chain`]. A stage sees the request head (and the buffered body if it asks for it) and a
//! per-request [`RequestCtx`], and either lets the request continue or answers it.
//!
//! Layers that are not about one request's content (load shedding, timeouts, body size while
//! streaming) wrap the chain in `server::service`.

mod forwarding;
/// Header names shared with the response writer.
pub(crate) mod forwarding_header {
    pub use super::forwarding::X_REQUEST_ID;
}
mod depth;
mod hardening;
mod identity;
mod openapi;
mod ownership;
mod policy;
pub(crate) mod proxy;
mod ratelimit;
mod route;

pub(crate) use forwarding::is_upgrade;
use openapi::Part;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, HeaderValue, StatusCode};

use vigil_hw::thermal::Level;

use crate::config::{ConfigError, GatewayConfig};
use crate::services::Services;

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
}

/// Facts about the connection a request arrived on, shared by its requests.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address as seen by the socket.
    pub client: SocketAddr,
    /// TLS facts; `None` on the plain-HTTP listener.
    pub tls: Option<TlsInfo>,
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
    pub request_id: String,
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
    /// Time spent in each stage, in chain order.
    pub timings: Vec<(&'static str, Duration)>,
    /// Inspection depth in force when the request arrived (the thermal governor's level).
    /// Costly stages consult it when the operator chose to degrade rather than shed.
    pub depth: Level,
    /// A policy violation let through because the policy (or route) is log-only: counted in
    /// metrics so a new description can be judged on live traffic before it enforces.
    pub log_only_violation: Option<&'static str>,
    /// The request announces a body (a length over 0, chunked framing, or an HTTP/2 stream
    /// still open): known before a byte of it is read.
    pub body_announced: bool,
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
    /// Short name for timings and logs.
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
}

/// A ready outcome as a [`StageFuture`], for stages that never wait.
pub fn ready<'a>(outcome: Outcome) -> StageFuture<'a> {
    Box::pin(std::future::ready(outcome))
}

/// The chain without an OpenAPI policy.
#[cfg(test)]
pub(crate) fn chain(cfg: &GatewayConfig) -> Vec<Arc<dyn Stage>> {
    let services = Arc::new(Services::new(Arc::default()));
    chain_with(cfg, None, Arc::default(), &services).unwrap_or_default()
}

/// A request context for stage tests.
#[cfg(test)]
pub(crate) fn test_ctx(client: SocketAddr) -> RequestCtx {
    RequestCtx {
        request_id: "id".to_owned(),
        conn: Arc::new(ConnInfo { client, tls: None }),
        identity: None,
        principal: None,
        route: None,
        matched: None,
        upstream: None,
        started: Instant::now(),
        timings: Vec::new(),
        depth: Level::Full,
        log_only_violation: None,
        body_announced: false,
    }
}

/// The chain, in order. This is the one place the order is written.
pub(crate) fn chain_with(
    cfg: &GatewayConfig,
    policy: Option<Arc<vigil_policy::Policy>>,
    shadow: Arc<vigil_policy::ShadowInventory>,
    services: &Arc<Services>,
) -> Result<Vec<Arc<dyn Stage>>, ConfigError> {
    let mut stages: Vec<Arc<dyn Stage>> = vec![
        // Fail closed first: without a policy nothing else matters.
        Arc::new(policy::PolicyPresent::new(cfg)),
        // Cheap structural checks before any stage spends work on the request.
        Arc::new(hardening::Hardening::new(&cfg.limits)),
        // Rate limits before any costly work, and whatever the heat: they always run.
        Arc::new(ratelimit::RateLimit::new(
            &cfg.rate_limit,
            false,
            services.clone(),
        )),
        // Heat: shed (or mark for degrading) before the costly inspection stages; identity
        // stages, when they land, go above this line so they always run.
        Arc::new(depth::Depth::new(
            &cfg.inspection,
            policy.is_some() && cfg.policy.is_some(),
        )),
    ];
    let policy = policy.zip(cfg.policy.as_ref());
    // Route match from the API's own description: every later stage needs the operation.
    if let Some((p, pc)) = &policy {
        let retry_after = HeaderValue::from(cfg.inspection.retry_after_secs);
        stages.push(Arc::new(route::Route::new(
            p.clone(),
            pc.mode,
            shadow,
            retry_after,
        )));
        // Who is asking, as the operation's security requirements say.
        let dir = pc.file.parent().unwrap_or(std::path::Path::new("."));
        let schemes = identity::schemes(p, dir, services)?;
        services.set_current_jwks(
            schemes
                .iter()
                .filter_map(|s| match s {
                    identity::Scheme::Jwt(v) => Some(v.jwks().clone()),
                    _ => None,
                })
                .collect(),
        );
        stages.push(Arc::new(identity::Identity::new(p.clone(), schemes)));
    }
    // Limits keyed by who is asking and for what: once identity and route are known.
    let late = ratelimit::RateLimit::new(&cfg.rate_limit, true, services.clone());
    if !late.is_empty() {
        stages.push(Arc::new(late));
    }
    if let Some((p, pc)) = &policy {
        // Parameters and media type: everything the head shows, after every cheaper refusal.
        stages.push(Arc::new(openapi::OpenApi::new(
            p.clone(),
            pc.mode,
            Part::Head,
        )));
        // Object ownership from path, query and headers, once they are known to be well formed.
        if ownership::OwnershipCheck::wanted(p, Part::Head) {
            stages.push(Arc::new(ownership::OwnershipCheck::new(
                p.clone(),
                Part::Head,
            )));
        }
        // ---- the body is read here, after every check that can refuse without it (a request
        // without a token never gets its megabytes held) ----
        // The body schema: the costliest check.
        stages.push(Arc::new(openapi::OpenApi::new(
            p.clone(),
            pc.mode,
            Part::Body,
        )));
        // Ownership of objects the body names, once it is known to be well formed.
        if ownership::OwnershipCheck::wanted(p, Part::Body) {
            stages.push(Arc::new(ownership::OwnershipCheck::new(
                p.clone(),
                Part::Body,
            )));
        }
    }
    // Later issues insert here: virtual patches.
    // Last: rewrite headers for the upstream only once the request is accepted.
    stages.push(Arc::new(forwarding::Forwarding));
    Ok(stages)
}

/// Runs the chain; returns the first rejection.
pub(crate) async fn run(
    chain: &[Arc<dyn Stage>],
    ctx: &mut RequestCtx,
    head: &mut Parts,
    body: Option<&Bytes>,
) -> Outcome {
    for stage in chain {
        let t = Instant::now();
        let outcome = stage.on_request(ctx, head, body).await;
        ctx.timings.push((stage.name(), t.elapsed()));
        if let Outcome::Respond(r) = outcome {
            return Outcome::Respond(r);
        }
    }
    Outcome::Continue
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stage that needs the body and refuses one containing "evil".
    #[derive(Debug)]
    struct BodyCheck;

    impl Stage for BodyCheck {
        fn name(&self) -> &'static str {
            "body-check"
        }

        fn needs_body(&self) -> bool {
            true
        }

        fn on_request<'a>(
            &'a self,
            ctx: &'a mut RequestCtx,
            _head: &'a mut Parts,
            body: Option<&'a Bytes>,
        ) -> StageFuture<'a> {
            ctx.route = Some("POST /things".to_owned());
            let evil = body.is_some_and(|b| b.windows(4).any(|w| w == b"evil"));
            ready(if evil {
                Outcome::Respond(Rejection::new(StatusCode::BAD_REQUEST, "body_refused"))
            } else {
                Outcome::Continue
            })
        }
    }

    /// Records that it ran.
    #[derive(Debug)]
    struct Later;

    impl Stage for Later {
        fn name(&self) -> &'static str {
            "later"
        }

        fn on_request<'a>(
            &'a self,
            ctx: &'a mut RequestCtx,
            _head: &'a mut Parts,
            _body: Option<&'a Bytes>,
        ) -> StageFuture<'a> {
            ctx.upstream = Some("reached".to_owned());
            ready(Outcome::Continue)
        }
    }

    fn ctx() -> RequestCtx {
        RequestCtx {
            request_id: "id".to_owned(),
            conn: Arc::new(ConnInfo {
                client: SocketAddr::from(([127, 0, 0, 1], 1)),
                tls: None,
            }),
            identity: None,
            principal: None,
            route: None,
            matched: None,
            upstream: None,
            started: Instant::now(),
            timings: Vec::new(),
            depth: vigil_hw::thermal::Level::Full,
            log_only_violation: None,
            body_announced: false,
        }
    }

    #[tokio::test]
    async fn a_rejection_stops_the_chain_and_timings_follow_chain_order() {
        let chain: Vec<Arc<dyn Stage>> = vec![Arc::new(BodyCheck), Arc::new(Later)];
        let Ok(req) = http::Request::post("/things").body(()) else {
            unreachable!()
        };
        let (mut head, ()) = req.into_parts();
        let mut c = ctx();
        let bad = Bytes::from_static(b"{\"x\":\"evil\"}");
        let outcome = run(&chain, &mut c, &mut head, Some(&bad)).await;
        assert_eq!(
            outcome,
            Outcome::Respond(Rejection::new(StatusCode::BAD_REQUEST, "body_refused"))
        );
        assert_eq!(c.upstream, None, "a later stage ran after a rejection");
        let mut c = ctx();
        let good = Bytes::from_static(b"{}");
        assert_eq!(
            run(&chain, &mut c, &mut head, Some(&good)).await,
            Outcome::Continue
        );
        assert_eq!(c.route.as_deref(), Some("POST /things"));
        assert_eq!(c.upstream.as_deref(), Some("reached"));
        let names: Vec<&str> = c.timings.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, vec!["body-check", "later"]);
    }

    #[test]
    fn the_default_chain_streams_bodies() {
        let chain = chain(&GatewayConfig::default());
        let names: Vec<&str> = chain.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            vec!["policy", "hardening", "rate_limit", "depth", "forwarding"]
        );
        assert!(!chain.iter().any(|s| s.needs_body()));
    }
}
