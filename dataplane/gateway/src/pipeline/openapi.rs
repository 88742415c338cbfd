//! The API's OpenAPI description, enforced: route match (404 for shadow APIs, 405 with
//! `Allow`), parameters, content type (415) and the JSON body schema, through `vigil-policy`.
//! At reduced depth (a hot box whose operator chose `degrade`) the body schema is skipped; at
//! minimal depth parameter checks are skipped too; the route match always runs.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header::ALLOW};
use tracing::info;
use vigil_hw::thermal::Level;
use vigil_policy::{Deny, Headers, Policy, ShadowInventory};

use super::{Outcome, Rejection, RequestCtx, Stage, StageFuture, ready};
use crate::config::PolicyMode;

#[derive(Debug)]
pub struct OpenApi {
    policy: Arc<Policy>,
    mode: PolicyMode,
    shadow: Arc<ShadowInventory>,
    retry_after: HeaderValue,
}

/// Why `check` stopped a request.
enum Stop {
    /// A policy violation, and whether it is only logged.
    Deny(Deny, bool),
    /// A hot box and a route whose policy says shed.
    Heat,
}

/// Request headers as the policy reads them (the first value of a repeated header).
struct HeaderView<'a>(&'a HeaderMap);

impl Headers for HeaderView<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(HeaderValue::as_bytes)
    }
}

impl OpenApi {
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

    /// Checks the request against the description, at the depth in force.
    fn check(&self, ctx: &mut RequestCtx, head: &Parts, body: Option<&Bytes>) -> Result<(), Stop> {
        let global_log_only = self.mode == PolicyMode::LogOnly;
        let doc_log_only = self.policy.settings().mode == vigil_policy::Mode::LogOnly;
        let m = self
            .policy
            .match_route(head.method.as_str(), head.uri.path())
            .map_err(|d| Stop::Deny(d, global_log_only || doc_log_only))?;
        ctx.route = Some(m.route_id().to_owned());
        let log_only = global_log_only || m.log_only();
        // A hot box: the route's own policy says whether to shed or to inspect less.
        if ctx.depth > Level::Full && m.on_degrade() == vigil_policy::OnDegrade::Shed {
            return Err(Stop::Heat);
        }
        if ctx.depth >= Level::Minimal {
            return Ok(());
        }
        let headers = HeaderView(&head.headers);
        m.check_params(head.uri.query(), &headers)
            .map_err(|d| Stop::Deny(d, log_only))?;
        if ctx.depth >= Level::Reduced {
            return Ok(());
        }
        let ct = head
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        // simd-json parses in place: the schema check needs its own mutable copy.
        let mut buf = body.map(|b| b.to_vec()).unwrap_or_default();
        m.check_body(ct, &mut buf)
            .map_err(|d| Stop::Deny(d, log_only))
    }
}

impl Stage for OpenApi {
    fn name(&self) -> &'static str {
        "openapi"
    }

    fn needs_body(&self) -> bool {
        true
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx,
        head: &'a mut Parts,
        body: Option<&'a Bytes>,
    ) -> StageFuture<'a> {
        let checked = self.check(ctx, head, body);
        // Shadow APIs: paths or methods the description does not know, whether refused or
        // (log-only) forwarded, go into the inventory operators review.
        if let Err(Stop::Deny(d, _)) = &checked
            && matches!(d.reason, "route_not_found" | "method_not_allowed")
        {
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
        let outcome = match checked {
            Ok(()) => Outcome::Continue,
            Err(Stop::Heat) => super::depth::thermal_shed(&self.retry_after),
            Err(Stop::Deny(deny, true)) => {
                // Location and keyword name the failing part, never the submitted value.
                info!(
                    request_id = %ctx.request_id, reason = deny.reason, location = %deny.location,
                    keyword = ?deny.keyword, "policy violation (log-only: forwarded)"
                );
                ctx.log_only_violation = Some(deny.reason);
                Outcome::Continue
            }
            Err(Stop::Deny(deny, false)) => {
                let status = StatusCode::from_u16(deny.status).unwrap_or(StatusCode::BAD_REQUEST);
                // Routing denials locate by the request path itself: leave that out of the body.
                let routed = !matches!(
                    deny.reason,
                    "route_not_found" | "method_not_allowed" | "path_invalid"
                );
                let location = routed.then(|| deny.location.clone());
                let mut rej =
                    Rejection::new(status, deny.reason).at(location, deny.keyword.clone());
                if let Some(allow) = deny
                    .allow_header()
                    .and_then(|a| HeaderValue::from_str(&a).ok())
                {
                    rej = rej.with_header(ALLOW, allow);
                }
                Outcome::Respond(rej)
            }
        };
        ready(outcome)
    }
}
