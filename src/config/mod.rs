//! Configuration: what the server can be told, split by what a SIGHUP
//! reload may change.
//!
//! A [`Config`] is two values of two types: [`Fixed`] (listeners,
//! workers, the fd and memory budgets, buffer and cache sizes, TLS: what
//! start-up builds the reactors from, changed only by a restart) and
//! [`Live`] (timeouts, limits on a request, and the sites: the default
//! one and the file's `[[site]]` blocks, each a [`SiteOptions`] with its
//! hosts, its ROOT and what its responses carry: what a reload swaps
//! whole, after the new file has been checked). A reload can
//! only hand the workers a new `Live`: the types say what may change, not
//! a list kept beside them.
//!
//! One table, [`OPTIONS`], describes every option: its flag (the file's
//! key is the flag without its dashes), its help line, how a value sets
//! it, and how its value prints; the printer is typed by the struct the
//! option lives in ([`Show::Fixed`], [`Show::Live`], or [`Show::Site`]
//! for a site's own, which a `[[site]]` block may set), so the table
//! cannot say "live" of an option a reload cannot change. `--help` is
//! printed from it, the command line and the file are parsed through it,
//! a reload compares configurations with it, and `tests/cli.rs` checks
//! README's table and SIGHUP column against it.
//!
//! The folder, in the order a start-up runs it:
//! - [`options`]: the table, and what each option's value must be;
//! - [`args`]: the command line, `--help`, and building a configuration
//!   (defaults, then the file, then the command line);
//! - [`file`](mod@file): the `--config` TOML file, read as entries of the table
//!   (the top level's, then each `[[site]]` block's);
//! - [`reload`](mod@reload): SIGHUP's merge (the running `Fixed`, the file's `Live`);
//! - [`rules`] and [`cidr`]: a `--rule` value and an address range,
//!   parsed and checked;
//! - [`docs`]: the man pages and shell completions, printed from the
//!   table;
//! - [`error`]: a mistake as one line, naming the file, line and key.
//!
//! Precedence: defaults, then the file, then the command line (an option
//! given there replaces the file's value, or the file's whole list for a
//! repeatable one). A reload reads the file again under the same command
//! line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::accesslog::LogFormat;

pub mod args;
pub mod cidr;
pub mod docs;
pub mod error;
pub mod file;
pub mod options;
pub mod reload;
pub mod rules;
mod values;

pub use args::{Command, help_text, parse_args};
pub use error::ConfigError;
pub use options::{OPTIONS, OptionSpec, Show, Topic, option};
pub use reload::{LiveUpdate, reload};

/// Everything the server can be told.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// What needs a restart.
    pub fixed: Fixed,
    /// What a SIGHUP reload may change.
    pub live: Live,
    /// Where this configuration came from, to read it again on SIGHUP.
    pub source: Source,
}

/// The options a running server cannot change: the reactors, their
/// sockets, budgets and caches are built from them at start.
#[derive(Debug, Clone, PartialEq)]
pub struct Fixed {
    pub listen: Vec<SocketAddr>,
    /// Unix-domain socket listeners (`--listen unix:PATH`).
    pub listen_unix: Vec<PathBuf>,
    /// HTTPS listeners (as bound, once start-up has run: a port 0 is
    /// the one the kernel chose).
    pub tls_listen: Vec<SocketAddr>,
    /// Certificate chains and keys; the first is the default, the others
    /// are chosen by SNI. (SIGHUP rereads the files at these paths.)
    pub tls_certs: Vec<crate::tls::CertPaths>,
    /// TLS 1.2 session-id cache entries; 0 disables it (tickets still
    /// resume).
    pub tls_session_cache: usize,
    /// TLS session tickets (stateless resumption, keys rotated).
    pub tls_tickets: bool,
    /// `--etag hash`: tags from the content's hash, not mtime and size.
    pub etag_hash: bool,
    /// `--acme-*`: the CA, the account, where certificates are kept.
    pub acme: crate::acme::AcmeOptions,
    /// The size of every connection's input buffer: a request head must
    /// fit in one.
    pub max_header_bytes: usize,
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
    /// TCP keepalive probes; `None` leaves the OS default.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// TCP_DEFER_ACCEPT on the TCP listeners: a connection is accepted
    /// once its first bytes arrive (or after about this long); zero
    /// accepts at once.
    pub defer_accept: Duration,
    /// Compress text on the fly, once per file version (`--no-compress`).
    pub compress: bool,
    /// Larger files are not compressed on the fly.
    pub compress_max_bytes: u64,
    /// Compressed representations kept in memory, all workers together;
    /// 0 turns compression off.
    pub compress_cache_bytes: usize,
    /// Follow symlinks that lead outside ROOT.
    pub follow_symlinks: bool,
    /// Switch to this user (and its group, or `user:group`) once the
    /// listeners are bound and ROOT is open.
    pub user: Option<String>,
    /// Reactor threads, each with its own SO_REUSEPORT listeners.
    pub workers: usize,
    /// How addresses are grouped into clients for the per-client limits.
    pub client_prefixes: crate::clients::Prefixes,
    /// Clients whose request rate is remembered at most (one table).
    pub client_table_entries: usize,
}

