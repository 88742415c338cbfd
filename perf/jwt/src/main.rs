//! JWT verification rate, one thread, per algorithm: ring's signature check alone (the floor),
//! `vigil_identity::verify` (parse, key lookup, signature, claims), `Verifier::verify_uncached`
//! (the same plus the key-set lookup: a cache miss), and `Verifier::verify` cache hits. Writes
//! perf/results/jwt.json and prints a table.
//!
//! Usage: `vigil-perf-jwt --help`.

mod keys;

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;
use vigil_identity::{Jwks, JwksLocation, JwksOptions, KeySet, Validation, Verifier, verify};
use vigil_testkit::load::median;
use vigil_testkit::machine::{cpu_model, nproc, write_report};

#[derive(Debug, Parser)]
#[command(
    name = "vigil-perf-jwt",
    about = "JWT verifications per second by algorithm: ring's signature check alone against \
             vigil_identity's verify, a verifier cache miss and a cache hit"
)]
struct Args {
    /// Measured seconds per case and algorithm.
    #[arg(long, default_value_t = 1.0)]
    secs: f64,
    /// Rounds each case's seconds are cut into (the median round is reported).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Where the JSON goes.
    #[arg(long, default_value_os_t = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../results/jwt.json"))]
    out: PathBuf,
}

fn parse_args() -> anyhow::Result<Args> {
    let args = Args::parse();
    if !args.secs.is_finite() || args.secs <= 0.0 || args.rounds == 0 {
        bail!("--secs must be > 0 and --rounds >= 1");
    }
    Ok(args)
}

/// The cases, in the order they run inside a round.
const CASES: [&str; 4] = ["ring_raw", "verify", "verifier_miss", "verifier_hit"];

#[derive(Debug, Clone, serde::Serialize)]
struct CaseResult {
    alg: &'static str,
    case: &'static str,
    iterations: u64,
    seconds: f64,
    /// Median over rounds.
    per_second: f64,
    ns_per_op: f64,
    rounds_per_second: Vec<f64>,
}

