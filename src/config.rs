//! Configuration: defaults, the command line, and `--help`.
//!
//! One table, [`OPTIONS`], describes every flag: `--help` is printed from
//! it, and `tests/cli.rs` checks README's configuration table against it.
//! The parser ([`parse_args`]) matches each flag by name, as lexopt does.
//! [`Config::default()`] holds every default.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the server can be told.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub root: PathBuf,
    pub listen: Vec<SocketAddr>,
    /// Unix-domain socket listeners (`--listen unix:PATH`).
    pub listen_unix: Vec<PathBuf>,
    pub keepalive_timeout: Duration,
    /// Requests allowed per connection; 0 is unlimited.
    pub max_requests: u32,
    pub header_timeout: Duration,
    pub send_timeout: Duration,
    /// Under a full fd budget, a response without write progress this long
    /// may be evicted for a newcomer.
    pub evict_stalled_after: Duration,
    /// With the fd budget full and nothing to evict, newcomers wait in the
    /// backlog this long; then each is answered once and closed.
    pub admission_wait: Duration,
    pub linger_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
    pub max_body_bytes: u64,
    /// Files up to this size go out in the same write as the head.
    pub small_file_bytes: u64,
    /// Small files kept in the cache at most; 0 disables it.
    pub file_cache_entries: usize,
    /// How long a cached file is trusted before it is checked again.
    pub file_cache_valid: Duration,
    pub backlog: i32,
    /// `None`: as many as the fd budget allows.
    pub max_connections: Option<usize>,
    /// Soft RLIMIT_NOFILE to run with; `None`: the hard limit.
    pub max_fds: Option<u64>,
    /// Serve counters at this path (GET); `None`: off.
    pub status_path: Option<String>,
    /// TCP keepalive probes; `None` leaves the OS default.
    pub tcp_keepalive: Option<TcpKeepalive>,
    pub dotfiles: bool,
    /// Serve FILE.br / FILE.gz when the client accepts them.
    pub precompressed: bool,
    /// Compress text on the fly, once per file version (`--no-compress`).
    pub compress: bool,
    /// Larger files are not compressed on the fly.
    pub compress_max_bytes: u64,
    /// Compressed representations kept in memory, all workers together;
    /// 0 turns compression off.
    pub compress_cache_bytes: usize,
    /// HTML listings of directories without index.html.
    pub listing: bool,
    /// Follow symlinks that lead outside ROOT.
    pub follow_symlinks: bool,
    /// `Cache-Control` on file responses.
    pub cache_control: Option<String>,
    pub access_log: bool,
    /// Reactor threads, each with its own SO_REUSEPORT listeners.
    pub workers: usize,
    /// HTTPS listeners.
    pub tls_listen: Vec<SocketAddr>,
    /// Certificate chains and keys; the first is the default, the others
    /// are chosen by SNI.
    pub tls_certs: Vec<crate::tls::CertPaths>,
    /// TLS 1.2 session-id cache entries; 0 disables it (tickets still
    /// resume).
    pub tls_session_cache: usize,
    /// TLS session tickets (stateless resumption, keys rotated).
    pub tls_tickets: bool,
    /// Plain listeners answer 308 to the https URL (the status path
    /// excepted).
    pub redirect_to_https: bool,
    /// `--header` lines ("Name: value"), added to every response.
    pub headers: Vec<String>,
    /// Served (200) for a GET or HEAD whose path names no file.
    pub fallback: Option<String>,
    /// (status, target): the body of error responses with that status.
    pub error_pages: Vec<(u16, String)>,
    /// Switch to this user (and its group, or `user:group`) once the
    /// listeners are bound and ROOT is open.
    pub user: Option<String>,
}