/// The options a SIGHUP reload applies in every worker: deadlines from
/// the next one filed, limits from the next request parsed, responses
/// from the next one answered. A request already parsed keeps the limits
/// it was parsed under (a chunked body's held head, a body being read);
/// a head still arriving is judged, when complete, by the new ones
/// (of the head limits only `--max-uri-bytes` is live).
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
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
    /// On SIGTERM, keep serving this long with the health check failing
    /// before the graceful shutdown begins.
    pub drain_delay: Duration,
    pub max_uri_bytes: usize,
    pub max_body_bytes: u64,
    /// Serve counters at this path (GET), whatever the Host; `None`: off.
    pub status_path: Option<String>,
    /// Answer 200 here while serving, 503 once draining, whatever the
    /// Host; `None`: off.
    pub health_path: Option<String>,
    /// The default site: the top level of the file and the command line.
    pub site: SiteOptions,
    /// The file's `[[site]]` blocks, in order.
    pub sites: Vec<SiteOptions>,
    /// What a request whose Host names no site gets.
    pub unknown_host: UnknownHost,
    /// Proxies whose `X-Forwarded-For` (or PROXY header) names the client.
    pub trusted_proxies: Vec<cidr::Cidr>,
    /// Connections from a trusted proxy begin with a PROXY protocol
    /// header (see [`crate::proxy_header`]).
    pub proxy_protocol: bool,
    /// Connections one client may have open (over every worker); 0: no
    /// limit.
    pub max_client_connections: u32,
    /// Requests a second one client may make (over every worker); 0: no
    /// limit.
    pub client_rate: f64,
    /// Requests a client may make at once above the rate.
    pub client_burst: u32,
    /// `--access-log`: the file ("-": standard output); `None`: off.
    pub access_log: Option<PathBuf>,
    pub log_format: LogFormat,
}

/// What one site serves and how: its host names, its ROOT, and what its
/// responses carry. The default site is the top level of the file (and
/// the command line); each `[[site]]` block starts from the top level's
/// options but `host`, and a key it sets replaces the top level's (a
/// list whole).
#[derive(Debug, Clone, PartialEq)]
pub struct SiteOptions {
    /// Host names (`example.com`, `*.example.com`), lower case, without
    /// a port; empty for the default site unless `--host` names some.
    pub hosts: Vec<String>,
    pub root: PathBuf,
    pub dotfiles: bool,
    /// Serve FILE.br / FILE.gz when the client accepts them.
    pub precompressed: bool,
    /// HTML listings of directories without index.html.
    pub listing: bool,
    /// `/about` serves about.html; `/about.html` redirects to `/about`.
    pub clean_urls: bool,
    /// Its certificate comes from the ACME CA (`--acme`).
    pub acme: bool,
    /// `Cache-Control` on file responses.
    pub cache_control: Option<String>,
    /// Plain listeners answer 308 to the https URL (the status path
    /// excepted).
    pub redirect_to_https: bool,
    /// `--header` lines ("Name: value"), added to every response.
    pub headers: Vec<String>,
    /// Served (200) for a GET or HEAD whose path names no file.
    pub fallback: Option<String>,
    /// (status, target): the body of error responses with that status.
    pub error_pages: Vec<(u16, String)>,
    /// `--rule`s, in order.
    pub rules: Vec<rules::Rule>,
}

impl Default for SiteOptions {
    fn default() -> Self {
        SiteOptions {
            hosts: Vec::new(),
            root: PathBuf::from("."),
            dotfiles: false,
            precompressed: true,
            listing: false,
            clean_urls: false,
            acme: false,
            cache_control: None,
            redirect_to_https: false,
            headers: Vec::new(),
            fallback: None,
            error_pages: Vec::new(),
            rules: Vec::new(),
        }
    }
}

