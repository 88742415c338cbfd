//! Marks requests whose responses are inspected for sensitive data (`[response_data]`, a
//! route's `x-vigil: {response_data: ...}`; see `crate::response_data`), and asks the upstream
//! for an unencoded response: a compressed body cannot be read, and a client must not be able
//! to opt out of the inspection by sending `Accept-Encoding: gzip`.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use vigil_policy::{Policy, ResponseDataMode};

use super::stage::{Outcome, RequestCtx, SyncStage};
use crate::config::ResponseDataConfig;

#[derive(Debug)]
pub(crate) struct ResponseData {
    mode: ResponseDataMode,
    policy: Option<Arc<Policy>>,
}

impl ResponseData {
    /// Whether any response can be inspected: `[response_data] mode` or some route says so.
    pub fn wanted(cfg: &ResponseDataConfig, policy: Option<&Policy>) -> bool {
        cfg.mode != ResponseDataMode::Off
            || policy.is_some_and(|p| {
                p.any_settings(|s| s.response_data.is_some_and(|m| m != ResponseDataMode::Off))
            })
    }

    pub fn new(cfg: &ResponseDataConfig, policy: Option<Arc<Policy>>) -> Self {
        Self {
            mode: cfg.mode,
            policy,
        }
    }
}

impl SyncStage for ResponseData {
    fn name(&self) -> &'static str {
        "response_data"
    }

    fn check(&self, ctx: &mut RequestCtx, head: &mut Parts, _body: Option<&Bytes>) -> Outcome {
        let mode = self
            .policy
            .as_ref()
            .and_then(|p| p.settings_for(ctx.matched.as_ref()).response_data)
            .unwrap_or(self.mode);
        if mode != ResponseDataMode::Off {
            ctx.response_data = Some(mode);
            head.headers.remove(http::header::ACCEPT_ENCODING);
        }
        Outcome::Continue
    }
}
