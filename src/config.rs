//! Configuration: defaults, the command line, the `--config` file, and
//! `--help`.
//!
//! One table, [`OPTIONS`], describes every option: its flag (and the
//! file's key, the flag without its dashes), its help line, how a value
//! sets it, how its value prints, and whether a SIGHUP reload may change
//! it. `--help` is printed from it, the command line and the file are
//! parsed through it, a reload compares configurations with it
//! ([`Config::live_update`]), and `tests/cli.rs` checks README's
//! configuration table against it. [`Config::default()`] holds every
//! default.
//!
//! Precedence: defaults, then the file, then the command line (an option
//! given there replaces the file's value, or the file's whole list for a
//! repeatable one). A reload reads the file again under the same command
//! line.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use crate::accesslog::LogFormat;
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
    /// `--access-log`: the file ("-": standard output); `None`: off.
    pub access_log: Option<PathBuf>,
    pub log_format: LogFormat,
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
    /// `--config`: the file read at start and on SIGHUP.
    pub config_file: Option<PathBuf>,
    /// The options given on the command line, in order: they override
    /// the file at start and on every reload.
    pub command_line: Vec<(&'static str, String)>,
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
            tcp_keepalive: Some(DEFAULT_TCP_KEEPALIVE),
            dotfiles: false,
            precompressed: true,
            compress: true,
            compress_max_bytes: 1024 * 1024,
            compress_cache_bytes: 16 * 1024 * 1024,
            listing: false,
            follow_symlinks: false,
            cache_control: None,
            access_log: None,
            log_format: LogFormat::Combined,
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
            config_file: None,
            command_line: Vec::new(),
        }
    }
}

/// One option: its flag, what `--help` says of it, and how a value sets
/// it. The same entry is the command line's `--flag`, the configuration
/// file's `flag = ...` key, and a row of README's table.
pub struct OptionSpec {
    pub flag: &'static str,
    /// The value's placeholder; `None` for a switch.
    pub value: Option<&'static str>,
    pub help: &'static str,
    /// The option's value in a configuration, as `--help` prints the
    /// default and a reload compares the running one with the file's.
    pub show: fn(&Config) -> String,
    /// Sets the option from one value (a switch gets "").
    apply: fn(&mut Builder, &str) -> Result<(), ConfigError>,
    /// Each occurrence adds a value (an array in the file); on the
    /// command line they replace the file's list.
    pub repeatable: bool,
    /// A SIGHUP reload applies a change; otherwise it waits for a restart.
    pub live: bool,
}

impl OptionSpec {
    /// The flag without its dashes: the configuration file's key.
    pub fn key(&self) -> &'static str {
        &self.flag[2..]
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", d.as_secs())
    } else {
        format!("{s}")
    }
}

fn on_off(on: bool) -> String {
    if on { "on" } else { "off" }.into()
}

fn list<T>(items: &[T], show: impl Fn(&T) -> String) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items.iter().map(show).collect::<Vec<_>>().join(" ")
}

/// A configuration being built from the file and the command line;
/// [`Builder::finish`] checks what only the whole can say.
struct Builder {
    config: Config,
    /// TCP `--listen` addresses given (unix ones go straight in).
    listen: Vec<SocketAddr>,
    tls_certs: Vec<PathBuf>,
    tls_keys: Vec<PathBuf>,
    keepalive: TcpKeepalive,
    no_tcp_keepalive: bool,
}

const DEFAULT_TCP_KEEPALIVE: TcpKeepalive = TcpKeepalive {
    time: Duration::from_secs(60),
    interval: Duration::from_secs(10),
    probes: 6,
};

