//! The SYN guard's side of the maps: which ports it covers, with what threshold, and what it
//! has done. The packet path is in `bpf/syn_guard.h`; the netfilter SYN proxy that completes
//! the handshakes is set up by the daemon.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    XdpError,
    abi::{self, SYN_GUARDS, SYN_WINDOWS_PER_SEC, SynState},
    clock,
    maps::VigilMaps,
};

/// One guarded listening port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynGuardPort {
    pub port: u16,
    /// SYNs per second, per CPU, above which the guard answers SYNs itself; 0 = always.
    pub syn_rate: u32,
}

/// The SYN guard as the operator configures it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynGuard {
    pub ports: Vec<SynGuardPort>,
    /// How long the guard stays armed after the last window over the threshold.
    pub hold: Duration,
    /// MSS announced in SYN-ACKs, per family.
    pub mss4: u16,
    pub mss6: u16,
    /// Window scale announced; the SYN proxy must announce the same.
    pub wscale: u8,
    /// TTL (IPv4) or hop limit (IPv6) of SYN-ACKs.
    pub ttl: u8,
}

impl SynGuard {
    /// The guard's per-window threshold for a rate in SYNs per second (rounded up, so a
    /// rate never arms below what was asked).
    pub fn window_limit(syn_rate: u32) -> u32 {
        syn_rate.div_ceil(SYN_WINDOWS_PER_SEC)
    }
}

/// What one guarded port has seen, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynPortStatus {
    pub port: u16,
    pub syn_rate: u32,
    /// Whether some CPU currently answers this port's SYNs itself.
    pub armed: bool,
    pub syns: u64,
    /// SYN-ACKs with a cookie sent.
    pub cookies: u64,
    /// ACKs with a valid cookie passed to the SYN proxy.
    pub cookie_acks: u64,
    /// Segments the armed guard dropped (no connection, no valid cookie).
    pub dropped: u64,
}

impl VigilMaps {
    /// Writes the SYN guard's ports and settings (`None` turns it off). Ports guarded before
    /// and not now are released; the counters of a port that stays keep counting.
    pub fn set_syn_guard(&mut self, guard: Option<&SynGuard>) -> Result<(), XdpError> {
        let mut cfg = self.config()?;
        let ports = guard.map_or(&[][..], |g| &g.ports[..]);
        if !ports.is_empty() && cfg.syn_capable == 0 {
            return Err(XdpError::Invalid {
                what: "the attached XDP program was loaded without the SYN guard (it was \
                       attached before [xdp.syn_guard] was configured): load it again with \
                       `vigilctl xdp detach --yes` then `vigilctl xdp attach`"
                    .into(),
            });
        }
        if ports.len() > SYN_GUARDS {
            return Err(XdpError::Invalid {
                what: format!(
                    "the SYN guard covers at most {SYN_GUARDS} ports ({} given)",
                    ports.len()
                ),
            });
        }
        // Off first, so no packet reads a port map half rewritten.
        let old = cfg.syn_port;
        let old_count = cfg.syn_guards as usize;
        cfg.syn_guards = 0;
        self.set_config_raw(cfg)?;
        for p in old.iter().take(old_count.min(SYN_GUARDS)) {
            if !ports.iter().any(|n| u32::from(n.port) == *p) {
                self.syn_ports
                    .set(*p, 0, 0)
                    .map_err(XdpError::map("clearing a SYN guard port"))?;
            }
        }
        let Some(g) = guard.filter(|g| !g.ports.is_empty()) else {
            return Ok(());
        };
        cfg.syn_port = [0; SYN_GUARDS];
        cfg.syn_limit = [0; SYN_GUARDS];
        for (i, p) in g.ports.iter().enumerate() {
            cfg.syn_port[i] = u32::from(p.port);
            cfg.syn_limit[i] = SynGuard::window_limit(p.syn_rate);
            self.syn_ports
                .set(u32::from(p.port), i as u32 + 1, 0)
                .map_err(XdpError::map("writing a SYN guard port"))?;
        }
        self.reset_syn_state(&old, old_count, &cfg.syn_port, g.ports.len())?;
        cfg.syn_mss4 = u32::from(g.mss4);
        cfg.syn_mss6 = u32::from(g.mss6);
        cfg.syn_wscale = u32::from(g.wscale);
        cfg.syn_ttl = u32::from(g.ttl);
        cfg.syn_hold_ns = u64::try_from(g.hold.as_nanos()).unwrap_or(u64::MAX);
        cfg.syn_guards = g.ports.len() as u32;
        self.set_config_raw(cfg)
    }

    /// Records whether the loaded program carries the SYN guard.
    pub fn set_syn_capable(&mut self, capable: bool) -> Result<(), XdpError> {
        let cfg = self.config()?;
        self.set_config_raw(abi::Config {
            syn_capable: u32::from(capable),
            ..cfg
        })
    }

    /// A new setting starts unarmed: each guard's window and arming are cleared on every CPU.
    /// Its counters carry on when it guards the same port as before, and start at zero for a
    /// port that is new in its slot.
    fn reset_syn_state(
        &mut self,
        old_ports: &[u32; SYN_GUARDS],
        old_count: usize,
        new_ports: &[u32; SYN_GUARDS],
        new_count: usize,
    ) -> Result<(), XdpError> {
        for i in 0..new_count.min(SYN_GUARDS) {
            let key = i as u32 + 1;
            let same_port = i < old_count && old_ports[i] == new_ports[i];
            let per_cpu = self
                .syn_state
                .get(&key, 0)
                .map_err(XdpError::map("reading the SYN guard's state"))?;
            let fresh: Vec<SynState> = per_cpu
                .iter()
                .map(|c| {
                    if same_port {
                        SynState {
                            window_ns: 0,
                            armed_until_ns: 0,
                            window_syns: 0,
                            ..*c
                        }
                    } else {
                        SynState::default()
                    }
                })
                .collect();
            let values =
                aya::maps::PerCpuValues::try_from(fresh).map_err(|e| XdpError::Invalid {
                    what: format!("sizing the SYN guard's state: {e}"),
                })?;
            self.syn_state
                .set(key, values, 0)
                .map_err(XdpError::map("writing the SYN guard's state"))?;
        }
        Ok(())
    }

    /// Each guarded port's state and counters; empty when the guard is off.
    pub fn syn_guard_status(&self) -> Result<Vec<SynPortStatus>, XdpError> {
        let cfg = self.config()?;
        let now = clock::monotonic_ns();
        let mut out = Vec::new();
        for i in 0..(cfg.syn_guards as usize).min(SYN_GUARDS) {
            let per_cpu = self
                .syn_state
                .get(&(i as u32 + 1), 0)
                .map_err(XdpError::map("reading the SYN guard's counters"))?;
            let limit = cfg.syn_limit[i];
            let mut s = SynPortStatus {
                port: u16::try_from(cfg.syn_port[i]).unwrap_or(0),
                syn_rate: limit.saturating_mul(abi::SYN_WINDOWS_PER_SEC),
                armed: limit == 0,
                ..SynPortStatus::default()
            };
            for c in per_cpu.iter() {
                let c: &SynState = c;
                s.armed |= c.armed_until_ns > now;
                s.syns += c.syns;
                s.cookies += c.cookies;
                s.cookie_acks += c.cookie_acks;
                s.dropped += c.dropped;
            }
            out.push(s);
        }
        Ok(out)
    }
}