/// `--tcp-keepalive-time/-interval/-probes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpKeepalive {
    pub time: Duration,
    pub interval: Duration,
    pub probes: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: PathBuf::from("."),
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            listen_unix: Vec::new(),
            keepalive_timeout: Duration::from_secs(5),
            max_requests: 100,
            header_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            evict_stalled_after: Duration::from_secs(1),
            admission_wait: Duration::from_millis(20),
            linger_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_uri_bytes: 8 * 1024,
            max_body_bytes: 1024 * 1024,
            small_file_bytes: 16 * 1024,
            file_cache_entries: 1024,
            file_cache_valid: Duration::from_secs(1),
            backlog: 511,
            max_connections: None,
            max_fds: None,
            status_path: None,
            tcp_keepalive: Some(TcpKeepalive {
                time: Duration::from_secs(60),
                interval: Duration::from_secs(10),
                probes: 6,
            }),
            dotfiles: false,
            precompressed: true,
            compress: true,
            compress_max_bytes: 1024 * 1024,
            compress_cache_bytes: 16 * 1024 * 1024,
            listing: false,
            follow_symlinks: false,
            cache_control: None,
            access_log: false,
            workers: 1,
            tls_listen: Vec::new(),
            tls_certs: Vec::new(),
            tls_session_cache: 8192,
            tls_tickets: true,
            redirect_to_https: false,
            headers: Vec::new(),
            fallback: None,
            error_pages: Vec::new(),
            user: None,
        }
    }
}

/// A command-line option, for `--help`, the parser and README's table.
pub struct OptionSpec {
    pub flag: &'static str,
    /// The value's placeholder; `None` for a switch.
    pub value: Option<&'static str>,
    pub help: &'static str,
    /// The default, as README and `--help` print it.
    pub default: fn(&Config) -> String,
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", d.as_secs())
    } else {
        format!("{s}")
    }
}

