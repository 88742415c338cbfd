//! Cost per packet of Vigil's program against a bare `XDP_DROP`, both run by the kernel with
//! `BPF_PROG_TEST_RUN` and `repeat`, on the same frame size, interleaved round by round so
//! drift (frequency, neighbours) lands on every case alike.

use std::{net::Ipv4Addr, time::Instant};

use anyhow::{Context, bail};
use ipnet::IpNet;
use vigil_xdp::{
    List, RateLimit,
    abi::Reason,
    testrun::{TestProgram, XDP_DROP, XDP_PASS},
};

use crate::{blocklist, frame, stop};

/// Sources, all inside 198.19.77.0/24 so every lookup walks the same path in the trie down to
/// the one /32 the hit case aims at: the misses are near misses, the expensive kind.
const HIT: Ipv4Addr = Ipv4Addr::new(198, 19, 77, 10);
const MISS: Ipv4Addr = Ipv4Addr::new(198, 19, 77, 11);
const OVER_RATE: Ipv4Addr = Ipv4Addr::new(198, 19, 77, 12);
const UNDER_RATE: Ipv4Addr = Ipv4Addr::new(198, 19, 77, 13);

/// One packet a second: after the first, everything from that source is over its rate.
const SLOW: RateLimit = RateLimit { pps: 1, burst: 1 };
/// 10^9 packets a second: a source sending at test-run speed stays under it and every packet
/// takes the bucket-update path.
const FAST: RateLimit = RateLimit {
    pps: 1_000_000_000,
    burst: 1_000_000_000,
};

pub const BLOCKLIST_SEED: u64 = 0x5649_4749_4c00_0001;

/// The benchmark's blocklist: `entries` prefixes, the hit case's /32 first.
pub fn blocklist(entries: usize) -> Vec<IpNet> {
    let hit = IpNet::from(std::net::IpAddr::V4(HIT));
    blocklist::generate(entries, &[hit], BLOCKLIST_SEED)
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub repeat: u32,
    pub rounds: usize,
    pub frame_len: usize,
    pub blocklist: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prog {
    Bare,
    Empty,
    Loaded,
}

/// What must change in the program's counters for a run to count: proof it took the path
/// the case is named after.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Nothing,
    Exactly(Reason),
    /// The first packet of a round may find a refilled bucket and pass.
    AllButOne(Reason),
}

#[derive(Debug)]
struct Case {
    key: &'static str,
    label: &'static str,
    prog: Prog,
    src: Ipv4Addr,
    rate: Option<RateLimit>,
    action: u32,
    expect: Expect,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            key: "bare_drop",
            label: "(a) bare XDP_DROP",
            prog: Prog::Bare,
            src: MISS,
            rate: None,
            action: XDP_DROP,
            expect: Expect::Nothing,
        },
        Case {
            key: "vigil_pass_no_rules",
            label: "(b) Vigil, pass, no rules",
            prog: Prog::Empty,
            src: MISS,
            rate: None,
            action: XDP_PASS,
            expect: Expect::Exactly(Reason::Pass),
        },
        Case {
            key: "vigil_blocklist_miss",
            label: "(c) Vigil, blocklist miss (pass)",
            prog: Prog::Loaded,
            src: MISS,
            rate: None,
            action: XDP_PASS,
            expect: Expect::Exactly(Reason::Pass),
        },
        Case {
            key: "vigil_blocklist_hit",
            label: "(d) Vigil, blocklist hit (drop)",
            prog: Prog::Loaded,
            src: HIT,
            rate: None,
            action: XDP_DROP,
            expect: Expect::Exactly(Reason::Blocked),
        },
        Case {
            key: "vigil_rate_over",
            label: "(e) Vigil, over rate (drop)",
            prog: Prog::Loaded,
            src: OVER_RATE,
            rate: Some(SLOW),
            action: XDP_DROP,
            expect: Expect::AllButOne(Reason::RateLimited),
        },
        Case {
            key: "vigil_rate_under",
            label: "(f) Vigil, under rate (pass)",
            prog: Prog::Loaded,
            src: UNDER_RATE,
            rate: Some(FAST),
            action: XDP_PASS,
            expect: Expect::Exactly(Reason::Pass),
        },
    ]
}

#[derive(Debug)]
pub struct CaseResult {
    pub key: &'static str,
    pub label: &'static str,
    pub source: Ipv4Addr,
    pub blocklist_entries: usize,
    pub rate_limit: Option<RateLimit>,
    pub action: &'static str,
    /// Kernel-measured mean ns per run, one per round.
    pub rounds_ns: Vec<u64>,
    pub median_ns: f64,
}

#[derive(Debug)]
pub struct Report {
    pub options: Options,
    pub blocklist_v4: usize,
    pub blocklist_v6: usize,
    pub load_ms: f64,
    pub run_ms: f64,
    pub cases: Vec<CaseResult>,
}

