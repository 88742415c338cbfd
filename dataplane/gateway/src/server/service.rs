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
use crate::body::{BodyFault, BodyState, ClientBody, InnerBody, LimitedBody, UpstreamBody};
use crate::gateway::Shared;
use crate::pipeline::{self, ConnInfo, Outcome, Rejection, RequestCtx, proxy};
use crate::response;
use crate::state::State;

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

impl Handler {
    pub async fn handle(
        self,
        mut req: Request<Incoming>,
    ) -> Result<Response<ClientBody>, Infallible> {
        let state = self.shared.state.load_full();
        let started = Instant::now();
        self.activity.inflight.fetch_add(1, Ordering::AcqRel);
        let seen = Seen {
            time: crate::clock::rfc3339_now(),
            method: req.method().to_string(),
            path: state.redactor.path(req.uri()),
            headers: state.redactor.headers(req.headers()),
        };
        let mut ctx = RequestCtx {
            request_id: self.shared.ids.next_id(),
            identity: self.conn.tls.as_ref().and_then(|t| t.identity.clone()),
            principal: None,
            matched: None,
            conn: self.conn.clone(),
            route: None,
            upstream: None,
            started,
            timings: Vec::new(),
            depth: self.shared.depth(),
            log_only_violation: None,
        };
        let body_state = Arc::new(BodyState::default());
        let retry_after = HeaderValue::from(state.cfg.listener.retry_after_secs);

        // Load shedding sits outermost: an over-budget request must cost as little as possible.
        let permit = if self.shed {
            None
        } else {
            state.inflight.clone().try_acquire_owned().ok()
        };
        // Every HTTP/1.x head counts, to stay in step with the framing tracker.
        let ambiguous =
            req.version() < http::Version::HTTP_2 && self.activity.next_request_is_ambiguous();
        let result = match &permit {
            // Smuggling check on raw framing (see server::framing) before anything else reads
            // the request.
            _ if ambiguous => Err(Rejection::new(StatusCode::BAD_REQUEST, "ambiguous_framing")),
            None => Err(
                Rejection::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded")
                    .with_header(RETRY_AFTER, retry_after.clone()),
            ),
            Some(_) => {
                let on_upgrade = pipeline::is_upgrade(req.method(), req.version(), req.headers())
                    .then(|| hyper::upgrade::on(&mut req));
                self.run(&state, &mut ctx, req, body_state.clone(), on_upgrade)
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
                if self.shed {
                    resp.headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                (resp, rej.reason, None)
            }
        };
        let hsts = self.conn.tls.as_ref().and(state.hsts.as_ref());
        response::finalize(resp.headers_mut(), &ctx.request_id, hsts);
        let status = resp.status().as_u16();
        let on_done = self.finisher(ctx, seen, status, reason, body_state, permit);
        Ok(resp.map(|b| ClientBody::new(b, deadline, on_done)))
    }

    /// The pipeline, then the proxy. Returns the response and its body deadline.
    async fn run(
        &self,
        state: &State,
        ctx: &mut RequestCtx,
        req: Request<Incoming>,
        body_state: Arc<BodyState>,
        on_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Result<(Response<InnerBody>, tokio::time::Instant), Rejection> {
        let (mut head, body) = req.into_parts();
        let lim = &state.cfg;
        // The size limit and the body deadline wrap the raw body, so they hold whether the
        // body is buffered for a stage or streamed to the upstream.
        let limited = LimitedBody::new(
            body,
            lim.limits.max_body_bytes,
            lim.listener.request_timeout,
            body_state,
        );
        let (outcome, upstream_body) = if state.needs_body {
            let bytes = limited
                .collect()
                .await
                .map(|c| c.to_bytes())
                .map_err(|_| Rejection::new(StatusCode::BAD_REQUEST, "malformed_body"))?;
            let outcome = pipeline::run(&state.chain, ctx, &mut head, Some(&bytes)).await;
            let body: UpstreamBody = Full::new(bytes).map_err(|never| match never {}).boxed();
            (outcome, body)
        } else {
            let outcome = pipeline::run(&state.chain, ctx, &mut head, None).await;
            (outcome, limited.boxed())
        };
        if let Outcome::Respond(rej) = outcome {
            return Err(rej);
        }
        let (resp, total) =
            proxy::forward(&state.pool, ctx, head, upstream_body, on_upgrade).await?;
        // total_timeout counts from the request head, like the operator reads it.
        let deadline = tokio::time::Instant::from_std(ctx.started) + total;
        Ok((resp.map(|b| b.map_err(Into::into).boxed_unsync()), deadline))
    }

    /// Builds the callback run once the response body is finished.
    fn finisher(
        &self,
        ctx: RequestCtx,
        seen: Seen,
        status: u16,
        reason: &'static str,
        body_state: Arc<BodyState>,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> crate::body::OnDone {
        let shared = self.shared.clone();
        let activity = self.activity.clone();
        Box::new(move |bytes_out| {
            let latency_us = ctx.started.elapsed().as_micros() as u64;
            let route = ctx.route.clone().unwrap_or_else(|| "-".to_owned());
            shared
                .metrics
                .record_request(&route, status, reason, latency_us);
            if let Some(v) = ctx.log_only_violation {
                shared.metrics.log_only_violation(v);
            }
            let decision = crate::gateway::Decision {
                client: ctx.conn.client,
                status,
                reason,
                route: ctx.route.as_deref(),
            };
            for observe in shared.observers.0.load().iter() {
                observe(&decision);
            }
            shared.audit.record(AuditEvent {
                time: seen.time,
                request_id: ctx.request_id,
                client: ctx.conn.client.to_string(),
                tls: ctx.conn.tls.as_ref().map(|t| t.version.as_str()),
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
            });
            drop(permit);
            activity.inflight.fetch_sub(1, Ordering::AcqRel);
            activity.touch();
        })
    }
}

/// Body of the tiny responses written by the metrics listener.
pub fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}
