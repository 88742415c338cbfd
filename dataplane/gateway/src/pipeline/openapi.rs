//! The matched operation's parameters, content type (415) and JSON body schema, through
//! `vigil-policy`, as two stages: the head part runs before any body byte is read, the body part
//! after the body is buffered. At reduced depth (a hot box whose operator chose `degrade`) the
//! body schema is skipped; at minimal depth parameter checks are skipped too.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue};
use vigil_hw::thermal::Level;
use vigil_policy::{Deny, Headers, Policy};

use super::stage::{Outcome, Part, RequestCtx, SyncStage};
use crate::config::PolicyMode;

/// Request headers as the policy reads them; a repeated header is counted so a parameter that
/// is not an array can be refused when it appears twice.
pub(crate) struct HeaderView<'a>(pub &'a HeaderMap);

impl Headers for HeaderView<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(HeaderValue::as_bytes)
    }

    fn header_count(&self, name: &str) -> usize {
        self.0.get_all(name).iter().count()
    }

    fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.0
            .get_all(name)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect()
    }
}

#[derive(Debug)]
pub struct OpenApi {
    policy: Arc<Policy>,
    mode: PolicyMode,
    part: Part,
}

impl OpenApi {
    pub fn new(policy: Arc<Policy>, mode: PolicyMode, part: Part) -> Self {
        Self { policy, mode, part }
    }

    /// Checks the request against its operation, at the depth in force. Nothing to check when
    /// no route matched (a log-only request the route stage let through).
    fn verify(&self, ctx: &RequestCtx, head: &Parts, body: Option<&Bytes>) -> Result<(), Deny> {
        let Some(m) = ctx.matched.as_ref().and_then(|m| self.policy.resume(m)) else {
            return Ok(());
        };
        if ctx.depth >= Level::Minimal {
            return Ok(());
        }
        let ct = head
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        match self.part {
            Part::Head => {
                m.check_params(head.uri.query(), &HeaderView(&head.headers))?;
                m.check_content_type(ct, ctx.body_announced)
            }
            Part::Body if ctx.depth >= Level::Reduced => Ok(()),
            // The body is read where it is; the validator copies it only for a body its
            // fused pass leaves to the tape parser, which writes into its input.
            Part::Body => m.check_body(ct, body.map_or(&[][..], |b| &b[..])),
        }
    }

    fn log_only(&self, ctx: &RequestCtx) -> bool {
        self.mode == PolicyMode::LogOnly
            || ctx
                .matched
                .as_ref()
                .and_then(|m| self.policy.resume(m))
                .is_some_and(|m| m.log_only())
    }
}

impl SyncStage for OpenApi {
    fn name(&self) -> &'static str {
        match self.part {
            Part::Head => "params",
            Part::Body => "body",
        }
    }

    fn needs_body(&self) -> bool {
        self.part == Part::Body
    }

    fn check(&self, ctx: &mut RequestCtx, head: &mut Parts, body: Option<&Bytes>) -> Outcome {
        match self.verify(ctx, head, body) {
            Ok(()) => Outcome::Continue,
            Err(deny) => {
                let log_only = self.log_only(ctx);
                super::stage::deny_outcome(ctx, &deny, log_only)
            }
        }
    }
}
