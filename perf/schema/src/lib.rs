//! Benchmark: Vigil's schema validator (owned bytes -> simd-json tape -> compiled tree) against
//! `serde_json::from_slice` + the `jsonschema` crate, on the same schema and payloads, in the
//! same run, on one thread. Writes `perf/results/schema.json` and prints a table.

pub mod payload;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;
use vigil_schema::{BODY_PADDING, CompileOptions, Dialect, Limits, Validator};

/// Figures for one implementation on one payload.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Figures {
    pub iterations: u64,
    pub ns_per_request: f64,
    pub mb_per_s: f64,
}

/// One payload measured with both implementations.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub name: String,
    pub bytes: usize,
    pub valid: bool,
    pub vigil: Figures,
    /// Whether Vigil's fused pass decided this payload (otherwise the tape walk did).
    pub fused: bool,
    /// Vigil's tape walk alone (simd-json tape, prepass, compiled walk): the path of a body the
    /// fused pass leaves to it, and of every body before the fused pass existed.
    pub vigil_tape_walk: Figures,
    pub serde_json_jsonschema: Figures,
    /// Peer time / Vigil time.
    pub speedup: f64,
    /// Parsing alone, no validation: where the floor of each side is.
    pub parse_only: ParseOnly,
}

/// Parse-only reference figures on the same payload.
#[derive(Debug, Clone, Serialize)]
pub struct ParseOnly {
    /// Copy into a mutable buffer + simd-json tape (what Vigil's validator starts with).
    pub simd_json_tape: Figures,
    /// `serde_json::from_slice::<Value>` (what the peer starts with).
    pub serde_json_value: Figures,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub harness: &'static str,
    pub peer: &'static str,
    pub threads: u32,
    /// Time per implementation per payload, split into alternating rounds (best round kept).
    pub seconds_per_measurement: f64,
    pub rounds: u32,
    /// Load average when the run ended: figures from a busy machine are pessimistic.
    pub loadavg: String,
    pub cases: Vec<Case>,
    pub targets: Targets,
}

#[derive(Debug, Serialize)]
pub struct Targets {
    pub min_speedup: f64,
    pub min_speedup_met: bool,
    pub valid_64k_min_mb_per_s: f64,
    pub valid_64k_mb_per_s: f64,
    pub valid_64k_met: bool,
}

/// Rounds per measurement: Vigil and the peer alternate, so load from other processes hits both
/// alike, and each side keeps its best round (the least disturbed one).
const ROUNDS: u32 = 5;

/// Runs `f` for about `budget` (at least 3 times, at most `max_iters`) and returns the mean.
fn measure(bytes: usize, budget: Duration, max_iters: u64, f: &mut dyn FnMut()) -> Figures {
    let start = Instant::now();
    let mut iterations = 0u64;
    while iterations < 3 || (start.elapsed() < budget && iterations < max_iters) {
        f();
        iterations += 1;
    }
    let per = start.elapsed().as_secs_f64() / iterations as f64;
    Figures {
        iterations,
        ns_per_request: per * 1e9,
        mb_per_s: bytes as f64 / per / 1e6,
    }
}

/// Alternates rounds of `a` and `b` (after one warm-up call each) and keeps each one's best.
fn measure_pair(
    bytes: usize,
    budget: Duration,
    a: &mut dyn FnMut(),
    b: &mut dyn FnMut(),
) -> (Figures, Figures) {
    a();
    b();
    let round = budget / ROUNDS;
    let mut best: (Option<Figures>, Option<Figures>) = (None, None);
    let better = |old: Option<Figures>, new: Figures| match old {
        Some(o) if o.ns_per_request <= new.ns_per_request => Figures {
            iterations: o.iterations + new.iterations,
            ..o
        },
        Some(o) => Figures {
            iterations: o.iterations + new.iterations,
            ..new
        },
        None => new,
    };
    for _ in 0..ROUNDS {
        best.0 = Some(better(best.0, measure(bytes, round, 10_000_000, a)));
        best.1 = Some(better(best.1, measure(bytes, round, 10_000_000, b)));
    }
    let empty = Figures {
        iterations: 0,
        ns_per_request: f64::NAN,
        mb_per_s: 0.0,
    };
    (best.0.unwrap_or(empty), best.1.unwrap_or(empty))
}

/// Payload sizes by label.
const SIZES: [(&str, usize); 3] = [
    ("1KiB", 1024usize),
    ("64KiB", 64 * 1024),
    ("1MiB", 1024 * 1024),
];

