//! Turning abuse seen at L7 into XDP drops: every gateway decision is counted against its
//! source; a source over an `[[autoban]]` rule is blocked in XDP for the rule's ban time and the
//! block is shared with the fleet.

use std::{
    net::IpAddr,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use ipnet::IpNet;
use tracing::{info, warn};
use vigil_xdp::{List, abi::RULE_F_AUTO};

use super::{Daemon, lock};
use crate::fleet;

impl Daemon {
    /// Counts one response status sent to `source` (with TLS fingerprint `ja4`, for the gateway's
    /// `reason`); bans it when a rule says so. A fingerprint banned by a `ja4` rule is handed to
    /// the gateway, which refuses it from any address while the ban lasts; its own refusals
    /// (`fingerprint_banned`) are the ban's effect, not evidence, and are not counted.
    pub fn observe_decision(&self, source: IpAddr, ja4: Option<&str>, status: u16, reason: &str) {
        if reason == vigil_gateway::FINGERPRINT_BANNED {
            return;
        }
        let bans = {
            let mut engine = lock(&self.autoban);
            if engine.is_empty() {
                return;
            }
            engine.observe(source, ja4, status, Instant::now())
        };
        for ban in bans {
            let reason = match &ban.ja4 {
                Some(fp) => {
                    if ban.new_fingerprint_ban {
                        warn!(
                            ja4 = %fp, rule = %ban.rule, count = ban.count,
                            ttl_secs = ban.ttl.as_secs(),
                            "auto-ban: fingerprint banned; the gateway refuses it from any address"
                        );
                        if let Some(gw) = lock(&self.gateway).as_ref() {
                            gw.ban_fingerprint(fp, ban.ttl);
                        }
                    }
                    // The fingerprint itself (36 characters) does not fit in an XDP rule's
                    // reason: it is in the log line above and in the refused requests' audit.
                    format!("auto-ban: {} (ja4)", ban.rule)
                }
                None => format!("auto-ban: {}", ban.rule),
            };
            if self.ban_source(ban.source, &reason, ban.ttl) {
                self.autoban_total.fetch_add(1, Ordering::Relaxed);
                warn!(
                    source = %ban.source, rule = %ban.rule, count = ban.count,
                    ttl_secs = ban.ttl.as_secs(), "auto-ban: source blocked in XDP"
                );
            }
        }
    }

    /// Blocks `source` in XDP for `ttl` as an automatic rule and shares the block with the
    /// fleet; true when the XDP rule went in.
    pub(super) fn ban_source(&self, source: IpAddr, reason: &str, ttl: Duration) -> bool {
        let net = IpNet::from(source);
        let applied = lock(&self.xdp).as_mut().map(|att| {
            att.maps
                .insert(List::Block, net, Some(ttl), reason, RULE_F_AUTO)
        });
        let ok = match applied {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                warn!(source = %source, error = %e, reason, "ban failed");
                false
            }
            None => {
                info!(source = %source, reason, "ban matched, but XDP is not attached");
                false
            }
        };
        if let Some(f) = lock(&self.fleet).as_ref() {
            f.publish_add(fleet::Block {
                cidr: net.to_string(),
                reason: reason.to_owned(),
                expires_unix: Some(vigil_xdp::clock::unix_now().saturating_add(ttl.as_secs())),
                auto: true,
            });
        }
        ok
    }

    pub(super) fn autoban_count(&self) -> u64 {
        self.autoban_total.load(Ordering::Relaxed)
    }
}
