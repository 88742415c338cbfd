use std::process::ExitCode;

use clap::Parser;
use vigil_ctl::exit;

fn main() -> ExitCode {
    // Known before parsing, so a refused command line is reported as JSON too.
    let json = std::env::args_os().any(|a| a == "--json");
    let cli = match vigil_ctl::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return exit::report_clap(&e, json),
    };
    match vigil_ctl::run(&cli) {
        Ok(out) => {
            exit::print(&out.text);
            out.exit.into()
        }
        Err(e) => exit::report(&e, cli.json),
    }
}