fn vigil_validator() -> Result<Validator> {
    let opts = CompileOptions {
        reject_read_only: true,
        ..CompileOptions::default()
    };
    Validator::compile(&payload::order_schema(), Dialect::Draft2020_12, &opts)
        .context("compiling the benchmark schema with vigil-schema")
}

/// Runs only Vigil's validator on one payload (`64KiB-valid`) for `budget`, or exactly
/// `iterations` times: a loop for a profiler to look at.
pub fn profile(
    name: &str,
    budget: Duration,
    iterations: Option<u64>,
    tape_walk: bool,
) -> Result<Figures> {
    let vigil = vigil_validator()?;
    let (label, kind) = name.split_once('-').unwrap_or((name, "valid"));
    let Some((_, size)) = SIZES.iter().find(|(l, _)| *l == label) else {
        bail!("unknown payload {name}: use 1KiB, 64KiB or 1MiB, then -valid or -invalid");
    };
    let body = payload::order(*size, kind == "valid");
    let limits = bench_limits();
    let mut buf: Vec<u8> = Vec::with_capacity(body.len() + BODY_PADDING);
    let (budget, max) = match iterations {
        Some(n) => (Duration::MAX, n.max(3)),
        None => (budget, u64::MAX),
    };
    Ok(measure(body.len(), budget, max, &mut || {
        let r = if tape_walk {
            buf.clear();
            buf.extend_from_slice(&body);
            vigil.validate_bytes_by_tape(&mut buf, &limits)
        } else {
            vigil.validate_slice(&body, &limits)
        };
        std::hint::black_box(r.is_ok());
    }))
}

fn bench_limits() -> Limits {
    Limits {
        max_array_len: 1_000_000,
        ..Limits::default()
    }
}

/// Measures every payload; `budget` is the time spent per implementation per payload.
pub fn run(budget: Duration) -> Result<Report> {
    let schema = payload::order_schema();
    let vigil = vigil_validator()?;
    let peer = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| anyhow::anyhow!("compiling the benchmark schema with jsonschema: {e}"))?;
    let limits = bench_limits();

    let mut cases = Vec::new();
    for (label, size) in SIZES {
        for valid in [true, false] {
            let body = payload::order(size, valid);
            let name = format!("{label}-{}", if valid { "valid" } else { "invalid" });
            // Both must agree before their speed means anything.
            let ours = vigil.validate_slice(&body, &limits).is_ok();
            let value: Value = serde_json::from_slice(&body)?;
            let theirs = peer.is_valid(&value);
            if ours != valid || theirs != valid {
                bail!(
                    "{name}: verdicts differ (vigil {ours}, jsonschema {theirs}, expected {valid})"
                );
            }
            let mut buf: Vec<u8> = Vec::with_capacity(body.len() + BODY_PADDING);
            let mut ours = || {
                // What the gateway calls on the body it forwards: the fused pass reads it in
                // place; a body left to the tape walk is copied inside, and that copy counts.
                let r = vigil.validate_slice(&body, &limits);
                std::hint::black_box(r.is_ok());
            };
            let mut theirs = || {
                let ok =
                    serde_json::from_slice::<Value>(&body).map(|val| peer.validate(&val).is_ok());
                std::hint::black_box(ok.is_ok());
            };
            let (v, p) = measure_pair(body.len(), budget, &mut ours, &mut theirs);
            let fused = vigil.validate_fused(&body, &limits).is_some();
            let mut walk = || {
                buf.clear();
                buf.extend_from_slice(&body);
                let r = vigil.validate_bytes_by_tape(&mut buf, &limits);
                std::hint::black_box(r.is_ok());
            };
            let (w, _) = measure_pair(body.len(), budget / 2, &mut walk, &mut || {});
            let mut buffers = simd_json::Buffers::new(body.len());
            let mut tape_store = simd_json::Tape(Vec::new());
            let mut tape_only = || {
                buf.clear();
                buf.extend_from_slice(&body);
                let mut tape =
                    std::mem::replace(&mut tape_store, simd_json::Tape(Vec::new())).reset();
                let ok = simd_json::fill_tape(&mut buf, &mut buffers, &mut tape).is_ok();
                std::hint::black_box(ok);
                tape_store = tape.reset();
            };
            let mut value_only = || {
                std::hint::black_box(serde_json::from_slice::<Value>(&body).is_ok());
            };
            let (t, sv) = measure_pair(body.len(), budget / 2, &mut tape_only, &mut value_only);
            let parse_only = ParseOnly {
                simd_json_tape: t,
                serde_json_value: sv,
            };
            let speedup = p.ns_per_request / v.ns_per_request;
            cases.push(Case {
                parse_only,
                name,
                bytes: body.len(),
                valid,
                vigil: v,
                fused,
                vigil_tape_walk: w,
                serde_json_jsonschema: p,
                speedup,
            });
        }
    }
    let min_speedup = cases
        .iter()
        .map(|c| c.speedup)
        .fold(f64::INFINITY, f64::min);
    let v64 = cases
        .iter()
        .find(|c| c.name == "64KiB-valid")
        .map_or(0.0, |c| c.vigil.mb_per_s);
    Ok(Report {
        harness: "vigil-perf-schema",
        peer: "serde_json::from_slice + jsonschema 0.61 (formats asserted)",
        threads: 1,
        seconds_per_measurement: budget.as_secs_f64(),
        rounds: ROUNDS,
        loadavg: std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_string(),
        targets: Targets {
            min_speedup: 3.0,
            min_speedup_met: min_speedup >= 3.0,
            valid_64k_min_mb_per_s: 1000.0,
            valid_64k_mb_per_s: v64,
            valid_64k_met: v64 >= 1000.0,
        },
        cases,
    })
}

