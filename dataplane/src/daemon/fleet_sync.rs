//! Sharing blocks with the fleet and applying the fleet's blocks here.

use std::time::Duration;

use tracing::{info, warn};
use vigil_control::{Cidr, RuleAdded};
use vigil_xdp::List;

use super::{Daemon, lock};
use crate::fleet;

impl Daemon {
    /// Sends a block this box just applied to the rest of the fleet.
    pub(super) fn share_block(&self, added: &RuleAdded) {
        let fleet = lock(&self.fleet);
        let Some(f) = fleet.as_ref() else {
            return;
        };
        f.publish_add(fleet::Block {
            cidr: added.cidr.to_string(),
            reason: added.reason.clone(),
            expires_unix: added
                .ttl_secs
                .map(|t| vigil_xdp::clock::unix_now().saturating_add(t.as_secs())),
            auto: false,
        });
    }

    /// Applies a block or unblock that the fleet box `from` made and signed (the signature
    /// was checked before this is called). The rule's origin is `fleet:<from>`.
    pub(super) fn apply_fleet_event(&self, from: &str, ev: &fleet::Event) {
        let mut xdp = lock(&self.xdp);
        let Some(att) = xdp.as_mut() else { return };
        match ev {
            fleet::Event::Add { block } => {
                let Ok(net) = block.cidr.parse::<Cidr>().map(Cidr::net) else {
                    warn!(cidr = %block.cidr, "fleet: ignored a block with a malformed CIDR");
                    return;
                };
                let ttl = match block.expires_unix {
                    Some(t) => {
                        let now = vigil_xdp::clock::unix_now();
                        if t <= now {
                            return;
                        }
                        Some(Duration::from_secs(t - now))
                    }
                    None => None,
                };
                let mut reason: String = block.reason.chars().filter(|c| !c.is_control()).collect();
                while reason.len() > vigil_xdp::abi::REASON_LEN - 1 {
                    reason.pop();
                }
                let flags = if block.auto {
                    vigil_xdp::abi::RULE_F_AUTO
                } else {
                    0
                };
                match att
                    .maps
                    .insert_from(List::Block, net, ttl, &reason, flags, from)
                {
                    Ok(()) => info!(%net, %from, "fleet: block applied"),
                    Err(e) => warn!(%net, error = %e, "fleet: applying a block failed"),
                }
            }
            fleet::Event::Del { cidr } => {
                if let Ok(net) = cidr.parse::<Cidr>().map(Cidr::net) {
                    if let Ok(true) = att.maps.remove(List::Block, net) {
                        info!(%net, %from, "fleet: block removed");
                    }
                }
            }
        }
    }
}
