//! `vigil-perf-schema --help`: see the library for what it measures.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-perf-schema",
    about = "Vigil's schema validator against serde_json + the jsonschema crate on the same \
             schema and payloads"
)]
struct Args {
    /// Seconds per implementation and payload (0.01 to 60).
    #[arg(long, default_value_t = 1.0, value_parser = seconds)]
    seconds: f64,
    /// Where the JSON goes.
    #[arg(long, default_value_os_t = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../results/schema.json"))]
    out: PathBuf,
    /// Only run Vigil's validator on this payload (`64KiB-valid`, ...) for `--seconds`, for a
    /// profiler to attach to; prints MB/s and writes nothing.
    #[arg(long)]
    profile: Option<String>,
    /// With `--profile`: run exactly this many validations instead of `--seconds` (for
    /// instruction counts that do not depend on the machine's load).
    #[arg(long)]
    iterations: Option<u64>,
    /// With `--profile`: run the tape walk (simd-json tape, prepass, walk) instead of the
    /// validator's usual path, which is the fused pass where it applies.
    #[arg(long)]
    tape_walk: bool,
}

fn seconds(text: &str) -> Result<f64, String> {
    let s: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if (0.01..=60.0).contains(&s) {
        Ok(s)
    } else {
        Err("must be between 0.01 and 60".to_owned())
    }
}

fn main() -> Result<()> {
    let Args {
        seconds,
        out,
        profile,
        iterations,
        tape_walk,
    } = Args::parse();
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; run with --release for meaningful figures");
    }
    if let Some(name) = profile {
        let f = vigil_perf_schema::profile(
            &name,
            Duration::from_secs_f64(seconds),
            iterations,
            tape_walk,
        )?;
        println!(
            "{name}: vigil {:.1} MB/s, {:.0} ns",
            f.mb_per_s, f.ns_per_request
        );
        return Ok(());
    }
    let report = vigil_perf_schema::run(Duration::from_secs_f64(seconds))?;
    print!("{}", vigil_perf_schema::table(&report));
    println!(
        "min speedup {:.2}x (target >= 3x: {}), 64KiB valid {:.0} MB/s (target >= 1000: {})",
        report
            .cases
            .iter()
            .map(|c| c.speedup)
            .fold(f64::INFINITY, f64::min),
        report.targets.min_speedup_met,
        report.targets.valid_64k_mb_per_s,
        report.targets.valid_64k_met
    );
    vigil_testkit::machine::write_report(&out, &report)?;
    println!("wrote {}", out.display());
    Ok(())
}
