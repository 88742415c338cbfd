//! What the SYN guard costs per packet: answering a SYN with a cookie (checksums checked, the
//! kernel's cookie computed, the SYN-ACK written), and refusing a spoofed ACK (socket lookup
//! and cookie check), each against a bare `XDP_DROP` run the same way.
//!
//! An answered SYN is rewritten in place, and `BPF_PROG_TEST_RUN` with `repeat` runs the
//! program again on what it wrote: so the SYN cases are single runs (repeat 1), many of them,
//! with the kernel-measured time of each, against single runs of the bare drop (the fixed cost
//! of a single run lands on both). The refused ACK is left as it was, so it runs with
//! `repeat` like the other cases.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use anyhow::{Context, bail};
use vigil_xdp::{
    SynGuard, SynGuardPort,
    abi::Reason,
    frames::{self, ACK, LINUX_SYN_OPTIONS, SYN, Segment},
    testrun::{TestProgram, XDP_DROP, XDP_TX},
};

use crate::{cost::median, stop};

const PORT: u16 = 443;

#[derive(Debug)]
pub struct SynCase {
    pub key: &'static str,
    pub label: &'static str,
    pub action: &'static str,
    /// Median kernel-measured ns per run.
    pub median_ns: f64,
    /// The bare drop measured the same way (single runs, or with repeat).
    pub bare_ns: f64,
    pub runs: u64,
}

impl SynCase {
    pub fn extra_ns(&self) -> f64 {
        self.median_ns - self.bare_ns
    }

    pub fn ratio(&self) -> f64 {
        self.median_ns / self.bare_ns
    }
}

fn segment(v6: bool, flags: u8, ack: u32) -> Vec<u8> {
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        (
            Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 0, 0x20).into(),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
        )
    } else {
        (
            Ipv4Addr::new(198, 19, 77, 20).into(),
            Ipv4Addr::new(198, 18, 0, 1).into(),
        )
    };
    frames::tcp_frame(&Segment {
        src_mac: [2, 0, 0, 0, 0, 2],
        dst_mac: [2, 0, 0, 0, 0, 1],
        src,
        dst,
        sport: 40000,
        dport: PORT,
        seq: 0x1234_5678,
        ack,
        flags,
        options: if flags == SYN {
            &LINUX_SYN_OPTIONS
        } else {
            &[]
        },
    })
}

/// Kernel-measured ns of each of `n` single runs, checked for `action`.
fn single_runs(
    p: &mut TestProgram,
    frame: &[u8],
    n: usize,
    action: u32,
) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let r = p.run(frame, 1)?;
        if r.action != action {
            bail!(
                "a single run returned action {} where {action} was expected",
                r.action
            );
        }
        out.push(u64::try_from(r.per_run.as_nanos()).unwrap_or(u64::MAX));
    }
    Ok(out)
}

fn packets(p: &TestProgram, r: Reason) -> anyhow::Result<u64> {
    Ok(p.maps
        .as_ref()
        .context("Vigil's program came without maps")?
        .counters()?
        .get(r)
        .packets)
}

/// `runs` single runs per SYN case (interleaved in rounds with the bare drop), and `repeat`
/// runs per round for the refused ACK.
pub fn run(runs: usize, repeat: u32, rounds: usize) -> anyhow::Result<Vec<SynCase>> {
    let mut bare = TestProgram::bare_drop().context("loading the bare XDP_DROP program")?;
    let mut vigil = TestProgram::vigil().context("loading Vigil's program (needs root)")?;
    let maps = vigil
        .maps
        .as_mut()
        .context("Vigil's program came without maps")?;
    maps.set_config(None, 0)?;
    maps.set_syn_guard(Some(&SynGuard {
        ports: vec![SynGuardPort {
            port: PORT,
            syn_rate: 0,
        }],
        hold: Duration::from_secs(10),
        mss4: 1460,
        mss6: 1440,
        wscale: 7,
        ttl: 64,
    }))?;
    let (syn4, syn6) = (segment(false, SYN, 0), segment(true, SYN, 0));
    let bad_ack = segment(false, ACK, 0x0bad_c0de);
    let per_round = runs.div_ceil(rounds.max(1));
    let (mut b1, mut s4, mut s6, mut bn, mut a4) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rounds.max(1) {
        stop::check()?;
        b1.extend(single_runs(&mut bare, &syn4, per_round, XDP_DROP)?);
        let before = packets(&vigil, Reason::SynCookie)?;
        s4.extend(single_runs(&mut vigil, &syn4, per_round, XDP_TX)?);
        s6.extend(single_runs(&mut vigil, &syn6, per_round, XDP_TX)?);
        let answered = packets(&vigil, Reason::SynCookie)? - before;
        if answered != 2 * per_round as u64 {
            bail!("{answered} SYNs counted as answered of {}", 2 * per_round);
        }
        let r = bare.run(&bad_ack, repeat)?;
        bn.push(u64::try_from(r.per_run.as_nanos()).unwrap_or(u64::MAX));
        let before = packets(&vigil, Reason::SynGuardDrop)?;
        let r = vigil.run(&bad_ack, repeat)?;
        if r.action != XDP_DROP
            || packets(&vigil, Reason::SynGuardDrop)? - before != u64::from(repeat)
        {
            bail!("the spoofed ACK was not refused by the SYN guard on every run");
        }
        a4.push(u64::try_from(r.per_run.as_nanos()).unwrap_or(u64::MAX));
    }
    let single = median(&b1);
    let n = b1.len() as u64;
    Ok(vec![
        SynCase {
            key: "syn_cookie_v4",
            label: "SYN guard armed: IPv4 SYN answered with a cookie (single runs)",
            action: "tx",
            median_ns: median(&s4),
            bare_ns: single,
            runs: n,
        },
        SynCase {
            key: "syn_cookie_v6",
            label: "SYN guard armed: IPv6 SYN answered with a cookie (single runs)",
            action: "tx",
            median_ns: median(&s6),
            bare_ns: single,
            runs: n,
        },
        SynCase {
            key: "syn_guard_bad_ack_v4",
            label: "SYN guard armed: spoofed IPv4 ACK refused (socket lookup + cookie check)",
            action: "drop",
            median_ns: median(&a4),
            bare_ns: median(&bn),
            runs: u64::from(repeat) * a4.len() as u64,
        },
    ])
}
