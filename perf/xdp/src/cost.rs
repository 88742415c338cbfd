//! Cost per packet of Vigil's program against a bare `XDP_DROP`, both run by the kernel with
//! `BPF_PROG_TEST_RUN` and `repeat`, on the same frame size, interleaved round by round so
//! drift (frequency, neighbours) lands on every case alike.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Instant,
};

use anyhow::{Context, bail};
use ipnet::IpNet;
use vigil_xdp::{
    List, RateLimit, TableMemory,
    abi::Reason,
    testrun::{TestProgram, XDP_DROP, XDP_PASS},
};

use crate::{
    blocklist::{self, Shape},
    frame, stop,
};

/// Sources, all inside 198.19.77.0/24 so every lookup walks the same path down to the one
/// /32 the hit case aims at: the misses are near misses, the expensive kind.
const HIT: Ipv4Addr = Ipv4Addr::new(198, 19, 77, 10);
const MISS: Ipv4Addr = Ipv4Addr::new(198, 19, 77, 11);
const OVER_RATE: Ipv4Addr = Ipv4Addr::new(198, 19, 77, 12);
const UNDER_RATE: Ipv4Addr = Ipv4Addr::new(198, 19, 77, 13);
/// The same for IPv6, next to a /128 in the documentation range.
const HIT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 0, 0x10);
const MISS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 0, 0x11);
const OVER_RATE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 0, 0x12);
const UNDER_RATE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 0, 0x13);

/// One packet a second: after the first, everything from that source is over its rate.
const SLOW: RateLimit = RateLimit { pps: 1, burst: 1 };
/// 10^9 packets a second: a source sending at test-run speed stays under it and every packet
/// takes the bucket-update path.
const FAST: RateLimit = RateLimit {
    pps: 1_000_000_000,
    burst: 1_000_000_000,
};

pub const BLOCKLIST_SEED: u64 = 0x5649_4749_4c00_0001;

/// The targets: what Vigil may add to the bare drop, in ns per packet.
pub const TARGET_NO_RULES_NS: f64 = 5.0;
pub const TARGET_V4_NS: f64 = 20.0;
pub const TARGET_V6_NS: f64 = 40.0;

/// The benchmark's 10,000-style list: `entries` prefixes, the hit cases' /32 and /128 first.
pub fn blocklist(entries: usize) -> Vec<IpNet> {
    shaped(entries, Shape::Uniform)
}

fn shaped(entries: usize, shape: Shape) -> Vec<IpNet> {
    let hits = [IpNet::from(IpAddr::V4(HIT)), IpNet::from(IpAddr::V6(HIT6))];
    blocklist::generate_shaped(entries.max(2), &hits, BLOCKLIST_SEED, shape)
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub repeat: u32,
    pub rounds: usize,
    pub frame_len: usize,
    pub blocklist: usize,
    /// Entries of the large list (0: no large-list cases).
    pub large: usize,
}

/// Which loaded program a case runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prog {
    Bare,
    Empty,
    /// Index into the loaded lists.
    List(usize),
}

/// What must change in the program's counters for a run to count: proof it took the path
/// the case is named after.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Nothing,
    Exactly(Reason),
    /// The first packet of a run may find a refilled bucket and pass, once on each CPU the
    /// run lands on: the rate state is per CPU, and a long run may migrate when the kernel
    /// reschedules between repeats.
    AllButOne(Reason),
}

#[derive(Debug)]
struct Case {
    key: String,
    label: String,
    prog: Prog,
    src: IpAddr,
    rate: Option<RateLimit>,
    action: u32,
    expect: Expect,
    /// The most ns this case may add to the bare drop.
    target: Option<f64>,
}

/// One loaded blocklist.
#[derive(Debug)]
pub struct ListInfo {
    pub name: &'static str,
    pub shape: &'static str,
    pub entries: usize,
    pub ipv4: usize,
    pub ipv6: usize,
    /// Time to add the whole list (one insert into the rule store per prefix, one table
    /// rebuild), as `vigilctl block import` does after parsing.
    pub load_ms: f64,
    pub memory: TableMemory,
}

