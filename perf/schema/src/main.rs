//! `vigil-perf-schema [--seconds S] [--out PATH]`: see the library for what it measures.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let mut seconds = 1.0f64;
    let mut out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../results/schema.json");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = args.next().context("--seconds needs a value")?.parse()?;
                if !(0.01..=60.0).contains(&seconds) {
                    bail!("--seconds must be between 0.01 and 60");
                }
            }
            "--out" => out = PathBuf::from(args.next().context("--out needs a path")?),
            other => bail!(
                "unknown argument {other}; usage: vigil-perf-schema [--seconds S] [--out PATH]"
            ),
        }
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; run with --release for meaningful figures");
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
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}
