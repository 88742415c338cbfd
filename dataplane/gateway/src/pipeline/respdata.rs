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
        let on = |m: Option<ResponseDataMode>| matches!(m, Some(m) if m != ResponseDataMode::Off);
        cfg.mode != ResponseDataMode::Off
            || policy.is_some_and(|p| {
                on(p.settings().response_data)
                    || p.routes().iter().any(|r| on(r.settings().response_data))
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
        let mode = match &self.policy {
            None => self.mode,
            Some(p) => match ctx.matched.as_ref().and_then(|m| p.resume(m)) {
                Some(m) => m.route().settings(),
                None => p.settings(),
            }
            .response_data
            .unwrap_or(self.mode),
        };
        if mode != ResponseDataMode::Off {
            ctx.response_data = Some(mode);
            head.headers.remove(http::header::ACCEPT_ENCODING);
        }
        Outcome::Continue
    }
}