/// Every option holdline takes, in `--help` order.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        flag: "--listen",
        value: Some("ADDR"),
        help: "address to listen on, such as 127.0.0.1:8080, [::1]:8080 or unix:/run/holdline.sock (a stale socket file is replaced; its mode follows the umask); repeatable",
        default: |c| {
            let tcp = c.listen.iter().map(|a| a.to_string());
            let unix = c
                .listen_unix
                .iter()
                .map(|p| format!("unix:{}", p.display()));
            tcp.chain(unix).collect::<Vec<_>>().join(" ")
        },
    },
    OptionSpec {
        flag: "--tls-listen",
        value: Some("ADDR"),
        help: "address to listen on for HTTPS (TLS 1.2 and 1.3); repeatable; needs --tls-cert and --tls-key",
        default: |c| {
            if c.tls_listen.is_empty() {
                "none".into()
            } else {
                let addrs: Vec<String> = c.tls_listen.iter().map(|a| a.to_string()).collect();
                addrs.join(" ")
            }
        },
    },
    OptionSpec {
        flag: "--tls-cert",
        value: Some("PEM"),
        help: "certificate chain (PEM, leaf first) for HTTPS; repeatable, paired in order with --tls-key; the first pair is the default, the others are chosen by SNI; SIGHUP reloads them",
        default: |_| "none".into(),
    },
    OptionSpec {
        flag: "--tls-key",
        value: Some("PEM"),
        help: "private key (PEM: PKCS#8, SEC1 or PKCS#1; ECDSA, RSA or Ed25519) of the --tls-cert given in the same position",
        default: |_| "none".into(),
    },
    OptionSpec {
        flag: "--tls-session-cache",
        value: Some("N"),
        help: "TLS 1.2 sessions remembered for resumption by session id (TLS 1.3 and ticket-capable clients resume by ticket); 0 disables",
        default: |c| c.tls_session_cache.to_string(),
    },
    OptionSpec {
        flag: "--no-tls-tickets",
        value: None,
        help: "issue no TLS session tickets (nginx's ssl_session_tickets off); with --tls-session-cache 0 nothing resumes",
        default: |c| {
            if c.tls_tickets {
                "off".into()
            } else {
                "on".into()
            }
        },
    },
    OptionSpec {
        flag: "--redirect-to-https",
        value: None,
        help: "plain-HTTP listeners answer every request (but --status-path) with 308 to the same URL on the first --tls-listen port",
        default: |c| {
            if c.redirect_to_https {
                "on".into()
            } else {
                "off".into()
            }
        },
    },
    OptionSpec {
        flag: "--keepalive-timeout",
        value: Some("SECS"),
        help: "close a keep-alive connection idle this long; 0 disables keep-alive",
        default: |c| secs(c.keepalive_timeout),
    },
    OptionSpec {
        flag: "--max-requests",
        value: Some("N"),
        help: "requests served on one connection before it is closed; 0 is unlimited",
        default: |c| c.max_requests.to_string(),
    },
    OptionSpec {
        flag: "--header-timeout",
        value: Some("SECS"),
        help: "time allowed to receive a request head (from accept, or its first byte); then 408",
        default: |c| secs(c.header_timeout),
    },
    OptionSpec {
        flag: "--send-timeout",
        value: Some("SECS"),
        help: "abandon a response that makes no write progress for this long",
        default: |c| secs(c.send_timeout),
    },
    OptionSpec {
        flag: "--evict-stalled-after",
        value: Some("SECS"),
        help: "with the fd budget full and no idle, fresh or slow-head connection left, evict a response that made no write progress this long (the client is not reading); --send-timeout still applies",
        default: |c| secs(c.evict_stalled_after),
    },
    OptionSpec {
        flag: "--admission-wait",
        value: Some("SECS"),
        help: "with the fd budget full and nothing to evict, newcomers wait in the backlog this long; then each is answered once without a slot (from memory, else 503) and closed",
        default: |c| secs(c.admission_wait),
    },
    OptionSpec {
        flag: "--linger-timeout",
        value: Some("SECS"),
        help: "after the last response, drain unread input at most this long before closing",
        default: |c| secs(c.linger_timeout),
    },
    OptionSpec {
        flag: "--shutdown-timeout",
        value: Some("SECS"),
        help: "on SIGTERM/SIGINT, wait this long for in-flight responses before exiting",
        default: |c| secs(c.shutdown_timeout),
    },
    OptionSpec {
        flag: "--max-header-bytes",
        value: Some("N"),
        help: "largest request head, request line included; beyond it 431",
        default: |c| c.max_header_bytes.to_string(),
    },
    OptionSpec {
        flag: "--max-uri-bytes",
        value: Some("N"),
        help: "longest request target; beyond it 414",
        default: |c| c.max_uri_bytes.to_string(),
    },
    OptionSpec {
        flag: "--max-body-bytes",
        value: Some("N"),
        help: "largest request body read and discarded; beyond it 413 and close",
        default: |c| c.max_body_bytes.to_string(),
    },
    OptionSpec {
        flag: "--small-file-bytes",
        value: Some("N"),
        help: "files up to this size are sent in the same write as the head; larger ones with sendfile",
        default: |c| c.small_file_bytes.to_string(),
    },
    OptionSpec {
        flag: "--file-cache-entries",
        value: Some("N"),
        help: "small files (up to --small-file-bytes) kept in memory with their validators; 0 disables",
        default: |c| c.file_cache_entries.to_string(),
    },
    OptionSpec {
        flag: "--file-cache-valid",
        value: Some("SECS"),
        help: "a cached file is re-checked (open + fstat) after this long; 0 disables the cache",
        default: |c| secs(c.file_cache_valid),
    },
    OptionSpec {
        flag: "--backlog",
        value: Some("N"),
        help: "listen(2) backlog: connections the kernel queues before accept",
        default: |c| c.backlog.to_string(),
    },
    OptionSpec {
        flag: "--max-fds",
        value: Some("N"),
        help: "raise (or lower) the soft RLIMIT_NOFILE to N; above the hard limit is an error",
        default: |c| c.max_fds.map_or("hard limit".into(), |n| n.to_string()),
    },
    OptionSpec {
        flag: "--max-connections",
        value: Some("N"),
        help: "open connections at most; above what the fd budget allows is an error",
        default: |c| {
            c.max_connections
                .map_or("fd budget".into(), |n| n.to_string())
        },
    },
    OptionSpec {
        flag: "--status-path",
        value: Some("PATH"),
        help: "serve counters at PATH: nginx stub_status text, ?format=prometheus, ?format=json, and a live page for a browser",
        default: |c| c.status_path.clone().unwrap_or_else(|| "off".into()),
    },
    OptionSpec {
        flag: "--tcp-keepalive-time",
        value: Some("SECS"),
        help: "TCP keepalive: idle time before the first probe (SO_KEEPALIVE, TCP_KEEPIDLE)",
        default: |c| c.tcp_keepalive.map_or("off".into(), |k| secs(k.time)),
    },
    OptionSpec {
        flag: "--tcp-keepalive-interval",
        value: Some("SECS"),
        help: "TCP keepalive: time between probes (TCP_KEEPINTVL)",
        default: |c| c.tcp_keepalive.map_or("off".into(), |k| secs(k.interval)),
    },
    OptionSpec {
        flag: "--tcp-keepalive-probes",
        value: Some("N"),
        help: "TCP keepalive: unanswered probes before the kernel drops the connection (TCP_KEEPCNT)",
        default: |c| {
            c.tcp_keepalive
                .map_or("off".into(), |k| k.probes.to_string())
        },
    },
    OptionSpec {
        flag: "--no-tcp-keepalive",
        value: None,
        help: "leave TCP keepalive at the OS default instead",
        default: |c| {
            if c.tcp_keepalive.is_some() {
                "off".into()
            } else {
                "on".into()
            }
        },
    },
    OptionSpec {
        flag: "--dotfiles",
        value: None,
        help: "serve names starting with a dot (.git, .env); otherwise they answer 404",
        default: |c| {
            if c.dotfiles {
                "on".into()
            } else {
                "off".into()
            }
        },
    },
    OptionSpec {
        flag: "--no-precompressed",
        value: None,
        help: "do not serve FILE.br / FILE.gz in place of FILE when the client accepts them",
        default: |c| {
            if c.precompressed {
                "off".into()
            } else {
                "on".into()
            }
        },
    },
    OptionSpec {
        flag: "--no-compress",
        value: None,
        help: "do not compress text on the fly (by default a compressible file without FILE.br / FILE.gz is compressed once per version, br or gzip, in the background, and served from memory)",
        default: |c| {
            if c.compress {
                "off".into()
            } else {
                "on".into()
            }
        },
    },
    OptionSpec {
        flag: "--compress-max-bytes",
        value: Some("N"),
        help: "files larger than this are not compressed on the fly",
        default: |c| c.compress_max_bytes.to_string(),
    },
    OptionSpec {
        flag: "--compress-cache-bytes",
        value: Some("N"),
        help: "memory for compressed files, least recently used out first, shared by the workers; 0 turns compression off",
        default: |c| c.compress_cache_bytes.to_string(),
    },
    OptionSpec {
        flag: "--listing",
        value: None,
        help: "list directories that have no index.html (otherwise they answer 404)",
        default: |c| if c.listing { "on".into() } else { "off".into() },
    },
    OptionSpec {
        flag: "--follow-symlinks",
        value: None,
        help: "follow symlinks whose targets lie outside ROOT (inside ROOT they are always followed)",
        default: |c| {
            if c.follow_symlinks {
                "on".into()
            } else {
                "off".into()
            }
        },
    },
    OptionSpec {
        flag: "--cache-control",
        value: Some("VALUE"),
        help: "Cache-Control header on file responses, such as 'public, max-age=3600'",
        default: |c| c.cache_control.clone().unwrap_or_else(|| "none".into()),
    },
    OptionSpec {
        flag: "--header",
        value: Some("'NAME: VALUE'"),
        help: "add this header to every response (CORS, HSTS, CSP...); repeatable; headers that frame the message (Content-Length, Transfer-Encoding, Connection...) are refused",
        default: |_| "none".into(),
    },
    OptionSpec {
        flag: "--fallback",
        value: Some("PATH"),
        help: "answer a GET or HEAD whose path names no file with this file and 200, such as /index.html for a single-page app",
        default: |c| c.fallback.clone().unwrap_or_else(|| "none".into()),
    },
    OptionSpec {
        flag: "--error-page",
        value: Some("CODE=PATH"),
        help: "answer errors with status CODE (400-599) with this file's body, keeping the status, such as 404=/404.html; repeatable",
        default: |_| "none".into(),
    },
    OptionSpec {
        flag: "--access-log",
        value: None,
        help: "log one Common Log Format line per request (log target `access`)",
        default: |c| {
            if c.access_log {
                "on".into()
            } else {
                "off".into()
            }
        },
    },
    OptionSpec {
        flag: "--user",
        value: Some("NAME[:GROUP]"),
        help: "when started as root, switch to this user (and its group, or GROUP) once listeners are bound, ROOT and the TLS keys are open",
        default: |c| c.user.clone().unwrap_or_else(|| "none".into()),
    },
    OptionSpec {
        flag: "--workers",
        value: Some("N"),
        help: "reactor threads, each with its own SO_REUSEPORT listener, slab, wheel and share of the fd budget",
        default: |c| c.workers.to_string(),
    },
    OptionSpec {
        flag: "--help",
        value: None,
        help: "print this help and exit",
        default: |_| "".into(),
    },
    OptionSpec {
        flag: "--version",
        value: None,
        help: "print the version and exit",
        default: |_| "".into(),
    },
];

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Serve(Box<Config>),
    Help,
    Version,
}

