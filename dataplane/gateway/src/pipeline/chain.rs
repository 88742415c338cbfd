//! The chain: which stages run, in which order, and why there. This is the one place the order
//! is written; [`run`] walks it.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use http::request::Parts;

use super::stage::{Outcome, Part, RequestCtx, Stage};
use super::{
    bots, depth, detect, fingerprint, forwarding, hardening, identity, openapi, ownership, patch,
    policy, ratelimit, respdata, route,
};
use crate::config::{BotList, ConfigError, GatewayConfig};
use crate::services::Services;

/// The chain without an OpenAPI policy.
#[cfg(test)]
pub(crate) fn chain(cfg: &GatewayConfig) -> Vec<Arc<dyn Stage>> {
    let services = Arc::new(Services::new(Arc::default()));
    chain_with(cfg, None, Arc::default(), &services).unwrap_or_default()
}

/// The chain, in order. This is the one place the order is written.
pub(crate) fn chain_with(
    cfg: &GatewayConfig,
    policy: Option<Arc<vigil_policy::Policy>>,
    shadow: Arc<vigil_policy::ShadowInventory>,
    services: &Arc<Services>,
) -> Result<Vec<Arc<dyn Stage>>, ConfigError> {
    let mut stages: Vec<Arc<dyn Stage>> = vec![
        // Fail closed first: without a policy nothing else matters.
        Arc::new(policy::PolicyPresent::new(cfg)),
        // A TLS fingerprint an auto-ban rule banned: refused from any address, whatever it
        // asks (one set lookup).
        Arc::new(fingerprint::BannedFingerprints::new(services.clone())),
        // Cheap structural checks before any stage spends work on the request.
        Arc::new(hardening::Hardening::new(&cfg.limits)),
    ];
    // Known scanners by their User-Agent: refused before they cost a rate-limit bucket.
    if let Some(b) = &cfg.bots {
        stages.push(Arc::new(bots::Bots::new(b, BotList::load(&b.file)?)));
    }
    stages.extend::<[Arc<dyn Stage>; 2]>([
        // Rate limits before any costly work, and whatever the heat: they always run.
        Arc::new(ratelimit::RateLimit::new(
            &cfg.rate_limit,
            false,
            services.clone(),
        )),
        // Heat: shed (or mark for degrading) before the costly inspection stages. Route match
        // and identity below ignore the depth: authorisation never degrades.
        Arc::new(depth::Depth::new(
            &cfg.inspection,
            policy.is_some() && cfg.policy.is_some(),
        )),
    ]);
    let policy = policy.zip(cfg.policy.as_ref());
    // Route match from the API's own description: every later stage needs the operation.
    if let Some((p, pc)) = &policy {
        let retry_after = HeaderValue::from(cfg.inspection.retry_after_secs);
        stages.push(Arc::new(route::Route::new(
            p.clone(),
            pc.mode,
            shadow,
            retry_after,
        )));
        // Known exploits, refused as such whoever sends them: once the route is known.
        stages.push(Arc::new(patch::VirtualPatches::new(services.clone())));
        // Who is asking, as the operation's security requirements say.
        let dir = pc.file.parent().unwrap_or(std::path::Path::new("."));
        let schemes = identity::schemes(p, dir, services)?;
        services.set_current_jwks(
            schemes
                .iter()
                .filter_map(|s| match s {
                    identity::Scheme::Jwt(v) => Some(v.jwks().clone()),
                    _ => None,
                })
                .collect(),
        );
        stages.push(Arc::new(identity::Identity::new(p.clone(), schemes)));
    }
    // Without a policy there is no route: the patches run after the cheap refusals.
    if policy.is_none() {
        stages.push(Arc::new(patch::VirtualPatches::new(services.clone())));
    }
    // Limits keyed by who is asking and for what: once identity and route are known.
    let late = ratelimit::RateLimit::new(&cfg.rate_limit, true, services.clone());
    if !late.is_empty() {
        stages.push(Arc::new(late));
    }
    if let Some((p, pc)) = &policy {
        // Parameters and media type: everything the head shows, after every cheaper refusal.
        stages.push(Arc::new(openapi::OpenApi::new(
            p.clone(),
            pc.mode,
            Part::Head,
        )));
        // Object ownership from path, query and headers, once they are known to be well formed.
        if ownership::OwnershipCheck::wanted(p, Part::Head) {
            stages.push(Arc::new(ownership::OwnershipCheck::new(
                p.clone(),
                Part::Head,
            )));
        }
        // ---- the body is read here, after every check that can refuse without it (a request
        // without a token never gets its megabytes held) ----
        // The body schema: the costliest check.
        stages.push(Arc::new(openapi::OpenApi::new(
            p.clone(),
            pc.mode,
            Part::Body,
        )));
        // Ownership of objects the body names, once it is known to be well formed.
        if ownership::OwnershipCheck::wanted(p, Part::Body) {
            stages.push(Arc::new(ownership::OwnershipCheck::new(
                p.clone(),
                Part::Body,
            )));
        }
    }
    // Injection payloads inside values the description let through: after every cheaper
    // refusal, on the body the schema has checked.
    let p = policy.as_ref().map(|(p, _)| p.clone());
    if detect::Detection::wanted(&cfg.detection, p.as_deref()) {
        stages.push(Arc::new(detect::Detection::new(&cfg.detection, p.clone())));
    }
    // Responses to inspect for sensitive data: marked, and asked for unencoded.
    if respdata::ResponseData::wanted(&cfg.response_data, p.as_deref()) {
        stages.push(Arc::new(respdata::ResponseData::new(&cfg.response_data, p)));
    }
    // Last: rewrite headers for the upstream only once the request is accepted.
    stages.push(Arc::new(forwarding::Forwarding));
    Ok(stages)
}

