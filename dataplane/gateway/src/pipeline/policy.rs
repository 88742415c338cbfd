//! Fail closed: without a policy (no upstream configured yet) every request is answered 503
//! `policy_missing` and nothing is forwarded.

use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;

use super::{Outcome, Rejection, RequestCtx, Stage, StageFuture, ready};
use crate::config::GatewayConfig;

/// Rejects everything when the config carries no policy.
#[derive(Debug)]
pub struct PolicyPresent {
    present: bool,
}

impl PolicyPresent {
    pub fn new(cfg: &GatewayConfig) -> Self {
        Self {
            present: !cfg.upstream.is_empty(),
        }
    }
}

impl Stage for PolicyPresent {
    fn name(&self) -> &'static str {
        "policy"
    }

    fn on_request<'a>(
        &'a self,
        _ctx: &'a mut RequestCtx,
        _head: &'a mut Parts,
        _body: Option<&'a Bytes>,
    ) -> StageFuture<'a> {
        if self.present {
            ready(Outcome::Continue)
        } else {
            ready(Outcome::Respond(Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "policy_missing",
            )))
        }
    }
}
