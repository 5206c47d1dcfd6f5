//! The option table: every option holdline takes, one entry each, in
//! `--help` order.
//!
//! This file is long because it is one list: an entry is an option's
//! flag, help line, printer and setter, and splitting the list would
//! only make an option harder to find. The setters' value checks that
//! several options share live in `values.rs`.
//!
//! Panics: [`OptionSpec::key`] cuts the flag's two dashes off; every flag
//! in the table has them (a test checks).

use std::net::SocketAddr;
use std::path::PathBuf;

use super::error::ConfigError;
use super::values::{
    buffer_bytes, duration, header_line, host_name, list, number, on_off, positive, secs, site_path,
};
use super::{
    Config, DEFAULT_TCP_KEEPALIVE, Fixed, Live, LogFormat, SiteOptions, TcpKeepalive, UnknownHost,
};

/// One option: its flag, what `--help` says of it, and how a value sets
/// it. The same entry is the command line's `--flag`, the configuration
/// file's `flag = ...` key, and a row of README's table.
pub struct OptionSpec {
    pub flag: &'static str,
    /// The value's placeholder; `None` for a switch.
    pub value: Option<&'static str>,
    pub help: &'static str,
    /// The option's value in a configuration, as `--help` prints the
    /// default and a reload compares the running one with the file's; its
    /// variant says which struct the option lives in.
    pub show: Show,
    /// Sets the option from one value (a switch gets "").
    pub(super) apply: fn(&mut Builder, &str) -> Result<(), ConfigError>,
    /// Each occurrence adds a value (an array in the file); on the
    /// command line they replace the file's list.
    pub repeatable: bool,
    /// Where `--help` and the man page list it.
    pub topic: Topic,
    /// The values it takes, when they are a closed set (for the shell
    /// completions); empty otherwise.
    pub choices: &'static [&'static str],
}

/// The topics `--help` and the man page group the options by, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    Listening,
    Sites,
    Timeouts,
    Limits,
    Files,
    Tls,
    Logging,
    Operations,
}

impl Topic {
    pub const ALL: [Topic; 8] = [
        Topic::Listening,
        Topic::Sites,
        Topic::Timeouts,
        Topic::Limits,
        Topic::Files,
        Topic::Tls,
        Topic::Logging,
        Topic::Operations,
    ];

    /// The heading it is listed under.
    pub fn heading(self) -> &'static str {
        match self {
            Topic::Listening => "Listening",
            Topic::Sites => "Sites, files and rules",
            Topic::Timeouts => "Keep-alive and timeouts",
            Topic::Limits => "Limits",
            Topic::Files => "Caches and compression",
            Topic::Tls => "TLS",
            Topic::Logging => "Logging",
            Topic::Operations => "Operations",
        }
    }
}

/// How an option's value prints, from the one struct that holds it.
#[derive(Clone, Copy)]
pub enum Show {
    /// A [`Fixed`] option: a change waits for a restart.
    Fixed(fn(&Fixed) -> String),
    /// A [`Live`] option: SIGHUP applies a change.
    Live(fn(&Live) -> String),
    /// A [`SiteOptions`] option: the default site's (the top level), or a
    /// `[[site]]` block's; SIGHUP applies a change.
    Site(fn(&SiteOptions) -> String),
    /// Only the command line takes it (`--config`, `--help`, `--version`);
    /// `--help` prints this as its default.
    CommandLine(&'static str),
}

impl OptionSpec {
    /// The flag without its dashes: the configuration file's key.
    pub fn key(&self) -> &'static str {
        &self.flag[2..]
    }

    /// A SIGHUP reload applies a change; otherwise it waits for a restart.
    pub fn live(&self) -> bool {
        matches!(self.show, Show::Live(_) | Show::Site(_))
    }

    /// A `[[site]]` block may set it: a site's own option, or one of its
    /// certificates.
    pub fn per_site(&self) -> bool {
        matches!(self.show, Show::Site(_)) || matches!(self.flag, "--tls-cert" | "--tls-key")
    }

    /// Only the command line takes it: not a key of the file.
    pub fn command_line_only(&self) -> bool {
        matches!(self.show, Show::CommandLine(_))
    }

    /// The option's value in `config`, as `--help` and reloads print it.
    pub fn shown(&self, config: &Config) -> String {
        match self.show {
            Show::Fixed(show) => show(&config.fixed),
            Show::Live(show) => show(&config.live),
            Show::Site(show) => show(&config.live.site),
            Show::CommandLine(default) => default.to_string(),
        }
    }
}

/// A configuration being built from the file and the command line;
/// [`Builder::finish`] checks what only the whole can say.
pub(super) struct Builder {
    config: Config,
    /// TCP `--listen` addresses given (unix ones go straight in).
    listen: Vec<SocketAddr>,
    tls_certs: Vec<PathBuf>,
    tls_keys: Vec<PathBuf>,
    keepalive: TcpKeepalive,
    no_tcp_keepalive: bool,
}