/// A command-line mistake; `Display` gives it as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A value that does not parse as what the flag takes.
    Invalid {
        flag: String,
        value: String,
        /// What was expected, as `--help` would say it.
        expected: &'static str,
    },
    /// A value that parses but is out of the flag's range.
    OutOfRange {
        flag: String,
        /// The rule, such as "must be at least 64".
        rule: &'static str,
    },
    /// Not a flag holdline knows, a missing value, a second ROOT.
    Usage(String),
}

impl ConfigError {
    fn invalid(flag: &str, value: &str, expected: &'static str) -> ConfigError {
        ConfigError::Invalid {
            flag: flag.to_string(),
            value: value.to_string(),
            expected,
        }
    }

    fn out_of_range(flag: &str, rule: &'static str) -> ConfigError {
        ConfigError::OutOfRange {
            flag: flag.to_string(),
            rule,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid {
                flag,
                value,
                expected,
            } => write!(
                f,
                "invalid value '{value}' for '--{flag}': expected {expected}"
            ),
            ConfigError::OutOfRange { flag, rule } => write!(f, "'--{flag}' {rule}"),
            ConfigError::Usage(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<lexopt::Error> for ConfigError {
    fn from(e: lexopt::Error) -> Self {
        ConfigError::Usage(e.to_string())
    }
}

/// The `--help` text, generated from [`OPTIONS`].
pub fn help_text() -> String {
    let defaults = Config::default();
    let mut text = format!(
        "holdline {}: a static-file HTTP/1.1 server on one epoll reactor\n\n\
         Usage: holdline [OPTIONS] [ROOT]\n\n\
         Arguments:\n  [ROOT]  directory to serve [default: .]\n\nOptions:\n",
        env!("CARGO_PKG_VERSION")
    );
    for opt in OPTIONS {
        let left = match opt.value {
            Some(v) => format!("{} {v}", opt.flag),
            None => opt.flag.to_string(),
        };
        let default = (opt.default)(&defaults);
        text.push_str(&format!("  {left:<30} {}", opt.help));
        if !default.is_empty() {
            text.push_str(&format!(" [default: {default}]"));
        }
        text.push('\n');
    }
    text.push_str("\nLogging: RUST_LOG (for example RUST_LOG=debug) through env_logger.\n");
    text
}

/// Parses the command line (without the program name).
pub fn parse_args<I>(args: I) -> Result<Command, ConfigError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    use lexopt::prelude::*;
    let mut config = Config::default();
    let mut listen: Vec<SocketAddr> = Vec::new();
    let mut tls_certs: Vec<PathBuf> = Vec::new();
    let mut tls_keys: Vec<PathBuf> = Vec::new();
    let mut root: Option<PathBuf> = None;
    let mut keepalive = config.tcp_keepalive.unwrap_or(TcpKeepalive {
        time: Duration::from_secs(60),
        interval: Duration::from_secs(10),
        probes: 6,
    });
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("help") | Short('h') => return Ok(Command::Help),
            Long("version") | Short('V') => return Ok(Command::Version),
            Long("listen") => {
                let value = parser.value()?.string()?;
                if let Some(path) = value.strip_prefix("unix:") {
                    if !path.starts_with('/') || path.len() > 100 {
                        let expected = "unix: and an absolute path of at most 100 bytes";
                        return Err(ConfigError::invalid("listen", &value, expected));
                    }
                    config.listen_unix.push(PathBuf::from(path));
                    continue;
                }
                listen.push(value.parse().map_err(|_| {
                    let expected = "an address like 127.0.0.1:8080 or [::1]:8080";
                    ConfigError::invalid("listen", &value, expected)
                })?);
            }
            Long("tls-listen") => {
                let value = parser.value()?.string()?;
                config.tls_listen.push(value.parse().map_err(|_| {
                    let expected = "an address like 127.0.0.1:8443 or [::1]:8443";
                    ConfigError::invalid("tls-listen", &value, expected)
                })?);
            }
            Long("no-tls-tickets") => config.tls_tickets = false,
            Long("user") => {
                let value = parser.value()?.string()?;
                let valid = |s: &str| {
                    !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                };
                // "user" or "user:group", each part a plain name.
                if value.split(':').count() > 2 || !value.split(':').all(valid) {
                    return Err(ConfigError::invalid(
                        "user",
                        &value,
                        "a user name, or user:group",
                    ));
                }
                config.user = Some(value);
            }
            Long("fallback") => {
                let path = parser.value()?.string()?;
                config.fallback = Some(site_path("fallback", &path)?);
            }
            Long("error-page") => {
                let value = parser.value()?.string()?;
                let expected = "CODE=PATH with CODE from 400 to 599, such as 404=/404.html";
                let invalid = || ConfigError::invalid("error-page", &value, expected);
                let (code, path) = value.split_once('=').ok_or_else(invalid)?;
                let code: u16 = code.parse().map_err(|_| invalid())?;
                if !(400..=599).contains(&code) {
                    return Err(invalid());
                }
                let path = site_path("error-page", path)?;
                config.error_pages.retain(|(c, _)| *c != code);
                config.error_pages.push((code, path));
            }
            Long("header") => {
                let value = parser.value()?.string()?;
                config.headers.push(header_line(&value)?);
            }
            Long("redirect-to-https") => config.redirect_to_https = true,
            Long("tls-cert") => tls_certs.push(parser.value()?.into()),
            Long("tls-key") => tls_keys.push(parser.value()?.into()),
            Long("tls-session-cache") => {
                config.tls_session_cache = number(&mut parser, "tls-session-cache")?
            }
            Long("keepalive-timeout") => {
                config.keepalive_timeout = duration(&mut parser, "keepalive-timeout")?
            }
            Long("max-requests") => config.max_requests = number(&mut parser, "max-requests")?,
            Long("header-timeout") => {
                config.header_timeout = positive(&mut parser, "header-timeout")?
            }
            Long("send-timeout") => config.send_timeout = positive(&mut parser, "send-timeout")?,
            Long("admission-wait") => {
                config.admission_wait = duration(&mut parser, "admission-wait")?
            }
            Long("evict-stalled-after") => {
                config.evict_stalled_after = duration(&mut parser, "evict-stalled-after")?
            }
            Long("linger-timeout") => {
                config.linger_timeout = duration(&mut parser, "linger-timeout")?
            }
            Long("shutdown-timeout") => {
                config.shutdown_timeout = duration(&mut parser, "shutdown-timeout")?
            }
            Long("max-header-bytes") => {
                config.max_header_bytes = number(&mut parser, "max-header-bytes")?;
                if config.max_header_bytes < 64 {
                    return Err(ConfigError::out_of_range(
                        "max-header-bytes",
                        "must be at least 64",
                    ));
                }
            }
            Long("max-uri-bytes") => config.max_uri_bytes = number(&mut parser, "max-uri-bytes")?,
            Long("max-body-bytes") => {
                config.max_body_bytes = number(&mut parser, "max-body-bytes")?
            }
            Long("small-file-bytes") => {
                config.small_file_bytes = number(&mut parser, "small-file-bytes")?
            }
            Long("file-cache-entries") => {
                config.file_cache_entries = number(&mut parser, "file-cache-entries")?
            }
            Long("file-cache-valid") => {
                config.file_cache_valid = duration(&mut parser, "file-cache-valid")?
            }
            Long("backlog") => config.backlog = number(&mut parser, "backlog")?,
            Long("max-connections") => {
                let n: usize = number(&mut parser, "max-connections")?;
                if n == 0 {
                    return Err(ConfigError::out_of_range(
                        "max-connections",
                        "must be at least 1",
                    ));
                }
                config.max_connections = Some(n);
            }
            Long("max-fds") => {
                let n: u64 = number(&mut parser, "max-fds")?;
                if n < 16 {
                    return Err(ConfigError::out_of_range("max-fds", "must be at least 16"));
                }
                config.max_fds = Some(n);
            }
            Long("status-path") => {
                let path = parser.value()?.string()?;
                if !path.starts_with('/') || path.contains('?') {
                    let expected = "a path such as /status";
                    return Err(ConfigError::invalid("status-path", &path, expected));
                }
                config.status_path = Some(path);
            }
            Long("tcp-keepalive-time") => {
                keepalive.time = positive(&mut parser, "tcp-keepalive-time")?
            }
            Long("tcp-keepalive-interval") => {
                keepalive.interval = positive(&mut parser, "tcp-keepalive-interval")?
            }
            Long("tcp-keepalive-probes") => {
                keepalive.probes = number(&mut parser, "tcp-keepalive-probes")?;
                if keepalive.probes == 0 {
                    return Err(ConfigError::out_of_range(
                        "tcp-keepalive-probes",
                        "must be at least 1",
                    ));
                }
            }
            Long("no-tcp-keepalive") => config.tcp_keepalive = None,
            Long("no-precompressed") => config.precompressed = false,
            Long("no-compress") => config.compress = false,
            Long("compress-max-bytes") => {
                config.compress_max_bytes = number(&mut parser, "compress-max-bytes")?
            }
            Long("compress-cache-bytes") => {
                config.compress_cache_bytes = number(&mut parser, "compress-cache-bytes")?
            }
            Long("listing") => config.listing = true,
            Long("follow-symlinks") => config.follow_symlinks = true,
            Long("cache-control") => {
                let value = parser.value()?.string()?;
                if value.bytes().any(|b| b.is_ascii_control()) {
                    return Err(ConfigError::out_of_range(
                        "cache-control",
                        "must not contain control characters",
                    ));
                }
                config.cache_control = Some(value);
            }
            Long("workers") => {
                config.workers = number(&mut parser, "workers")?;
                if !(1..=256).contains(&config.workers) {
                    return Err(ConfigError::out_of_range(
                        "workers",
                        "must be between 1 and 256",
                    ));
                }
            }
            Long("dotfiles") => config.dotfiles = true,
            Long("access-log") => config.access_log = true,
            Value(path) if root.is_none() => root = Some(PathBuf::from(path)),
            _ => return Err(arg.unexpected().into()),
        }
    }
    if config.tcp_keepalive.is_some() {
        config.tcp_keepalive = Some(keepalive);
    }
    if tls_certs.len() != tls_keys.len() {
        return Err(ConfigError::out_of_range(
            "tls-key",
            "must be given once for each --tls-cert",
        ));
    }
    config.tls_certs = tls_certs
        .into_iter()
        .zip(tls_keys)
        .map(|(cert, key)| crate::tls::CertPaths { cert, key })
        .collect();
    if config.redirect_to_https && config.tls_listen.is_empty() {
        return Err(ConfigError::out_of_range(
            "redirect-to-https",
            "needs --tls-listen",
        ));
    }
    if !config.tls_listen.is_empty() && config.tls_certs.is_empty() {
        return Err(ConfigError::out_of_range(
            "tls-listen",
            "needs --tls-cert and --tls-key",
        ));
    }
    if !listen.is_empty() {
        config.listen = listen;
    } else if !config.tls_listen.is_empty() || !config.listen_unix.is_empty() {
        // Only HTTPS was asked for: no plain listener on the default.
        config.listen.clear();
    }
    if let Some(root) = root {
        config.root = root;
    }
    Ok(Command::Serve(Box::new(config)))
}

/// A path on the site (`--fallback`, `--error-page`): absolute, without a
/// query or control characters.
fn site_path(flag: &str, path: &str) -> Result<String, ConfigError> {
    if !path.starts_with('/') || path.contains(['?', '#']) || path.chars().any(|c| c.is_control()) {
        return Err(ConfigError::invalid(
            flag,
            path,
            "a path on the site such as /index.html",
        ));
    }
    Ok(path.to_string())
}

/// Headers an operator may not add: they frame the message or belong to
/// the connection (RFC 9110 §7.6.1), or holdline sends them itself once.
const RESERVED_HEADERS: [&str; 10] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
    "date",
    "server",
];

