//! From a parsed request to response bytes: routing to a file under ROOT,
//! choosing the status, and encoding the head (and a small body) into the
//! connection's output buffer.
//!
//! This is the one layer between the sans-IO core and the reactor that
//! touches the filesystem: it opens files, but never a socket. The reply
//! it returns tells the connection whether a file body follows (sent with
//! sendfile) and whether the connection closes afterwards.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use crate::accesslog::{AccessLog, Entry, Sink, Times};
use crate::budget::Budget;
use crate::close::CloseReason;
use crate::config::Config;
use crate::files::{Root, content_type};
use crate::http::persist::{self, PersistContext, Persistence};
use crate::http::request::{ConnectionTokens, Method, RequestHead, Version};
use crate::http::response::{ResponseHead, encode_continue, encode_head};
use crate::http::session::{ConnFacts, Reply, Respond};
use crate::http::target::decode_path;
use crate::http::validators::accepts_encoding;
use crate::http::{DateCache, HeadLimits, Status};
use crate::stats::{Gauges, Shared, Stats};
use crate::status;
use crate::wheel::TimerWheel;
use std::sync::Arc;

mod body;
mod cache;
pub mod compress;
pub mod compressor;
mod file;
mod listing;

/// The largest body holdline builds whole in memory for a generated page
/// (a `--listing` page); file bodies past `--small-file-bytes` are never
/// read into memory.
pub const MAX_GENERATED_BYTES: usize = listing::MAX_RENDERED_BYTES;

use crate::files::OpenFiles;
use body::{BodySink, FileMeta, FileSource};
pub use body::{BodySource, FileBody, FileRoute};
use cache::{Content, FileCache, Lookup};
use std::time::Instant;

/// What responds: configuration, ROOT, the caches, the date, and scratch
/// buffers reused for every request. One per reactor. It owns no counter
/// and no connection state: what it needs of the reactor's is lent to each
/// call as a [`ServerView`].
pub struct Responder {
    pub config: Config,
    limits: HeadLimits,
    root: Root,
    date: DateCache,
    /// The reactor's clock for this turn of the loop.
    now: Instant,
    cache: FileCache,
    /// On-the-fly compression; `None` with `--no-compress`.
    compression: Option<compress::OnTheFly>,
    /// The file the request routed to, for the compression cache: its
    /// decoded path and whether it was asked for as a directory.
    compress_key: Vec<u8>,
    /// File fds held for bodies (by responses in flight and the cache):
    /// what the fd budget charges for files.
    pub open_files: OpenFiles,
    cache_key: Vec<u8>,
    path: Vec<u8>,
    /// Scratch for bodies built per request: the status page, listings.
    status_body: Vec<u8>,
    name: Vec<u8>,
    location: Vec<u8>,
    /// `--header` lines, encoded once ("Name: value\r\n" each); shared
    /// so a response head can borrow them while `self` is borrowed
    /// mutably (an atomic increment per response, no allocation).
    extra_headers: Arc<[u8]>,
    /// `--fallback`: the target served for paths that name no file.
    fallback: Option<Arc<str>>,
    /// `--error-page`: (status code, target).
    error_pages: Vec<(u16, Arc<str>)>,
    /// `--access-log`: this reactor's buffer of lines.
    access: AccessLog,
}

/// The body bytes of the reply just encoded (what CLF and nginx's
/// `$body_bytes_sent` log): what follows its head, past an interim
/// `100 Continue`. A head never holds an empty line, so its first one
/// ends it.
fn body_bytes(reply: &[u8]) -> u64 {
    const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
    let reply = reply.strip_prefix(CONTINUE).unwrap_or(reply);
    let head = reply.windows(4).position(|w| w == b"\r\n\r\n");
    head.map_or(0, |end| (reply.len() - end - 4) as u64)
}

/// `--header` lines as they are sent ("Name: value\r\n" each).
fn encode_headers(headers: &[String]) -> Arc<[u8]> {
    headers
        .iter()
        .flat_map(|h| h.as_bytes().iter().chain(b"\r\n"))
        .copied()
        .collect()
}

fn error_pages(config: &Config) -> Vec<(u16, Arc<str>)> {
    config
        .error_pages
        .iter()
        .map(|(code, page)| (*code, Arc::from(page.as_str())))
        .collect()
}