/// Runs the chain; returns the first rejection.
pub(crate) async fn run(
    chain: &[Arc<dyn Stage>],
    ctx: &mut RequestCtx,
    head: &mut Parts,
    body: Option<&Bytes>,
) -> Outcome {
    for stage in chain {
        let outcome = match stage.decide_now(ctx, head, body) {
            Some(outcome) => outcome,
            None => stage.on_request(ctx, head, body).await,
        };
        if let Outcome::Respond(r) = outcome {
            return Outcome::Respond(r);
        }
    }
    Outcome::Continue
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stage::{Rejection, SyncStage};
    use http::StatusCode;

    /// A stage that needs the body and refuses one containing "evil".
    #[derive(Debug)]
    struct BodyCheck;

    impl SyncStage for BodyCheck {
        fn name(&self) -> &'static str {
            "body-check"
        }

        fn needs_body(&self) -> bool {
            true
        }

        fn check(&self, ctx: &mut RequestCtx, _head: &mut Parts, body: Option<&Bytes>) -> Outcome {
            ctx.route = Some("POST /things".to_owned());
            let evil = body.is_some_and(|b| b.windows(4).any(|w| w == b"evil"));
            if evil {
                Outcome::Respond(Rejection::new(StatusCode::BAD_REQUEST, "body_refused"))
            } else {
                Outcome::Continue
            }
        }
    }

    /// Records that it ran.
    #[derive(Debug)]
    struct Later;

    impl SyncStage for Later {
        fn name(&self) -> &'static str {
            "later"
        }

        fn check(&self, ctx: &mut RequestCtx, _head: &mut Parts, _body: Option<&Bytes>) -> Outcome {
            ctx.upstream = Some("reached".to_owned());
            Outcome::Continue
        }
    }

    fn ctx() -> RequestCtx {
        crate::pipeline::test_ctx(std::net::SocketAddr::from(([127, 0, 0, 1], 1)))
    }

    #[tokio::test]
    async fn a_rejection_stops_the_chain() {
        let chain: Vec<Arc<dyn Stage>> = vec![Arc::new(BodyCheck), Arc::new(Later)];
        let Ok(req) = http::Request::post("/things").body(()) else {
            unreachable!()
        };
        let (mut head, ()) = req.into_parts();
        let mut c = ctx();
        let bad = Bytes::from_static(b"{\"x\":\"evil\"}");
        let outcome = run(&chain, &mut c, &mut head, Some(&bad)).await;
        assert_eq!(
            outcome,
            Outcome::Respond(Rejection::new(StatusCode::BAD_REQUEST, "body_refused"))
        );
        assert_eq!(c.upstream, None, "a later stage ran after a rejection");
        let mut c = ctx();
        let good = Bytes::from_static(b"{}");
        assert_eq!(
            run(&chain, &mut c, &mut head, Some(&good)).await,
            Outcome::Continue
        );
        assert_eq!(c.route.as_deref(), Some("POST /things"));
        assert_eq!(c.upstream.as_deref(), Some("reached"));
    }

    #[test]
    fn the_default_chain_streams_bodies() {
        let chain = chain(&GatewayConfig::default());
        let names: Vec<&str> = chain.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            vec![
                "policy",
                "fingerprint",
                "hardening",
                "rate_limit",
                "depth",
                "patch",
                "forwarding"
            ]
        );
        // No patch looks at bodies: nothing is buffered.
        assert!(!chain.iter().any(|s| s.needs_body()));
    }
}
