//! The `holdline` binary: parse the command line, set up logging, run.
//!
//! What it prints goes through [`say`], which ignores a failed write:
//! `print!` panics when standard output is a closed pipe
//! (`holdline --help | head -1`).

use std::io::Write;
use std::process::ExitCode;

use holdline::config::{Command, help_text, parse_args};
use holdline::reactor::{run_workers, start};

fn main() -> ExitCode {
    // What a SIGUSR2 upgrade starts again: this binary's path and arguments.
    holdline::upgrade::remember_command_line();
    let config = match parse_args(std::env::args_os().skip(1)) {
        Ok(Command::Serve(config)) => *config,
        Ok(Command::Help) => {
            say(std::io::stdout(), format_args!("{}", help_text()));
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            say(
                std::io::stdout(),
                format_args!("holdline {}\n", env!("CARGO_PKG_VERSION")),
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            say(
                std::io::stderr(),
                format_args!("holdline: error: {e} (see --help)\n"),
            );
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let servers = match start(config) {
        Ok(servers) => servers,
        Err(e) => {
            say(std::io::stderr(), format_args!("holdline: error: {e}\n"));
            return ExitCode::from(1);
        }
    };
    match run_workers(servers) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(std::io::stderr(), format_args!("holdline: error: {e}\n"));
            ExitCode::from(1)
        }
    }
}

/// Writes `text` to `out`; a reader that went away is not an error worth
/// more than the exit status.
fn say(mut out: impl Write, text: std::fmt::Arguments<'_>) {
    let _ = out.write_fmt(text);
}
