//! Responding: from a parsed request to response bytes.
//!
//! This is the one layer between the sans-IO core and the reactor that
//! touches the filesystem: it opens files, but never a socket. The
//! [`Responder`] is what the session's [`Respond`] seam reaches, paired
//! for each call with a [`ServerView`] of the reactor's counters. A
//! request goes through the folder in this order:
//!
//! 1. [`routing`] to a [`route::Route`], whose variant carries what its
//!    response needs: the site ([`sites`]: the host table), its path
//!    rules ([`rules`]; [`auth`] for HTTP Basic, verified off the
//!    reactor), and the per-client rate ([`crate::clients`]);
//! 2. [`lookup`]: for a file, its lookup beneath ROOT through the file
//!    cache, `index.html`, precompressed siblings and the compressed
//!    cache ([`compress`], whose [`compressor`] thread works off the
//!    reactor);
//! 3. `file.rs`: the file's response (validators, conditionals, ranges),
//!    whose body leaves by `body.rs` (in the head's write, or after it
//!    with sendfile);
//! 4. [`errors`]: error statuses and `--error-page`s;
//!
//! with what a configuration says responses carry in [`settings`] (a
//! reload swaps it whole), the status endpoint's bodies from
//! [`crate::status`] and the access-log line from [`crate::accesslog`].

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::accesslog::{self, AccessLog, Entry, Sink, Times};
use crate::budget::Budget;
use crate::close::CloseReason;
use crate::config::cidr;
use crate::config::{Config, Live};
use crate::files::Root;
use crate::http::persist::{self, PersistContext, Persistence};
use crate::http::request::{ConnectionTokens, RequestHead, Version};
use crate::http::response::{ResponseHead, encode_continue};
use crate::http::session::{ConnFacts, Reply, Respond};
use crate::http::{DateCache, HeadLimits, Status};
use crate::stats::{Gauges, Shared, Stats};
use crate::wheel::TimerWheel;
use auth::Authenticator;

pub mod auth;
mod body;
mod cache;
pub mod compress;
pub mod compressor;
mod disk;
pub mod errors;
mod file;
pub mod hashes;
mod listing;
pub mod lookup;
mod reply;
pub mod route;
pub mod routing;
pub mod rules;
pub mod settings;
pub mod sites;

pub use body::{BodySource, FileBody, FileRoute};
use cache::FileCache;
use lookup::Files;
use reply::Encoding;
use route::Route;
pub use routing::Sni;
use routing::{Matching, RuleScratch, route};
use settings::{Settings, SiteRef};

/// The largest body holdline builds whole in memory for a generated page
/// (a `--listing` page); file bodies past `--small-file-bytes` are never
/// read into memory.
pub const MAX_GENERATED_BYTES: usize = listing::MAX_RENDERED_BYTES;

/// What answers requests: the configuration's [`Settings`], the sites'
/// ROOTs and their caches ([`Files`]), the date, the access log, the
/// buffers for a Location, a generated body and the path rules, the
/// per-client request rates (the process's table) and the authenticator.
/// One per reactor. It owns no counter and no connection state: what it
/// needs of the reactor's is lent to each call as a [`ServerView`].
pub struct Responder {
    settings: Settings,
    files: Files,
    date: DateCache,
    /// The reactor's clock for this turn of the loop.
    now: Instant,
    /// `--access-log`: this reactor's buffer of lines.
    access: AccessLog,
    /// Where a redirect's Location is written, as the head is encoded.
    location: Vec<u8>,
    /// Bodies built per request: the status page, listings.
    generated: Vec<u8>,
    /// The path rules' buffers.
    scratch: RuleScratch,
    /// `--client-rate`'s buckets (and the connections per client, which
    /// the reactor counts): every worker's.
    clients: Arc<crate::clients::Tables>,
    /// `auth` rules' credentials, and the verifier thread.
    auth: Authenticator,
}

/// The reactor's state a response may need, lent for one call: the
/// counters it bumps, the figures the status page and the fd budget
/// checks read, which connection it is (its key, its TLS server name's
/// site), and whether every response must say close.
pub struct ServerView<'a> {
    pub stats: &'a mut Stats,
    /// Connections by phase (`open_files` is filled in when read).
    pub gauges: Gauges,
    pub budget: &'a Budget,
    /// Counters published by every worker, for the status page.
    pub shared: &'a Shared,
    /// This reactor's index among `--workers`.
    pub worker: usize,
    /// This reactor's timer wheel, for the status page.
    pub wheel: &'a TimerWheel,
    /// The site the connection's TLS server name picked.
    pub sni: Sni,
    /// The connection's key in the reactor's slab: what a deferred
    /// request's connection is driven again by.
    pub conn: usize,
    /// Every response says close, for this reason: graceful shutdown, or
    /// a newcomer answered without a slot ([`CloseReason::Overflow`]:
    /// then no file body may be sent either, only what one write carries).
    pub closing: Option<CloseReason>,
}

