//! Turning abuse seen at L7 into XDP drops: every gateway decision is counted against its
//! source; a source over an `[[autoban]]` rule is blocked in XDP for the rule's ban time and the
//! block is shared with the fleet.

use std::{net::IpAddr, sync::atomic::Ordering, time::Instant};

use ipnet::IpNet;
use tracing::{info, warn};
use vigil_xdp::{List, abi::RULE_F_AUTO};

use super::{Daemon, lock};
use crate::fleet;

impl Daemon {
    /// Counts one response status sent to `source`; bans it when a rule says so.
    pub fn observe_decision(&self, source: IpAddr, status: u16) {
        let bans = {
            let mut engine = lock(&self.autoban);
            if engine.is_empty() {
                return;
            }
            engine.observe(source, status, Instant::now())
        };
        for ban in bans {
            let net = IpNet::from(source);
            let reason = format!("auto-ban: {}", ban.rule);
            let applied = lock(&self.xdp).as_mut().map(|att| {
                att.maps
                    .insert(List::Block, net, Some(ban.ttl), &reason, RULE_F_AUTO)
            });
            match applied {
                Some(Ok(())) => {
                    self.autoban_total.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        source = %source, rule = %ban.rule, count = ban.count,
                        ttl_secs = ban.ttl.as_secs(), "auto-ban: source blocked in XDP"
                    );
                }
                Some(Err(e)) => warn!(source = %source, error = %e, "auto-ban failed"),
                None => {
                    info!(source = %source, rule = %ban.rule, "auto-ban matched, but XDP is not attached")
                }
            }
            if let Some(f) = lock(&self.fleet).as_ref() {
                f.publish_add(fleet::Block {
                    cidr: net.to_string(),
                    reason,
                    expires_unix: Some(
                        vigil_xdp::clock::unix_now().saturating_add(ban.ttl.as_secs()),
                    ),
                    auto: true,
                });
            }
        }
    }

    pub(super) fn autoban_count(&self) -> u64 {
        self.autoban_total.load(Ordering::Relaxed)
    }
}
