//! One request, from head to finished response: the layers around the pipeline, the pipeline,
//! the proxy, and the single place where the audit line and metrics are produced.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use http::header::{CONNECTION, RETRY_AFTER};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::io::Activity;
use crate::audit::AuditEvent;
use crate::body::{
    self, BodyFault, BodyState, BufferError, ClientBody, InnerBody, LimitedBody, SendWatch,
    UpstreamBody,
};
use crate::budget::{Budget, ClientSlot};
use crate::pipeline::{self, ConnInfo, Outcome, Rejection, RequestCtx};
use crate::response;
use crate::response_check::Refused;
use crate::shared::Shared;
use crate::state::State;
use crate::upstream::proxy;

/// Per-connection request handler.
#[derive(Debug, Clone)]
pub struct Handler {
    pub shared: Arc<Shared>,
    pub conn: Arc<ConnInfo>,
    pub activity: Arc<Activity>,
    /// The connection was accepted over `listener.max_connections`: answer 503 and close.
    pub shed: bool,
}

/// What the audit line needs from the request head, taken before the head is consumed.
struct Seen {
    time: String,
    method: String,
    path: String,
    headers: std::collections::BTreeMap<String, String>,
}

/// Why a request was refused before the pipeline: what it holds until its response is done.
struct Admitted {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _client: ClientSlot,
}

/// What an HTTP/2 request refused before its body was read may still send of it, and for how
/// long, before the answer goes out.
const DRAIN_BYTES: u64 = 64 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_millis(200);

/// A request body nobody read, kept until the response is finished.
type Held = Box<dyn Send>;

/// What a request holds until its response is finished: its slots in the budgets, and its
/// unread body.
struct Kept {
    _admitted: Option<Admitted>,
    _held: Option<Held>,
}

/// Refusals after which the connection is closed: the framing of what follows is not to be
/// trusted, or the client is sending a body nobody will read.
fn closes_connection(reason: &str) -> bool {
    matches!(
        reason,
        "ambiguous_framing"
            | "bad_transfer_encoding"
            | "bad_content_length"
            | "duplicate_host"
            | "missing_host"
            | "bad_host"
            | "bad_request_target"
            | "body_too_large"
            | "malformed_body"
            | "request_timeout"
            | "body_memory_full"
    )
}

/// Whether the request head announces a body.
fn has_body(headers: &http::HeaderMap, body: &Incoming) -> bool {
    use http_body::Body as _;
    !body.is_end_stream()
        || headers.contains_key(http::header::TRANSFER_ENCODING)
        || content_length(headers).is_some_and(|n| n > 0)
}

/// The request's Content-Length, if it has exactly one valid value (the hardening stage
/// refuses every other case before a body is read).
fn content_length(h: &http::HeaderMap) -> Option<u64> {
    let mut all = h.get_all(http::header::CONTENT_LENGTH).iter();
    let v = all.next()?;
    if all.next().is_some() {
        return None;
    }
    v.to_str().ok()?.parse().ok()
}

