//! Upstream responses held against the OpenAPI description (`x-vigil: {responses: off|log|block,
//! max_response_bytes: N}`; docs/policy.md): an undocumented status, a JSON body off the schema
//! its status documents, a body over the route's size limit. `log` (the default) counts and
//! audits the first contradiction and lets the response through as it streams: the body is
//! copied as it passes (up to [`MAX_CHECKED`] bytes) and checked when it ends. `block` decides
//! before the client sees anything: 502 with the contradiction's reason, the body read whole
//! first when there is a schema to hold it against. Bodies over [`MAX_CHECKED`] are not
//! schema-checked; compressed bodies neither.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use vigil_policy::{Matched, Policy, ResponseCheck, ResponseViolation};

use crate::body::{BoxError, InnerBody};
use crate::budget::{Budget, Share, reserved};
use crate::pipeline::Rejection;

/// Response bytes held to check a body against its schema.
pub const MAX_CHECKED: usize = 1024 * 1024;
/// A body over the route's `max_response_bytes`.
pub const TOO_LARGE: &str = "response_too_large";

/// The first contradiction found in a response: (reason, location), shared with the audit line.
#[derive(Debug, Default, Clone)]
pub struct Verdict(Arc<Mutex<Option<(&'static str, String)>>>);

impl Verdict {
    fn set(&self, reason: &'static str, location: String) {
        let mut v = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        v.get_or_insert((reason, location));
    }

    /// The contradiction, if one was found.
    pub fn get(&self) -> Option<(&'static str, String)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What the body check needs once the body has ended.
struct Pending {
    policy: Arc<Policy>,
    matched: Matched,
    status: u16,
    content_type: Option<String>,
}

impl Pending {
    fn check(&self, body: &mut Vec<u8>) -> Result<(), ResponseViolation> {
        match self.policy.resume(&self.matched) {
            Some(m) => m.check_response_body(self.status, self.content_type.as_deref(), body),
            None => Ok(()),
        }
    }
}

/// A response body copied (up to [`MAX_CHECKED`]) as it streams and checked when it ends;
/// also counts it against the route's size limit.
pub struct TeeBody {
    inner: InnerBody,
    /// `None` once over [`MAX_CHECKED`] or the memory budget, or when there is nothing to
    /// check.
    copy: Option<Vec<u8>>,
    /// What `copy` (or a prefix read before the body streamed) holds of the budget.
    memory: Option<Share>,
    pending: Option<Pending>,
    max: Option<u64>,
    seen: u64,
    block: bool,
    verdict: Verdict,
}

impl std::fmt::Debug for TeeBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeeBody")
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

/// The stream was cut because it outgrew the route's limit (`block`).
#[derive(Debug, thiserror::Error)]
#[error("response over the route's max_response_bytes")]
struct Overgrown;

impl Body for TeeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    if this.max.is_some_and(|m| this.seen > m) {
                        this.verdict.set(TOO_LARGE, String::new());
                        this.copy = None;
                        if this.block {
                            return Poll::Ready(Some(Err(Box::new(Overgrown))));
                        }
                    }
                    if let Some(c) = this.copy.as_mut() {
                        let len = c.len() + data.len();
                        // Past either bound the body streams on unchecked, like one over
                        // MAX_CHECKED always has (docs/policy.md).
                        if len <= MAX_CHECKED && this.memory.as_mut().is_some_and(|m| m.hold(len)) {
                            c.extend_from_slice(data);
                        } else {
                            this.copy = None;
                            this.memory = None;
                        }
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                if let (Some(mut copy), Some(p)) = (this.copy.take(), this.pending.take())
                    && let Err(v) = p.check(&mut copy)
                {
                    this.verdict.set(v.reason, v.location);
                }
                this.memory = None;
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        // Not while the check waits for the end: the stack must poll once more.
        self.pending.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A body whose first bytes were already read: those, then the rest.
struct Prefixed {
    prefix: Option<Bytes>,
    inner: InnerBody,
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(p) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }
}

fn reject(reason: &'static str) -> Refused {
    Refused::Contract(Rejection::new(StatusCode::BAD_GATEWAY, reason))
}

/// Why a response is not let through.
#[derive(Debug)]
pub enum Refused {
    /// It contradicts the description on a `block` route (502), or its upstream failed.
    Contract(Rejection),
    /// Its body, to be read whole, does not fit in the body-memory budget.
    Memory,
}

/// Holds `resp` against the route `matched` of `policy`. `verdict` receives the first
/// contradiction; `Err` is the refusal of a `block` route, [`Refused::Memory`] when the body it
/// must read whole does not fit in `budget` (refused, never let through unchecked).
pub async fn check(
    resp: http::Response<InnerBody>,
    policy: &Arc<Policy>,
    matched: &Matched,
    deadline: tokio::time::Instant,
    verdict: &Verdict,
    budget: Budget<'_>,
) -> Result<http::Response<InnerBody>, Refused> {
    let Some(m) = policy.resume(matched) else {
        return Ok(resp);
    };
    let settings = m.route().settings();
    let block = match settings.responses {
        ResponseCheck::Off => return Ok(resp),
        ResponseCheck::Log => false,
        ResponseCheck::Block => true,
    };
    let status = resp.status().as_u16();
    if let Err(v) = m.check_response_status(status) {
        verdict.set(v.reason, v.location);
        if block {
            return Err(reject(v.reason));
        }
    }
    let headers = resp.headers();
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let length: Option<u64> = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let encoded = headers
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if let (Some(max), Some(len)) = (settings.max_response_bytes, length)
        && len > max
    {
        verdict.set(TOO_LARGE, String::new());
        if block {
            return Err(reject(TOO_LARGE));
        }
    }
    let wants = !encoded
        && length.is_none_or(|l| l <= MAX_CHECKED as u64)
        && m.response_wants_body(status, content_type.as_deref());
    let pending = Pending {
        policy: policy.clone(),
        matched: matched.clone(),
        status,
        content_type,
    };
    if block && wants {
        // Read it whole (within the deadline and the check's bound), then decide.
        let (parts, mut body) = resp.into_parts();
        let mut buf = BytesMut::new();
        let mut memory = budget.share();
        loop {
            let frame = tokio::time::timeout_at(deadline, body.frame())
                .await
                .map_err(|_| {
                    Refused::Contract(Rejection::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        "upstream_timeout",
                    ))
                })?;
            match frame {
                None => break,
                Some(Err(_)) => return Err(reject("upstream_error")),
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        // The body, and the copy the check parses, within the budget.
                        if buf.len() + d.len() <= MAX_CHECKED
                            && !memory.hold(2 * (buf.len() + d.len()))
                        {
                            return Err(Refused::Memory);
                        }
                        buf.extend_from_slice(&d);
                        if settings
                            .max_response_bytes
                            .is_some_and(|m| buf.len() as u64 > m)
                        {
                            verdict.set(TOO_LARGE, String::new());
                            return Err(reject(TOO_LARGE));
                        }
                        if buf.len() > MAX_CHECKED {
                            // Too long to hold: the rest streams unchecked (its size still
                            // counted against the route's limit).
                            let rest = Prefixed {
                                prefix: Some(buf.freeze()),
                                inner: body,
                            };
                            let seen = 0;
                            let tee = TeeBody {
                                inner: rest.boxed_unsync(),
                                copy: None,
                                // Held until the prefix has gone to the client.
                                memory: Some(memory),
                                pending: None,
                                max: settings.max_response_bytes,
                                seen,
                                block,
                                verdict: verdict.clone(),
                            };
                            return Ok(http::Response::from_parts(parts, tee.boxed_unsync()));
                        }
                    }
                }
            }
        }
        let mut copy = buf.to_vec();
        if let Err(v) = pending.check(&mut copy) {
            verdict.set(v.reason, v.location);
            return Err(reject(v.reason));
        }
        // The copy is gone: only the body is held until it has been sent.
        drop(copy);
        memory.reservation.shrink(buf.len() as u64);
        let body = http_body_util::Full::new(buf.freeze())
            .map_err(|never| match never {})
            .boxed_unsync();
        return Ok(http::Response::from_parts(parts, reserved(body, memory)));
    }
    if !wants && settings.max_response_bytes.is_none() {
        return Ok(resp);
    }
    let (pending, copy) = if wants {
        (Some(pending), Some(Vec::new()))
    } else {
        (None, None)
    };
    let verdict = verdict.clone();
    let max = settings.max_response_bytes;
    Ok(resp.map(|inner| {
        TeeBody {
            inner,
            copy,
            memory: wants.then(|| budget.share()),
            pending,
            max,
            seen: 0,
            block,
            verdict,
        }
        .boxed_unsync()
    }))
}