/// What the status path answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusFormat {
    /// nginx's stub_status text (the default, for existing exporters).
    Stub,
    /// `?format=prometheus`.
    Prometheus,
    /// `?format=json`.
    Json,
    /// The live page, for a browser (`Accept: text/html`).
    Page,
}

/// The reactor's state a response may need, lent for one call: the
/// counters it bumps, the figures the status page and the fd budget
/// checks read, and whether every response must say close.
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
    /// Every response says close, for this reason: graceful shutdown, or
    /// a newcomer answered without a slot ([`CloseReason::Overflow`]:
    /// then no file body may be sent either, only what one write carries).
    pub closing: Option<CloseReason>,
}

/// A [`Responder`] with the reactor's [`ServerView`]: what the HTTP
/// session calls to answer requests.
pub struct Answerer<'a> {
    pub responder: &'a mut Responder,
    pub server: ServerView<'a>,
}

impl Respond for Answerer<'_> {
    type Body = FileBody;

    fn limits(&self) -> HeadLimits {
        self.responder.limits
    }

    fn max_body_bytes(&self) -> u64 {
        self.responder.config.max_body_bytes
    }

    fn respond(
        &mut self,
        head: &RequestHead<'_>,
        facts: ConnFacts,
        out: &mut Vec<u8>,
    ) -> Reply<FileBody> {
        self.responder.respond(head, facts, out, &mut self.server)
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
        self.server.stats.requests += 1;
        self.responder
            .respond_error(status, version, is_head, reason, facts, &self.server, out);
    }
}

// Lives on the stack for one request; boxing it would allocate per request.
#[allow(clippy::large_enum_variant)]
enum Route {
    File(FileRoute),
    /// An HTML listing of the directory at `self.path` (`--listing`).
    Listing(File),
    Redirect,
    /// `--redirect-to-https`: 308 to the URL in `self.location`.
    HttpsRedirect,
    Options,
    Status(StatusFormat),
    Error(Status),
}

impl Responder {
    /// `waker` wakes this responder's reactor when the compressor has
    /// finished a file (`None`: no compression).
    pub fn new(
        config: Config,
        root: Root,
        access_log: Arc<Sink>,
        now: Instant,
        wall: SystemTime,
        waker: Option<Arc<mio::Waker>>,
    ) -> Responder {
        let cache = FileCache::new(config.file_cache_entries, config.file_cache_valid);
        let on = config.compress && config.compress_cache_bytes > 0;
        let compression = waker.filter(|_| on).and_then(|waker| {
            // Each worker has its share of the bound.
            let share = config.compress_cache_bytes / config.workers.max(1);
            compress::OnTheFly::start(config.compress_max_bytes, share, waker)
                .inspect_err(|e| log::warn!("no compression thread ({e}): files go uncompressed"))
                .ok()
        });
        let extra_headers = encode_headers(&config.headers);
        let fallback = config.fallback.as_deref().map(Arc::from);
        let error_pages = error_pages(&config);
        let access = config.access_log.as_ref().map(|_| config.log_format);
        Responder {
            access: AccessLog::new(access, access_log),
            limits: HeadLimits {
                max_header_bytes: config.max_header_bytes,
                max_uri_bytes: config.max_uri_bytes,
            },
            config,
            root,
            date: DateCache::new(wall),
            now,
            cache,
            compression,
            compress_key: Vec::with_capacity(1024),
            cache_key: Vec::with_capacity(1024),
            open_files: OpenFiles::default(),
            status_body: Vec::new(),
            path: Vec::with_capacity(1024),
            name: Vec::with_capacity(1024),
            location: Vec::with_capacity(1024),
            extra_headers,
            fallback,
            error_pages,
        }
    }

    /// The directory served.
    pub fn root_path(&self) -> &std::path::Path {
        self.root.path()
    }

    /// A new turn of the reactor's loop: its clock, and the wall clock for
    /// `Date` (reformatted once a second).
    pub fn set_clock(&mut self, now: Instant, wall: SystemTime) {
        self.now = now;
        self.date.refresh(wall);
    }

