//! Clients whose JA4 TLS fingerprint an `[[autoban]]` rule (`key = "ja4"`) has banned: refused
//! with 403 `fingerprint_banned` from any address while the ban lasts, before any other check. The daemon blocks each such address in XDP as its decision comes in, so
//! a bot that moves to a new address costs it one refused request, not a served one.

use std::sync::Arc;

use bytes::Bytes;
use http::{StatusCode, request::Parts};

use super::stage::{Outcome, Rejection, RequestCtx, SyncStage};
use crate::services::Services;

/// The reason code of its refusals.
pub const FINGERPRINT_BANNED: &str = "fingerprint_banned";

#[derive(Debug)]
pub(crate) struct BannedFingerprints {
    services: Arc<Services>,
}

impl BannedFingerprints {
    pub fn new(services: Arc<Services>) -> Self {
        Self { services }
    }
}

impl SyncStage for BannedFingerprints {
    fn name(&self) -> &'static str {
        "fingerprint"
    }

    fn check(&self, ctx: &mut RequestCtx, _head: &mut Parts, _body: Option<&Bytes>) -> Outcome {
        match ctx.conn.tls.as_ref().and_then(|t| t.ja4.as_deref()) {
            Some(fp) if self.services.fingerprint_banned(fp) => {
                Outcome::Respond(Rejection::new(StatusCode::FORBIDDEN, FINGERPRINT_BANNED))
            }
            _ => Outcome::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::{Duration, Instant};

    use super::*;
    use crate::pipeline::{ConnInfo, TlsInfo, TlsVersion};

    fn run(stage: &BannedFingerprints, ja4: Option<&str>) -> Outcome {
        let (mut head, ()) = http::Request::get("/").body(()).unwrap().into_parts();
        let mut ctx = super::super::test_ctx("198.18.0.1:1000".parse().unwrap());
        ctx.conn = Arc::new(ConnInfo::new(
            ctx.conn.client,
            Some(TlsInfo {
                version: TlsVersion::Tls13,
                alpn: None,
                identity: None,
                ja4: ja4.map(str::to_owned),
            }),
        ));
        stage.check(&mut ctx, &mut head, None)
    }

    #[test]
    fn a_banned_fingerprint_is_refused_until_its_ban_ends() {
        let services = Arc::new(Services::new(Arc::default()));
        let stage = BannedFingerprints::new(services.clone());
        let bot = "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6";
        assert!(matches!(run(&stage, Some(bot)), Outcome::Continue));
        services.ban_fingerprint(bot, Instant::now() + Duration::from_secs(60));
        match run(&stage, Some(bot)) {
            Outcome::Respond(r) => {
                assert_eq!(r.status, StatusCode::FORBIDDEN);
                assert_eq!(r.reason, "fingerprint_banned");
            }
            _ => panic!("a banned fingerprint was let through"),
        }
        // Other fingerprints, and clients without TLS, are not concerned.
        assert!(matches!(
            run(&stage, Some("t13d1011h1_61a7ad8aa9b6_3fcd1a44f3e3")),
            Outcome::Continue
        ));
        assert!(matches!(run(&stage, None), Outcome::Continue));
        // An expired ban lets the fingerprint in again, and is dropped at the next ban.
        let other = "t13d311000_e8f1e7e78f70_1f22a2ca17c4";
        services.ban_fingerprint(other, Instant::now());
        assert!(matches!(run(&stage, Some(other)), Outcome::Continue));
        services.ban_fingerprint(bot, Instant::now() + Duration::from_secs(1));
        assert_eq!(services.banned_fingerprints.load().len(), 1);
        // A shorter ban does not cut a longer one short.
        assert!(matches!(run(&stage, Some(bot)), Outcome::Respond(_)));
    }

    #[test]
    fn the_ban_list_is_bounded() {
        let services = Services::new(Arc::default());
        let until = Instant::now() + Duration::from_secs(60);
        for i in 0..(crate::services::MAX_BANNED_FINGERPRINTS + 10) {
            services.ban_fingerprint(
                &format!("t13d{i:05}_x"),
                until + Duration::from_millis(i as u64),
            );
        }
        let map = services.banned_fingerprints.load();
        assert_eq!(map.len(), crate::services::MAX_BANNED_FINGERPRINTS);
        // The bans that end first were let go.
        assert!(!map.contains_key("t13d00000_x"));
        assert!(map.contains_key(
            format!("t13d{:05}_x", crate::services::MAX_BANNED_FINGERPRINTS + 9).as_str()
        ));
    }
}
