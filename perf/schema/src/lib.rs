//! Benchmark: Vigil's schema validator (bytes -> simd-json tape -> compiled tree) against
//! `serde_json::from_slice` + the `jsonschema` crate, on the same schema and payloads, in the
//! same run, on one thread. Writes `perf/results/schema.json` and prints a table.

pub mod payload;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;
use vigil_schema::{CompileOptions, Dialect, Limits, Validator};

/// Figures for one implementation on one payload.
#[derive(Debug, Clone, Serialize)]
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
    pub serde_json_jsonschema: Figures,
    /// Peer time / Vigil time.
    pub speedup: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub harness: &'static str,
    pub peer: &'static str,
    pub threads: u32,
    pub seconds_per_measurement: f64,
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

/// Runs `f` repeatedly for about `budget` (at least 3 times, at most `max_iters`), after one
/// warm-up call, and returns the mean.
fn measure(bytes: usize, budget: Duration, max_iters: u64, mut f: impl FnMut()) -> Figures {
    f();
    let start = Instant::now();
    let mut iterations = 0u64;
    while iterations < 3 || (start.elapsed() < budget && iterations < max_iters) {
        f();
        iterations += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let per = secs / iterations as f64;
    Figures {
        iterations,
        ns_per_request: per * 1e9,
        mb_per_s: bytes as f64 / per / 1e6,
    }
}

/// Measures every payload; `budget` is the time spent per implementation per payload.
pub fn run(budget: Duration) -> Result<Report> {
    let schema = payload::order_schema();
    let opts = CompileOptions {
        reject_read_only: true,
        ..CompileOptions::default()
    };
    let vigil = Validator::compile(&schema, Dialect::Draft2020_12, &opts)
        .context("compiling the benchmark schema with vigil-schema")?;
    let peer = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| anyhow::anyhow!("compiling the benchmark schema with jsonschema: {e}"))?;
    let limits = Limits {
        max_array_len: 1_000_000,
        ..Limits::default()
    };

    let mut cases = Vec::new();
    for (label, size) in [
        ("1KiB", 1024usize),
        ("64KiB", 64 * 1024),
        ("1MiB", 1024 * 1024),
    ] {
        for valid in [true, false] {
            let body = payload::order(size, valid);
            let name = format!("{label}-{}", if valid { "valid" } else { "invalid" });
            // Both must agree before their speed means anything.
            let mut scratch = body.clone();
            let ours = vigil.validate_bytes(&mut scratch, &limits).is_ok();
            let value: Value = serde_json::from_slice(&body)?;
            let theirs = peer.is_valid(&value);
            if ours != valid || theirs != valid {
                bail!(
                    "{name}: verdicts differ (vigil {ours}, jsonschema {theirs}, expected {valid})"
                );
            }
            let mut buf: Vec<u8> = Vec::with_capacity(body.len());
            let v = measure(body.len(), budget, 10_000_000, || {
                // The copy is part of the cost: simd-json needs a mutable buffer.
                buf.clear();
                buf.extend_from_slice(&body);
                let r = vigil.validate_bytes(&mut buf, &limits);
                std::hint::black_box(r.is_ok());
            });
            let p = measure(body.len(), budget, 10_000_000, || {
                let ok =
                    serde_json::from_slice::<Value>(&body).map(|val| peer.validate(&val).is_ok());
                std::hint::black_box(ok.is_ok());
            });
            let speedup = p.ns_per_request / v.ns_per_request;
            cases.push(Case {
                name,
                bytes: body.len(),
                valid,
                vigil: v,
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
        "{:<14} {:>9} {:>12} {:>10} {:>12} {:>10} {:>8}\n",
        "payload", "bytes", "vigil ns", "vigil MB/s", "peer ns", "peer MB/s", "speedup"
    );
    for c in &r.cases {
        s.push_str(&format!(
            "{:<14} {:>9} {:>12.0} {:>10.1} {:>12.0} {:>10.1} {:>7.2}x\n",
            c.name,
            c.bytes,
            c.vigil.ns_per_request,
            c.vigil.mb_per_s,
            c.serde_json_jsonschema.ns_per_request,
            c.serde_json_jsonschema.mb_per_s,
            c.speedup
        ));
    }
    s
}
