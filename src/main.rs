//! The `holdline` binary: parse the command line, set up logging, run.
//!
//! What it prints goes through [`say`], which ignores a failed write:
//! `print!` panics when standard output is a closed pipe
//! (`holdline --help | head -1`).

use std::io::Write;
use std::process::ExitCode;

use holdline::config::{Command, Config, ConfigError, help_text, parse_args};
use holdline::reactor::{run_workers, start};

fn main() -> ExitCode {
    // What a SIGUSR2 upgrade starts again: this binary's path and arguments.
    holdline::upgrade::remember_command_line();
    let config = match parse_args(std::env::args_os().skip(1)) {
        Ok(Command::Serve(config)) => *config,
        Ok(Command::Check(config)) => return check(config),
        Ok(Command::HashPassword { cost }) => return hash_password(cost),
        Ok(Command::Man { config_file }) => {
            let page = match config_file {
                false => holdline::config::docs::man_page(),
                true => holdline::config::docs::config_man_page(),
            };
            say(std::io::stdout(), format_args!("{page}"));
            return ExitCode::SUCCESS;
        }
        Ok(Command::Completions(shell)) => {
            let script = holdline::config::docs::completions(shell).unwrap_or_default();
            say(std::io::stdout(), format_args!("{script}"));
            return ExitCode::SUCCESS;
        }
        Ok(Command::Help) => {
            say(std::io::stdout(), format_args!("{}", help_text()));
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            say(
                std::io::stdout(),
                format_args!(
                    "holdline {} ({}, rustls {}, aws-lc {})\n",
                    env!("CARGO_PKG_VERSION"),
                    env!("HOLDLINE_COMMIT"),
                    env!("HOLDLINE_RUSTLS"),
                    env!("HOLDLINE_AWS_LC"),
                ),
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

/// `holdline hash-password`: reads one line (the password, without its
/// newline) from standard input and prints its bcrypt hash, for a line
/// `user:HASH` of an `auth` rule's users file.
fn hash_password(cost: u32) -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        say(std::io::stderr(), format_args!("holdline: error: {e}\n"));
        return ExitCode::from(1);
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        say(
            std::io::stderr(),
            format_args!("holdline: error: no password on standard input\n"),
        );
        return ExitCode::from(2);
    }
    match holdline::serve::auth::hash_password(password, cost) {
        Ok(hash) => {
            say(std::io::stdout(), format_args!("{hash}\n"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            say(std::io::stderr(), format_args!("holdline: error: {e}\n"));
            ExitCode::from(1)
        }
    }
}

/// `holdline check`: what the configuration would serve on standard
/// output, then every problem and warning on standard error; exit 0 when
/// it can serve, 1 when it cannot.
fn check(config: Result<Box<Config>, Vec<ConfigError>>) -> ExitCode {
    let config = match config {
        Ok(config) => config,
        Err(errors) => {
            for e in &errors {
                say(std::io::stderr(), format_args!("holdline: error: {e}\n"));
            }
            let n = errors.len();
            let s = if n == 1 { "" } else { "s" };
            say(
                std::io::stderr(),
                format_args!("holdline: the configuration has {n} error{s}\n"),
            );
            return ExitCode::from(1);
        }
    };
    let checked = holdline::check::check(&config);
    say(std::io::stdout(), format_args!("{}", checked.report));
    for warning in &checked.warnings {
        say(
            std::io::stderr(),
            format_args!("holdline: warning: {warning}\n"),
        );
    }
    for problem in &checked.problems {
        say(
            std::io::stderr(),
            format_args!("holdline: error: {problem}\n"),
        );
    }
    if checked.problems.is_empty() {
        say(
            std::io::stderr(),
            format_args!("holdline: the configuration is ok\n"),
        );
        ExitCode::SUCCESS
    } else {
        let n = checked.problems.len();
        let s = if n == 1 { "" } else { "s" };
        say(
            std::io::stderr(),
            format_args!("holdline: the configuration has {n} error{s}\n"),
        );
        ExitCode::from(1)
    }
}

/// Writes `text` to `out`; a reader that went away is not an error worth
/// more than the exit status.
fn say(mut out: impl Write, text: std::fmt::Arguments<'_>) {
    let _ = out.write_fmt(text);
}