/// Every option holdline takes, in `--help` order.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        flag: "--config",
        value: Some("FILE"),
        help: "read options from this TOML file (keys are the long flag names: keepalive-timeout = 5, listen = [\"127.0.0.1:8080\"]); flags given here override it; SIGHUP reads it again",
        show: |c| {
            c.config_file
                .as_ref()
                .map_or("none".into(), |p| p.display().to_string())
        },
        // Taken by the command line before anything else is applied.
        apply: |_, _| Ok(()),
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--root",
        value: Some("DIR"),
        help: "directory to serve (also the first argument)",
        show: |c| c.root.display().to_string(),
        apply: |b, v| {
            b.config.root = PathBuf::from(v);
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--listen",
        value: Some("ADDR"),
        help: "address to listen on, such as 127.0.0.1:8080, [::1]:8080 or unix:/run/holdline.sock (a stale socket file is replaced; its mode follows the umask); repeatable",
        show: |c| {
            let tcp = c.listen.iter().map(|a| a.to_string());
            let unix = c
                .listen_unix
                .iter()
                .map(|p| format!("unix:{}", p.display()));
            tcp.chain(unix).collect::<Vec<_>>().join(" ")
        },
        apply: |b, v| {
            if let Some(path) = v.strip_prefix("unix:") {
                if !path.starts_with('/') || path.len() > 100 {
                    let expected = "unix: and an absolute path of at most 100 bytes";
                    return Err(ConfigError::invalid("listen", v, expected));
                }
                b.config.listen_unix.push(PathBuf::from(path));
                return Ok(());
            }
            let expected = "an address like 127.0.0.1:8080 or [::1]:8080";
            let addr = v
                .parse()
                .map_err(|_| ConfigError::invalid("listen", v, expected))?;
            b.listen.push(addr);
            Ok(())
        },
        repeatable: true,
        live: false,
    },
    OptionSpec {
        flag: "--tls-listen",
        value: Some("ADDR"),
        help: "address to listen on for HTTPS (TLS 1.2 and 1.3); repeatable; needs --tls-cert and --tls-key",
        show: |c| list(&c.tls_listen, |a| a.to_string()),
        apply: |b, v| {
            let expected = "an address like 127.0.0.1:8443 or [::1]:8443";
            let addr = v
                .parse()
                .map_err(|_| ConfigError::invalid("tls-listen", v, expected))?;
            b.config.tls_listen.push(addr);
            Ok(())
        },
        repeatable: true,
        live: false,
    },
    OptionSpec {
        flag: "--tls-cert",
        value: Some("PEM"),
        help: "certificate chain (PEM, leaf first) for HTTPS; repeatable, paired in order with --tls-key; the first pair is the default, the others are chosen by SNI; SIGHUP reloads them",
        show: |c| list(&c.tls_certs, |p| p.cert.display().to_string()),
        apply: |b, v| {
            b.tls_certs.push(PathBuf::from(v));
            Ok(())
        },
        repeatable: true,
        live: false,
    },
    OptionSpec {
        flag: "--tls-key",
        value: Some("PEM"),
        help: "private key (PEM: PKCS#8, SEC1 or PKCS#1; ECDSA, RSA or Ed25519) of the --tls-cert given in the same position",
        show: |c| list(&c.tls_certs, |p| p.key.display().to_string()),
        apply: |b, v| {
            b.tls_keys.push(PathBuf::from(v));
            Ok(())
        },
        repeatable: true,
        live: false,
    },
    OptionSpec {
        flag: "--tls-session-cache",
        value: Some("N"),
        help: "TLS 1.2 sessions remembered for resumption by session id (TLS 1.3 and ticket-capable clients resume by ticket); 0 disables",
        show: |c| c.tls_session_cache.to_string(),
        apply: |b, v| {
            b.config.tls_session_cache = number("tls-session-cache", v)?;
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--no-tls-tickets",
        value: None,
        help: "issue no TLS session tickets (nginx's ssl_session_tickets off); with --tls-session-cache 0 nothing resumes",
        show: |c| on_off(!c.tls_tickets),
        apply: |b, _| {
            b.config.tls_tickets = false;
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--redirect-to-https",
        value: None,
        help: "plain-HTTP listeners answer every request (but --status-path) with 308 to the same URL on the first --tls-listen port",
        show: |c| on_off(c.redirect_to_https),
        apply: |b, _| {
            b.config.redirect_to_https = true;
            Ok(())
        },
        repeatable: false,
        live: true,
    },
    OptionSpec {
        flag: "--keepalive-timeout",
        value: Some("SECS"),
        help: "close a keep-alive connection idle this long; 0 disables keep-alive",
        show: |c| secs(c.keepalive_timeout),
        apply: |b, v| {
            b.config.keepalive_timeout = duration("keepalive-timeout", v)?;
            Ok(())
        },
        repeatable: false,
        live: true,
    },
    OptionSpec {
        flag: "--max-requests",
        value: Some("N"),
        help: "requests served on one connection before it is closed; 0 is unlimited",
        show: |c| c.max_requests.to_string(),
        apply: |b, v| {
            b.config.max_requests = number("max-requests", v)?;
            Ok(())
        },
        repeatable: false,
        live: true,
    },
    OptionSpec {
        flag: "--header-timeout",
        value: Some("SECS"),
        help: "time allowed to receive a request head (from accept, or its first byte); then 408",
        show: |c| secs(c.header_timeout),
        apply: |b, v| {
            b.config.header_timeout = positive("header-timeout", v)?;
            Ok(())
        },
        repeatable: false,
        live: true,
    },
    OptionSpec {
        flag: "--send-timeout",
        value: Some("SECS"),
        help: "abandon a response that makes no write progress for this long",
        show: |c| secs(c.send_timeout),
        apply: |b, v| {
            b.config.send_timeout = positive("send-timeout", v)?;
            Ok(())
        },
        repeatable: false,
        live: true,
    },
    OptionSpec {
        flag: "--evict-stalled-after",
        value: Some("SECS"),
        help: "with the fd budget full and no idle, fresh or slow-head connection left, evict a response that made no write progress this long (the client is not reading); --send-timeout still applies",
        show: |c| secs(c.evict_stalled_after),
        apply: |b, v| {
            b.config.evict_stalled_after = duration("evict-stalled-after", v)?;
            Ok(())
        },
        repeatable: false,
        live: true,
    },
    OptionSpec {
        flag: "--admission-wait",
        value: Some("SECS"),
        help: "with the fd budget full and nothing to evict, newcomers wait in the backlog this long; then each is answered once without a slot (from memory, else 503) and closed",
        show: |c| secs(c.admission_wait),
        apply: |b, v| {
            b.config.admission_wait = duration("admission-wait", v)?;
            Ok(())
        },
        repeatable: false,
        live: true,
    },
    OptionSpec {
        flag: "--linger-timeout",
        value: Some("SECS"),
        help: "after the last response, drain unread input at most this long before closing",
        show: |c| secs(c.linger_timeout),
        apply: |b, v| {
            b.config.linger_timeout = duration("linger-timeout", v)?;
            Ok(())
        },
        repeatable: false,
        live: true,
    },
    OptionSpec {
        flag: "--shutdown-timeout",
        value: Some("SECS"),
        help: "on SIGTERM/SIGINT, wait this long for in-flight responses before exiting",
        show: |c| secs(c.shutdown_timeout),
        apply: |b, v| {
            b.config.shutdown_timeout = duration("shutdown-timeout", v)?;
            Ok(())
        },
        repeatable: false,
        live: true,
    },
    OptionSpec {
        flag: "--max-header-bytes",
        value: Some("N"),
        help: "largest request head, request line included; beyond it 431",
        show: |c| c.max_header_bytes.to_string(),
        apply: |b, v| {
            b.config.max_header_bytes = number("max-header-bytes", v)?;
            if b.config.max_header_bytes < 64 {
                return Err(ConfigError::out_of_range(
                    "max-header-bytes",
                    "must be at least 64",
                ));
            }
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--max-uri-bytes",
        value: Some("N"),
        help: "longest request target; beyond it 414",
        show: |c| c.max_uri_bytes.to_string(),
        apply: |b, v| {
            b.config.max_uri_bytes = number("max-uri-bytes", v)?;
            Ok(())
        },
        repeatable: false,
        live: true,
    },
    OptionSpec {
        flag: "--max-body-bytes",
        value: Some("N"),
        help: "largest request body read and discarded; beyond it 413 and close",
        show: |c| c.max_body_bytes.to_string(),
        apply: |b, v| {
            b.config.max_body_bytes = number("max-body-bytes", v)?;
            Ok(())
        },
        repeatable: false,
        live: true,
    },
    OptionSpec {
        flag: "--small-file-bytes",
        value: Some("N"),
        help: "files up to this size are sent in the same write as the head; larger ones with sendfile",
        show: |c| c.small_file_bytes.to_string(),
        apply: |b, v| {
            b.config.small_file_bytes = number("small-file-bytes", v)?;
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--file-cache-entries",
        value: Some("N"),
        help: "small files (up to --small-file-bytes) kept in memory with their validators; 0 disables",
        show: |c| c.file_cache_entries.to_string(),
        apply: |b, v| {
            b.config.file_cache_entries = number("file-cache-entries", v)?;
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--file-cache-valid",
        value: Some("SECS"),
        help: "a cached file is re-checked (open + fstat) after this long; 0 disables the cache",
        show: |c| secs(c.file_cache_valid),
        apply: |b, v| {
            b.config.file_cache_valid = duration("file-cache-valid", v)?;
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--backlog",
        value: Some("N"),
        help: "listen(2) backlog: connections the kernel queues before accept",
        show: |c| c.backlog.to_string(),
        apply: |b, v| {
            b.config.backlog = number("backlog", v)?;
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--max-fds",
        value: Some("N"),
        help: "raise (or lower) the soft RLIMIT_NOFILE to N; above the hard limit is an error",
        show: |c| c.max_fds.map_or("hard limit".into(), |n| n.to_string()),
        apply: |b, v| {
            let n: u64 = number("max-fds", v)?;
            if n < 16 {
                return Err(ConfigError::out_of_range("max-fds", "must be at least 16"));
            }
            b.config.max_fds = Some(n);
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--max-connections",
        value: Some("N"),
        help: "open connections at most; above what the fd budget allows is an error",
        show: |c| {
            c.max_connections
                .map_or("fd budget".into(), |n| n.to_string())
        },
        apply: |b, v| {
            let n: usize = number("max-connections", v)?;
            if n == 0 {
                return Err(ConfigError::out_of_range(
                    "max-connections",
                    "must be at least 1",
                ));
            }
            b.config.max_connections = Some(n);
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--status-path",
        value: Some("PATH"),
        help: "serve counters at PATH: nginx stub_status text, ?format=prometheus, ?format=json, and a live page for a browser",
        show: |c| c.status_path.clone().unwrap_or_else(|| "off".into()),
        apply: |b, v| {
            if !v.starts_with('/') || v.contains('?') {
                let expected = "a path such as /status";
                return Err(ConfigError::invalid("status-path", v, expected));
            }
            b.config.status_path = Some(v.to_string());
            Ok(())
        },
        repeatable: false,
        live: true,
    },
    OptionSpec {
        flag: "--tcp-keepalive-time",
        value: Some("SECS"),
        help: "TCP keepalive: idle time before the first probe (SO_KEEPALIVE, TCP_KEEPIDLE)",
        show: |c| c.tcp_keepalive.map_or("off".into(), |k| secs(k.time)),
        apply: |b, v| {
            b.keepalive.time = positive("tcp-keepalive-time", v)?;
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--tcp-keepalive-interval",
        value: Some("SECS"),
        help: "TCP keepalive: time between probes (TCP_KEEPINTVL)",
        show: |c| c.tcp_keepalive.map_or("off".into(), |k| secs(k.interval)),
        apply: |b, v| {
            b.keepalive.interval = positive("tcp-keepalive-interval", v)?;
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--tcp-keepalive-probes",
        value: Some("N"),
        help: "TCP keepalive: unanswered probes before the kernel drops the connection (TCP_KEEPCNT)",
        show: |c| {
            c.tcp_keepalive
                .map_or("off".into(), |k| k.probes.to_string())
        },
        apply: |b, v| {
            b.keepalive.probes = number("tcp-keepalive-probes", v)?;
            if b.keepalive.probes == 0 {
                return Err(ConfigError::out_of_range(
                    "tcp-keepalive-probes",
                    "must be at least 1",
                ));
            }
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--no-tcp-keepalive",
        value: None,
        help: "leave TCP keepalive at the OS default instead",
        show: |c| on_off(c.tcp_keepalive.is_none()),
        apply: |b, _| {
            b.no_tcp_keepalive = true;
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--dotfiles",
        value: None,
        help: "serve names starting with a dot (.git, .env); otherwise they answer 404",
        show: |c| on_off(c.dotfiles),
        apply: |b, _| {
            b.config.dotfiles = true;
            Ok(())
        },
        repeatable: false,
        live: true,
    },
    OptionSpec {
        flag: "--no-precompressed",
        value: None,
        help: "do not serve FILE.br / FILE.gz in place of FILE when the client accepts them",
        show: |c| on_off(!c.precompressed),
        apply: |b, _| {
            b.config.precompressed = false;
            Ok(())
        },
        repeatable: false,
        live: true,
    },
    OptionSpec {
        flag: "--no-compress",
        value: None,
        help: "do not compress text on the fly (by default a compressible file without FILE.br / FILE.gz is compressed once per version, br or gzip, in the background, and served from memory)",
        show: |c| on_off(!c.compress),
        apply: |b, _| {
            b.config.compress = false;
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--compress-max-bytes",
        value: Some("N"),
        help: "files larger than this are not compressed on the fly",
        show: |c| c.compress_max_bytes.to_string(),
        apply: |b, v| {
            b.config.compress_max_bytes = number("compress-max-bytes", v)?;
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--compress-cache-bytes",
        value: Some("N"),
        help: "memory for compressed files, least recently used out first, shared by the workers; 0 turns compression off",
        show: |c| c.compress_cache_bytes.to_string(),
        apply: |b, v| {
            b.config.compress_cache_bytes = number("compress-cache-bytes", v)?;
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--listing",
        value: None,
        help: "list directories that have no index.html (otherwise they answer 404)",
        show: |c| on_off(c.listing),
        apply: |b, _| {
            b.config.listing = true;
            Ok(())
        },
        repeatable: false,
        live: true,
    },
    OptionSpec {
        flag: "--follow-symlinks",
        value: None,
        help: "follow symlinks whose targets lie outside ROOT (inside ROOT they are always followed)",
        show: |c| on_off(c.follow_symlinks),
        apply: |b, _| {
            b.config.follow_symlinks = true;
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--cache-control",
        value: Some("VALUE"),
        help: "Cache-Control header on file responses, such as 'public, max-age=3600'",
        show: |c| c.cache_control.clone().unwrap_or_else(|| "none".into()),
        apply: |b, v| {
            if v.bytes().any(|b| b.is_ascii_control()) {
                return Err(ConfigError::out_of_range(
                    "cache-control",
                    "must not contain control characters",
                ));
            }
            b.config.cache_control = Some(v.to_string());
            Ok(())
        },
        repeatable: false,
        live: true,
    },
    OptionSpec {
        flag: "--header",
        value: Some("'NAME: VALUE'"),
        help: "add this header to every response (CORS, HSTS, CSP...); repeatable; headers that frame the message (Content-Length, Transfer-Encoding, Connection...) are refused",
        show: |c| {
            if c.headers.is_empty() {
                "none".into()
            } else {
                c.headers.join("; ")
            }
        },
        apply: |b, v| {
            b.config.headers.push(header_line(v)?);
            Ok(())
        },
        repeatable: true,
        live: true,
    },
    OptionSpec {
        flag: "--fallback",
        value: Some("PATH"),
        help: "answer a GET or HEAD whose path names no file with this file and 200, such as /index.html for a single-page app",
        show: |c| c.fallback.clone().unwrap_or_else(|| "none".into()),
        apply: |b, v| {
            b.config.fallback = Some(site_path("fallback", v)?);
            Ok(())
        },
        repeatable: false,
        live: true,
    },
    OptionSpec {
        flag: "--error-page",
        value: Some("CODE=PATH"),
        help: "answer errors with status CODE (400-599) with this file's body, keeping the status, such as 404=/404.html; repeatable",
        show: |c| list(&c.error_pages, |(code, path)| format!("{code}={path}")),
        apply: |b, v| {
            let expected = "CODE=PATH with CODE from 400 to 599, such as 404=/404.html";
            let invalid = || ConfigError::invalid("error-page", v, expected);
            let (code, path) = v.split_once('=').ok_or_else(invalid)?;
            let code: u16 = code.parse().map_err(|_| invalid())?;
            if !(400..=599).contains(&code) {
                return Err(invalid());
            }
            let path = site_path("error-page", path)?;
            b.config.error_pages.retain(|(c, _)| *c != code);
            b.config.error_pages.push((code, path));
            Ok(())
        },
        repeatable: true,
        live: true,
    },
    OptionSpec {
        flag: "--access-log",
        value: Some("PATH"),
        help: "append one line per request to this file (- for standard output); written off the reactor thread, reopened on SIGUSR1 (for logrotate)",
        show: |c| {
            c.access_log
                .as_ref()
                .map_or("off".into(), |p| p.display().to_string())
        },
        apply: |b, v| {
            if v.is_empty() {
                let expected = "a file path, or - for standard output";
                return Err(ConfigError::invalid("access-log", v, expected));
            }
            b.config.access_log = Some(PathBuf::from(v));
            Ok(())
        },
        repeatable: false,
        live: true,
    },
    OptionSpec {
        flag: "--log-format",
        value: Some("FORMAT"),
        help: "access-log lines: combined (nginx's: with Referer and User-Agent), common (CLF), or json (with request_time, connection_requests and reused, for keep-alive study)",
        show: |c| c.log_format.name().into(),
        apply: |b, v| {
            b.config.log_format = LogFormat::from_name(v)
                .ok_or_else(|| ConfigError::invalid("log-format", v, "combined, common or json"))?;
            Ok(())
        },
        repeatable: false,
        live: true,
    },
    OptionSpec {
        flag: "--user",
        value: Some("NAME[:GROUP]"),
        help: "when started as root, switch to this user (and its group, or GROUP) once listeners are bound, ROOT and the TLS keys are open",
        show: |c| c.user.clone().unwrap_or_else(|| "none".into()),
        apply: |b, v| {
            let valid = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            };
            // "user" or "user:group", each part a plain name.
            if v.split(':').count() > 2 || !v.split(':').all(valid) {
                return Err(ConfigError::invalid(
                    "user",
                    v,
                    "a user name, or user:group",
                ));
            }
            b.config.user = Some(v.to_string());
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--workers",
        value: Some("N"),
        help: "reactor threads, each with its own SO_REUSEPORT listener, slab, wheel and share of the fd budget",
        show: |c| c.workers.to_string(),
        apply: |b, v| {
            b.config.workers = number("workers", v)?;
            if !(1..=256).contains(&b.config.workers) {
                return Err(ConfigError::out_of_range(
                    "workers",
                    "must be between 1 and 256",
                ));
            }
            Ok(())
        },
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--help",
        value: None,
        help: "print this help and exit",
        show: |_| "".into(),
        apply: |_, _| Ok(()),
        repeatable: false,
        live: false,
    },
    OptionSpec {
        flag: "--version",
        value: None,
        help: "print the version and exit",
        show: |_| "".into(),
        apply: |_, _| Ok(()),
        repeatable: false,
        live: false,
    },
];

/// Options that only the command line takes.
const COMMAND_LINE_ONLY: [&str; 3] = ["--config", "--help", "--version"];

/// The option for `--flag`.
pub fn option(flag: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.flag == flag)
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Serve(Box<Config>),
    Help,
    Version,
}

/// A configuration mistake; `Display` gives it as one line.
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
    /// A mistake in the configuration file, at this line (1-based; 0
    /// when it belongs to no line, such as an unpaired --tls-key).
    InFile {
        file: PathBuf,
        line: usize,
        message: String,
    },
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

    /// The same mistake, found in `file` at `line` (under `key`).
    fn in_file(self, file: &Path, line: usize, key: Option<&str>) -> ConfigError {
        let message = match (key, self) {
            (
                Some(key),
                ConfigError::Invalid {
                    value, expected, ..
                },
            ) => {
                format!("'{key}': invalid value '{value}': expected {expected}")
            }
            (Some(key), ConfigError::OutOfRange { rule, .. }) => format!("'{key}' {rule}"),
            (Some(key), ConfigError::Usage(m)) => format!("'{key}': {m}"),
            (_, e) => e.to_string(),
        };
        ConfigError::InFile {
            file: file.to_path_buf(),
            line,
            message,
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
            ConfigError::InFile {
                file,
                line: 0,
                message,
            } => write!(f, "{}: {message}", file.display()),
            ConfigError::InFile {
                file,
                line,
                message,
            } => write!(f, "{}:{line}: {message}", file.display()),
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
        let default = (opt.show)(&defaults);
        text.push_str(&format!("  {left:<30} {}", opt.help));
        if !default.is_empty() {
            text.push_str(&format!(" [default: {default}]"));
        }
        text.push('\n');
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
    Ok(Command::Serve(Box::new(build(file, given)?)))
}

/// Reads `running`'s configuration file again with its command line
/// over it: what SIGHUP applies (see [`Config::live_update`]).
pub fn reload(running: &Config) -> Result<Config, ConfigError> {
    build(running.config_file.clone(), running.command_line.clone())
}

/// Defaults, then the file's keys (those the command line does not
/// give), then the command line's options in order.
fn build(
    file: Option<PathBuf>,
    command_line: Vec<(&'static str, String)>,
) -> Result<Config, ConfigError> {
    let mut builder = Builder {
        config: Config::default(),
        listen: Vec::new(),
        tls_certs: Vec::new(),
        tls_keys: Vec::new(),
        keepalive: DEFAULT_TCP_KEEPALIVE,
        no_tcp_keepalive: false,
    };
    if let Some(path) = &file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Usage(format!("{}: {e}", path.display())))?;
        for (spec, value, line) in file_entries(path, &text)? {
            if command_line.iter().any(|(flag, _)| *flag == spec.flag) {
                continue;
            }
            (spec.apply)(&mut builder, &value)
                .map_err(|e| e.in_file(path, line, Some(spec.key())))?;
        }
    }
    for (flag, value) in &command_line {
        if let Some(spec) = option(flag) {
            (spec.apply)(&mut builder, value)?;
        }
    }
    let mut config = builder.finish().map_err(|e| match &file {
        Some(path) => e.in_file(path, 0, None),
        None => e,
    })?;
    config.config_file = file;
    config.command_line = command_line;
    Ok(config)
}

/// The file's settings as (option, value, line): one entry per array
/// element of a repeatable option, "" for a switch set to true.
fn file_entries(
    path: &Path,
    text: &str,
) -> Result<Vec<(&'static OptionSpec, String, usize)>, ConfigError> {
    use toml::de::{DeTable, DeValue};
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let table = DeTable::parse(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(s.start));
        let message = e.message().lines().next().unwrap_or("").to_string();
        ConfigError::InFile {
            file: path.to_path_buf(),
            line,
            message: format!("not valid TOML: {message}"),
        }
    })?;
    let mut entries = Vec::new();
    for (key, value) in table.get_ref() {
        let line = line_of(key.span().start);
        let name = key.get_ref().as_ref();
        let fail = |message: String| ConfigError::InFile {
            file: path.to_path_buf(),
            line,
            message,
        };
        let flag = format!("--{name}");
        let Some(spec) = option(&flag).filter(|s| !COMMAND_LINE_ONLY.contains(&s.flag)) else {
            return Err(fail(format!("unknown key '{name}'")));
        };
        let scalar = |value: &DeValue<'_>| -> Result<String, ConfigError> {
            match (value, spec.value) {
                (DeValue::String(s), Some(_)) => Ok(s.to_string()),
                (DeValue::Integer(i), Some(_)) => {
                    let digits = i.as_str().replace('_', "");
                    i64::from_str_radix(&digits, i.radix())
                        .map(|n| n.to_string())
                        .map_err(|_| fail(format!("'{name}': the number is out of range")))
                }
                (DeValue::Float(f), Some(_)) => Ok(f.as_str().replace('_', "")),
                (_, Some(placeholder)) => Err(fail(format!(
                    "'{name}' takes {placeholder} (a string or a number)"
                ))),
                (_, None) => Err(fail(format!("'{name}' is a switch: true or false"))),
            }
        };
        match value.get_ref() {
            DeValue::Boolean(on) if spec.value.is_none() => {
                if *on {
                    entries.push((spec, String::new(), line));
                }
            }
            DeValue::Array(items) if spec.repeatable => {
                for item in items {
                    entries.push((spec, scalar(item.get_ref())?, line));
                }
            }
            DeValue::Array(_) => {
                return Err(fail(format!("'{name}' takes one value, not a list")));
            }
            other => entries.push((spec, scalar(other)?, line)),
        }
    }
    Ok(entries)
}

impl Builder {
    /// The configuration, once what only the whole can say is checked.
    fn finish(self) -> Result<Config, ConfigError> {
        let mut config = self.config;
        config.tcp_keepalive = (!self.no_tcp_keepalive).then_some(self.keepalive);
        if self.tls_certs.len() != self.tls_keys.len() {
            return Err(ConfigError::out_of_range(
                "tls-key",
                "must be given once for each --tls-cert",
            ));
        }
        config.tls_certs = self
            .tls_certs
            .into_iter()
            .zip(self.tls_keys)
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
        if !self.listen.is_empty() {
            config.listen = self.listen;
        } else if !config.tls_listen.is_empty() || !config.listen_unix.is_empty() {
            // Only HTTPS or a unix socket was asked for: no plain TCP
            // listener on the default.
            config.listen.clear();
        }
        Ok(config)
    }
}

/// What a reload found: the configuration to run, and the options whose
/// change it applied or could not.
#[derive(Debug)]
pub struct LiveUpdate {
    /// The file's configuration with the options that need a restart
    /// kept as they run.
    pub config: Config,
    /// Options applied now.
    pub changed: Vec<&'static str>,
    /// Options that differ from the running ones and wait for a restart.
    pub need_restart: Vec<&'static str>,
}

impl Config {
    /// Merges a reloaded configuration into this running one: options
    /// marked live in [`OPTIONS`] take the new values, the others keep
    /// the running ones (listeners, workers, the fd and memory budgets
    /// are fixed at start). `started` is the configuration as parsed at
    /// start, before start-up filled in bound ports or passed sockets.
    pub fn live_update(&self, started: &Config, new: Config) -> LiveUpdate {
        let shown = |spec: &OptionSpec, c: &Config| (spec.show)(c);
        let changed = OPTIONS
            .iter()
            .filter(|o| o.live && shown(o, self) != shown(o, &new))
            .map(|o| o.flag)
            .collect();
        let need_restart = OPTIONS
            .iter()
            .filter(|o| !o.live && !COMMAND_LINE_ONLY.contains(&o.flag))
            .filter(|o| shown(o, started) != shown(o, &new))
            .map(|o| o.flag)
            .collect();
        let config = Config {
            root: self.root.clone(),
            listen: self.listen.clone(),
            listen_unix: self.listen_unix.clone(),
            tls_listen: self.tls_listen.clone(),
            tls_certs: self.tls_certs.clone(),
            tls_session_cache: self.tls_session_cache,
            tls_tickets: self.tls_tickets,
            max_header_bytes: self.max_header_bytes,
            small_file_bytes: self.small_file_bytes,
            file_cache_entries: self.file_cache_entries,
            file_cache_valid: self.file_cache_valid,
            backlog: self.backlog,
            max_fds: self.max_fds,
            max_connections: self.max_connections,
            tcp_keepalive: self.tcp_keepalive,
            follow_symlinks: self.follow_symlinks,
            compress: self.compress,
            compress_max_bytes: self.compress_max_bytes,
            compress_cache_bytes: self.compress_cache_bytes,
            user: self.user.clone(),
            workers: self.workers,
            config_file: self.config_file.clone(),
            command_line: self.command_line.clone(),
            ..new
        };
        LiveUpdate {
            config,
            changed,
            need_restart,
        }
    }
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

fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| ConfigError::invalid(name, value, "a whole number"))
}

/// Seconds, fractions allowed (tests use short timeouts), 0 allowed.
fn duration(name: &str, value: &str) -> Result<Duration, ConfigError> {
    value
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| *d <= Duration::from_secs(365 * 24 * 3600))
        .ok_or_else(|| ConfigError::invalid(name, value, "seconds, such as 5 or 0.5"))
}

fn positive(name: &str, value: &str) -> Result<Duration, ConfigError> {
    let d = duration(name, value)?;
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
        assert_eq!(serve(&["--root", "/a"]).unwrap().root, PathBuf::from("/a"));
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

    /// A configuration file in a fresh temporary directory.
    fn file(name: &str, text: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("holdline-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("holdline.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn with_file(path: &Path, args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["--config", path.to_str().unwrap()];
        all.extend_from_slice(args);
        serve(&all)
    }

    #[test]
    fn the_file_sets_options_by_their_flag_names() {
        let path = file(
            "keys",
            "# a comment\n\
             root = \"/srv/www\"\n\
             listen = [\"127.0.0.1:9000\", \"unix:/run/h.sock\"]\n\
             keepalive-timeout = 2.5\n\
             max-requests = 1_000\n\
             dotfiles = true\n\
             listing = false\n\
             header = [\"X-A: 1\", \"X-B: 2\"]\n\
             error-page = \"404=/404.html\"\n\
             access-log = \"-\"\n\
             log-format = \"json\"\n",
        );
        let c = with_file(&path, &[]).unwrap();
        assert_eq!(c.root, PathBuf::from("/srv/www"));
        assert_eq!(c.listen, ["127.0.0.1:9000".parse().unwrap()]);
        assert_eq!(c.listen_unix, [PathBuf::from("/run/h.sock")]);
        assert_eq!(c.keepalive_timeout, Duration::from_millis(2500));
        assert_eq!(c.max_requests, 1000);
        assert!(c.dotfiles && !c.listing);
        assert_eq!(c.headers, ["X-A: 1", "X-B: 2"]);
        assert_eq!(c.error_pages, [(404, "/404.html".to_string())]);
        assert_eq!(c.access_log, Some(PathBuf::from("-")));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.config_file.as_deref(), Some(path.as_path()));
    }

    #[test]
    fn the_command_line_overrides_the_file() {
        let path = file(
            "override",
            "keepalive-timeout = 9\nheader = [\"X-A: 1\", \"X-B: 2\"]\nmax-requests = 7\n",
        );
        let c = with_file(
            &path,
            &["--keepalive-timeout", "1", "--header", "X-C: 3", "/www"],
        )
        .unwrap();
        assert_eq!(c.keepalive_timeout, Duration::from_secs(1));
        // A repeatable option on the command line replaces the file's list.
        assert_eq!(c.headers, ["X-C: 3"]);
        assert_eq!(c.max_requests, 7);
        assert_eq!(c.root, PathBuf::from("/www"));
        // A reload reads the file again under the same command line.
        std::fs::write(&path, "keepalive-timeout = 9\nmax-requests = 8\n").unwrap();
        let again = reload(&c).unwrap();
        assert_eq!(again.keepalive_timeout, Duration::from_secs(1));
        assert_eq!(again.max_requests, 8);
        assert_eq!(again.headers, ["X-C: 3"]);
    }

    #[test]
    fn file_mistakes_name_the_file_the_line_and_the_key() {
        let cases = [
            (
                "max-requests = 1\nkeepalive-timeout = \"soon\"\n",
                2,
                "'keepalive-timeout': invalid value 'soon': expected seconds",
            ),
            ("\n\nno-such-key = 1\n", 3, "unknown key 'no-such-key'"),
            (
                "keepalive-timeout = [1, 2]\n",
                1,
                "'keepalive-timeout' takes one value, not a list",
            ),
            (
                "dotfiles = \"yes\"\n",
                1,
                "'dotfiles' is a switch: true or false",
            ),
            ("listen = true\n", 1, "'listen' takes ADDR"),
            (
                "header = [\"Content-Length: 5\"]\n",
                1,
                "'header' must not set",
            ),
            ("config = \"other.toml\"\n", 1, "unknown key 'config'"),
            ("[server]\nroot = \"/\"\n", 1, "unknown key 'server'"),
            (
                "max-header-bytes = 10\n",
                1,
                "'max-header-bytes' must be at least 64",
            ),
            ("keepalive-timeout = \n", 1, "not valid TOML"),
        ];
        for (text, line, message) in cases {
            let path = file("mistakes", text);
            let err = with_file(&path, &[]).unwrap_err().to_string();
            let at = format!("{}:{line}: ", path.display());
            assert!(err.starts_with(&at), "{text:?}: {err}");
            assert!(err.contains(message), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        // Checks of the whole name the file without a line.
        let path = file("whole", "tls-cert = \"a.pem\"\n");
        let err = with_file(&path, &[]).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: '--tls-key' must be given once for each --tls-cert",
                path.display()
            )
        );
        let missing = std::env::temp_dir().join("holdline-no-such-config.toml");
        assert!(with_file(&missing, &[]).is_err());
    }

    /// Every option marked live is taken from the reloaded file, every
    /// other keeps its running value: the table and
    /// [`Config::live_update`] agree.
    #[test]
    fn a_reload_applies_exactly_the_live_options() {
        let running = Config::default();
        let samples: &[(&str, &str)] = &[
            ("--root", "/elsewhere"),
            ("--listen", "127.0.0.1:9999"),
            ("--keepalive-timeout", "17"),
            ("--max-requests", "17"),
            ("--header-timeout", "17"),
            ("--send-timeout", "17"),
            ("--evict-stalled-after", "17"),
            ("--admission-wait", "17"),
            ("--linger-timeout", "17"),
            ("--shutdown-timeout", "17"),
            ("--max-header-bytes", "1700"),
            ("--max-uri-bytes", "1700"),
            ("--max-body-bytes", "1700"),
            ("--small-file-bytes", "1700"),
            ("--file-cache-entries", "17"),
            ("--file-cache-valid", "17"),
            ("--backlog", "17"),
            ("--max-fds", "1700"),
            ("--max-connections", "17"),
            ("--status-path", "/s"),
            ("--tcp-keepalive-time", "17"),
            ("--tcp-keepalive-interval", "17"),
            ("--tcp-keepalive-probes", "17"),
            ("--no-tcp-keepalive", ""),
            ("--dotfiles", ""),
            ("--no-precompressed", ""),
            ("--listing", ""),
            ("--follow-symlinks", ""),
            ("--no-compress", ""),
            ("--compress-max-bytes", "17"),
            ("--compress-cache-bytes", "17"),
            ("--cache-control", "no-store"),
            ("--header", "X-A: 1"),
            ("--fallback", "/index.html"),
            ("--error-page", "404=/404.html"),
            ("--access-log", "/tmp/a.log"),
            ("--log-format", "json"),
            ("--user", "nobody"),
            ("--workers", "3"),
            ("--tls-session-cache", "17"),
        ];
        let skipped = [
            "--config",
            "--help",
            "--version",
            "--tls-listen",
            "--tls-cert",
            "--tls-key",
            "--no-tls-tickets",
            "--redirect-to-https",
        ];
        for spec in OPTIONS {
            if skipped.contains(&spec.flag) {
                continue;
            }
            let Some((_, value)) = samples.iter().find(|(f, _)| *f == spec.flag) else {
                panic!("{}: add a sample value to this test", spec.flag);
            };
            let mut args = vec![spec.flag];
            if spec.value.is_some() {
                args.push(value);
            }
            let new = serve(&args).unwrap();
            let update = running.live_update(&running, new.clone());
            let shown = (spec.show)(&update.config);
            if spec.live {
                assert_eq!(shown, (spec.show)(&new), "{}", spec.flag);
                assert_eq!(update.changed, [spec.flag]);
                assert!(update.need_restart.is_empty(), "{}", spec.flag);
            } else {
                assert_eq!(shown, (spec.show)(&running), "{}", spec.flag);
                assert!(update.changed.is_empty(), "{}", spec.flag);
                // --no-tcp-keepalive shows in the three TCP keepalive rows.
                assert!(update.need_restart.contains(&spec.flag), "{}", spec.flag);
            }
        }
    }

    /// `contrib/holdline.toml` parses, and names every key a file takes.
    #[test]
    fn the_example_file_parses_and_lists_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/holdline.toml");
        let c = build(Some(path.clone()), Vec::new()).unwrap();
        assert_eq!(c.root, PathBuf::from("/srv/www"));
        let text = std::fs::read_to_string(&path).unwrap();
        for spec in OPTIONS
            .iter()
            .filter(|o| !COMMAND_LINE_ONLY.contains(&o.flag))
        {
            let key = spec.key();
            let listed = text.lines().any(|l| {
                let l = l.trim_start_matches("# ");
                l.starts_with(&format!("{key} = "))
            });
            assert!(listed, "contrib/holdline.toml lacks {key}");
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
