//! Routing one request ([`route`]): the health check, the site its host
//! picks (`--unknown-host`, 421 when a TLS connection's server name
//! picked another site), the site's `--redirect-to-https`, its path
//! rules (address ranges, authentication, a redirect, a rewrite, a deny;
//! header edits left for the response), the method, the status path,
//! the file lookup and the fallback; into a [`Route`].

use std::time::Instant;

use super::ServerView;
use super::auth::{Authenticator, Verdict};
use super::lookup::{Compression, Files, Target};
use super::route::{Route, https_url};
use super::settings::{Settings, SiteRef};
use super::{rules, sites};
use crate::config::UnknownHost;
use crate::config::cidr;
use crate::config::rules::Action;
use crate::http::Status;
use crate::http::request::{Method, RequestHead};
use crate::http::session::ConnFacts;
use crate::status;

/// The buffers one request's path rules work in, lent to routing and
/// read by the response that follows (never between requests).
#[derive(Default)]
pub(super) struct RuleScratch {
    /// The decoded path the rules matched.
    pub path: Vec<u8>,
    /// The rules that matched it, in order.
    pub hits: Vec<usize>,
    /// A rewrite's target.
    pub rewritten: Vec<u8>,
    /// The header lines as the rules edited them.
    pub headers: Vec<u8>,
    /// What `headers` was composed for: the site and the rules that
    /// matched (`None`: nothing, or the settings changed since). A
    /// request of the same site matching the same rules (every request
    /// of a page's assets, say) reuses it as it is.
    pub composed: Option<Composed>,
}

/// The site and rule hits `RuleScratch::headers` holds the lines of, and
/// whether `--cache-control` survived them.
#[derive(Default)]
pub(super) struct Composed {
    pub site: usize,
    pub hits: Vec<usize>,
    pub keep_cache_control: bool,
}

/// What routing lends the path rules for one request.
pub struct Matching<'t, 'h> {
    /// The decoded path matched (a redirect's placeholders read it).
    pub path: &'t mut Vec<u8>,
    /// The rules that matched, in order (the response's header edits).
    pub hits: &'h mut Vec<usize>,
    /// A rewrite's target.
    pub rewritten: &'t mut Vec<u8>,
    /// `auth` rules' verdicts.
    pub auth: &'h mut Authenticator,
}

/// The site a TLS connection's server name (SNI) picked: a request's
/// host must pick the same one, or it is answered 421.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sni {
    /// Plain, or a handshake without a server name: nothing to check.
    #[default]
    Absent,
    /// This site's.
    Site(usize),
    /// A name no site names (under `--unknown-host 404` or `421`).
    NoSite,
}

impl Sni {
    /// A request for `site` came on a connection made for another.
    pub(super) fn picks_other(self, site: usize) -> bool {
        match self {
            Sni::Absent => false,
            Sni::Site(sni) => sni != site,
            Sni::NoSite => true,
        }
    }
}

