//! vigil-perf-xdp: cost per packet of Vigil's XDP program against a bare `XDP_DROP` (both via
//! `BPF_PROG_TEST_RUN` with repeat, same run, same frame size), and veth drop rate of Vigil
//! against an nftables drop rule with the same bounded sender. Prints a table and writes JSON
//! (default `perf/results/xdp.json`). Needs root.

mod blocklist;
mod cost;
mod frame;
mod report;
mod sender;
mod stop;
mod syn;
mod veth;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-perf-xdp",
    about = "Vigil XDP program cost and veth drop rate, against references"
)]
struct Args {
    /// Runs per BPF_PROG_TEST_RUN call.
    #[arg(long, default_value_t = 1_000_000)]
    repeat: u32,
    /// Test-run rounds per case (the median is reported).
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Entries in the generated blocklist.
    #[arg(long, default_value_t = 10_000)]
    blocklist: usize,
    /// Entries in the large, feed-shaped blocklist (0 leaves its cases out).
    #[arg(long, default_value_t = 1_000_000)]
    large: usize,
    /// Frame length in bytes for every case (Ethernet + IPv4 + UDP + padding, no FCS).
    #[arg(long, default_value_t = 64)]
    frame_len: usize,
    /// Most packets the veth sender sends per run.
    #[arg(long, default_value_t = 3_000_000)]
    veth_packets: u64,
    /// Most seconds the veth sender runs per run.
    #[arg(long, default_value_t = 5.0)]
    veth_seconds: f64,
    /// Frames per sendmmsg call.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Only the program-cost cases.
    #[arg(long)]
    skip_veth: bool,
    /// Exit with status 2 when a Vigil case adds more than its target to the bare drop
    /// (5 ns with no rules, 20 ns IPv4 and 40 ns IPv6 with a list and the rate limiter).
    #[arg(long)]
    check: bool,
    /// Single runs of each SYN-cookie case (an answered SYN is rewritten, so no repeat).
    #[arg(long, default_value_t = 20_000)]
    syn_runs: usize,
    /// Where the JSON goes.
    #[arg(long, default_value_os_t = default_out())]
    out: PathBuf,
}

fn default_out() -> PathBuf {
    let perf = Path::new(env!("CARGO_MANIFEST_DIR"));
    perf.parent().unwrap_or(perf).join("results/xdp.json")
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil-perf-xdp: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    anyhow::ensure!(
        args.veth_seconds.is_finite() && args.veth_seconds > 0.0,
        "--veth-seconds must be a positive number"
    );
    stop::install();
    let started = report::timestamp();
    let machine = vigil_testkit::machine::machine();

    let cost = cost::run(cost::Options {
        repeat: args.repeat,
        rounds: args.rounds,
        frame_len: args.frame_len,
        blocklist: args.blocklist,
        large: args.large,
    })?;
    report::print_cost(&cost);
    let syn = syn::run(args.syn_runs, args.repeat, args.rounds).context("SYN guard cost")?;
    report::print_syn(&syn);

    let veth = if args.skip_veth {
        None
    } else {
        let mut list = cost::blocklist(args.blocklist);
        // The sender's own /32 is added by the veth run; drop one generated entry to keep
        // the size the same as the program-cost cases.
        list.pop();
        let r = veth::run(&veth::Options {
            limits: sender::Limits {
                packets: args.veth_packets,
                duration: Duration::from_secs_f64(args.veth_seconds),
                batch: args.batch,
            },
            frame_len: args.frame_len,
            blocklist: list,
        })
        .context("veth drop-rate comparison");
        match &r {
            Ok(r) => report::print_veth(r),
            Err(e) => eprintln!("vigil-perf-xdp: {e:#}"),
        }
        Some(r)
    };

    // The program-cost numbers are written even when the veth part failed.
    report::write(&args.out, &cost, &syn, veth.as_ref(), machine, &started)?;
    println!("\nwrote {}", args.out.display());
    if matches!(veth, Some(Err(_))) {
        return Ok(ExitCode::FAILURE);
    }

    let missed = cost.missed();
    if args.check && !missed.is_empty() {
        for c in missed {
            eprintln!(
                "vigil-perf-xdp: {} adds {:.1} ns to the bare drop, over its {:.0} ns target",
                c.key,
                cost.extra_ns(c),
                c.target_extra_ns.unwrap_or(f64::NAN)
            );
        }
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
