//! Route match against the API's OpenAPI description: 404 for shadow APIs, 405 with `Allow`,
//! and a hot box's per-route choice to shed. It always runs, whatever the inspection depth:
//! identity, limits by route and ownership all need to know the operation. The match is kept
//! in the request's context for the later stages.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use vigil_hw::thermal::Level;
use vigil_policy::{Policy, ShadowInventory};

use super::stage::{Outcome, Rejection, RequestCtx, SyncStage};
use crate::config::PolicyMode;

#[derive(Debug)]
pub struct Route {
    policy: Arc<Policy>,
    mode: PolicyMode,
    shadow: Arc<ShadowInventory>,
    retry_after: HeaderValue,
}

impl Route {
    pub fn new(
        policy: Arc<Policy>,
        mode: PolicyMode,
        shadow: Arc<ShadowInventory>,
        retry_after: HeaderValue,
    ) -> Self {
        Self {
            policy,
            mode,
            shadow,
            retry_after,
        }
    }

    fn decide(&self, ctx: &mut RequestCtx, head: &Parts) -> Outcome {
        let global_log_only = self.mode == PolicyMode::LogOnly;
        let doc_log_only = self.policy.settings().mode == vigil_policy::Mode::LogOnly;
        let m = match self
            .policy
            .match_route(head.method.as_str(), head.uri.path())
        {
            Ok(m) => m,
            Err(d) => {
                // Shadow APIs: paths or methods the description does not know, whether
                // refused or (log-only) forwarded, go into the inventory operators review.
                if matches!(d.reason, "route_not_found" | "method_not_allowed") {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |t| t.as_secs());
                    self.shadow.record(
                        head.method.as_str(),
                        head.uri.path(),
                        d.status,
                        ctx.conn.client.ip(),
                        now,
                    );
                }
                return super::stage::deny_outcome(ctx, &d, global_log_only || doc_log_only);
            }
        };
        ctx.route = Some(m.route_id().to_owned());
        ctx.matched = Some(m.to_matched());
        // After a 101 the connection is an opaque tunnel no stage sees into: only operations
        // described as WebSocket endpoints get one, whatever the mode (log-only included).
        if crate::headers::is_upgrade(&head.method, head.version, &head.headers)
            && !m.route().settings().websocket
        {
            return Outcome::Respond(Rejection::new(
                StatusCode::BAD_REQUEST,
                "upgrade_not_allowed",
            ));
        }
        // A hot box: the route's own policy says whether to shed or to inspect less.
        if ctx.depth > Level::Full && m.on_degrade() == vigil_policy::OnDegrade::Shed {
            return super::stage::thermal_shed(&self.retry_after);
        }
        Outcome::Continue
    }
}

impl SyncStage for Route {
    fn name(&self) -> &'static str {
        "route"
    }

    fn check(&self, ctx: &mut RequestCtx, head: &mut Parts, _body: Option<&Bytes>) -> Outcome {
        self.decide(ctx, head)
    }
}