/// The session answers through the responder paired with the reactor's
/// view for the call.
impl Respond for (&mut Responder, ServerView<'_>) {
    type Body = FileBody;

    fn limits(&self) -> HeadLimits {
        self.0.settings.limits
    }

    fn max_body_bytes(&self) -> u64 {
        self.0.settings.live.max_body_bytes
    }

    fn respond(
        &mut self,
        head: &RequestHead<'_>,
        facts: ConnFacts,
        out: &mut Vec<u8>,
    ) -> Reply<FileBody> {
        self.0.respond(head, facts, out, &mut self.1)
    }

    fn respond_error(
        &mut self,
        status: Status,
        version: Option<Version>,
        is_head: bool,
        reason: CloseReason,
        facts: ConnFacts,
        out: &mut Vec<u8>,
    ) {
        self.1.stats.requests += 1;
        let refusal = Refusal {
            status,
            version,
            is_head,
            reason,
        };
        self.0.respond_error(refusal, facts, &mut self.1, out);
    }
}

/// A request refused before (or instead of) being parsed: its status,
/// what of its request line could be read, and the close it causes.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    pub status: Status,
    pub version: Option<Version>,
    pub is_head: bool,
    pub reason: CloseReason,
}

impl Responder {
    /// `alarm` wakes this responder's reactor when the compressor has
    /// finished a file (`None`: no compression).
    pub fn new(
        config: &Config,
        root: Root,
        access_log: Arc<Sink>,
        (now, wall): (Instant, SystemTime),
        alarm: Option<Arc<crate::wake::Alarm>>,
        clients: Arc<crate::clients::Tables>,
    ) -> Result<Responder, (PathBuf, io::Error)> {
        let fixed = &config.fixed;
        let cache = FileCache::new(fixed.file_cache_entries, fixed.file_cache_valid);
        let auth_alarm = alarm.clone();
        let on = fixed.compress && fixed.compress_cache_bytes > 0;
        let compression = alarm.filter(|_| on).and_then(|alarm| {
            // Each worker has its share of the bound.
            let share = fixed.compress_cache_bytes / fixed.workers.max(1);
            compress::OnTheFly::start(fixed.compress_max_bytes, share, alarm)
                .inspect_err(|e| log::warn!("no compression thread ({e}): files go uncompressed"))
                .ok()
        });
        let mut files = Files::new(root, cache, compression);
        if fixed.etag_hash {
            files.hashes = hashes::process(fixed.file_cache_entries);
        }
        files.set_roots(site_roots(config), fixed.follow_symlinks)?;
        Ok(Responder {
            access: AccessLog::new(log_format(&config.live), access_log),
            settings: Settings::new(config),
            files,
            date: DateCache::new(wall),
            now,
            location: Vec::with_capacity(1024),
            generated: Vec::new(),
            scratch: RuleScratch::default(),
            auth: Authenticator::new(auth_alarm),
            clients,
        })
    }

    /// The site a TLS connection's server name picks (see [`Sni`]).
    pub fn sni(&self, server_name: Option<&str>) -> Sni {
        let hosts = &self.settings.hosts;
        match server_name {
            Some(name) if hosts.named() => match hosts.site_for(Some(name.as_bytes())) {
                Some(site) => Sni::Site(site),
                None => Sni::NoSite,
            },
            _ => Sni::Absent,
        }
    }

    /// The default site's directory.
    pub fn root_path(&self) -> &std::path::Path {
        self.files.root_path()
    }

    /// A new turn of the reactor's loop: its clock, and the wall clock for
    /// `Date` (reformatted once a second).
    pub fn set_clock(&mut self, now: Instant, wall: SystemTime) {
        self.now = now;
        self.date.refresh(wall);
    }

    /// A SIGHUP reload: the new configuration's settings, whole (its
    /// restart-only options are the running ones), once every site's
    /// ROOT is open; if one cannot be, nothing changes and the error says
    /// why.
    pub fn reconfigure(&mut self, config: &Config) -> Result<(), String> {
        // The sites' rules may be others now.
        self.scratch.composed = None;
        let follow = config.fixed.follow_symlinks;
        self.files
            .set_roots(site_roots(config), follow)
            .map_err(|(path, e)| format!("cannot serve {}: {e}", path.display()))?;
        self.access.set_format(log_format(&config.live));
        self.settings = Settings::new(config);
        let live = &config.live;
        self.clients
            .rates()
            .set(live.client_rate, live.client_burst);
        Ok(())
    }