/// Runs `op` in batches until `limit` has passed; returns (iterations, seconds).
fn timed(limit: Duration, batch: u64, mut op: impl FnMut() -> bool) -> anyhow::Result<(u64, f64)> {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < limit {
        for _ in 0..batch {
            if !black_box(op()) {
                bail!("a verification failed during the run");
            }
        }
        n += batch;
    }
    Ok((n, start.elapsed().as_secs_f64()))
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let work = tempfile::tempdir()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    // A realistic access token: issuer, audience, subject, scopes, an hour of validity.
    let claims = json!({
        "iss": "https://idp.example.com/",
        "aud": "https://api.example.com",
        "sub": "user-3f2a9c",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "scope": "orders:read orders:write profile",
        "tenant": "t-42",
        "jti": "b7c3c1a2-5f0e-4d6e-9a1b-8e2f4c6d7a90",
    });
    let signed = keys::sign_all(&claims)?;
    let jwks_doc = json!({"keys": signed.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>()});
    let jwks_path = work.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks_doc.to_string())?;
    let key_set = KeySet::from_jwks(jwks_doc.to_string().as_bytes())?;
    let validation = Validation {
        issuers: vec!["https://idp.example.com/".into()],
        audiences: vec!["https://api.example.com".into()],
        ..Validation::default()
    };
    let jwks = Arc::new(Jwks::new(
        JwksLocation::File(jwks_path),
        JwksOptions::default(),
    )?);
    let verifier = Verifier::new(jwks, validation.clone(), 1024);
    let rt = tokio::runtime::Builder::new_current_thread().build()?;

    let per_round = Duration::from_secs_f64(args.secs / f64::from(args.rounds));
    let mut results = Vec::new();
    for s in &signed {
        let alg = s.alg.as_str();
        eprintln!("{alg}...");
        // Every path must accept the token before it is timed.
        if !s.raw_verify() {
            bail!("{alg}: ring rejects the token");
        }
        verify(&s.token, &key_set, &validation, now).with_context(|| format!("{alg}: verify"))?;
        rt.block_on(verifier.verify(&s.token))
            .with_context(|| format!("{alg}: verifier"))?;
        // Batches short enough to stop near the limit, long enough that reading the clock is
        // noise: RSA verifies in tens of µs, a cache hit in well under one.
        let batch = |case: &str| if case == "verifier_hit" { 1024 } else { 16 };
        let mut rounds: Vec<Vec<(u64, f64)>> = vec![Vec::new(); CASES.len()];
        // A short warm-up, then rounds interleaving the cases so drift hits them all alike.
        for round in 0..=args.rounds {
            let limit = if round == 0 {
                per_round.min(Duration::from_millis(100))
            } else {
                per_round
            };
            for (i, case) in CASES.iter().enumerate() {
                let r = match *case {
                    "ring_raw" => timed(limit, batch(case), || s.raw_verify())?,
                    "verify" => timed(limit, batch(case), || {
                        verify(&s.token, &key_set, &validation, now).is_ok()
                    })?,
                    "verifier_miss" => rt.block_on(async {
                        let start = Instant::now();
                        let mut n = 0u64;
                        while start.elapsed() < limit {
                            for _ in 0..batch(case) {
                                black_box(verifier.verify_uncached(&s.token).await)?;
                            }
                            n += batch(case);
                        }
                        Ok::<_, vigil_identity::JwtError>((n, start.elapsed().as_secs_f64()))
                    })?,
                    _ => rt.block_on(async {
                        let start = Instant::now();
                        let mut n = 0u64;
                        while start.elapsed() < limit {
                            for _ in 0..batch(case) {
                                black_box(verifier.verify(&s.token).await)?;
                            }
                            n += batch(case);
                        }
                        Ok::<_, vigil_identity::JwtError>((n, start.elapsed().as_secs_f64()))
                    })?,
                };
                if round > 0 {
                    rounds[i].push(r);
                }
            }
        }
        for (i, case) in CASES.iter().enumerate() {
            let rates: Vec<f64> = rounds[i].iter().map(|&(n, t)| n as f64 / t).collect();
            let iterations = rounds[i].iter().map(|r| r.0).sum();
            let seconds = rounds[i].iter().map(|r| r.1).sum();
            let per_second = median(rates).unwrap_or(0.0);
            results.push(CaseResult {
                alg,
                case,
                iterations,
                seconds,
                per_second,
                ns_per_op: 1e9 / per_second,
                rounds_per_second: rounds[i].iter().map(|&(n, t)| n as f64 / t).collect(),
            });
        }
    }

    let rate = |alg: &str, case: &str| {
        results
            .iter()
            .find(|r| r.alg == alg && r.case == case)
            .map_or(0.0, |r| r.per_second)
    };
    let mut ratios = serde_json::Map::new();
    for s in &signed {
        let a = s.alg.as_str();
        let (raw, plain, miss, hit) = (
            rate(a, "ring_raw"),
            rate(a, "verify"),
            rate(a, "verifier_miss"),
            rate(a, "verifier_hit"),
        );
        ratios.insert(
            a.to_owned(),
            json!({
                // Cost of a full verification relative to the signature check alone (1.0 = no
                // overhead at all).
                "verify_cost_vs_ring_raw": raw / plain,
                "verify_overhead_ns": 1e9 / plain - 1e9 / raw,
                "miss_cost_vs_ring_raw": raw / miss,
                "cache_hit_speedup_vs_miss": hit / miss,
                "token_bytes": s.token.len(),
            }),
        );
    }
    let report = json!({
        "benchmark": "jwt",
        "what": "single-thread JWT verifications per second by algorithm: ring's signature check \
            alone (the floor) against vigil_identity::verify, Verifier::verify_uncached (a cache \
            miss) and Verifier::verify cache hits; RSA keys are 2048-bit",
        "cpu": cpu_model(),
        "logical_cpus": nproc(),
        "secs_per_case": args.secs,
        "rounds": args.rounds,
        "results": results,
        "ratios": ratios,
    });
    write_report(&args.out, &report)?;

    println!(
        "{:<6} {:>12} {:>12} {:>14} {:>14} {:>9} {:>9} {:>10}",
        "alg",
        "ring raw/s",
        "verify/s",
        "verifier miss/s",
        "verifier hit/s",
        "cost",
        "+ns",
        "hit/miss"
    );
    for s in &signed {
        let a = s.alg.as_str();
        let (raw, plain, miss, hit) = (
            rate(a, "ring_raw"),
            rate(a, "verify"),
            rate(a, "verifier_miss"),
            rate(a, "verifier_hit"),
        );
        println!(
            "{:<6} {:>12.0} {:>12.0} {:>14.0} {:>14.0} {:>8.3}x {:>9.0} {:>9.0}x",
            a,
            raw,
            plain,
            miss,
            hit,
            raw / plain,
            1e9 / plain - 1e9 / raw,
            hit / miss
        );
    }
    println!();
    println!("cost: verify time / ring raw time; +ns: what verify adds per token;");
    println!("hit/miss: how many times faster a cache hit is than a miss");
    println!("wrote {}", args.out.display());
    Ok(())
}