    fn persistence(
        &self,
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
                keepalive_enabled: !self.config.keepalive_timeout.is_zero(),
                keepalive_timeout_secs: self.config.keepalive_timeout.as_secs(),
                max_requests: self.config.max_requests,
                requests_before,
                must_close,
                closing,
            },
        )
    }

    /// Answers one complete request, appending its bytes to `out`.
    pub fn respond(
        &mut self,
        head: &RequestHead<'_>,
        facts: ConnFacts,
        out: &mut Vec<u8>,
        server: &mut ServerView<'_>,
    ) -> Reply<FileBody> {
        server.stats.requests += 1;
        let reply_start = out.len();
        let mut route = self.route(head, facts.secure, server);
        if let Route::File(found) = &mut route {
            self.choose_compressed(head.accept_encoding, found, server);
        }
        if matches!(route, Route::Error(Status::ServiceUnavailable)) {
            // A file open failed with EMFILE/ENFILE.
            server.stats.open_emfile += 1;
        }
        let success = !matches!(route, Route::Error(_));
        // RFC 9110 §10.1.1: ask for the body only when we will read it; a
        // refused request gets its final status and the connection closes,
        // since the client may or may not send the body anyway.
        let must_close = head.expect_continue && facts.has_body && !success;
        let persistence = self.persistence(
            head.version,
            head.connection,
            facts.requests_before,
            must_close,
            server.closing,
        );
        if head.expect_continue && facts.has_body && success {
            encode_continue(out);
        }
        let is_head = head.method == Method::Head;
        // Copies, so `self` stays free for the file responder.
        let extra = Arc::clone(&self.extra_headers);
        let date_buf = self.date.http_date_copy();
        let date = &date_buf[..];
        let (status, file) = match route {
            Route::File(found) => match self.respond_file(head, found, persistence, server, out) {
                Ok(done) => done,
                Err(status) => {
                    out.truncate(reply_start);
                    if status == Status::ServiceUnavailable && server.closing.is_none() {
                        // Holding the file open would break the fd budget.
                        // (A 503 while closing is counted by its close:
                        // shutdown, or an overflow close without a slot.)
                        server.stats.open_emfile += 1;
                    }
                    let mut rh = ResponseHead::with_extra(status, date, &extra, persistence);
                    rh.retry_after_secs = (status == Status::ServiceUnavailable).then_some(1);
                    self.error_body(head, &mut rh, server, out)
                }
            },
            Route::Listing(dir) => {
                self.status_body.clear();
                listing::render(
                    &mut self.status_body,
                    &dir,
                    head.target,
                    self.config.dotfiles,
                );
                let rh = ResponseHead::with_extra(Status::Ok, date, &extra, persistence);
                encode_generated(out, rh, "text/html", &self.status_body, is_head);
                (Status::Ok, None)
            }
            Route::Redirect => {
                let mut rh =
                    ResponseHead::with_extra(Status::MovedPermanently, date, &extra, persistence);
                rh.location = Some(&self.location);
                encode_error_body(out, &mut rh, is_head);
                (Status::MovedPermanently, None)
            }
            Route::HttpsRedirect => {
                let mut rh =
                    ResponseHead::with_extra(Status::PermanentRedirect, date, &extra, persistence);
                rh.location = Some(&self.location);
                encode_error_body(out, &mut rh, is_head);
                (Status::PermanentRedirect, None)
            }
            Route::Status(format) => {
                self.status_body.clear();
                let own = Gauges {
                    open_files: self.open_files.count(),
                    ..server.gauges
                };
                let (stats, gauges) = server.shared.total(server.worker, server.stats, &own);
                let body = &mut self.status_body;
                let content_type = match format {
                    StatusFormat::Prometheus => {
                        status::prometheus(body, &stats, &gauges, server.budget);
                        let per_worker =
                            server.shared.handled_by_worker(server.worker, server.stats);
                        status::per_worker(body, &per_worker);
                        "text/plain; version=0.0.4"
                    }
                    StatusFormat::Json => {
                        let deadlines = server.wheel.due_within(
                            self.now,
                            Duration::from_secs(1),
                            Duration::from_secs(10),
                        );
                        let workers = server.shared.workers();
                        status::json(body, &stats, &gauges, server.budget, workers, deadlines);
                        "application/json"
                    }
                    StatusFormat::Page => {
                        body.extend_from_slice(status::PAGE.as_bytes());
                        "text/html"
                    }
                    StatusFormat::Stub => {
                        status::stub_status(body, &stats, &gauges);
                        "text/plain"
                    }
                };
                let rh = ResponseHead::with_extra(Status::Ok, date, &extra, persistence);
                encode_generated(out, rh, content_type, &self.status_body, is_head);
                (Status::Ok, None)
            }
            Route::Options => {
                let mut rh = ResponseHead::with_extra(Status::NoContent, date, &extra, persistence);
                rh.allow = true;
                encode_head(out, &rh);
                (Status::NoContent, None)
            }
            Route::Error(status) => {
                let mut rh = ResponseHead::with_extra(status, date, &extra, persistence);
                rh.allow = status == Status::MethodNotAllowed;
                rh.retry_after_secs = (status == Status::ServiceUnavailable).then_some(1);
                self.error_body(head, &mut rh, server, out)
            }
        };
        if self.access.enabled() {
            let bytes = body_bytes(&out[reply_start..]);
            let bytes = bytes + file.as_ref().map_or(0, FileBody::bytes_to_send);
            let entry = Entry {
                method: head.method_str,
                target: head.target,
                version: head.version.as_str(),
                referer: head.referer,
                user_agent: head.user_agent,
                ..self.entry(&facts, status, bytes)
            };
            self.log_access(&entry);
        }
        let close = match persistence {
            Persistence::Close(reason) => Some(reason),
            Persistence::KeepAlive { .. } => None,
        };
        Reply {
            status,
            close,
            body: file,
        }
    }

    /// Answers a request that could not be parsed or framed, or timed
    /// out: always `Connection: close`, since what follows in the input
    /// is unusable. An `--error-page` for the status is served when it
    /// fits in the output buffer (up to `--small-file-bytes`; a larger
    /// page would need a body sent after the head, for a connection that
    /// is closing): the plain text otherwise.
    #[allow(clippy::too_many_arguments)]
    pub fn respond_error(
        &mut self,
        status: Status,
        version: Option<Version>,
        is_head: bool,
        reason: CloseReason,
        facts: ConnFacts,
        server: &ServerView<'_>,
        out: &mut Vec<u8>,
    ) {
        let start = out.len();
        let persistence = Persistence::Close(reason);
        let extra = Arc::clone(&self.extra_headers);
        let date = self.date.http_date_copy();
        let response_head = || {
            let mut rh = ResponseHead::with_extra(status, &date, &extra, persistence);
            rh.retry_after_secs = (status == Status::ServiceUnavailable).then_some(1);
            rh
        };
        let served = self.error_page(status).is_some_and(|page| {
            // What the page is asked for as: a GET (or HEAD) of its path,
            // nothing of the unusable request carried over.
            let page_head = RequestHead::plain(&page, is_head);
            match self.error_body(&page_head, &mut response_head(), server, out) {
                (_, None) => true,
                (_, Some(_)) => {
                    out.truncate(start);
                    false
                }
            }
        });
        if !served {
            encode_error_body(out, &mut response_head(), is_head);
        }
        if self.access.enabled() {
            let bytes = body_bytes(&out[start..]);
            let entry = Entry {
                version: version.map_or("-", Version::as_str),
                ..self.entry(&facts, status, bytes)
            };
            self.log_access(&entry);
        }
    }

    /// An access-log entry for a response to the connection `facts`
    /// describes; the request's own fields are "-" until filled in.
    fn entry(&self, facts: &ConnFacts, status: Status, bytes: u64) -> Entry<'static> {
        Entry {
            peer: facts.peer,
            method: "-",
            target: "-",
            version: "-",
            status: status.code(),
            bytes,
            referer: None,
            user_agent: None,
            // The clock read now, not the loop's: the answer's own time
            // counts (one vDSO call, only with the log on).
            request_time: Instant::now().saturating_duration_since(facts.started),
            connection_requests: facts.requests_before + 1,
            secure: facts.secure,
        }
    }

    fn log_access(&mut self, entry: &Entry<'_>) {
        let times = Times {
            clf: self.date.clf_time(),
            iso: self.date.iso_time(),
        };
        self.access.log(entry, times);
    }

    /// Hands the access-log lines of this turn of the loop to the writer.
    pub fn flush_access_log(&mut self) {
        self.access.flush();
    }

    /// The access log's writer, for SIGUSR1 and reloads.
    pub fn access_log_sink(&self) -> &Arc<Sink> {
        self.access.sink()
    }

    /// A SIGHUP reload: takes the options that may change live (see
    /// [`Config::live_update`]; the others are the same as running).
    pub fn reconfigure(&mut self, config: Config) {
        let access = config.access_log.as_ref().map(|_| config.log_format);
        self.access.set_format(access);
        self.limits = HeadLimits {
            max_header_bytes: config.max_header_bytes,
            max_uri_bytes: config.max_uri_bytes,
        };
        self.extra_headers = encode_headers(&config.headers);
        self.fallback = config.fallback.as_deref().map(Arc::from);
        self.error_pages = error_pages(&config);
        self.config = config;
    }

    fn route(&mut self, head: &RequestHead<'_>, secure: bool, server: &ServerView<'_>) -> Route {
        let (path, query) = head.target.split_once('?').unwrap_or((head.target, ""));
        let is_status = self.config.status_path.as_deref() == Some(path);
        if self.config.redirect_to_https && !secure && !is_status {
            return match https_location(&mut self.location, head, &self.config.tls_listen) {
                true => Route::HttpsRedirect,
                false => Route::Error(Status::BadRequest),
            };
        }
        match head.method {
            Method::Unknown => return Route::Error(Status::NotImplemented),
            Method::OtherKnown => return Route::Error(Status::MethodNotAllowed),
            Method::Options => return Route::Options,
            Method::Get | Method::Head => {}
        }
        if is_status {
            let asked = |format: &str| query.split('&').any(|kv| kv == format);
            let browser = head
                .accept
                .is_some_and(|a| a.windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html")));
            let format = if asked("format=prometheus") {
                StatusFormat::Prometheus
            } else if asked("format=json") {
                StatusFormat::Json
            } else if browser {
                StatusFormat::Page
            } else {
                StatusFormat::Stub
            };
            return Route::Status(format);
        }
        let route = self.route_file(head, head.target, server);
        match (&route, self.fallback.clone()) {
            // --fallback: a path that names no file gets the fallback file
            // (a single-page app's index), with its 200.
            (Route::Error(Status::NotFound), Some(fallback)) => {
                self.route_file(head, &fallback, server)
            }
            _ => route,
        }
    }

    /// An error response: the `--error-page` for its status if there is
    /// one and it can be read (its body and type, the error's status), else
    /// the short text body.
    /// The `--error-page` target for `status`, if any.
    fn error_page(&self, status: Status) -> Option<Arc<str>> {
        self.error_pages
            .iter()
            .find(|(code, _)| *code == status.code())
            .map(|(_, page)| Arc::clone(page))
    }

    fn error_body(
        &mut self,
        head: &RequestHead<'_>,
        rh: &mut ResponseHead<'_>,
        server: &ServerView<'_>,
        out: &mut Vec<u8>,
    ) -> (Status, Option<FileBody>) {
        let status = rh.status;
        let is_head = head.method == Method::Head;
        if let Some(page) = self.error_page(status)
            && let Route::File(found) = self.route_file(head, &page, server)
        {
            rh.content_type = Some(found.content_type);
            rh.charset_utf8 = found.charset;
            rh.content_encoding = found.encoding;
            rh.vary_accept_encoding = found.vary;
            let sink = BodySink {
                small_file_bytes: self.config.small_file_bytes,
                is_head,
                open_files: Some(&self.open_files),
                sendfile: server.closing != Some(CloseReason::Overflow),
            };
            let start = out.len();
            let len = found.meta.len;
            match sink.single_part(out, rh, found.source, 0, len) {
                Ok((_, body)) => return (status, body),
                Err(_) => out.truncate(start),
            }
        }
        encode_error_body(out, rh, is_head);
        (status, None)
    }

    /// The route of a GET or HEAD for `target` (the request's, or a
    /// fallback or error page): a file beneath ROOT, a redirect, a
    /// listing, or an error.
    fn route_file(
        &mut self,
        head: &RequestHead<'_>,
        target: &str,
        server: &ServerView<'_>,
    ) -> Route {
        let info = match decode_path(target, &mut self.path) {
            Ok(info) => info,
            Err(status) => return Route::Error(status),
        };
        if info.has_dot_segment && !self.config.dotfiles {
            return Route::Error(Status::NotFound);
        }
        self.compress_key.clear();
        self.compress_key.extend_from_slice(&self.path);
        self.compress_key.push(0); // cannot occur in a decoded path
        self.compress_key.push(u8::from(info.trailing_slash));
        if self.cache.enabled() {
            self.cache_key(info.trailing_slash, head.accept_encoding);
            if let Some(hit) = self.cached() {
                return hit;
            }
        }
        let (mut file, mut meta) = match self.open(true) {
            Ok(found) => found,
            Err(status) => return Route::Error(status),
        };
        let was_dir = meta.is_dir();
        if was_dir {
            if !info.trailing_slash {
                // RFC 9110 §15.4.2; keep the query, as a browser would.
                let query = target.find('?').map_or("", |i| &target[i..]);
                self.location.clear();
                self.location.extend_from_slice(info.raw_path.as_bytes());
                self.location.push(b'/');
                self.location.extend_from_slice(query.as_bytes());
                return Route::Redirect;
            }
            let dir_len = self.path.len();
            if !self.path.is_empty() {
                self.path.push(b'/');
            }
            self.path.extend_from_slice(b"index.html");
            (file, meta) = match self.open(false) {
                Ok(found) => found,
                Err(Status::NotFound) if self.config.listing => {
                    self.path.truncate(dir_len);
                    return Route::Listing(file);
                }
                Err(status) => return Route::Error(status),
            };
        }
        if !meta.is_file() {
            return Route::Error(Status::Forbidden);
        }
        if info.trailing_slash && !was_dir {
            // `/file.txt/` names a directory that does not exist (ENOTDIR).
            return Route::Error(Status::NotFound);
        }
        let (content_type, charset) = content_type(&self.path);
        let mut found = FileRoute {
            source: FileSource::Open(file),
            meta: FileMeta::from(&meta),
            content_type,
            charset,
            encoding: None,
            vary: false,
            compressible: self.compression.is_some() && compress::compressible(content_type),
        };
        if self.config.precompressed && charset {
            // Text-like types may have precompressed siblings; caches must
            // key on Accept-Encoding whether or not this client gets one.
            found.vary = true;
            if let Some(accept) = head.accept_encoding {
                self.choose_precompressed(accept, &mut found);
            }
        }
        self.remember(found, server)
    }

    /// The cache key of a request: its decoded path, whether it ended in
    /// `/` (an index), and which precompressed codings it accepts.
    fn cache_key(&mut self, trailing_slash: bool, accept_encoding: Option<&[u8]>) {
        self.cache_key.clear();
        self.cache_key.extend_from_slice(&self.path);
        self.cache_key.push(0); // cannot occur in a decoded path
        let accepts = |coding: &[u8]| {
            self.config.precompressed
                && accept_encoding.is_some_and(|ae| accepts_encoding(ae, coding))
        };
        let class = u8::from(trailing_slash)
            | u8::from(accepts(b"br")) << 1
            | u8::from(accepts(b"gzip")) << 2;
        self.cache_key.push(class);
    }

    /// A file just opened goes into the cache and is served from it: a
    /// small one's bytes, or a large one's fd (when the fd budget has room
    /// to keep it; otherwise it stays this request's own).
    fn remember(&mut self, mut found: FileRoute, server: &ServerView<'_>) -> Route {
        if !self.cache.enabled() {
            return Route::File(found);
        }
        let FileSource::Open(file) = &found.source else {
            return Route::File(found);
        };
        let content = if found.meta.len <= self.config.small_file_bytes {
            let mut bytes = vec![0u8; found.meta.len as usize];
            if std::os::unix::fs::FileExt::read_exact_at(file, &mut bytes, 0).is_err() {
                return Route::File(found);
            }
            Content::Bytes(bytes.into())
        } else if self.file_room(server) {
            let FileSource::Open(file) =
                std::mem::replace(&mut found.source, FileSource::Memory(Arc::from(&[][..])))
            else {
                unreachable!("checked above")
            };
            Content::Fd(self.open_files.adopt(file))
        } else {
            return Route::File(found);
        };
        found.source = match &content {
            Content::Bytes(bytes) => FileSource::Memory(Arc::clone(bytes)),
            Content::Fd(open) => FileSource::Shared(Arc::clone(open)),
        };
        let plain_len = self.path.len();
        match found.encoding {
            Some("br") => self.path.extend_from_slice(b".br"),
            Some(_) => self.path.extend_from_slice(b".gz"),
            None => {}
        }
        self.cache.insert(
            &self.cache_key,
            content,
            found.meta,
            &self.path,
            found.content_type,
            found.charset,
            found.encoding,
            found.vary,
            found.compressible,
            self.now,
        );
        self.path.truncate(plain_len);
        Route::File(found)
    }

    /// May one more file fd be held for a body? When the budget is full, a
    /// cached fd that no response uses is closed first to make room.
    fn file_room(&mut self, server: &ServerView<'_>) -> bool {
        loop {
            let open = self.open_files.count();
            if server
                .budget
                .has_file_room(server.gauges.connections(), open)
            {
                return true;
            }
            if !self.cache.release_unused_fd() {
                return false;
            }
        }
    }

    /// Closes one cached file fd that no response is using, for the
    /// reactor's admission; returns whether one was closed.
    pub fn release_unused_fd(&mut self) -> bool {
        self.cache.release_unused_fd()
    }

    /// Closes cached file fds that no response has used for a while.
    pub fn sweep_open_files(&mut self) {
        if self.cache.fd_entries() > 0 {
            self.cache.sweep(self.now);
        }
    }

    /// A cache hit, revalidated first when its time is up.
    fn cached(&mut self) -> Option<Route> {
        let entry = match self.cache.lookup(&self.cache_key, self.now) {
            Lookup::Miss => return None,
            Lookup::Fresh(entry) => entry,
            Lookup::Stale(entry) => {
                let unchanged = self
                    .root
                    .open_beneath(&entry.served_path, &mut self.name)
                    .and_then(|f| f.metadata())
                    .is_ok_and(|m| m.is_file() && FileMeta::from(&m) == entry.meta);
                if !unchanged {
                    self.cache.remove(&self.cache_key);
                    return None;
                }
                self.cache.revalidated(&self.cache_key, self.now);
                entry
            }
        };
        let source = match entry.content {
            Content::Bytes(bytes) => FileSource::Memory(bytes),
            Content::Fd(open) => FileSource::Shared(open),
        };
        Some(Route::File(FileRoute {
            source,
            meta: entry.meta,
            content_type: entry.content_type,
            charset: entry.charset,
            encoding: entry.encoding,
            vary: entry.vary,
            compressible: entry.compressible,
        }))
    }

    /// On-the-fly compression ([`compress`]): the compressed
    /// representation when the cache has it in a coding the client
    /// accepts; otherwise the file goes to the compressor and this
    /// response is the identity one.
    fn choose_compressed(
        &mut self,
        accept_encoding: Option<&[u8]>,
        found: &mut FileRoute,
        server: &mut ServerView<'_>,
    ) {
        if !self.compression.as_ref().is_some_and(|c| c.eligible(found)) {
            return;
        }
        found.vary = true;
        let Some(accept) = accept_encoding else {
            return;
        };
        if matches!(found.source, FileSource::Open(_)) && self.file_room(server) {
            // Not cached (the file cache is off or full): charge its fd,
            // so that it can be shared with the compressor.
            let FileSource::Open(file) =
                std::mem::replace(&mut found.source, FileSource::Memory(Arc::from(&[][..])))
            else {
                unreachable!("checked above")
            };
            found.source = FileSource::Shared(self.open_files.adopt(file));
        }
        let outcome = self
            .compression
            .as_mut()
            .and_then(|c| c.select(&self.compress_key, accept, found));
        if let Some(outcome) = outcome {
            server.stats.count_compression(outcome, 1);
        }
    }

    /// The compressor woke the reactor: its results go in the cache.
    /// Returns how many files it finished.
    pub fn take_compressed(&mut self) -> usize {
        self.compression.as_mut().map_or(0, |c| c.take_done())
    }

    /// Swaps in FILE.br or FILE.gz when it exists as a regular file and the
    /// client accepts its coding (brotli first: smaller).
    fn choose_precompressed(&mut self, accept: &[u8], found: &mut FileRoute) {
        let plain_len = self.path.len();
        for (coding, suffix) in [("br", &b".br"[..]), ("gzip", b".gz")] {
            if !accepts_encoding(accept, coding.as_bytes()) {
                continue;
            }
            self.path.extend_from_slice(suffix);
            let opened = self.open(false);
            self.path.truncate(plain_len);
            if let Ok((file, meta)) = opened
                && meta.is_file()
            {
                found.source = FileSource::Open(file);
                found.meta = FileMeta::from(&meta);
                found.encoding = Some(coding);
                return;
            }
        }
    }

    /// Opens `self.path` beneath ROOT and reads its metadata.
    fn open(&mut self, allow_dir: bool) -> Result<(File, std::fs::Metadata), Status> {
        let file = self
            .root
            .open_beneath(&self.path, &mut self.name)
            .map_err(status_for)?;
        let meta = file.metadata().map_err(|e| {
            log::warn!("fstat failed: {e}");
            Status::InternalServerError
        })?;
        if meta.is_dir() && !allow_dir {
            return Err(Status::NotFound);
        }
        Ok((file, meta))
    }
}