    /// File fds held for bodies, by responses in flight and the cache,
    /// and the sites' ROOTs past the first (which the reserve holds):
    /// what the fd budget charges for files.
    pub fn open_files(&self) -> usize {
        self.files.fds_charged()
    }

    /// Closes one cached file fd that no response is using, for the
    /// reactor's admission; returns whether one was closed.
    pub fn release_unused_fd(&mut self) -> bool {
        self.files.release_unused_fd()
    }

    /// Closes cached file fds that no response has used for a while.
    pub fn sweep_open_files(&mut self) {
        self.files.sweep_open_files(self.now);
    }

    /// Looks at ROOT's path again, to follow a deploy that flipped it.
    pub fn follow_root(&mut self) {
        self.files.follow_root();
    }

    /// The compressor woke the reactor: its results go in the cache.
    /// Returns how many files it finished.
    pub fn take_compressed(&mut self) -> usize {
        self.files.take_compressed()
    }

    /// The verifier woke the reactor: what it verified is known now, and
    /// the connections whose requests waited go into `redrive`.
    pub fn take_verified(&mut self, redrive: &mut Vec<usize>) {
        self.auth.take_verified(redrive);
    }

    /// Hands the access-log lines of this turn of the loop to the writer.
    pub fn flush_access_log(&mut self) {
        self.access.flush();
    }

    /// The access log's writer, for SIGUSR1 and reloads.
    pub fn access_log_sink(&self) -> &Arc<Sink> {
        self.access.sink()
    }
}

/// Answering: one request, or one refused before it was parsed.
impl Responder {
    /// Answers one complete request, appending its bytes to `out`.
    pub fn respond(
        &mut self,
        head: &RequestHead<'_>,
        facts: ConnFacts,
        out: &mut Vec<u8>,
        server: &mut ServerView<'_>,
    ) -> Reply<FileBody> {
        crate::fault::panic_at(crate::fault::Point::Respond, head.target.as_bytes());
        crate::fault::note_worker_fault(head.target.as_bytes());
        let reply_start = out.len();
        let Responder {
            settings,
            files,
            date,
            now,
            access,
            location,
            generated,
            scratch,
            clients,
            auth,
        } = self;
        let now = *now;
        let live = &settings.live;
        let RuleScratch {
            path,
            hits,
            rewritten,
            headers,
            composed,
        } = scratch;
        let route = route(
            settings,
            files,
            head,
            &facts,
            server,
            now,
            Matching {
                path,
                hits,
                rewritten,
                auth,
            },
        );
        let (site, mut route) = route;
        if matches!(route, Route::Defer) {
            // Nothing written, nothing counted: the request is asked
            // again when its credentials are verified.
            return Reply {
                status: Status::Ok,
                close: None,
                body: None,
                defer: true,
            };
        }
        // Counted before its response is built (the status page counts
        // the request that asks for it).
        server.stats.requests += 1;
        // --client-rate: every request counts but the health check's.
        if live.client_rate > 0.0 && !matches!(route, Route::Health) {
            let trusted = &live.trusted_proxies;
            let client = cidr::client_address(facts.peer.ip(), head.forwarded_for, trusted);
            let client = settings.client_prefixes.client(client);
            let taken = clients.rates().take(client, now);
            if let Err(wait) = taken {
                server.stats.client_rate_limited += 1;
                let secs = wait.as_secs_f64().ceil().clamp(1.0, 3600.0) as u32;
                route = Route::Limited(secs);
            }
        }
        let mut at = SiteRef::new(settings, site);
        let rules = &at.site().rules;
        if rules.edits_headers(hits) {
            let same = composed
                .as_ref()
                .is_some_and(|c| c.site == site && c.hits == *hits);
            if !same {
                let base = &at.site().extra_headers;
                let keep = rules::compose_headers(rules, hits, base, headers);
                let memo = composed.get_or_insert_with(Default::default);
                memo.site = site;
                memo.hits.clear();
                memo.hits.extend_from_slice(hits);
                memo.keep_cache_control = keep;
            }
            let keep = composed.as_ref().is_some_and(|c| c.keep_cache_control);
            at.extra = headers;
            at.cache_control = at.cache_control.filter(|_| keep);
        }
        // File opens that failed with EMFILE/ENFILE (answered 503).
        server.stats.open_emfile += files.take_fd_shortages();
        let success = !matches!(
            route,
            Route::Error(_) | Route::Limited(_) | Route::Unauthorized(_)
        );
        let health = matches!(route, Route::Health);
        // RFC 9110 §10.1.1: ask for the body only when we will read it; a
        // refused request gets its final status and the connection closes,
        // since the client may or may not send the body anyway.
        let must_close = head.expect_continue && facts.has_body && !success;
        let persistence = persistence(
            &at.settings.live,
            head.version,
            head.connection,
            facts.requests_before,
            must_close,
            server.closing,
        );
        if head.expect_continue && facts.has_body && success {
            encode_continue(out);
        }
        let date_buf = date.http_date_copy();
        let date_now = &date_buf[..];
        let encoding = Encoding {
            at,
            files,
            head,
            date: date_now,
            persistence,
            server,
            out,
            location,
            generated,
            now,
            reply_start,
        };
        let (status, file) = reply::encode(route, encoding);
        // Health checks come every few seconds from every balancer: not
        // worth a line each.
        if access.enabled() && !health {
            let bytes = accesslog::body_bytes(&out[reply_start..]);
            let bytes = bytes + file.as_ref().map_or(0, FileBody::bytes_to_send);
            let entry = Entry::for_request(head, &facts, status.code(), bytes);
            access.log(&entry, times(date));
        }
        let close = match persistence {
            Persistence::Close(reason) => Some(reason),
            Persistence::KeepAlive { .. } => None,
        };
        Reply {
            status,
            close,
            body: file,
            defer: false,
        }
    }