/// A small fixed-width table of the report.
pub fn table(r: &Report) -> String {
    let mut s = format!(
        "{:<14} {:>8} {:>10} {:>9} {:>5} {:>10} {:>9} {:>8} | {:>9} {:>11} {:>11}\n",
        "payload",
        "bytes",
        "vigil ns",
        "vigil MB/s",
        "fused",
        "peer ns",
        "peer MB/s",
        "speedup",
        "walk MB/s",
        "tape MB/s",
        "serde MB/s"
    );
    for c in &r.cases {
        s.push_str(&format!(
            "{:<14} {:>8} {:>10.0} {:>9.1} {:>5} {:>10.0} {:>9.1} {:>7.2}x | {:>9.1} {:>11.1} {:>11.1}\n",
            c.name,
            c.bytes,
            c.vigil.ns_per_request,
            c.vigil.mb_per_s,
            if c.fused { "yes" } else { "no" },
            c.serde_json_jsonschema.ns_per_request,
            c.serde_json_jsonschema.mb_per_s,
            c.speedup,
            c.vigil_tape_walk.mb_per_s,
            c.parse_only.simd_json_tape.mb_per_s,
            c.parse_only.serde_json_value.mb_per_s,
        ));
    }
    s.push_str(
        "(fused: Vigil's one-pass parse and validation decided the payload; walk: Vigil's \
         simd-json tape + walk, the path of bodies the fused pass leaves to it; tape / serde: \
         parsing alone)\n",
    );
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn payloads_hit_their_sizes_and_verdicts() {
        let v = Validator::compile(
            &payload::order_schema(),
            Dialect::Draft2020_12,
            &CompileOptions::default(),
        )
        .unwrap();
        for size in [1024usize, 64 * 1024] {
            let good = payload::order(size, true);
            assert!(
                good.len() >= size && good.len() < size + size / 4 + 512,
                "{size}: {}",
                good.len()
            );
            assert!(
                v.validate_bytes(&mut good.clone(), &Limits::default())
                    .is_ok()
            );
            // The fused pass decides both, as the tape walk would.
            let bad = payload::order(size, false);
            let limits = Limits::default();
            assert_eq!(v.validate_fused(&good, &limits), Some(Ok(())));
            assert_eq!(
                v.validate_fused(&bad, &limits),
                Some(v.validate_bytes_by_tape(&mut bad.clone(), &limits))
            );
            let r = v
                .validate_bytes(&mut bad.clone(), &Limits::default())
                .unwrap_err();
            assert_eq!(r.violations[0].keyword, "minimum");
            assert!(r.violations[0].instance_location.ends_with("/qty"));
        }
    }

    #[test]
    fn pair_measurement_keeps_both_sides() {
        let (mut a, mut b) = (0u64, 0u64);
        let (fa, fb) = measure_pair(100, Duration::from_millis(20), &mut || a += 1, &mut || {
            b += 1
        });
        assert!(fa.iterations >= 3 * u64::from(ROUNDS) && fb.iterations >= 3 * u64::from(ROUNDS));
        assert!(fa.ns_per_request.is_finite() && fb.mb_per_s > 0.0);
        assert!(a > 0 && b > 0);
    }
}