/// Every option holdline takes, in `--help` order.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        flag: "--config",
        topic: Topic::Operations,
        choices: &[],
        value: Some("FILE"),
        help: "read options from this TOML file (keys are the long flag names: keepalive-timeout = 5, listen = [\"127.0.0.1:8080\"]); flags given here override it; SIGHUP reads it again",
        show: Show::CommandLine("none"),
        // Taken by the command line before anything else is applied.
        apply: |_, _| Ok(()),
        repeatable: false,
    },
    OptionSpec {
        flag: "--root",
        topic: Topic::Sites,
        choices: &[],
        value: Some("DIR"),
        help: "directory to serve (also the first argument)",
        show: Show::Site(|c| c.root.display().to_string()),
        apply: |b, v| {
            b.config.live.site.root = PathBuf::from(v);
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--host",
        topic: Topic::Sites,
        choices: &[],
        value: Some("NAME"),
        help: "a host name this site answers (example.com, *.example.com for every name beneath it, or an address), compared with the request's Host without its port and case; repeatable; in a [[site]] block it names that site",
        show: Show::Site(|c| list(&c.hosts, String::clone)),
        apply: |b, v| {
            let name = host_name(v)?;
            if !b.config.live.site.hosts.contains(&name) {
                b.config.live.site.hosts.push(name);
            }
            Ok(())
        },
        repeatable: true,
    },
    OptionSpec {
        flag: "--unknown-host",
        topic: Topic::Sites,
        choices: &["default", "404", "421"],
        value: Some("ANSWER"),
        help: "what a request whose Host names no site gets: default (the top-level site serves it), 404, or 421 (Misdirected Request)",
        show: Show::Live(|c| {
            match c.unknown_host {
                UnknownHost::DefaultSite => "default",
                UnknownHost::NotFound => "404",
                UnknownHost::Misdirected => "421",
            }
            .into()
        }),
        apply: |b, v| {
            b.config.live.unknown_host = match v {
                "default" => UnknownHost::DefaultSite,
                "404" => UnknownHost::NotFound,
                "421" => UnknownHost::Misdirected,
                _ => {
                    return Err(ConfigError::invalid(
                        "unknown-host",
                        v,
                        "default, 404 or 421",
                    ));
                }
            };
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--trusted-proxy",
        topic: Topic::Sites,
        choices: &[],
        value: Some("RANGE"),
        help: "a proxy (address or range, such as 10.0.0.0/8) whose X-Forwarded-For names the client for allow-from and deny-from rules and --client-rate: the rightmost address in it that is not a trusted proxy (or whose PROXY header does, with --proxy-protocol); its own connections count against no --max-client-connections; repeatable",
        show: Show::Live(|c| list(&c.trusted_proxies, |r| r.to_string())),
        apply: |b, v| {
            let range = super::cidr::Cidr::parse(v).ok_or_else(|| {
                ConfigError::invalid(
                    "trusted-proxy",
                    v,
                    "an address or a range such as 10.0.0.0/8",
                )
            })?;
            b.config.live.trusted_proxies.push(range);
            Ok(())
        },
        repeatable: true,
    },
    OptionSpec {
        flag: "--proxy-protocol",
        topic: Topic::Sites,
        choices: &[],
        value: None,
        help: "connections from a --trusted-proxy begin with a PROXY protocol header (v1 or v2, as HAProxy's send-proxy or a TCP load balancer sends), whose source address is the client for limits, rules and the access log; one without it is closed; other peers are served as they come",
        show: Show::Live(|c| on_off(c.proxy_protocol)),
        apply: |b, _| {
            b.config.live.proxy_protocol = true;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--listen",
        topic: Topic::Listening,
        choices: &[],
        value: Some("ADDR"),
        help: "address to listen on, such as 127.0.0.1:8080, [::1]:8080 or unix:/run/holdline.sock (a stale socket file is replaced; its mode follows the umask); repeatable",
        show: Show::Fixed(|c| {
            let tcp = c.listen.iter().map(|a| a.to_string());
            let unix = c
                .listen_unix
                .iter()
                .map(|p| format!("unix:{}", p.display()));
            tcp.chain(unix).collect::<Vec<_>>().join(" ")
        }),
        apply: |b, v| {
            if let Some(path) = v.strip_prefix("unix:") {
                if !path.starts_with('/') || path.len() > 100 {
                    let expected = "unix: and an absolute path of at most 100 bytes";
                    return Err(ConfigError::invalid("listen", v, expected));
                }
                b.config.fixed.listen_unix.push(PathBuf::from(path));
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
    },
    OptionSpec {
        flag: "--tls-listen",
        topic: Topic::Listening,
        choices: &[],
        value: Some("ADDR"),
        help: "address to listen on for HTTPS (TLS 1.2 and 1.3); repeatable; needs --tls-cert and --tls-key",
        show: Show::Fixed(|c| list(&c.tls_listen, |a| a.to_string())),
        apply: |b, v| {
            let expected = "an address like 127.0.0.1:8443 or [::1]:8443";
            let addr = v
                .parse()
                .map_err(|_| ConfigError::invalid("tls-listen", v, expected))?;
            b.config.fixed.tls_listen.push(addr);
            Ok(())
        },
        repeatable: true,
    },
    OptionSpec {
        flag: "--tls-cert",
        topic: Topic::Tls,
        choices: &[],
        value: Some("PEM"),
        help: "certificate chain (PEM, leaf first) for HTTPS; repeatable, paired in order with --tls-key; the first pair is the default, the others are chosen by SNI; SIGHUP reloads them",
        show: Show::Fixed(|c| list(&c.tls_certs, |p| p.cert.display().to_string())),
        apply: |b, v| {
            b.tls_certs.push(PathBuf::from(v));
            Ok(())
        },
        repeatable: true,
    },
    OptionSpec {
        flag: "--tls-key",
        topic: Topic::Tls,
        choices: &[],
        value: Some("PEM"),
        help: "private key (PEM: PKCS#8, SEC1 or PKCS#1; ECDSA, RSA or Ed25519) of the --tls-cert given in the same position",
        show: Show::Fixed(|c| list(&c.tls_certs, |p| p.key.display().to_string())),
        apply: |b, v| {
            b.tls_keys.push(PathBuf::from(v));
            Ok(())
        },
        repeatable: true,
    },
    OptionSpec {
        flag: "--acme",
        topic: Topic::Tls,
        choices: &[],
        value: None,
        help: "obtain and renew this site's certificate from the --acme-directory CA for its host names (not wildcards or addresses), served on --tls-listen; a self-signed placeholder until the first is issued; needs --acme-agree-tos",
        show: Show::Site(|c| on_off(c.acme)),
        apply: |b, _| {
            b.config.live.site.acme = true;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--acme-directory",
        topic: Topic::Tls,
        choices: &[],
        value: Some("URL"),
        help: "the ACME CA's directory (Let's Encrypt's staging CA: https://acme-staging-v02.api.letsencrypt.org/directory)",
        show: Show::Fixed(|c| c.acme.directory.clone()),
        apply: |b, v| {
            if !v.starts_with("https://") {
                return Err(ConfigError::invalid("acme-directory", v, "an https:// URL"));
            }
            b.config.fixed.acme.directory = v.to_string();
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--acme-email",
        topic: Topic::Tls,
        choices: &[],
        value: Some("ADDR"),
        help: "the contact address of the ACME account (the CA writes about expiring certificates and problems)",
        show: Show::Fixed(|c| c.acme.email.clone().unwrap_or_else(|| "none".into())),
        apply: |b, v| {
            if !v.contains('@') || v.contains(|c: char| c.is_whitespace() || c == ',') {
                return Err(ConfigError::invalid(
                    "acme-email",
                    v,
                    "an address such as ops@example.com",
                ));
            }
            b.config.fixed.acme.email = Some(v.to_string());
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--acme-agree-tos",
        topic: Topic::Tls,
        choices: &[],
        value: None,
        help: "agree to the ACME CA's terms of service (required to create its account)",
        show: Show::Fixed(|c| on_off(c.acme.agree_tos)),
        apply: |b, _| {
            b.config.fixed.acme.agree_tos = true;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--acme-storage",
        topic: Topic::Tls,
        choices: &[],
        value: Some("DIR"),
        help: "where the ACME account key and every site's certificate and key are kept (0700, files 0600), read again at start",
        show: Show::Fixed(|c| c.acme.storage.display().to_string()),
        apply: |b, v| {
            b.config.fixed.acme.storage = PathBuf::from(v);
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--acme-challenge",
        topic: Topic::Tls,
        choices: &["auto", "http-01", "tls-alpn-01"],
        value: Some("KIND"),
        help: "how the CA checks a site holds its names: http-01 (a file on the plain listener, port 80), tls-alpn-01 (a certificate on the TLS listener, port 443), or auto (http-01 when there is a plain listener)",
        show: Show::Fixed(|c| {
            c.acme
                .challenge
                .map_or("auto", crate::acme::ChallengeKind::as_str)
                .to_string()
        }),
        apply: |b, v| {
            b.config.fixed.acme.challenge = match v {
                "auto" => None,
                "http-01" => Some(crate::acme::ChallengeKind::Http01),
                "tls-alpn-01" => Some(crate::acme::ChallengeKind::TlsAlpn01),
                _ => {
                    return Err(ConfigError::invalid(
                        "acme-challenge",
                        v,
                        "auto, http-01 or tls-alpn-01",
                    ));
                }
            };
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--acme-ca-root",
        topic: Topic::Tls,
        choices: &[],
        value: Some("FILE"),
        help: "the roots (PEM) the ACME CA's own HTTPS is checked against, for a private CA; otherwise the system's bundle",
        show: Show::Fixed(|c| {
            c.acme
                .ca_root
                .as_ref()
                .map_or("system".into(), |p| p.display().to_string())
        }),
        apply: |b, v| {
            b.config.fixed.acme.ca_root = Some(PathBuf::from(v));
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--acme-retry",
        topic: Topic::Tls,
        choices: &[],
        value: Some("SECS"),
        help: "after a failed ACME attempt, wait this long (doubling with each failure, at most a day, with jitter; never less than the CA's Retry-After)",
        show: Show::Fixed(|c| secs(c.acme.retry)),
        apply: |b, v| {
            let retry = duration("acme-retry", v)?;
            if retry < std::time::Duration::from_secs(1) {
                return Err(ConfigError::out_of_range(
                    "acme-retry",
                    "must be at least 1",
                ));
            }
            b.config.fixed.acme.retry = retry;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--tls-session-cache",
        topic: Topic::Tls,
        choices: &[],
        value: Some("N"),
        help: "TLS 1.2 sessions remembered for resumption by session id (TLS 1.3 and ticket-capable clients resume by ticket); 0 disables; at most 1048576",
        show: Show::Fixed(|c| c.tls_session_cache.to_string()),
        apply: |b, v| {
            b.config.fixed.tls_session_cache = number("tls-session-cache", v)?;
            // rustls reserves room for every entry up front.
            if b.config.fixed.tls_session_cache > 1 << 20 {
                return Err(ConfigError::out_of_range(
                    "tls-session-cache",
                    "must be at most 1048576",
                ));
            }
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--no-tls-tickets",
        topic: Topic::Tls,
        choices: &[],
        value: None,
        help: "issue no TLS session tickets (nginx's ssl_session_tickets off); with --tls-session-cache 0 nothing resumes",
        show: Show::Fixed(|c| on_off(!c.tls_tickets)),
        apply: |b, _| {
            b.config.fixed.tls_tickets = false;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--redirect-to-https",
        topic: Topic::Sites,
        choices: &[],
        value: None,
        help: "plain-HTTP listeners answer every request (but --status-path) with 308 to the same URL on the first --tls-listen port",
        show: Show::Site(|c| on_off(c.redirect_to_https)),
        apply: |b, _| {
            b.config.live.site.redirect_to_https = true;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--keepalive-timeout",
        topic: Topic::Timeouts,
        choices: &[],
        value: Some("SECS"),
        help: "close a keep-alive connection idle this long; 0 disables keep-alive",
        show: Show::Live(|c| secs(c.keepalive_timeout)),
        apply: |b, v| {
            b.config.live.keepalive_timeout = duration("keepalive-timeout", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--max-requests",
        topic: Topic::Timeouts,
        choices: &[],
        value: Some("N"),
        help: "requests served on one connection before it is closed; 0 is unlimited",
        show: Show::Live(|c| c.max_requests.to_string()),
        apply: |b, v| {
            b.config.live.max_requests = number("max-requests", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--header-timeout",
        topic: Topic::Timeouts,
        choices: &[],
        value: Some("SECS"),
        help: "time allowed to receive a request head (from accept, or its first byte); then 408",
        show: Show::Live(|c| secs(c.header_timeout)),
        apply: |b, v| {
            b.config.live.header_timeout = positive("header-timeout", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--send-timeout",
        topic: Topic::Timeouts,
        choices: &[],
        value: Some("SECS"),
        help: "abandon a response that makes no write progress for this long",
        show: Show::Live(|c| secs(c.send_timeout)),
        apply: |b, v| {
            b.config.live.send_timeout = positive("send-timeout", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--evict-stalled-after",
        topic: Topic::Timeouts,
        choices: &[],
        value: Some("SECS"),
        help: "with the fd budget full and no idle, fresh or slow-head connection left, evict a response that made no write progress this long (the client is not reading); --send-timeout still applies",
        show: Show::Live(|c| secs(c.evict_stalled_after)),
        apply: |b, v| {
            b.config.live.evict_stalled_after = duration("evict-stalled-after", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--admission-wait",
        topic: Topic::Timeouts,
        choices: &[],
        value: Some("SECS"),
        help: "with the fd budget full and nothing to evict, newcomers wait in the backlog this long; then each is answered once without a slot (from memory, else 503) and closed",
        show: Show::Live(|c| secs(c.admission_wait)),
        apply: |b, v| {
            b.config.live.admission_wait = duration("admission-wait", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--linger-timeout",
        topic: Topic::Timeouts,
        choices: &[],
        value: Some("SECS"),
        help: "after the last response, drain unread input at most this long before closing",
        show: Show::Live(|c| secs(c.linger_timeout)),
        apply: |b, v| {
            b.config.live.linger_timeout = duration("linger-timeout", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--shutdown-timeout",
        topic: Topic::Timeouts,
        choices: &[],
        value: Some("SECS"),
        help: "on SIGTERM/SIGINT, wait this long for in-flight responses before exiting",
        show: Show::Live(|c| secs(c.shutdown_timeout)),
        apply: |b, v| {
            b.config.live.shutdown_timeout = duration("shutdown-timeout", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--drain-delay",
        topic: Topic::Timeouts,
        choices: &[],
        value: Some("SECS"),
        help: "on SIGTERM/SIGINT, first keep serving and accepting this long while --health-path answers 503 and every response says Connection: close, so that a load balancer takes the instance out; then shut down gracefully",
        show: Show::Live(|c| secs(c.drain_delay)),
        apply: |b, v| {
            b.config.live.drain_delay = duration("drain-delay", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--max-header-bytes",
        topic: Topic::Limits,
        choices: &[],
        value: Some("N"),
        help: "largest request head, request line included; beyond it 431; at most 1 GiB",
        show: Show::Fixed(|c| c.max_header_bytes.to_string()),
        apply: |b, v| {
            b.config.fixed.max_header_bytes = buffer_bytes("max-header-bytes", v)?;
            if b.config.fixed.max_header_bytes < 64 {
                return Err(ConfigError::out_of_range(
                    "max-header-bytes",
                    "must be at least 64",
                ));
            }
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--max-uri-bytes",
        topic: Topic::Limits,
        choices: &[],
        value: Some("N"),
        help: "longest request target; beyond it 414",
        show: Show::Live(|c| c.max_uri_bytes.to_string()),
        apply: |b, v| {
            b.config.live.max_uri_bytes = number("max-uri-bytes", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--max-body-bytes",
        topic: Topic::Limits,
        choices: &[],
        value: Some("N"),
        help: "largest request body read and discarded; beyond it 413 and close",
        show: Show::Live(|c| c.max_body_bytes.to_string()),
        apply: |b, v| {
            b.config.live.max_body_bytes = number("max-body-bytes", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--small-file-bytes",
        topic: Topic::Files,
        choices: &[],
        value: Some("N"),
        help: "files up to this size are sent in the same write as the head; larger ones with sendfile; at most 1 GiB",
        show: Show::Fixed(|c| c.small_file_bytes.to_string()),
        apply: |b, v| {
            b.config.fixed.small_file_bytes = buffer_bytes("small-file-bytes", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--file-cache-entries",
        topic: Topic::Files,
        choices: &[],
        value: Some("N"),
        help: "small files (up to --small-file-bytes) kept in memory with their validators; 0 disables",
        show: Show::Fixed(|c| c.file_cache_entries.to_string()),
        apply: |b, v| {
            b.config.fixed.file_cache_entries = number("file-cache-entries", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--file-cache-valid",
        topic: Topic::Files,
        choices: &[],
        value: Some("SECS"),
        help: "a cached file is re-checked (open + fstat) after this long; 0 disables the cache",
        show: Show::Fixed(|c| secs(c.file_cache_valid)),
        apply: |b, v| {
            b.config.fixed.file_cache_valid = duration("file-cache-valid", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--backlog",
        topic: Topic::Listening,
        choices: &[],
        value: Some("N"),
        help: "listen(2) backlog: connections the kernel queues before accept",
        show: Show::Fixed(|c| c.backlog.to_string()),
        apply: |b, v| {
            b.config.fixed.backlog = number("backlog", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--max-fds",
        topic: Topic::Limits,
        choices: &[],
        value: Some("N"),
        help: "raise (or lower) the soft RLIMIT_NOFILE to N; above the hard limit is an error",
        show: Show::Fixed(|c| c.max_fds.map_or("hard limit".into(), |n| n.to_string())),
        apply: |b, v| {
            let n: u64 = number("max-fds", v)?;
            if n < 16 {
                return Err(ConfigError::out_of_range("max-fds", "must be at least 16"));
            }
            b.config.fixed.max_fds = Some(n);
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--max-connections",
        topic: Topic::Limits,
        choices: &[],
        value: Some("N"),
        help: "open connections at most; above what the fd budget allows is an error",
        show: Show::Fixed(|c| {
            c.max_connections
                .map_or("fd budget".into(), |n| n.to_string())
        }),
        apply: |b, v| {
            let n: usize = number("max-connections", v)?;
            if n == 0 {
                return Err(ConfigError::out_of_range(
                    "max-connections",
                    "must be at least 1",
                ));
            }
            b.config.fixed.max_connections = Some(n);
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--max-client-connections",
        topic: Topic::Limits,
        choices: &[],
        value: Some("N"),
        help: "connections one client (an address, grouped by --client-prefix-v4/-v6) may have open, over every worker; more are closed at accept; 0 is unlimited",
        show: Show::Live(|c| c.max_client_connections.to_string()),
        apply: |b, v| {
            b.config.live.max_client_connections = number("max-client-connections", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--client-rate",
        topic: Topic::Limits,
        choices: &[],
        value: Some("PER_SEC"),
        help: "requests a second one client may make, over every worker (a token bucket, with --client-burst); more are answered 429 with Retry-After; 0 is unlimited",
        show: Show::Live(|c| format!("{}", c.client_rate)),
        apply: |b, v| {
            let rate: f64 = v
                .parse()
                .ok()
                .filter(|r: &f64| r.is_finite() && *r >= 0.0 && *r <= 1e9)
                .ok_or_else(|| {
                    ConfigError::invalid("client-rate", v, "requests a second, such as 50 or 0.5")
                })?;
            b.config.live.client_rate = rate;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--client-burst",
        topic: Topic::Limits,
        choices: &[],
        value: Some("N"),
        help: "requests a client may make at once beyond --client-rate (its bucket's size)",
        show: Show::Live(|c| c.client_burst.to_string()),
        apply: |b, v| {
            let burst: u32 = number("client-burst", v)?;
            if burst == 0 {
                return Err(ConfigError::out_of_range(
                    "client-burst",
                    "must be at least 1",
                ));
            }
            b.config.live.client_burst = burst;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--client-prefix-v4",
        topic: Topic::Limits,
        choices: &[],
        value: Some("BITS"),
        help: "IPv4 addresses that share this many leading bits are one client for the per-client limits (32: each address; 24: each /24)",
        show: Show::Fixed(|c| c.client_prefixes.v4.to_string()),
        apply: |b, v| {
            let bits: u8 = number("client-prefix-v4", v)?;
            if bits > 32 {
                return Err(ConfigError::out_of_range(
                    "client-prefix-v4",
                    "must be at most 32",
                ));
            }
            b.config.fixed.client_prefixes.v4 = bits;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--client-prefix-v6",
        topic: Topic::Limits,
        choices: &[],
        value: Some("BITS"),
        help: "IPv6 addresses that share this many leading bits are one client (64: each /64, what one host usually holds; 128: each address)",
        show: Show::Fixed(|c| c.client_prefixes.v6.to_string()),
        apply: |b, v| {
            let bits: u8 = number("client-prefix-v6", v)?;
            if bits > 128 {
                return Err(ConfigError::out_of_range(
                    "client-prefix-v6",
                    "must be at most 128",
                ));
            }
            b.config.fixed.client_prefixes.v6 = bits;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--client-table-entries",
        topic: Topic::Limits,
        choices: &[],
        value: Some("N"),
        help: "clients whose request rate is remembered (one table for every worker; a full table forgets a client whose bucket refilled, else the one seen least recently); part of the memory bound",
        show: Show::Fixed(|c| c.client_table_entries.to_string()),
        apply: |b, v| {
            let n: usize = number("client-table-entries", v)?;
            if !(1..=1 << 24).contains(&n) {
                return Err(ConfigError::out_of_range(
                    "client-table-entries",
                    "must be from 1 to 16777216",
                ));
            }
            b.config.fixed.client_table_entries = n;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--status-path",
        topic: Topic::Operations,
        choices: &[],
        value: Some("PATH"),
        help: "serve counters at PATH: nginx stub_status text, ?format=prometheus, ?format=json, and a live page for a browser",
        show: Show::Live(|c| c.status_path.clone().unwrap_or_else(|| "off".into())),
        apply: |b, v| {
            if !v.starts_with('/') || v.contains('?') {
                let expected = "a path such as /status";
                return Err(ConfigError::invalid("status-path", v, expected));
            }
            b.config.live.status_path = Some(v.to_string());
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--health-path",
        topic: Topic::Operations,
        choices: &[],
        value: Some("PATH"),
        help: "answer a load balancer's health check at PATH: 200 while serving, 503 once a shutdown or --drain-delay has begun (never redirected, never logged)",
        show: Show::Live(|c| c.health_path.clone().unwrap_or_else(|| "off".into())),
        apply: |b, v| {
            if !v.starts_with('/') || v.contains('?') {
                let expected = "a path such as /healthz";
                return Err(ConfigError::invalid("health-path", v, expected));
            }
            b.config.live.health_path = Some(v.to_string());
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--tcp-keepalive-time",
        topic: Topic::Listening,
        choices: &[],
        value: Some("SECS"),
        help: "TCP keepalive: idle time before the first probe (SO_KEEPALIVE, TCP_KEEPIDLE)",
        show: Show::Fixed(|c| c.tcp_keepalive.map_or("off".into(), |k| secs(k.time))),
        apply: |b, v| {
            b.keepalive.time = positive("tcp-keepalive-time", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--tcp-keepalive-interval",
        topic: Topic::Listening,
        choices: &[],
        value: Some("SECS"),
        help: "TCP keepalive: time between probes (TCP_KEEPINTVL)",
        show: Show::Fixed(|c| c.tcp_keepalive.map_or("off".into(), |k| secs(k.interval))),
        apply: |b, v| {
            b.keepalive.interval = positive("tcp-keepalive-interval", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--tcp-keepalive-probes",
        topic: Topic::Listening,
        choices: &[],
        value: Some("N"),
        help: "TCP keepalive: unanswered probes before the kernel drops the connection (TCP_KEEPCNT)",
        show: Show::Fixed(|c| {
            c.tcp_keepalive
                .map_or("off".into(), |k| k.probes.to_string())
        }),
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
    },
    OptionSpec {
        flag: "--defer-accept",
        topic: Topic::Listening,
        choices: &[],
        value: Some("SECS"),
        help: "accept a TCP connection only once its first bytes have arrived, or after about SECS (TCP_DEFER_ACCEPT, nginx's listen ... deferred): saves a wake-up per connection, and a client that connects and sends nothing costs the kernel a queued handshake, not an fd, until then; 0 (the default) accepts at once; set at bind (systemd-passed and handed-over listeners keep theirs)",
        show: Show::Fixed(|c| secs(c.defer_accept)),
        apply: |b, v| {
            b.config.fixed.defer_accept = duration("defer-accept", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--no-tcp-keepalive",
        topic: Topic::Listening,
        choices: &[],
        value: None,
        help: "leave TCP keepalive at the OS default instead",
        show: Show::Fixed(|c| on_off(c.tcp_keepalive.is_none())),
        apply: |b, _| {
            b.no_tcp_keepalive = true;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--dotfiles",
        topic: Topic::Sites,
        choices: &[],
        value: None,
        help: "serve names starting with a dot (.git, .env); otherwise they answer 404",
        show: Show::Site(|c| on_off(c.dotfiles)),
        apply: |b, _| {
            b.config.live.site.dotfiles = true;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--no-precompressed",
        topic: Topic::Sites,
        choices: &[],
        value: None,
        help: "do not serve FILE.br / FILE.gz in place of FILE when the client accepts them",
        show: Show::Site(|c| on_off(!c.precompressed)),
        apply: |b, _| {
            b.config.live.site.precompressed = false;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--no-compress",
        topic: Topic::Files,
        choices: &[],
        value: None,
        help: "do not compress text on the fly (by default a compressible file without FILE.br / FILE.gz is compressed once per version, br or gzip, in the background, and served from memory)",
        show: Show::Fixed(|c| on_off(!c.compress)),
        apply: |b, _| {
            b.config.fixed.compress = false;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--compress-max-bytes",
        topic: Topic::Files,
        choices: &[],
        value: Some("N"),
        help: "files larger than this are not compressed on the fly; at most 1 GiB",
        show: Show::Fixed(|c| c.compress_max_bytes.to_string()),
        apply: |b, v| {
            b.config.fixed.compress_max_bytes = buffer_bytes("compress-max-bytes", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--compress-cache-bytes",
        topic: Topic::Files,
        choices: &[],
        value: Some("N"),
        help: "memory for compressed files, least recently used out first, shared by the workers; 0 turns compression off",
        show: Show::Fixed(|c| c.compress_cache_bytes.to_string()),
        apply: |b, v| {
            b.config.fixed.compress_cache_bytes = number("compress-cache-bytes", v)?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--listing",
        topic: Topic::Sites,
        choices: &[],
        value: None,
        help: "list directories that have no index.html (otherwise they answer 404): HTML, or JSON for ?format=json or an Accept that prefers application/json; ?sort=name, size or time, &order=desc",
        show: Show::Site(|c| on_off(c.listing)),
        apply: |b, _| {
            b.config.live.site.listing = true;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--clean-urls",
        topic: Topic::Sites,
        choices: &[],
        value: None,
        help: "URLs without .html (Vercel's cleanUrls, Netlify's pretty URLs): /about serves about.html when there is no file about (before a directory about/), /about.html and /about/ (when only about.html is there) are redirected 308 to /about, /docs/index.html to /docs/; the query is kept",
        show: Show::Site(|c| on_off(c.clean_urls)),
        apply: |b, _| {
            b.config.live.site.clean_urls = true;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--etag",
        topic: Topic::Files,
        choices: &["mtime", "hash"],
        value: Some("KIND"),
        help: "how ETags are made: mtime (nginx's mtime-size in hex: copies that keep their mtimes agree across instances) or hash (the first 128 bits of the content's SHA-256, computed once per file version off the reactor: for builds that set every mtime alike, such as Nix; a version's first responses carry none until it is in)",
        show: Show::Fixed(|c| match c.etag_hash {
            true => "hash".into(),
            false => "mtime".into(),
        }),
        apply: |b, v| {
            b.config.fixed.etag_hash = match v {
                "mtime" => false,
                "hash" => true,
                _ => return Err(ConfigError::invalid("etag", v, "mtime or hash")),
            };
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--follow-symlinks",
        topic: Topic::Sites,
        choices: &[],
        value: None,
        help: "follow symlinks whose targets lie outside ROOT (inside ROOT they are always followed)",
        show: Show::Fixed(|c| on_off(c.follow_symlinks)),
        apply: |b, _| {
            b.config.fixed.follow_symlinks = true;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--cache-control",
        topic: Topic::Sites,
        choices: &[],
        value: Some("VALUE"),
        help: "Cache-Control header on file responses, such as 'public, max-age=3600'",
        show: Show::Site(|c| c.cache_control.clone().unwrap_or_else(|| "none".into())),
        apply: |b, v| {
            if v.bytes().any(|b| b.is_ascii_control()) {
                return Err(ConfigError::out_of_range(
                    "cache-control",
                    "must not contain control characters",
                ));
            }
            b.config.live.site.cache_control = Some(v.to_string());
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--header",
        topic: Topic::Sites,
        choices: &[],
        value: Some("'NAME: VALUE'"),
        help: "add this header to every response (CORS, HSTS, CSP...); repeatable; headers that frame the message (Content-Length, Transfer-Encoding, Connection...) are refused",
        show: Show::Site(|c| {
            if c.headers.is_empty() {
                "none".into()
            } else {
                c.headers.join("; ")
            }
        }),
        apply: |b, v| {
            b.config.live.site.headers.push(header_line(v)?);
            Ok(())
        },
        repeatable: true,
    },
    OptionSpec {
        flag: "--fallback",
        topic: Topic::Sites,
        choices: &[],
        value: Some("PATH"),
        help: "answer a GET or HEAD whose path names no file with this file and 200, such as /index.html for a single-page app",
        show: Show::Site(|c| c.fallback.clone().unwrap_or_else(|| "none".into())),
        apply: |b, v| {
            b.config.live.site.fallback = Some(site_path("fallback", v)?);
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--error-page",
        topic: Topic::Sites,
        choices: &[],
        value: Some("CODE=PATH"),
        help: "answer errors with status CODE (400-599) with this file's body, keeping the status, such as 404=/404.html; repeatable",
        show: Show::Site(|c| list(&c.error_pages, |(code, path)| format!("{code}={path}"))),
        apply: |b, v| {
            let expected = "CODE=PATH with CODE from 400 to 599, such as 404=/404.html";
            let invalid = || ConfigError::invalid("error-page", v, expected);
            let (code, path) = v.split_once('=').ok_or_else(invalid)?;
            let code: u16 = code.parse().map_err(|_| invalid())?;
            if !(400..=599).contains(&code) {
                return Err(invalid());
            }
            let path = site_path("error-page", path)?;
            b.config.live.site.error_pages.retain(|(c, _)| *c != code);
            b.config.live.site.error_pages.push((code, path));
            Ok(())
        },
        repeatable: true,
    },
    OptionSpec {
        flag: "--rule",
        topic: Topic::Sites,
        choices: &[],
        value: Some("'PATTERN ACTION'"),
        help: "a path rule, in order: PATTERN is a glob over the decoded path (/assets/**, or *.html for a file name anywhere); ACTION is header NAME: VALUE, remove-header NAME (every matching rule applies), redirect CODE TARGET (301, 302, 307 or 308; {path}, {rest} after a trailing /**), rewrite PATH, or deny 403 or deny 404 (the first matching of these decides), allow-from RANGES or deny-from RANGES (403 for a client outside or inside them; see --trusted-proxy), auth REALM FILE (HTTP Basic against FILE's bcrypt hashes: holdline hash-password); repeatable",
        show: Show::Site(|c| list(&c.rules, |r| r.to_string())),
        apply: |b, v| {
            b.config.live.site.rules.push(super::rules::parse(v)?);
            Ok(())
        },
        repeatable: true,
    },
    OptionSpec {
        flag: "--access-log",
        topic: Topic::Logging,
        choices: &[],
        value: Some("PATH"),
        help: "append one line per request to this file (- for standard output); written off the reactor thread, reopened on SIGUSR1 (for logrotate)",
        show: Show::Live(|c| {
            c.access_log
                .as_ref()
                .map_or("off".into(), |p| p.display().to_string())
        }),
        apply: |b, v| {
            if v.is_empty() {
                let expected = "a file path, or - for standard output";
                return Err(ConfigError::invalid("access-log", v, expected));
            }
            b.config.live.access_log = Some(PathBuf::from(v));
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--log-format",
        topic: Topic::Logging,
        choices: &["combined", "common", "json"],
        value: Some("FORMAT"),
        help: "access-log lines: combined (nginx's: with Referer and User-Agent), common (CLF), or json (with request_time, connection_requests and reused, for keep-alive study)",
        show: Show::Live(|c| c.log_format.name().into()),
        apply: |b, v| {
            b.config.live.log_format = LogFormat::from_name(v)
                .ok_or_else(|| ConfigError::invalid("log-format", v, "combined, common or json"))?;
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--user",
        topic: Topic::Operations,
        choices: &[],
        value: Some("NAME[:GROUP]"),
        help: "when started as root, switch to this user (and its group, or GROUP) once listeners are bound, ROOT and the TLS keys are open",
        show: Show::Fixed(|c| c.user.clone().unwrap_or_else(|| "none".into())),
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
            b.config.fixed.user = Some(v.to_string());
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--workers",
        topic: Topic::Listening,
        choices: &[],
        value: Some("N"),
        help: "reactor threads, each with its own SO_REUSEPORT listener, slab, wheel and share of the fd budget",
        show: Show::Fixed(|c| c.workers.to_string()),
        apply: |b, v| {
            b.config.fixed.workers = number("workers", v)?;
            if !(1..=256).contains(&b.config.fixed.workers) {
                return Err(ConfigError::out_of_range(
                    "workers",
                    "must be between 1 and 256",
                ));
            }
            Ok(())
        },
        repeatable: false,
    },
    OptionSpec {
        flag: "--help",
        topic: Topic::Operations,
        choices: &[],
        value: None,
        help: "print this help and exit",
        show: Show::CommandLine(""),
        apply: |_, _| Ok(()),
        repeatable: false,
    },
    OptionSpec {
        flag: "--version",
        topic: Topic::Operations,
        choices: &[],
        value: None,
        help: "print the version and exit",
        show: Show::CommandLine(""),
        apply: |_, _| Ok(()),
        repeatable: false,
    },
];

/// The option for `--flag`.
pub fn option(flag: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.flag == flag)
}

impl Builder {
    /// The defaults, before any option is applied.
    pub(super) fn new() -> Builder {
        Builder {
            config: Config::default(),
            listen: Vec::new(),
            tls_certs: Vec::new(),
            tls_keys: Vec::new(),
            keepalive: DEFAULT_TCP_KEEPALIVE,
            no_tcp_keepalive: false,
        }
    }

    /// Adds a `[[site]]` block built on a builder of its own: its options
    /// join the sites, its certificates the server's (the SNI resolver
    /// chooses among them all by name).
    pub(super) fn add_site(&mut self, site: Builder) -> Result<(), ConfigError> {
        let options = site.config.live.site;
        if options.hosts.is_empty() {
            return Err(ConfigError::Usage(
                "a [[site]] block needs host = [\"NAME\", ...]".into(),
            ));
        }
        if site.tls_certs.len() != site.tls_keys.len() {
            return Err(ConfigError::out_of_range(
                "tls-key",
                "must be given once for each tls-cert of the site",
            ));
        }
        self.tls_certs.extend(site.tls_certs);
        self.tls_keys.extend(site.tls_keys);
        self.config.live.sites.push(options);
        Ok(())
    }

    /// The configuration, once what only the whole can say is checked.
    pub(super) fn finish(self) -> Result<Config, ConfigError> {
        let mut config = self.config;
        let fixed = &mut config.fixed;
        fixed.tcp_keepalive = (!self.no_tcp_keepalive).then_some(self.keepalive);
        if self.tls_certs.len() != self.tls_keys.len() {
            return Err(ConfigError::out_of_range(
                "tls-key",
                "must be given once for each --tls-cert",
            ));
        }
        fixed.tls_certs = self
            .tls_certs
            .into_iter()
            .zip(self.tls_keys)
            .map(|(cert, key)| crate::tls::CertPaths { cert, key })
            .collect();
        let mut names: Vec<&str> = Vec::new();
        for name in config.live.all_sites().flat_map(|site| &site.hosts) {
            if names.contains(&name.as_str()) {
                return Err(ConfigError::Usage(format!(
                    "host {name} is named by two sites"
                )));
            }
            names.push(name);
        }
        let redirect = config.live.all_sites().any(|site| site.redirect_to_https);
        if redirect && fixed.tls_listen.is_empty() {
            return Err(ConfigError::out_of_range(
                "redirect-to-https",
                "needs --tls-listen",
            ));
        }
        if config.live.proxy_protocol && config.live.trusted_proxies.is_empty() {
            return Err(ConfigError::out_of_range(
                "proxy-protocol",
                "needs --trusted-proxy (the peers whose header names the client)",
            ));
        }
        // (--acme-agree-tos is checked where the account is made: at
        // start and by `holdline check`.)
        let acme = config.live.all_sites().any(|site| site.acme);
        if acme && fixed.tls_listen.is_empty() {
            return Err(ConfigError::out_of_range("acme", "needs --tls-listen"));
        }
        if !fixed.tls_listen.is_empty() && fixed.tls_certs.is_empty() && !acme {
            return Err(ConfigError::out_of_range(
                "tls-listen",
                "needs --tls-cert and --tls-key (or a site with --acme)",
            ));
        }
        if !self.listen.is_empty() {
            fixed.listen = self.listen;
        } else if !fixed.tls_listen.is_empty() || !fixed.listen_unix.is_empty() {
            // Only HTTPS or a unix socket was asked for: no plain TCP
            // listener on the default.
            fixed.listen.clear();
        }
        Ok(config)
    }
}
