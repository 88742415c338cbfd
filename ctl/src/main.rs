use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = vigil_ctl::cli::Cli::parse();
    match vigil_ctl::run(&cli) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigilctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
