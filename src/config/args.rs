//! The command line, `--help`, and building a configuration: defaults,
//! then the `--config` file's keys, then the command line's options.

use std::ffi::OsString;
use std::path::PathBuf;

use super::Config;
use super::error::ConfigError;
use super::file::file_entries;
use super::options::{Builder, OPTIONS, OptionSpec, Show, Topic, option};

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Serve(Box<Config>),
    /// `holdline check [OPTIONS]`: the configuration the same options
    /// would serve, or every mistake found in it.
    Check(Result<Box<Config>, Vec<ConfigError>>),
    /// `holdline hash-password [--cost N]`: a bcrypt hash of the password
    /// read from standard input, for an `auth` rule's users file.
    HashPassword {
        cost: u32,
    },
    /// `holdline man [toml]`: `holdline(1)`, or `holdline.toml(5)`, in
    /// roff (what the package installs).
    Man {
        config_file: bool,
    },
    /// `holdline completions SHELL`: the completion script for it.
    Completions(&'static str),
    Help,
    Version,
}

/// The `--help` text, generated from [`OPTIONS`].
pub fn help_text() -> String {
    let defaults = Config::default();
    let mut text = format!(
        "holdline {}: a static-file HTTP/1.1 server on one epoll reactor\n\n\
         Usage: holdline [OPTIONS] [ROOT]\n       \
         holdline check [OPTIONS] [ROOT]   (check the configuration, print what it serves)\n       \
         holdline hash-password [--cost N] (a bcrypt hash of the password on standard input)\n       \
         holdline completions bash|zsh|fish, holdline man [toml]\n\n\
         Arguments:\n  [ROOT]  directory to serve [default: .]\n",
        env!("CARGO_PKG_VERSION")
    );
    for topic in Topic::ALL {
        text.push_str(&format!("\n{}:\n", topic.heading()));
        for opt in OPTIONS.iter().filter(|o| o.topic == topic) {
            let left = match opt.value {
                Some(v) => format!("{} {v}", opt.flag),
                None => opt.flag.to_string(),
            };
            let default = opt.shown(&defaults);
            text.push_str(&format!("  {left:<30} {}", opt.help));
            if !default.is_empty() {
                text.push_str(&format!(" [default: {default}]"));
            }
            match opt.show {
                Show::Live(_) | Show::Site(_) => text.push_str(" [SIGHUP: applied]"),
                Show::Fixed(_) => text.push_str(" [SIGHUP: restart]"),
                Show::CommandLine(_) => {}
            }
            text.push('\n');
        }
    }
    text.push_str(
        "\nEvery option but --config, --help and --version is also a key of the \
         --config file.\nSignals: SIGHUP reloads the file and the certificates, \
         SIGUSR1 reopens the access log,\nSIGTERM/SIGINT shut down gracefully \
         (a second one at once).\n\
         Logging: RUST_LOG (for example RUST_LOG=debug) through env_logger.\n",
    );
    text
}