/// The status for a failed open beneath ROOT.
fn status_for(e: io::Error) -> Status {
    match e.raw_os_error() {
        // EXDEV: openat2 refused to leave ROOT (a symlink pointing out).
        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::EXDEV | libc::ENAMETOOLONG) => {
            Status::NotFound
        }
        Some(libc::EACCES | libc::EPERM) => Status::Forbidden,
        // Out of file descriptors: a transient condition, say so.
        Some(libc::EMFILE | libc::ENFILE) => {
            log::warn!("open failed: {e}: answering 503");
            Status::ServiceUnavailable
        }
        _ => {
            log::warn!("open failed: {e}");
            Status::InternalServerError
        }
    }
}

/// Encodes `rh` with a body generated for this request (a listing, the
/// status page), as UTF-8 text of `content_type`; HEAD gets the head only.
fn encode_generated<'a>(
    out: &mut Vec<u8>,
    mut rh: ResponseHead<'a>,
    content_type: &'a str,
    body: &[u8],
    is_head: bool,
) {
    rh.content_type = Some(content_type);
    // JSON is UTF-8 by definition and takes no charset (RFC 8259 §11).
    rh.charset_utf8 = content_type != "application/json";
    rh.content_length = body.len() as u64;
    encode_head(out, &rh);
    if !is_head {
        out.extend_from_slice(body);
    }
}