/// Checks `--header 'Name: value'` and returns it as it will be sent
/// ("Name: value", the value trimmed).
fn header_line(arg: &str) -> Result<String, ConfigError> {
    let expected = "'Name: value' with a token name and a value without control characters";
    let invalid = || ConfigError::invalid("header", arg, expected);
    let (name, value) = arg.split_once(':').ok_or_else(invalid)?;
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(tchar) {
        return Err(invalid());
    }
    let value = value.trim_matches([' ', '\t']);
    if value.chars().any(|c| c.is_ascii_control() && c != '\t') || !value.is_ascii() {
        return Err(invalid());
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(ConfigError::out_of_range(
            "header",
            "must not set Content-Length, Transfer-Encoding, Connection, Keep-Alive, Upgrade, TE, Trailer, Date or Server",
        ));
    }
    Ok(format!("{name}: {value}"))
}

fn number<T: std::str::FromStr>(parser: &mut lexopt::Parser, name: &str) -> Result<T, ConfigError> {
    use lexopt::ValueExt;
    let value = parser.value()?.string()?;
    value
        .parse()
        .map_err(|_| ConfigError::invalid(name, &value, "a whole number"))
}

/// Seconds, fractions allowed (tests use short timeouts), 0 allowed.
fn duration(parser: &mut lexopt::Parser, name: &str) -> Result<Duration, ConfigError> {
    use lexopt::ValueExt;
    let value = parser.value()?.string()?;
    value
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| *d <= Duration::from_secs(365 * 24 * 3600))
        .ok_or_else(|| ConfigError::invalid(name, &value, "seconds, such as 5 or 0.5"))
}

fn positive(parser: &mut lexopt::Parser, name: &str) -> Result<Duration, ConfigError> {
    let d = duration(parser, name)?;
    if d.is_zero() {
        return Err(ConfigError::out_of_range(name, "must be more than 0"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> Result<Config, ConfigError> {
        match parse_args(args.iter().copied())? {
            Command::Serve(c) => Ok(*c),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults() {
        assert_eq!(serve(&[]).unwrap(), Config::default());
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
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.keepalive_timeout, Duration::from_millis(500));
        assert_eq!(c.max_requests, 3);
        assert_eq!(c.tcp_keepalive, None);
        assert_eq!(c.root, PathBuf::from("/srv/www"));
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
            config.headers,
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
    fn help_lists_every_option_with_default() {
        let help = help_text();
        for opt in OPTIONS {
            assert!(help.contains(opt.flag), "{}", opt.flag);
        }
        assert!(help.contains("[default: 127.0.0.1:8080]"));
        assert!(help.contains("[default: 5]"));
    }
}