/// Parses the command line (without the program name), then the
/// `--config` file it names, if any.
pub fn parse_args<I>(args: I) -> Result<Command, ConfigError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    use lexopt::prelude::*;
    let mut given: Vec<(&'static str, String)> = Vec::new();
    let mut file: Option<PathBuf> = None;
    let mut root_given = false;
    let mut args = args.into_iter().map(Into::into).peekable();
    if args.peek().is_some_and(|first| first == "hash-password") {
        args.next();
        return hash_password_args(args);
    }
    if args.peek().is_some_and(|first| first == "man") {
        args.next();
        let page = args.next();
        return match page.as_ref().and_then(|p| p.to_str()) {
            None => Ok(Command::Man { config_file: false }),
            Some("toml") => Ok(Command::Man { config_file: true }),
            Some(other) => Err(ConfigError::Usage(format!(
                "man takes nothing (holdline(1)) or toml (holdline.toml(5)), not '{other}'"
            ))),
        };
    }
    if args.peek().is_some_and(|first| first == "completions") {
        args.next();
        let shell = args.next();
        let shell = shell.as_ref().and_then(|s| s.to_str()).unwrap_or("");
        return match super::docs::SHELLS.iter().find(|s| **s == shell) {
            Some(shell) => Ok(Command::Completions(shell)),
            None => Err(ConfigError::Usage(format!(
                "completions takes a shell: {}",
                super::docs::SHELLS.join(", ")
            ))),
        };
    }
    let check = args.peek().is_some_and(|first| first == "check");
    if check {
        args.next();
    }
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("help") | Short('h') => return Ok(Command::Help),
            Long("version") | Short('V') => return Ok(Command::Version),
            Long("config") => file = Some(PathBuf::from(parser.value()?)),
            Long(name) => {
                let Some(spec) = option(&format!("--{name}")) else {
                    return Err(arg.unexpected().into());
                };
                let value = match spec.value {
                    Some(_) => parser.value()?.string()?,
                    None => String::new(),
                };
                given.push((spec.flag, value));
            }
            Value(path) if !root_given => {
                root_given = true;
                given.push(("--root", path.string()?));
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    if check {
        return Ok(Command::Check(build_all(file, given).map(Box::new)));
    }
    Ok(Command::Serve(Box::new(build(file, given)?)))
}

/// `hash-password`'s own arguments: `--cost N` (4 to 31, default 10).
fn hash_password_args(args: impl Iterator<Item = OsString>) -> Result<Command, ConfigError> {
    use lexopt::prelude::*;
    let mut cost = 10;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("cost") => {
                let value = parser.value()?.string()?;
                cost = value
                    .parse()
                    .ok()
                    .filter(|c| (4..=31).contains(c))
                    .ok_or_else(|| {
                        ConfigError::invalid("cost", &value, "a bcrypt cost from 4 to 31")
                    })?;
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(Command::HashPassword { cost })
}

/// Defaults, then the file's keys (those the command line does not
/// give), then the command line's options in order; then each
/// `[[site]]` block: the top level's site options (but `host`) that the
/// block does not set, then the block's own. The first mistake is the
/// error (see [`build_all`] for every one).
pub(super) fn build(
    file: Option<PathBuf>,
    command_line: Vec<(&'static str, String)>,
) -> Result<Config, ConfigError> {
    build_all(file, command_line).map_err(|mut errors| errors.swap_remove(0))
}

/// [`build`], going on past a mistake to find every one (`holdline
/// check`); a file that cannot be read or is not TOML stops it at once.
/// The error list is never empty.
pub(super) fn build_all(
    file: Option<PathBuf>,
    command_line: Vec<(&'static str, String)>,
) -> Result<Config, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut builder = Builder::new();
    // The top level's site options as applied, for the blocks to inherit.
    let mut inherited: Vec<(&'static OptionSpec, &str)> = Vec::new();
    let entries = match &file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| vec![ConfigError::Usage(format!("{}: {e}", path.display()))])?;
            let entries = file_entries(path, &text, &mut errors).map_err(|e| vec![e])?;
            Some((path, entries))
        }
        None => None,
    };
    if let Some((path, entries)) = &entries {
        for entry in entries.top.iter().filter(|e| e.on) {
            let spec = entry.spec;
            if command_line.iter().any(|(flag, _)| *flag == spec.flag) {
                continue;
            }
            match (spec.apply)(&mut builder, &entry.value) {
                Ok(()) => inherited.push((spec, &entry.value)),
                Err(e) => errors.push(e.in_file(path, entry.line, Some(spec.key()))),
            }
        }
    }
    for (flag, value) in &command_line {
        if let Some(spec) = option(flag) {
            match (spec.apply)(&mut builder, value) {
                Ok(()) => inherited.push((spec, value)),
                Err(e) => errors.push(e),
            }
        }
    }
    inherited.retain(|(spec, _)| matches!(spec.show, Show::Site(_)) && spec.flag != "--host");
    if let Some((path, entries)) = &entries {
        for block in &entries.sites {
            let mut site = Builder::new();
            let before = errors.len();
            let set = |flag: &str| block.entries.iter().any(|e| e.spec.flag == flag);
            for (spec, value) in inherited.iter().filter(|(spec, _)| !set(spec.flag)) {
                if let Err(e) = (spec.apply)(&mut site, value) {
                    errors.push(e.in_file(path, block.line, Some(spec.key())));
                }
            }
            for entry in block.entries.iter().filter(|e| e.on) {
                if let Err(e) = (entry.spec.apply)(&mut site, &entry.value) {
                    errors.push(e.in_file(path, entry.line, Some(entry.spec.key())));
                }
            }
            // A block whose keys failed is not judged whole as well.
            if errors.len() > before {
                continue;
            }
            if let Err(e) = builder.add_site(site) {
                errors.push(e.in_file(path, block.line, None));
            }
        }
    }
    if !errors.is_empty() {
        // In the file's order (keys are read before they are applied).
        errors.sort_by_key(|e| match e {
            ConfigError::InFile { line, .. } => *line,
            _ => usize::MAX,
        });
        return Err(errors);
    }
    let mut config = builder.finish().map_err(|e| match &file {
        Some(path) => vec![e.in_file(path, 0, None)],
        None => vec![e],
    })?;
    config.source = super::Source { file, command_line };
    Ok(config)
}

/// The configuration a command line serves with (tests of the folder).
#[cfg(test)]
pub(super) fn serve(args: &[&str]) -> Result<Config, ConfigError> {
    match parse_args(args.iter().copied())? {
        Command::Serve(c) => Ok(*c),
        other => panic!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn defaults() {
        assert_eq!(serve(&[]).unwrap(), Config::default());
    }

    #[test]
    fn the_proxy_protocol_needs_a_trusted_proxy() {
        let err = serve(&["--proxy-protocol"]).unwrap_err().to_string();
        assert!(
            err.contains("proxy-protocol") && err.contains("--trusted-proxy"),
            "{err}"
        );
        let c = serve(&["--proxy-protocol", "--trusted-proxy", "10.0.0.0/8"]).unwrap();
        assert!(c.live.proxy_protocol);
    }

    #[test]
    fn flags_and_root() {
        let c = serve(&[
            "--listen",
            "[::1]:9000",
            "--listen=127.0.0.1:9001",
            "--keepalive-timeout",
            "0.5",
            "--max-requests",
            "3",
            "--no-tcp-keepalive",
            "/srv/www",
        ])
        .unwrap();
        assert_eq!(c.fixed.listen.len(), 2);
        assert_eq!(c.live.keepalive_timeout, Duration::from_millis(500));
        assert_eq!(c.live.max_requests, 3);
        assert_eq!(c.fixed.tcp_keepalive, None);
        assert_eq!(c.live.site.root, PathBuf::from("/srv/www"));
        assert_eq!(
            serve(&["--root", "/a"]).unwrap().live.site.root,
            PathBuf::from("/a")
        );
        // ROOT once, by flag or argument.
        assert!(serve(&["/a", "/b"]).is_err());
    }

    #[test]
    fn headers_are_checked() {
        let config = serve(&[
            "--header",
            "Access-Control-Allow-Origin:  *  ",
            "--header",
            "X-A: b c",
        ])
        .unwrap();
        assert_eq!(
            config.live.site.headers,
            ["Access-Control-Allow-Origin: *", "X-A: b c"]
        );
        for bad in [
            "NoColon",
            ": v",
            "Bad Name: v",
            "X: a\r\nY: b",
            "X: caf\u{e9}",
        ] {
            assert!(serve(&["--header", bad]).is_err(), "{bad:?}");
        }
        for reserved in [
            "Content-Length: 5",
            "transfer-encoding: chunked",
            "Connection: close",
            "Server: x",
        ] {
            let err = serve(&["--header", reserved]).unwrap_err().to_string();
            assert!(err.contains("must not set"), "{err}");
        }
    }

    #[test]
    fn mistakes_are_one_line_errors() {
        for args in [
            &["--nope"][..],
            &["--listen", "localhost"],
            &["--max-requests", "-1"],
            &["--keepalive-timeout", "soon"],
            &["--header-timeout", "0"],
            &["a", "b"],
        ] {
            let err = serve(args).unwrap_err();
            assert!(!err.to_string().contains('\n'), "{err}");
        }
        // Typed, for a caller that decides on them.
        assert_eq!(
            serve(&["--listen", "localhost"]).unwrap_err(),
            ConfigError::Invalid {
                flag: "listen".into(),
                value: "localhost".into(),
                expected: "an address like 127.0.0.1:8080 or [::1]:8080",
            }
        );
        assert_eq!(
            serve(&["--header-timeout", "0"]).unwrap_err().to_string(),
            "'--header-timeout' must be more than 0"
        );
    }

    #[test]
    fn hostile_values_are_refused_or_taken_without_a_panic() {
        let max = u64::MAX.to_string();
        // A size that would make one allocation fail: refused, in one line.
        for flag in [
            "--max-header-bytes",
            "--small-file-bytes",
            "--compress-max-bytes",
        ] {
            let err = serve(&[flag, "1073741825"]).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("'{flag}' must be at most 1073741824 (1 GiB)"),
                "{flag}"
            );
            assert!(serve(&[flag, &max]).is_err(), "{flag}");
            assert!(serve(&[flag, "1073741824"]).is_ok(), "{flag}");
        }
        let err = serve(&["--tls-session-cache", &max]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "'--tls-session-cache' must be at most 1048576"
        );
        // Limits that only count or compare: taken as given; the memory
        // bound they enter saturates.
        let c = serve(&[
            "--max-uri-bytes",
            &max,
            "--max-body-bytes",
            &max,
            "--file-cache-entries",
            &max,
            "--compress-cache-bytes",
            &max,
            "--max-requests",
            "0",
        ])
        .unwrap();
        assert_eq!(c.live.max_uri_bytes, usize::MAX);
        let bound = crate::memory::MemoryBound::compute(&c, 1000);
        assert_eq!(bound.total(), usize::MAX);
        // Out of range or not numbers at all: refused.
        for args in [
            ["--workers", "0"],
            ["--workers", "257"],
            ["--workers", &max],
            ["--keepalive-timeout", "1e30"],
            ["--linger-timeout", "inf"],
            ["--send-timeout", "NaN"],
            ["--shutdown-timeout", "-1"],
            ["--admission-wait", "31536001"],
            ["--max-fds", "99999999999999999999"],
            ["--max-fds", "15"],
            ["--max-connections", "0"],
            ["--tcp-keepalive-probes", "0"],
            ["--tcp-keepalive-probes", "4294967296"],
            ["--backlog", "2147483648"],
            ["--max-requests", "4294967296"],
        ] {
            assert!(serve(&args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn every_flag_has_two_dashes_before_its_key() {
        // `OptionSpec::key` (and the reload's log line) cut them off.
        for opt in OPTIONS {
            assert!(
                opt.flag.starts_with("--") && opt.flag.len() > 2,
                "{}",
                opt.flag
            );
        }
    }

    #[test]
    fn help_lists_every_option_with_default() {
        let help = help_text();
        for opt in OPTIONS {
            assert!(help.contains(opt.flag), "{}", opt.flag);
        }
        assert!(help.contains("[default: 127.0.0.1:8080]"));
        assert!(help.contains("[default: 5]"));
    }
}
