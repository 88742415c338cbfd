//! Inspection depth: when the box runs hot the thermal governor lowers the depth, and this
//! stage decides what that means for a request. At `shed` depth nothing new is taken on. At
//! `reduced` and `minimal` the operator's choice applies: `shed` (the default) refuses rather
//! than forward anything less inspected; `degrade` lets the request on with `ctx.depth` set, and
//! the costly stages skip their work in the documented order (body schema first, then
//! parameter checks).

use bytes::Bytes;
use http::HeaderValue;
use http::request::Parts;
use vigil_hw::thermal::Level;

use super::stage::{Outcome, RequestCtx, SyncStage};
use crate::config::{InspectionConfig, OnDegrade};

#[derive(Debug)]
pub struct Depth {
    on_degrade: OnDegrade,
    retry_after: HeaderValue,
    /// With an OpenAPI policy each route's `x-vigil.on_degrade` decides at reduced and minimal
    /// depth (the `openapi` stage applies it); this stage then only sheds at `shed` depth.
    per_route: bool,
}

impl Depth {
    pub fn new(cfg: &InspectionConfig, per_route: bool) -> Self {
        Self {
            on_degrade: cfg.on_degrade,
            retry_after: HeaderValue::from(cfg.retry_after_secs),
            per_route,
        }
    }

    fn decide(&self, depth: Level) -> Outcome {
        let shed = match depth {
            Level::Full => false,
            Level::Reduced | Level::Minimal => {
                !self.per_route && self.on_degrade == OnDegrade::Shed
            }
            Level::Shed => true,
        };
        if !shed {
            return Outcome::Continue;
        }
        super::stage::thermal_shed(&self.retry_after)
    }
}

impl SyncStage for Depth {
    fn name(&self) -> &'static str {
        "depth"
    }

    fn check(&self, ctx: &mut RequestCtx, _head: &mut Parts, _body: Option<&Bytes>) -> Outcome {
        self.decide(ctx.depth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use http::header::RETRY_AFTER;

    fn stage(on_degrade: OnDegrade) -> Depth {
        Depth::new(
            &InspectionConfig {
                on_degrade,
                retry_after_secs: 7,
            },
            false,
        )
    }

    fn shed(o: &Outcome) -> bool {
        matches!(o, Outcome::Respond(r) if r.status == StatusCode::SERVICE_UNAVAILABLE
            && r.reason == "thermal_shed")
    }

    #[test]
    fn shed_by_default_below_full_depth() {
        let s = stage(OnDegrade::Shed);
        assert_eq!(s.decide(Level::Full), Outcome::Continue);
        for l in [Level::Reduced, Level::Minimal, Level::Shed] {
            assert!(shed(&s.decide(l)), "{l}");
        }
    }

    #[test]
    fn with_a_policy_routes_decide_below_full_depth() {
        let s = Depth::new(&InspectionConfig::default(), true);
        assert_eq!(s.decide(Level::Reduced), Outcome::Continue);
        assert_eq!(s.decide(Level::Minimal), Outcome::Continue);
        assert!(shed(&s.decide(Level::Shed)));
    }

    #[test]
    fn degrade_serves_until_the_shed_level() {
        let s = stage(OnDegrade::Degrade);
        for l in [Level::Full, Level::Reduced, Level::Minimal] {
            assert_eq!(s.decide(l), Outcome::Continue, "{l}");
        }
        let o = s.decide(Level::Shed);
        assert!(shed(&o));
        let Outcome::Respond(r) = o else { return };
        assert!(
            r.headers.iter().any(|(n, v)| n == RETRY_AFTER && v == "7"),
            "{r:?}"
        );
    }
}
