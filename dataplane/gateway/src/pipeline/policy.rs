//! Fail closed: without a policy (no upstream configured yet) every request is answered 503
//! `policy_missing` and nothing is forwarded.

use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;

use super::stage::{Outcome, Rejection, RequestCtx, SyncStage};
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

impl SyncStage for PolicyPresent {
    fn name(&self) -> &'static str {
        "policy"
    }

    fn check(&self, _ctx: &mut RequestCtx, _head: &mut Parts, _body: Option<&Bytes>) -> Outcome {
        if self.present {
            Outcome::Continue
        } else {
            Outcome::Respond(Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "policy_missing",
            ))
        }
    }
}