    /// Answers a request that could not be parsed or framed, or timed
    /// out: always `Connection: close`, since what follows in the input
    /// is unusable.
    pub fn respond_error(
        &mut self,
        refusal: Refusal,
        facts: ConnFacts,
        server: &mut ServerView<'_>,
        out: &mut Vec<u8>,
    ) {
        let start = out.len();
        let Refusal {
            status,
            version,
            is_head,
            reason,
        } = refusal;
        let date = self.date.http_date_copy();
        let settings = &self.settings;
        let persistence = Persistence::Close(reason);
        // Unparsed, the request named no site: the default site's headers.
        let extra = &settings.site(0).extra_headers;
        let mut rh = ResponseHead::with_extra(status, &date, extra, persistence);
        rh.retry_after_secs = (status == Status::ServiceUnavailable).then_some(1);
        errors::refusal(
            settings,
            &mut self.files,
            &mut rh,
            is_head,
            server,
            out,
            self.now,
        );
        if self.access.enabled() {
            let bytes = accesslog::body_bytes(&out[start..]);
            let entry = Entry::for_refusal(version, &facts, status.code(), bytes);
            self.access.log(&entry, times(&self.date));
        }
    }
}

/// Every site's ROOT, in site order.
fn site_roots(config: &Config) -> impl Iterator<Item = &Path> {
    config.live.all_sites().map(|site| site.root.as_path())
}

/// The access log's format, when it is on.
fn log_format(live: &Live) -> Option<crate::config::LogFormat> {
    live.access_log.as_ref().map(|_| live.log_format)
}

/// The date cache's times for a log line.
fn times(date: &DateCache) -> Times<'_> {
    Times {
        clf: date.clf_time(),
        iso: date.iso_time(),
    }
}

/// The persistence decision for one response (see [`persist::decide`]).
fn persistence(
    live: &Live,
    version: Version,
    tokens: ConnectionTokens,
    requests_before: u32,
    must_close: bool,
    closing: Option<CloseReason>,
) -> Persistence {
    persist::decide(
        version,
        tokens,
        PersistContext {
            keepalive_enabled: !live.keepalive_timeout.is_zero(),
            keepalive_timeout_secs: live.keepalive_timeout.as_secs(),
            max_requests: live.max_requests,
            requests_before,
            must_close,
            closing,
        },
    )
}
#[cfg(test)]
mod sizes {
    /// Values moved from lookup to reply on every request stay small:
    /// past about 128 bytes a move is a call to memcpy rather than a few
    /// register moves, and each such move cost ~30 instructions per
    /// request (`scripts/instructions.sh`).
    #[test]
    fn what_every_request_moves_stays_small() {
        use std::mem::size_of;
        assert!(size_of::<super::route::Route<'static>>() <= 128);
        assert!(size_of::<super::body::FileBody>() <= 64);
        assert!(size_of::<crate::http::session::Reply<super::body::FileBody>>() <= 64);
    }

    /// A file cache entry (its value, its key in the map and again in the
    /// eviction order, a control byte) within the 256 bytes the memory
    /// bound counts per entry besides its bytes and paths
    /// (`src/memory.rs`).
    #[test]
    fn a_file_cache_entry_fits_its_share_of_the_memory_bound() {
        use std::mem::size_of;
        let entry = size_of::<super::cache::Cached>() + 2 * size_of::<Box<[u8]>>() + 1;
        assert!(entry <= 256, "{entry}");
    }
}
