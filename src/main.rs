//! The `holdline` binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use holdline::config::{Command, help_text, parse_args};
use holdline::reactor::{run_workers, start};

fn main() -> ExitCode {
    let config = match parse_args(std::env::args_os().skip(1)) {
        Ok(Command::Serve(config)) => *config,
        Ok(Command::Help) => {
            print!("{}", help_text());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("holdline {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("holdline: error: {e} (see --help)");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let servers = match start(config) {
        Ok(servers) => servers,
        Err(e) => {
            eprintln!("holdline: error: {e}");
            return ExitCode::from(1);
        }
    };
    match run_workers(servers) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("holdline: error: {e}");
            ExitCode::from(1)
        }
    }
}
