//! SIGHUP: the file read again under the same command line, and merged
//! into the running configuration by type. The new configuration is the
//! running [`Fixed`](super::Fixed) with the file's [`Live`](super::Live):
//! nothing decides field by field what a reload may change.

use super::Config;
use super::args::build;
use super::error::ConfigError;
use super::options::{OPTIONS, Show};

/// Reads `running`'s configuration file again with its command line
/// over it: what SIGHUP applies (see [`Config::live_update`]).
pub fn reload(running: &Config) -> Result<Config, ConfigError> {
    build(
        running.source.file.clone(),
        running.source.command_line.clone(),
    )
}

/// What a reload found: the configuration to run, and the options whose
/// change it applied or could not.
#[derive(Debug)]
pub struct LiveUpdate {
    /// The running configuration with the file's live options.
    pub config: Config,
    /// Options applied now.
    pub changed: Vec<&'static str>,
    /// Options that differ from the running ones and wait for a restart.
    pub need_restart: Vec<&'static str>,
}

impl Config {
    /// Merges a reloaded configuration into this running one: its
    /// [`Live`](super::Live) half is taken whole, the running
    /// [`Fixed`](super::Fixed) half stays (listeners, workers, the fd and
    /// memory budgets are built at start). `started` is the configuration
    /// as parsed at start, before start-up filled in bound ports or
    /// passed sockets: what "needs a restart" compares with.
    pub fn live_update(&self, started: &Config, new: Config) -> LiveUpdate {
        let mut changed = Vec::new();
        let mut need_restart = Vec::new();
        for option in OPTIONS {
            match option.show {
                Show::Live(show) if show(&self.live) != show(&new.live) => {
                    changed.push(option.flag)
                }
                Show::Site(show) if show(&self.live.site) != show(&new.live.site) => {
                    changed.push(option.flag)
                }
                Show::Fixed(show) if show(&started.fixed) != show(&new.fixed) => {
                    need_restart.push(option.flag)
                }
                _ => {}
            }
        }
        if self.live.sites != new.live.sites {
            changed.push("the [[site]] blocks");
        }
        let config = Config {
            fixed: self.fixed.clone(),
            live: new.live,
            source: self.source.clone(),
        };
        LiveUpdate {
            config,
            changed,
            need_restart,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::args::serve;
    use super::*;

    /// What each option is set to in the test below: `(flag, args)`,
    /// given after a TLS listener with its certificate (so that the TLS
    /// options have something to change).
    const SAMPLES: &[(&str, &[&str])] = &[
        ("--root", &["--root", "/elsewhere"]),
        ("--host", &["--host", "a.test"]),
        ("--unknown-host", &["--unknown-host", "421"]),
        ("--trusted-proxy", &["--trusted-proxy", "10.0.0.0/8"]),
        (
            "--max-client-connections",
            &["--max-client-connections", "17"],
        ),
        ("--client-rate", &["--client-rate", "17.5"]),
        ("--client-burst", &["--client-burst", "17"]),
        ("--client-prefix-v4", &["--client-prefix-v4", "24"]),
        ("--client-prefix-v6", &["--client-prefix-v6", "48"]),
        ("--client-table-entries", &["--client-table-entries", "17"]),
        ("--listen", &["--listen", "127.0.0.1:9999"]),
        ("--tls-listen", &["--tls-listen", "127.0.0.1:9443"]),
        (
            "--tls-cert",
            &["--tls-cert", "/b.pem", "--tls-key", "/b.key"],
        ),
        (
            "--tls-key",
            &["--tls-cert", "/b.pem", "--tls-key", "/b.key"],
        ),
        ("--tls-session-cache", &["--tls-session-cache", "17"]),
        ("--no-tls-tickets", &["--no-tls-tickets"]),
        ("--redirect-to-https", &["--redirect-to-https"]),
        ("--keepalive-timeout", &["--keepalive-timeout", "17"]),
        ("--max-requests", &["--max-requests", "17"]),
        ("--header-timeout", &["--header-timeout", "17"]),
        ("--send-timeout", &["--send-timeout", "17"]),
        ("--evict-stalled-after", &["--evict-stalled-after", "17"]),
        ("--admission-wait", &["--admission-wait", "17"]),
        ("--linger-timeout", &["--linger-timeout", "17"]),
        ("--shutdown-timeout", &["--shutdown-timeout", "17"]),
        ("--drain-delay", &["--drain-delay", "17"]),
        ("--max-header-bytes", &["--max-header-bytes", "1700"]),
        ("--max-uri-bytes", &["--max-uri-bytes", "1700"]),
        ("--max-body-bytes", &["--max-body-bytes", "1700"]),
        ("--small-file-bytes", &["--small-file-bytes", "1700"]),
        ("--file-cache-entries", &["--file-cache-entries", "17"]),
        ("--file-cache-valid", &["--file-cache-valid", "17"]),
        ("--backlog", &["--backlog", "17"]),
        ("--max-fds", &["--max-fds", "1700"]),
        ("--max-connections", &["--max-connections", "17"]),
        ("--status-path", &["--status-path", "/s"]),
        ("--health-path", &["--health-path", "/h"]),
        ("--tcp-keepalive-time", &["--tcp-keepalive-time", "17"]),
        (
            "--tcp-keepalive-interval",
            &["--tcp-keepalive-interval", "17"],
        ),
        ("--tcp-keepalive-probes", &["--tcp-keepalive-probes", "17"]),
        ("--defer-accept", &["--defer-accept", "17"]),
        ("--no-tcp-keepalive", &["--no-tcp-keepalive"]),
        ("--proxy-protocol", &["--proxy-protocol"]),
        ("--dotfiles", &["--dotfiles"]),
        ("--clean-urls", &["--clean-urls"]),
        ("--etag", &["--etag", "hash"]),
        ("--acme", &["--acme"]),
        (
            "--acme-directory",
            &["--acme-directory", "https://ca.test/dir"],
        ),
        ("--acme-email", &["--acme-email", "a@b.test"]),
        ("--acme-agree-tos", &["--acme-agree-tos"]),
        ("--acme-storage", &["--acme-storage", "/tmp/acme"]),
        ("--acme-challenge", &["--acme-challenge", "tls-alpn-01"]),
        ("--acme-ca-root", &["--acme-ca-root", "/ca.pem"]),
        ("--acme-retry", &["--acme-retry", "17"]),
        ("--no-precompressed", &["--no-precompressed"]),
        ("--listing", &["--listing"]),
        ("--follow-symlinks", &["--follow-symlinks"]),
        ("--no-compress", &["--no-compress"]),
        ("--compress-max-bytes", &["--compress-max-bytes", "17"]),
        ("--compress-cache-bytes", &["--compress-cache-bytes", "17"]),
        ("--cache-control", &["--cache-control", "no-store"]),
        ("--header", &["--header", "X-A: 1"]),
        ("--fallback", &["--fallback", "/index.html"]),
        ("--error-page", &["--error-page", "404=/404.html"]),
        ("--rule", &["--rule", "/.git/** deny 404"]),
        ("--access-log", &["--access-log", "/tmp/a.log"]),
        ("--log-format", &["--log-format", "json"]),
        ("--user", &["--user", "nobody"]),
        ("--workers", &["--workers", "3"]),
    ];

    const BASE: &[&str] = &[
        "--tls-listen",
        "127.0.0.1:8443",
        "--tls-cert",
        "/a.pem",
        "--tls-key",
        "/a.key",
        // For --proxy-protocol, which needs one.
        "--trusted-proxy",
        "10.9.9.9",
    ];

    /// The table, the types and the merge agree: each option's setter
    /// changes only the struct its `show` names ([`Show::Fixed`] or
    /// [`Show::Live`]), a reload takes exactly the live ones and names
    /// exactly the others as needing a restart.
    #[test]
    fn a_reload_applies_exactly_the_live_options() {
        let running = serve(BASE).unwrap();
        for spec in OPTIONS.iter().filter(|o| !o.command_line_only()) {
            let Some((_, args)) = SAMPLES.iter().find(|(f, _)| *f == spec.flag) else {
                panic!("{}: add a sample value to this test", spec.flag);
            };
            let new = serve(&[BASE, args].concat()).unwrap();
            assert_ne!(spec.shown(&new), spec.shown(&running), "{}", spec.flag);
            let update = running.live_update(&running, new.clone());
            assert_eq!(update.config.fixed, running.fixed, "{}", spec.flag);
            assert_eq!(update.config.live, new.live, "{}", spec.flag);
            if spec.live() {
                assert_eq!(new.fixed, running.fixed, "{} sets Fixed", spec.flag);
                assert_ne!(new.live, running.live, "{}", spec.flag);
                assert_eq!(update.changed, [spec.flag]);
                assert!(update.need_restart.is_empty(), "{}", spec.flag);
            } else {
                assert_eq!(new.live, running.live, "{} sets Live", spec.flag);
                assert_ne!(new.fixed, running.fixed, "{}", spec.flag);
                assert!(update.changed.is_empty(), "{}", spec.flag);
                // --no-tcp-keepalive shows in the three TCP keepalive
                // rows, a --tls-cert with its --tls-key in both.
                assert!(update.need_restart.contains(&spec.flag), "{}", spec.flag);
            }
        }
    }
}
