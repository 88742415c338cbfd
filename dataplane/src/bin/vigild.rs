//! `vigild --config FILE`: Vigil's daemon.

use std::path::PathBuf;

use clap::Parser;

/// mimalloc (see `vigil_dataplane::alloc`), tuned first thing in `main`.
#[global_allocator]
static ALLOCATOR: vigil_dataplane::alloc::Allocator = vigil_dataplane::alloc::Allocator {};

#[derive(Debug, Parser)]
#[command(name = "vigild", version, about = "Vigil gateway daemon")]
struct Args {
    /// Configuration file (TOML; see docs/config.md).
    #[arg(long, short, default_value = "/etc/vigil/vigild.toml")]
    config: PathBuf,
    /// Check the configuration as a start would, short of binding and attaching, and exit:
    /// 0 and `vigild: config FILE ok`, or 1 and `vigild: FILE:LINE: KEY: what to do`.
    #[arg(long)]
    check: bool,
    /// Log lines as text or as one JSON object per line (also VIGIL_LOG_FORMAT). Under
    /// systemd each line carries its journald priority either way.
    #[arg(long, value_enum, env = "VIGIL_LOG_FORMAT", default_value = "text")]
    log_format: vigil_dataplane::logging::LogFormat,
    /// The async runtime (also VIGIL_RUNTIME): `multi-thread` spreads the work over
    /// TOKIO_WORKER_THREADS threads (one per CPU by default) with work stealing;
    /// `current-thread` runs it all on one thread, with no wake-ups across threads: about 15%
    /// less CPU per request (perf/tls), for a one-core box or a vigild pinned to one CPU.
    #[arg(
        long,
        value_enum,
        env = "VIGIL_RUNTIME",
        default_value = "multi-thread"
    )]
    runtime: Runtime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Runtime {
    MultiThread,
    CurrentThread,
}

fn main() -> std::process::ExitCode {
    vigil_dataplane::alloc::tune();
    let args = Args::parse();
    vigil_dataplane::logging::init(args.log_format);
    if args.check {
        return check(&args.config);
    }
    let mut builder = match args.runtime {
        Runtime::MultiThread => tokio::runtime::Builder::new_multi_thread(),
        Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread(),
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            fatal(&format!("vigild: cannot start the runtime: {e}"));
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(vigil_dataplane::daemon::run(args.config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            fatal(&format!("vigild: {}", chain(&e)));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `--check`: the check a start and every reload run, reported like `nginx -t`.
fn check(config: &std::path::Path) -> std::process::ExitCode {
    match vigil_dataplane::config::check(config) {
        Ok(checked) => {
            for w in &checked.warnings {
                report(4, &format!("vigild: warning: {w}"));
            }
            println!("vigild: config {} ok", config.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            fatal(&format!("vigild: {e}"));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Writes a line to stderr; under the journal it carries syslog priority `prio`, so a refused
/// start shows as an error in `journalctl -p err` and on the console.
fn report(prio: u8, line: &str) {
    if vigil_dataplane::logging::stderr_is_journal() {
        eprintln!("<{prio}>{line}");
    } else {
        eprintln!("{line}");
    }
}

fn fatal(line: &str) {
    report(3, line);
}

/// The error and its causes, each cause once: most errors here already quote their source in
/// their own message, which `{:#}` would repeat.
fn chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}
