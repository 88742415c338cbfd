//! `vigild --config FILE`: Vigil's daemon.

use std::path::PathBuf;

use clap::Parser;

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
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    vigil_dataplane::logging::init(args.log_format);
    if args.check {
        return check(&args.config);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vigild: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(vigil_dataplane::daemon::run(args.config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigild: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `--check`: the check a start and every reload run, reported like `nginx -t`.
fn check(config: &std::path::Path) -> std::process::ExitCode {
    match vigil_dataplane::config::check(config) {
        Ok(checked) => {
            for w in &checked.warnings {
                eprintln!("vigild: warning: {w}");
            }
            println!("vigild: config {} ok", config.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigild: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