/// Encodes `rh` with the status's short text body (omitted for HEAD).
fn encode_error_body(out: &mut Vec<u8>, rh: &mut ResponseHead<'_>, is_head: bool) {
    let body = rh.status.error_body();
    rh.content_type = Some("text/plain");
    rh.charset_utf8 = true;
    rh.content_length = body.len() as u64;
    encode_head(out, rh);
    if !is_head {
        out.extend_from_slice(body.as_bytes());
    }
}

/// Writes into `location` the https URL of the request: its Host's name
/// (or, without one, the TLS listener's address), the first TLS port
/// unless 443, the target as sent. False when the Host is not a plain
/// host name or address literal, which is not echoed into a header.
fn https_location(location: &mut Vec<u8>, head: &RequestHead<'_>, tls: &[SocketAddr]) -> bool {
    let Some(listener) = tls.first() else {
        return false;
    };
    let name: Vec<u8>;
    let host = match head.host {
        Some(host) => {
            // Strip the port: a name, an IPv4 literal or a bracketed IPv6.
            let end = match host.iter().rposition(|&b| b == b':') {
                Some(colon) if !host.ends_with(b"]") => colon,
                _ => host.len(),
            };
            let name = &host[..end];
            let plain = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
            let literal = |b: &u8| b.is_ascii_hexdigit() || matches!(b, b':' | b'.' | b'[' | b']');
            let ok = !name.is_empty()
                && (name.iter().all(plain)
                    || name.starts_with(b"[") && name.ends_with(b"]") && name.iter().all(literal));
            if !ok {
                return false;
            }
            name
        }
        None if listener.ip().is_unspecified() => return false,
        None => {
            name = match listener {
                SocketAddr::V4(a) => a.ip().to_string().into_bytes(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()).into_bytes(),
            };
            &name
        }
    };
    location.clear();
    location.extend_from_slice(b"https://");
    location.extend_from_slice(host);
    if listener.port() != 443 {
        let _ = std::io::Write::write_fmt(location, format_args!(":{}", listener.port()));
    }
    location.extend_from_slice(head.target.as_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::body_bytes;

    #[test]
    fn body_bytes_follow_the_head_and_an_interim_continue() {
        assert_eq!(
            body_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"),
            3
        );
        assert_eq!(
            body_bytes(b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"),
            0
        );
        // A body that holds an empty line is still counted whole.
        assert_eq!(body_bytes(b"HTTP/1.1 200 OK\r\n\r\na\r\n\r\nb"), 6);
        assert_eq!(
            body_bytes(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX: y\r\n\r\nab"),
            2
        );
    }
}