fn cases(lists: &[(&'static str, usize)]) -> Vec<Case> {
    let mut out = vec![
        Case {
            key: "bare_drop".into(),
            label: "(a) bare XDP_DROP".into(),
            prog: Prog::Bare,
            src: MISS.into(),
            rate: None,
            action: XDP_DROP,
            expect: Expect::Nothing,
            target: None,
        },
        Case {
            key: "vigil_pass_no_rules".into(),
            label: "Vigil, no rules, IPv4 (pass)".into(),
            prog: Prog::Empty,
            src: MISS.into(),
            rate: None,
            action: XDP_PASS,
            expect: Expect::Exactly(Reason::Pass),
            target: Some(TARGET_NO_RULES_NS),
        },
        Case {
            key: "vigil_pass_no_rules_v6".into(),
            label: "Vigil, no rules, IPv6 (pass)".into(),
            prog: Prog::Empty,
            src: MISS6.into(),
            rate: None,
            action: XDP_PASS,
            expect: Expect::Exactly(Reason::Pass),
            target: Some(TARGET_NO_RULES_NS),
        },
    ];
    for (i, (name, _)) in lists.iter().enumerate() {
        for v6 in [false, true] {
            let (fam, target) = if v6 {
                ("v6", TARGET_V6_NS)
            } else {
                ("v4", TARGET_V4_NS)
            };
            let pick =
                |a: Ipv4Addr, b: Ipv6Addr| -> IpAddr { if v6 { b.into() } else { a.into() } };
            let variants = [
                (
                    "miss",
                    "blocklist miss (pass)",
                    pick(MISS, MISS6),
                    None,
                    XDP_PASS,
                    Expect::Exactly(Reason::Pass),
                ),
                (
                    "hit",
                    "blocklist hit (drop)",
                    pick(HIT, HIT6),
                    None,
                    XDP_DROP,
                    Expect::Exactly(Reason::Blocked),
                ),
                (
                    "rate_under",
                    "miss + rate limiter, under (pass)",
                    pick(UNDER_RATE, UNDER_RATE6),
                    Some(FAST),
                    XDP_PASS,
                    Expect::Exactly(Reason::Pass),
                ),
                (
                    "rate_over",
                    "miss + rate limiter, over (drop)",
                    pick(OVER_RATE, OVER_RATE6),
                    Some(SLOW),
                    XDP_DROP,
                    Expect::AllButOne(Reason::RateLimited),
                ),
            ];
            for (k, what, src, rate, action, expect) in variants {
                out.push(Case {
                    key: format!("vigil_{fam}_{k}_{name}"),
                    label: format!("Vigil, {name}, IP{fam}, {what}"),
                    prog: Prog::List(i),
                    src,
                    rate,
                    action,
                    expect,
                    target: Some(target),
                });
            }
        }
    }
    out
}

#[derive(Debug)]
pub struct CaseResult {
    pub key: String,
    pub label: String,
    pub source: IpAddr,
    pub blocklist_entries: usize,
    pub rate_limit: Option<RateLimit>,
    pub action: &'static str,
    /// Kernel-measured mean ns per run, one per round.
    pub rounds_ns: Vec<u64>,
    pub median_ns: f64,
    /// The most ns over the bare drop the issue allows this case, if it has a target.
    pub target_extra_ns: Option<f64>,
}

#[derive(Debug)]
pub struct Report {
    pub options: Options,
    pub lists: Vec<ListInfo>,
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

    pub fn extra_ns(&self, c: &CaseResult) -> f64 {
        c.median_ns - self.bare_ns()
    }

    /// Whether the case meets its target (`None` when it has none).
    pub fn target_met(&self, c: &CaseResult) -> Option<bool> {
        c.target_extra_ns.map(|t| self.extra_ns(c) <= t)
    }

    /// The cases over their target.
    pub fn missed(&self) -> Vec<&CaseResult> {
        self.cases
            .iter()
            .filter(|c| self.target_met(c) == Some(false))
            .collect()
    }
}

fn action_name(a: u32) -> &'static str {
    match a {
        XDP_DROP => "drop",
        XDP_PASS => "pass",
        _ => "other",
    }
}

fn load_list(
    name: &'static str,
    entries: usize,
    shape: Shape,
) -> anyhow::Result<(TestProgram, ListInfo)> {
    let mut prog = TestProgram::vigil().context("loading Vigil's program (needs root)")?;
    let list = shaped(entries, shape);
    let maps = prog
        .maps
        .as_mut()
        .context("Vigil's program came without maps")?;
    let t0 = Instant::now();
    maps.insert_many(List::Block, &list, "perf", 0)
        .with_context(|| format!("loading the {name} blocklist"))?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    maps.set_config(None, 0)?;
    let ipv6 = list.iter().filter(|n| matches!(n, IpNet::V6(_))).count();
    let info = ListInfo {
        name,
        shape: match shape {
            Shape::Uniform => "ipv4 /16-/32 uniform, ipv6 /32-/128 uniform",
            Shape::Feed => "ipv4 75% /24, 22% /12-/23, 3% /25-/32; ipv6 /32-/128 uniform",
        },
        entries: list.len(),
        ipv4: list.len() - ipv6,
        ipv6,
        load_ms,
        memory: maps.table_memory(),
    };
    Ok((prog, info))
}

fn list_name(n: usize) -> &'static str {
    match n {
        10_000 => "10k",
        1_000_000 => "1m",
        _ => "list",
    }
}