/// Routes one request to its site and its route: the health check
/// first (whatever the host), then the site its host picks (or the
/// `--unknown-host` answer; 421 when a TLS connection's server name
/// picked another), then the site's `--redirect-to-https` (the status
/// path excepted), its `--rule`s (an access rule that refuses the
/// client is 403; then the first redirect, rewrite or deny that matches
/// decides; the header edits are left in `matching.hits`),
/// the method, the status path, the file beneath the site's ROOT, and its
/// `--fallback` for a path that names no file.
pub fn route<'t>(
    settings: &'t Settings,
    files: &mut Files,
    head: &RequestHead<'t>,
    conn: &ConnFacts,
    server: &mut ServerView<'_>,
    now: Instant,
    matching: Matching<'t, '_>,
) -> (usize, Route<'t>) {
    matching.hits.clear();
    let secure = conn.secure;
    // Split once: the path, the query without its `?` (the status
    // path's), and with it (kept by redirects).
    let split = head.target.bytes().position(|b| b == b'?');
    let (path, asked_query) = head.target.split_at(split.unwrap_or(head.target.len()));
    let query = asked_query.get(1..).unwrap_or("");
    // A load balancer's health check is answered before anything else
    // (plain or TLS, whatever the method and the host).
    if settings.live.health_path.as_deref() == Some(path) {
        return (0, Route::Health);
    }
    // An ACME CA validating HTTP-01 (plain or TLS: it follows redirects
    // to https), whatever the host: before every redirect, rule and auth.
    // An unknown token is 404, and nothing else is served here.
    if settings.acme
        && let Some(token) = path.strip_prefix(crate::acme::CHALLENGE_PATH)
    {
        return match crate::acme::challenges().http_answer(token) {
            Some(answer) => (0, Route::AcmeChallenge(answer)),
            None => (0, Route::Error(Status::NotFound)),
        };
    }
    let is_status = settings.live.status_path.as_deref() == Some(path);
    let site = match settings.hosts.site_for(sites::request_host(head)) {
        Some(site) => site,
        None if is_status => 0,
        None => return (0, Route::Error(unknown_host_status(settings))),
    };
    if secure && !is_status && server.sni.picks_other(site) {
        // RFC 9110 §15.5.20: the certificate this connection was given
        // is another site's; the client may retry on a new connection.
        return (0, Route::Error(Status::Misdirected));
    }
    let at = SiteRef::new(settings, site);
    let options = &at.site().options;
    if options.redirect_to_https && !secure && !is_status {
        return match https_url(head, &settings.tls_listen) {
            Some(url) => (site, Route::Https(url)),
            None => (site, Route::Error(Status::BadRequest)),
        };
    }
    let rules = &at.site().rules;
    let mut target = head.target;
    let mut rewritten = false;
    // The path as the rules decoded it (this request's: the buffer
    // holds the last request's otherwise), for the lookup to copy.
    let mut rooted = None;
    if !is_status && !rules.is_empty() {
        let info = rules.matching(head.target, matching.path, matching.hits);
        let decoded: &'t [u8] = matching.path;
        rooted = info.map(|info| (decoded, info));
        let trusted = &settings.live.trusted_proxies;
        let client = cidr::client_address(conn.peer.ip(), head.forwarded_for, trusted);
        if rules.refuse(matching.hits, client) {
            return (site, Route::Error(Status::Forbidden));
        }
        if let Some(users) = rules.auth(matching.hits) {
            match matching.auth.check(users, head.authorization, server.conn) {
                Verdict::Pass => {}
                Verdict::Challenge => return (site, Route::Unauthorized(&users.realm)),
                Verdict::Defer => return (site, Route::Defer),
                Verdict::Busy => return (site, Route::Error(Status::ServiceUnavailable)),
            }
        }
        match rules
            .decision(matching.hits)
            .map(|rule| (rule, &rule.action))
        {
            Some((_, Action::Deny(403))) => return (site, Route::Error(Status::Forbidden)),
            Some((_, Action::Deny(_))) => return (site, Route::Error(Status::NotFound)),
            Some((rule, Action::Redirect { status, .. })) => {
                let status = Status::redirect(*status).unwrap_or(Status::Found);
                let path = decoded;
                let query = asked_query;
                return (
                    site,
                    Route::Redirect {
                        status,
                        rule,
                        path,
                        query,
                    },
                );
            }
            Some((rule, Action::Rewrite(template))) => {
                matching.rewritten.clear();
                rules::expand(template, rule, decoded, matching.rewritten);
                let text: &'t [u8] = matching.rewritten;
                target = std::str::from_utf8(text).unwrap_or("/");
                rewritten = true;
            }
            _ => {}
        }
    }
    let route = match head.method {
        Method::Unknown => Route::Error(Status::NotImplemented),
        Method::OtherKnown => Route::Error(Status::MethodNotAllowed),
        Method::Options => Route::Options,
        Method::Get | Method::Head if is_status => {
            Route::Status(status::Format::asked(query, head.accept))
        }
        Method::Get | Method::Head => {
            let compression = Compression::ByAcceptEncoding;
            let asked = match rewritten {
                true => Target::other(target),
                false => Target::asked(target).decoded(rooted),
            };
            let route = files.lookup(at, head, asked, compression, server, now);
            match (route, &at.site().fallback) {
                // A rewrite to a directory: the slash goes on the path the
                // client asked for, not on the one it was rewritten to.
                (Route::AddSlash { .. }, _) if rewritten => Route::AddSlash {
                    path,
                    query: asked_query,
                },
                // --fallback: a path that names no file gets the fallback
                // file (a single-page app's index), with its 200.
                (Route::Error(Status::NotFound), Some(fallback)) => {
                    files.lookup(at, head, Target::other(fallback), compression, server, now)
                }
                (route, _) => route,
            }
        }
    };
    (site, route)
}

/// `--unknown-host`'s status, for a host no site names.
fn unknown_host_status(settings: &Settings) -> Status {
    match settings.hosts.unknown() {
        UnknownHost::Misdirected => Status::Misdirected,
        UnknownHost::NotFound | UnknownHost::DefaultSite => Status::NotFound,
    }
}