impl Report {
    pub fn bare_ns(&self) -> f64 {
        self.cases.first().map_or(0.0, |c| c.median_ns)
    }

    pub fn ratio(&self, c: &CaseResult) -> f64 {
        let bare = self.bare_ns();
        if bare > 0.0 {
            c.median_ns / bare
        } else {
            f64::NAN
        }
    }
}

fn action_name(a: u32) -> &'static str {
    match a {
        XDP_DROP => "drop",
        XDP_PASS => "pass",
        _ => "other",
    }
}

pub fn run(opts: Options) -> anyhow::Result<Report> {
    let cases = cases();
    let t0 = Instant::now();
    let mut bare = TestProgram::bare_drop().context("loading the bare XDP_DROP program")?;
    let mut empty = TestProgram::vigil().context("loading Vigil's program (needs root)")?;
    let mut loaded = TestProgram::vigil().context("loading Vigil's program (needs root)")?;
    let list = blocklist(opts.blocklist.max(1));
    {
        let maps = loaded
            .maps
            .as_mut()
            .context("Vigil's program came without maps")?;
        for net in &list {
            maps.insert(List::Block, *net, None, "perf", 0)
                .with_context(|| format!("adding {net} to the blocklist"))?;
        }
    }
    for p in [&mut empty, &mut loaded] {
        p.maps
            .as_mut()
            .context("Vigil's program came without maps")?
            .set_config(None, 0)?;
    }
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;

    let frames = cases
        .iter()
        .map(|c| frame::udp4(&frame::Endpoints::test_run(c.src), opts.frame_len))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut rounds_ns = vec![Vec::with_capacity(opts.rounds); cases.len()];

    let t1 = Instant::now();
    // Round 0 warms caches and creates the rate buckets; it is not recorded.
    for round in 0..=opts.rounds {
        let repeat = if round == 0 { 10_000 } else { opts.repeat };
        for (i, c) in cases.iter().enumerate() {
            stop::check()?;
            let prog = match c.prog {
                Prog::Bare => &mut bare,
                Prog::Empty => &mut empty,
                Prog::Loaded => &mut loaded,
            };
            if let Some(maps) = prog.maps.as_mut() {
                maps.set_config(c.rate, 0)?;
            }
            let before = counter(prog, c.expect)?;
            let r = prog
                .run(&frames[i], repeat)
                .with_context(|| format!("running case {}", c.key))?;
            let after = counter(prog, c.expect)?;
            if r.action != c.action {
                bail!(
                    "case {}: the program returned {} where {} was expected; the numbers would \
                     measure the wrong path",
                    c.key,
                    action_name(r.action),
                    action_name(c.action)
                );
            }
            check_counter(c, u64::from(repeat), after.wrapping_sub(before))?;
            if round > 0 {
                rounds_ns[i].push(u64::try_from(r.per_run.as_nanos()).unwrap_or(u64::MAX));
            }
        }
    }
    let run_ms = t1.elapsed().as_secs_f64() * 1e3;

    let v6 = list.iter().filter(|n| matches!(n, IpNet::V6(_))).count();
    let results = cases
        .iter()
        .zip(rounds_ns)
        .map(|(c, ns)| CaseResult {
            key: c.key,
            label: c.label,
            source: c.src,
            blocklist_entries: if c.prog == Prog::Loaded {
                list.len()
            } else {
                0
            },
            rate_limit: c.rate,
            action: action_name(c.action),
            median_ns: median(&ns),
            rounds_ns: ns,
        })
        .collect();
    Ok(Report {
        options: opts,
        blocklist_v4: list.len() - v6,
        blocklist_v6: v6,
        load_ms,
        run_ms,
        cases: results,
    })
}

fn counter(prog: &TestProgram, expect: Expect) -> anyhow::Result<u64> {
    let reason = match expect {
        Expect::Nothing => return Ok(0),
        Expect::Exactly(r) | Expect::AllButOne(r) => r,
    };
    let maps = prog
        .maps
        .as_ref()
        .context("Vigil's program came without maps")?;
    Ok(maps.counters()?.get(reason).packets)
}

fn check_counter(c: &Case, repeat: u64, delta: u64) -> anyhow::Result<()> {
    let ok = match c.expect {
        Expect::Nothing => true,
        Expect::Exactly(_) => delta == repeat,
        Expect::AllButOne(_) => delta + 1 >= repeat && delta <= repeat,
    };
    if !ok {
        bail!(
            "case {}: {delta} of {repeat} runs were counted under {:?}; the case does not take \
             the path it is named after",
            c.key,
            c.expect
        );
    }
    Ok(())
}

pub fn median(xs: &[u64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_unstable();
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2] as f64,
        n => (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[30, 10, 20]), 20.0);
        assert_eq!(median(&[40, 10, 20, 30]), 25.0);
        assert!(median(&[]).is_nan());
    }
}