/// `--unknown-host`: the answer to a request whose Host (or absolute-form
/// target, or its absence on HTTP/1.0) names no site's host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownHost {
    /// The default site serves it (nginx's `default_server`).
    #[default]
    DefaultSite,
    /// 404 Not Found.
    NotFound,
    /// 421 Misdirected Request: this server does not serve that name.
    Misdirected,
}

/// Where a configuration came from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Source {
    /// `--config`: the file read at start and on SIGHUP.
    pub file: Option<PathBuf>,
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

/// Linux's defaults are two hours before the first probe: far too long to
/// notice a peer that vanished while its connection sat idle.
pub const DEFAULT_TCP_KEEPALIVE: TcpKeepalive = TcpKeepalive {
    time: Duration::from_secs(60),
    interval: Duration::from_secs(10),
    probes: 6,
};

impl Default for Fixed {
    fn default() -> Self {
        Fixed {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            listen_unix: Vec::new(),
            tls_listen: Vec::new(),
            tls_certs: Vec::new(),
            tls_session_cache: 8192,
            tls_tickets: true,
            acme: crate::acme::AcmeOptions::default(),
            etag_hash: false,
            max_header_bytes: 16 * 1024,
            small_file_bytes: 16 * 1024,
            file_cache_entries: 1024,
            file_cache_valid: Duration::from_secs(1),
            backlog: 511,
            defer_accept: Duration::ZERO,
            max_connections: None,
            max_fds: None,
            tcp_keepalive: Some(DEFAULT_TCP_KEEPALIVE),
            compress: true,
            compress_max_bytes: 1024 * 1024,
            compress_cache_bytes: 16 * 1024 * 1024,
            follow_symlinks: false,
            user: None,
            workers: 1,
            client_prefixes: crate::clients::Prefixes { v4: 32, v6: 64 },
            client_table_entries: 16384,
        }
    }
}

impl Default for Live {
    fn default() -> Self {
        Live {
            keepalive_timeout: Duration::from_secs(5),
            max_requests: 100,
            header_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            evict_stalled_after: Duration::from_secs(1),
            admission_wait: Duration::from_millis(20),
            linger_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(10),
            drain_delay: Duration::ZERO,
            max_uri_bytes: 8 * 1024,
            max_body_bytes: 1024 * 1024,
            status_path: None,
            health_path: None,
            site: SiteOptions::default(),
            sites: Vec::new(),
            unknown_host: UnknownHost::DefaultSite,
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
            max_client_connections: 0,
            client_rate: 0.0,
            client_burst: 20,
            access_log: None,
            log_format: LogFormat::Combined,
        }
    }
}

impl Live {
    /// Every site: the default one first, then the `[[site]]` blocks.
    pub fn all_sites(&self) -> impl Iterator<Item = &SiteOptions> {
        std::iter::once(&self.site).chain(&self.sites)
    }

    /// The sites whose certificates come from the ACME CA (`--acme`),
    /// by index among [`Live::all_sites`], with the names a CA can
    /// validate (a site with none is logged and left out).
    pub fn acme_sites(&self) -> Vec<crate::acme::ManagedSite> {
        self.all_sites()
            .enumerate()
            .filter(|(_, site)| site.acme)
            .filter_map(|(index, site)| {
                let names = crate::acme::validatable(&site.hosts);
                if names.is_empty() {
                    log::warn!(
                        "acme: the site of {} has no name a CA can validate (wildcards and addresses cannot be); it gets no certificate",
                        site.root.display()
                    );
                    return None;
                }
                Some(crate::acme::ManagedSite { index, names })
            })
            .collect()
    }

    /// One deadline per phase, as these options set them.
    pub fn timeouts(&self) -> crate::http::session::Timeouts {
        crate::http::session::Timeouts {
            header: self.header_timeout,
            send: self.send_timeout,
            keepalive: self.keepalive_timeout,
            linger: self.linger_timeout,
        }
    }
}

impl Config {
    /// The defaults with `change` made to them (for a server built in
    /// code, such as the in-process tests').
    pub fn with(change: impl FnOnce(&mut Config)) -> Config {
        let mut config = Config::default();
        change(&mut config);
        config
    }
}