pub fn run(opts: Options) -> anyhow::Result<Report> {
    let mut bare = TestProgram::bare_drop().context("loading the bare XDP_DROP program")?;
    let mut empty = TestProgram::vigil().context("loading Vigil's program (needs root)")?;
    empty
        .maps
        .as_mut()
        .context("Vigil's program came without maps")?
        .set_config(None, 0)?;
    let mut loaded = Vec::new();
    let mut lists = Vec::new();
    let mut specs = vec![(
        list_name(opts.blocklist),
        opts.blocklist.max(2),
        Shape::Uniform,
    )];
    if opts.large > 0 {
        let name = if opts.large == 1_000_000 {
            "1m"
        } else {
            "large"
        };
        specs.push((name, opts.large, Shape::Feed));
    }
    for (name, entries, shape) in specs {
        stop::check()?;
        let (prog, info) = load_list(name, entries, shape)?;
        loaded.push(prog);
        lists.push(info);
    }
    let names: Vec<(&'static str, usize)> = lists.iter().map(|l| (l.name, l.entries)).collect();
    let cases = cases(&names);

    let frames = cases
        .iter()
        .map(|c| match c.src {
            IpAddr::V4(a) => frame::udp4(&frame::Endpoints::test_run(a), opts.frame_len),
            IpAddr::V6(a) => frame::udp6_test_run(a, opts.frame_len),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut rounds_ns = vec![Vec::with_capacity(opts.rounds); cases.len()];

    let t1 = Instant::now();
    // Round 0 warms caches and the rate buckets; it is not recorded.
    for round in 0..=opts.rounds {
        let repeat = if round == 0 { 10_000 } else { opts.repeat };
        for (i, c) in cases.iter().enumerate() {
            stop::check()?;
            let prog = match c.prog {
                Prog::Bare => &mut bare,
                Prog::Empty => &mut empty,
                Prog::List(n) => loaded
                    .get_mut(n)
                    .context("a case names a list that was not loaded")?,
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

    let results = cases
        .into_iter()
        .zip(rounds_ns)
        .map(|(c, ns)| CaseResult {
            blocklist_entries: match c.prog {
                Prog::List(n) => lists.get(n).map_or(0, |l| l.entries),
                _ => 0,
            },
            key: c.key,
            label: c.label,
            source: c.src,
            rate_limit: c.rate,
            action: action_name(c.action),
            median_ns: median(&ns),
            rounds_ns: ns,
            target_extra_ns: c.target,
        })
        .collect();
    Ok(Report {
        options: opts,
        lists,
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
        Expect::AllButOne(_) => delta + cpus() >= repeat && delta <= repeat,
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

fn cpus() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
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
