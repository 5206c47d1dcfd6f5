//! Encoding a routed request's response: one arm per [`Route`] variant,
//! into the output (a file's body may follow, sent after the head).

use std::time::Instant;

use super::body::FileBody;
use super::lookup::Files;
use super::route::Route;
use super::settings::SiteRef;
use super::{ServerView, errors, file, listing, rules};
use crate::close::CloseReason;
use crate::config::rules::Action;
use crate::http::Status;
use crate::http::persist::Persistence;
use crate::http::request::{Method, RequestHead};
use crate::http::response::{ResponseHead, encode_head};
use crate::stats::Gauges;
use crate::status;

/// What a response is encoded with besides its route: the site's
/// settings and headers, the files, the request, the date and the
/// persistence decided, the reactor's view, the output, and the
/// responder's buffers for a Location and a generated body.
pub(super) struct Encoding<'a, 'v> {
    pub at: SiteRef<'a>,
    pub files: &'a mut Files,
    pub head: &'a RequestHead<'a>,
    pub date: &'a [u8],
    pub persistence: Persistence,
    pub server: &'a mut ServerView<'v>,
    pub out: &'a mut Vec<u8>,
    pub location: &'a mut Vec<u8>,
    pub generated: &'a mut Vec<u8>,
    pub now: Instant,
    /// Where this response starts in `out` (a failed file response is
    /// cut back to it).
    pub reply_start: usize,
}

/// Encodes `route`'s response; returns its status and the body sent
/// after the head, if any.
pub(super) fn encode(route: Route<'_>, encoding: Encoding<'_, '_>) -> (Status, Option<FileBody>) {
    let Encoding {
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
    } = encoding;
    let is_head = head.method == Method::Head;
    let extra = at.extra;
    match route {
        Route::File(found) => {
            let answer =
                file::respond_file(at, files, date_now, head, found, persistence, server, out);
            match answer {
                Ok(done) => done,
                Err(status) => {
                    out.truncate(reply_start);
                    if status == Status::ServiceUnavailable && server.closing.is_none() {
                        // Holding the file open would break the fd
                        // budget. (A 503 while closing is counted by
                        // its close: shutdown, or an overflow close
                        // without a slot.)
                        server.stats.open_emfile += 1;
                    }
                    let mut rh = ResponseHead::with_extra(status, date_now, extra, persistence);
                    rh.retry_after_secs = (status == Status::ServiceUnavailable).then_some(1);
                    errors::error_body(at, files, head, &mut rh, server, out, now)
                }
            }
        }
        Route::Listing(dir) => {
            generated.clear();
            let dotfiles = at.site().options.dotfiles;
            let query = head.target.split_once('?').map_or("", |(_, q)| q);
            let asked = listing::Asked::from(query, head.accept);
            let kind = listing::render(generated, &dir, head.target, dotfiles, asked);
            let mut rh = ResponseHead::with_extra(Status::Ok, date_now, extra, persistence);
            // HTML or JSON by the Accept header: caches must know.
            rh.vary_accept = true;
            errors::encode_generated(out, rh, kind, generated, is_head);
            (Status::Ok, None)
        }
        Route::AddSlash { path, query } => {
            location.clear();
            location.extend_from_slice(path.as_bytes());
            location.push(b'/');
            location.extend_from_slice(query.as_bytes());
            let rh =
                ResponseHead::with_extra(Status::MovedPermanently, date_now, extra, persistence);
            (errors::redirect(out, rh, location, is_head), None)
        }
        Route::Clean { path, query } => {
            location.clear();
            location.extend_from_slice(path.as_bytes());
            location.extend_from_slice(query.as_bytes());
            let rh =
                ResponseHead::with_extra(Status::PermanentRedirect, date_now, extra, persistence);
            (errors::redirect(out, rh, location, is_head), None)
        }
        Route::Redirect {
            status,
            rule,
            path,
            query,
        } => {
            location.clear();
            if let Action::Redirect { target, .. } = &rule.action {
                rules::expand(target, rule, path, location);
                if !target.contains('?') {
                    location.extend_from_slice(query.as_bytes());
                }
            }
            let rh = ResponseHead::with_extra(status, date_now, extra, persistence);
            (errors::redirect(out, rh, location, is_head), None)
        }
        Route::Https(url) => {
            url.write(location);
            let rh =
                ResponseHead::with_extra(Status::PermanentRedirect, date_now, extra, persistence);
            (errors::redirect(out, rh, location, is_head), None)
        }
        Route::Status(format) => {
            let report = status::Report {
                stats: server.stats,
                gauges: Gauges {
                    open_files: files.fds_charged(),
                    ..server.gauges
                },
                budget: server.budget,
                shared: server.shared,
                worker: server.worker,
                wheel: server.wheel,
                now,
            };
            let content_type = status::render(format, &report, generated);
            let rh = ResponseHead::with_extra(Status::Ok, date_now, extra, persistence);
            errors::encode_generated(out, rh, content_type, generated, is_head);
            (Status::Ok, None)
        }
        Route::Health => {
            let draining = server.closing == Some(CloseReason::Shutdown);
            let (status, body) = match draining {
                false => (Status::Ok, &b"ok\n"[..]),
                true => (Status::ServiceUnavailable, &b"draining\n"[..]),
            };
            let mut rh = ResponseHead::with_extra(status, date_now, extra, persistence);
            rh.cache_control = Some("no-store");
            errors::encode_generated(out, rh, "text/plain", body, is_head);
            (status, None)
        }
        Route::AcmeChallenge(answer) => {
            let mut rh = ResponseHead::with_extra(Status::Ok, date_now, extra, persistence);
            rh.cache_control = Some("no-store");
            let body = answer.as_bytes();
            errors::encode_generated(out, rh, "application/octet-stream", body, is_head);
            (Status::Ok, None)
        }
        Route::Options => {
            let status = Status::NoContent;
            let mut rh = ResponseHead::with_extra(status, date_now, extra, persistence);
            rh.allow = true;
            encode_head(out, &rh);
            (status, None)
        }
        Route::Unauthorized(realm) => {
            let status = Status::Unauthorized;
            let mut rh = ResponseHead::with_extra(status, date_now, extra, persistence);
            rh.www_authenticate = Some(realm);
            errors::error_body(at, files, head, &mut rh, server, out, now)
        }
        // Answered before the head is built (above).
        Route::Defer => (Status::Ok, None),
        Route::Limited(secs) => {
            let status = Status::TooManyRequests;
            let mut rh = ResponseHead::with_extra(status, date_now, extra, persistence);
            rh.retry_after_secs = Some(secs);
            errors::error_body(at, files, head, &mut rh, server, out, now)
        }
        Route::Error(status) => {
            let mut rh = ResponseHead::with_extra(status, date_now, extra, persistence);
            rh.allow = status == Status::MethodNotAllowed;
            rh.retry_after_secs = (status == Status::ServiceUnavailable).then_some(1);
            errors::error_body(at, files, head, &mut rh, server, out, now)
        }
    }
}