impl Handler {
    pub async fn handle(self, req: Request<Incoming>) -> Result<Response<ClientBody>, Infallible> {
        let state = self.shared.state.load_full();
        let started = Instant::now();
        self.activity.inflight.fetch_add(1, Ordering::AcqRel);
        let seen = Seen {
            time: crate::clock::rfc3339_now(),
            method: req.method().as_str().to_owned(),
            path: state.redactor.path(req.uri()),
            headers: state.redactor.headers(req.headers()),
        };
        let mut ctx = RequestCtx::arrived(
            self.shared.ids.next_id(),
            self.conn.clone(),
            self.shared.depth(),
            started,
        );
        let body_state = Arc::new(BodyState::default());
        let http1 = req.version() < http::Version::HTTP_2;
        // Every HTTP/1.x head counts, to stay in step with the framing tracker.
        let framing = if http1 {
            self.activity.next_request_framing()
        } else {
            self.activity.requests.fetch_add(1, Ordering::AcqRel);
            None
        };
        // Smuggling check on raw framing (see server::framing) before anything else reads the
        // request; then load shedding, outermost: an over-budget request must cost little.
        let admitted = match framing {
            Some(reason) => Err(Rejection::new(StatusCode::BAD_REQUEST, reason)),
            None => self.admit(&state),
        };
        let announced;
        // A body refused before it was read is kept until the response is sent: on HTTP/2,
        // dropping it resets the stream, and a reset that overtakes the response loses it
        // (RFC 9113 §8.1: reset with NO_ERROR only after a complete response).
        let mut held: Option<Held> = None;
        let result = match &admitted {
            Err(rej) => {
                announced = has_body(req.headers(), req.body());
                held = Some(Box::new(req));
                Err(rej.clone())
            }
            Ok(_) => {
                let (head, body) = req.into_parts();
                announced = has_body(&head.headers, &body);
                ctx.body_announced = announced;
                self.run(&state, &mut ctx, head, body, body_state.clone(), &mut held)
                    .await
            }
        };
        let (mut resp, reason, deadline) = match result {
            Ok((resp, deadline)) => (resp, "ok", Some(deadline)),
            Err(rej) => {
                let rej = match body_state.fault() {
                    BodyFault::None => rej,
                    BodyFault::TooLarge => {
                        Rejection::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
                    }
                    BodyFault::Malformed => {
                        Rejection::new(StatusCode::BAD_REQUEST, "malformed_body")
                    }
                    BodyFault::TimedOut => {
                        Rejection::new(StatusCode::REQUEST_TIMEOUT, "request_timeout")
                    }
                };
                let mut resp = response::rejection(&rej, &ctx.request_id);
                // HTTP/2 streams end on their own; an HTTP/1.1 connection whose framing is
                // in doubt, or that still carries a body nobody read, is closed.
                let close = self.shed
                    || (http1 && ((announced && held.is_some()) || closes_connection(rej.reason)));
                if close && http1 {
                    resp.headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                (resp, rej.reason, None)
            }
        };
        let hsts = self.conn.tls.as_ref().and(state.hsts.as_ref());
        response::finalize(resp.headers_mut(), ctx.request_id.header(), hsts);
        let status = resp.status().as_u16();
        let kept = Kept {
            _admitted: admitted.ok(),
            _held: held,
        };
        let on_done = self.finisher(ctx, seen, status, reason, body_state, kept);
        let watch = SendWatch::new(self.activity.send.clone());
        Ok(resp.map(|b| ClientBody::new(b, deadline, on_done, Some(watch))))
    }

    /// The budget of bodies held in memory (request bodies for the stages, responses read whole).
    fn budget<'a>(&'a self, state: &State) -> Budget<'a> {
        Budget {
            memory: &self.shared.body_memory,
            max: state.cfg.limits.max_body_memory,
        }
    }

    /// The 503 of a body the memory budget cannot hold, counted as shed.
    fn body_memory_full(&self, state: &State) -> Rejection {
        self.shared.metrics.shed_request("body_memory");
        Rejection::new(StatusCode::SERVICE_UNAVAILABLE, "body_memory_full").with_header(
            RETRY_AFTER,
            HeaderValue::from(state.cfg.listener.retry_after_secs),
        )
    }

    /// The in-flight budget, then this connection's and this client's shares of it: a client
    /// that stalls its requests (an HTTP/2 window of zero) only ever holds its own share.
    fn admit(&self, state: &State) -> Result<Admitted, Rejection> {
        let l = &state.cfg.listener;
        // Built only for a refusal: an admitted request writes no header.
        let shed = |reason| {
            Rejection::new(StatusCode::SERVICE_UNAVAILABLE, reason)
                .with_header(RETRY_AFTER, HeaderValue::from(l.retry_after_secs))
        };
        if self.shed {
            return Err(shed("overloaded"));
        }
        if self.activity.inflight.load(Ordering::Acquire) > l.max_requests_in_flight_per_connection
        {
            self.shared.metrics.shed_request("connection");
            return Err(shed("overloaded_connection"));
        }
        let Some(client) = self
            .shared
            .clients
            .try_enter(self.conn.client.ip(), l.max_requests_in_flight_per_client)
        else {
            self.shared.metrics.shed_request("client");
            return Err(shed("overloaded_client"));
        };
        let Ok(permit) = state.inflight.clone().try_acquire_owned() else {
            self.shared.metrics.shed_request("global");
            return Err(shed("overloaded"));
        };
        Ok(Admitted {
            _permit: permit,
            _client: client,
        })
    }

    /// The pipeline, then the proxy. Returns the response and its body deadline. Every stage
    /// that does not read the body runs before a byte of it is read: a request without a token
    /// is refused at once, not after its megabytes have been received and held.
    async fn run(
        &self,
        state: &State,
        ctx: &mut RequestCtx,
        mut head: http::request::Parts,
        body: Incoming,
        body_state: Arc<BodyState>,
        held: &mut Option<Held>,
    ) -> Result<(Response<InnerBody>, tokio::time::Instant), Rejection> {
        let lim = &state.cfg;
        // The size limit and the body deadline wrap the raw body, so they hold whether the
        // body is buffered for a stage or streamed to the upstream.
        let limited = LimitedBody::new(
            body,
            lim.limits.max_body_bytes,
            lim.listener.request_timeout,
            body_state,
        );
        let (head_stages, body_stages) = state.chain.split_at(state.body_at);
        if let Outcome::Respond(rej) = pipeline::chain::run(head_stages, ctx, &mut head, None).await
        {
            let mut limited = limited;
            if head.version == http::Version::HTTP_2 {
                // A client that has already sent a small body is let finish, so the stream
                // ends cleanly instead of with a reset some clients report as an error; the
                // wait and the bytes are bounded by about one flow-control window.
                body::drain(&mut limited, DRAIN_BYTES, DRAIN_TIME).await;
            }
            *held = Some(Box::new(limited));
            return Err(rej);
        }
        // Held until the upstream has the request, so buffered bodies stay within the budget.
        let mut share = self.budget(state).share();
        let upstream_body: UpstreamBody = if body_stages.is_empty() {
            limited.boxed()
        } else {
            let expected = content_length(&head.headers);
            let bytes = body::buffer(limited, expected, &mut share)
                .await
                .map_err(|e| match e {
                    BufferError::Memory => self.body_memory_full(state),
                    BufferError::Stopped => {
                        Rejection::new(StatusCode::BAD_REQUEST, "malformed_body")
                    }
                })?;
            if let Outcome::Respond(rej) =
                pipeline::chain::run(body_stages, ctx, &mut head, Some(&bytes)).await
            {
                return Err(rej);
            }
            Full::new(bytes).map_err(|never| match never {}).boxed()
        };
        // Only an upgrade the chain let through (a WebSocket handshake to an operation that
        // allows it) is spliced; hyper keeps the handle in the request's extensions.
        let on_upgrade = if crate::headers::is_upgrade(&head.method, head.version, &head.headers) {
            head.extensions.remove::<hyper::upgrade::OnUpgrade>()
        } else {
            None
        };
        let forwarded = proxy::forward(&state.pool, ctx, head, upstream_body, on_upgrade).await;
        drop(share);
        let (resp, total) = forwarded?;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            self.activity.mark_spliced();
        }
        // total_timeout counts from the request head, like the operator reads it.
        let deadline = tokio::time::Instant::from_std(ctx.started) + total;
        let mut resp = resp.map(|b| b.map_err(Into::into).boxed_unsync());
        // The description's responses first, on the upstream's own bytes.
        if let (Some(policy), Some(matched)) = (state.policy.as_ref(), ctx.matched.as_ref()) {
            let verdict = crate::response_check::Verdict::default();
            let checked = crate::response_check::check(
                resp,
                policy,
                matched,
                deadline,
                &verdict,
                self.budget(state),
            )
            .await;
            ctx.response_verdict = Some(verdict);
            resp = checked.map_err(|r| match r {
                Refused::Contract(rej) => rej,
                Refused::Memory => self.body_memory_full(state),
            })?;
        }
        let Some(mode) = ctx.response_data else {
            return Ok((resp, deadline));
        };
        let found = crate::response_data::Found::default();
        ctx.response_found = Some(found.clone());
        use crate::response_data::Refusal;
        let resp = crate::response_data::inspect(
            resp,
            mode,
            state.response_scanner.clone(),
            lim.response_data.max_block_bytes,
            deadline,
            found,
            self.budget(state),
        )
        .await
        .map_err(|r| match r {
            Refusal::Blocked => Rejection::new(StatusCode::BAD_GATEWAY, "response_blocked"),
            Refusal::Uninspectable => {
                Rejection::new(StatusCode::BAD_GATEWAY, "response_uninspectable")
            }
            Refusal::Upstream => Rejection::new(StatusCode::BAD_GATEWAY, "upstream_error"),
            Refusal::Timeout => Rejection::new(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            Refusal::Memory => self.body_memory_full(state),
        })?;
        Ok((resp, deadline))
    }

    /// Builds the callback run once the response body is finished.
    fn finisher(
        &self,
        ctx: RequestCtx,
        seen: Seen,
        status: u16,
        reason: &'static str,
        body_state: Arc<BodyState>,
        kept: Kept,
    ) -> crate::body::OnDone {
        let shared = self.shared.clone();
        let activity = self.activity.clone();
        Box::new(move |bytes_out| {
            let latency_us = ctx.started.elapsed().as_micros() as u64;
            let route = ctx.route.as_deref().unwrap_or("-");
            shared
                .metrics
                .record_request(route, status, reason, latency_us);
            if let Some(v) = ctx.log_only_violation {
                shared.metrics.log_only_violation(v);
            }
            for hit in &ctx.detections {
                shared.metrics.injection_detected(hit.kind);
            }
            let response_data: Vec<&'static str> = ctx
                .response_found
                .as_ref()
                .map(|f| f.kinds().into_iter().map(|k| k.code()).collect())
                .unwrap_or_default();
            for kind in &response_data {
                shared.metrics.response_data(route, kind);
            }
            let violation = ctx.response_verdict.as_ref().and_then(|v| v.get());
            if let Some((reason, _)) = &violation {
                shared.metrics.response_violation(route, reason);
            }
            if let Some(ja4) = ctx.conn.tls.as_ref().and_then(|t| t.ja4.as_deref()) {
                shared.metrics.clients.record(ja4, reason != "ok");
            }
            let decision = crate::shared::Decision {
                client: ctx.conn.client,
                status,
                reason,
                route: ctx.route.as_deref(),
                ja4: ctx.conn.tls.as_ref().and_then(|t| t.ja4.as_deref()),
            };
            for observe in shared.observers.0.load().iter() {
                observe(&decision);
            }
            shared.audit.record(AuditEvent {
                time: seen.time,
                request_id: ctx.request_id.into_string(),
                client: ctx.conn.client_text.clone(),
                tls: ctx.conn.tls.as_ref().map(|t| t.version.as_str()),
                ja4: ctx.conn.tls.as_ref().and_then(|t| t.ja4.clone()),
                identity: ctx.identity,
                subject: ctx.principal.as_ref().map(|p| p.subject.clone()),
                auth: ctx.principal.as_ref().map(|p| p.via),
                method: seen.method,
                path: seen.path,
                route: ctx.route,
                upstream: ctx.upstream,
                status,
                reason,
                latency_us,
                bytes_in: body_state.bytes(),
                bytes_out,
                headers: seen.headers,
                patches: ctx.patches,
                detections: ctx.detections.into_iter().map(|h| h.entry).collect(),
                bot: ctx.bot,
                response_data,
                response_violation: violation.map(|(r, at)| {
                    if at.is_empty() {
                        r.to_owned()
                    } else {
                        format!("{r}@{at}")
                    }
                }),
            });
            drop(kept);
            activity.request_done();
        })
    }
}

/// Body of the tiny responses written by the metrics listener.
pub fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}
