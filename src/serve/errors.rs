//! Error responses: the `--error-page` for the status when there is one
//! and it can be read (its body and type, the error's status), else a
//! short text body; and the answer to a request that could not be parsed
//! or timed out, always with `Connection: close`.

use std::time::Instant;

use super::ServerView;
use super::body::BodySink;
use super::body::FileBody;
use super::lookup::{Compression, Files, Target};
use super::route::Route;
use super::settings::{Settings, SiteRef};
use crate::close::CloseReason;
use crate::http::Status;
use crate::http::request::{Method, RequestHead};
use crate::http::response::{ResponseHead, encode_head};

/// Encodes `rh` (its status an error) with the `--error-page` for it when
/// there is one and it can be read, else with the status's short text
/// body. Returns the status and the page's body when it is sent after the
/// head (a page larger than `--small-file-bytes`).
pub(super) fn error_body(
    at: SiteRef<'_>,
    files: &mut Files,
    head: &RequestHead<'_>,
    rh: &mut ResponseHead<'_>,
    server: &mut ServerView<'_>,
    out: &mut Vec<u8>,
    now: Instant,
) -> (Status, Option<FileBody>) {
    let status = rh.status;
    let is_head = head.method == Method::Head;
    if let Some(page) = at.site().error_page(status.code())
        && let Route::File(found) = files.lookup(
            at,
            head,
            Target::other(&page),
            Compression::Never,
            server,
            now,
        )
    {
        rh.content_type = Some(found.content_type);
        rh.charset_utf8 = found.charset;
        rh.content_encoding = found.encoding;
        rh.vary_accept_encoding = found.vary;
        let sink = BodySink {
            small_file_bytes: at.settings.small_file_bytes,
            is_head,
            open_files: Some(&files.open_files),
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

/// Encodes the answer to a request that could not be parsed or framed,
/// or timed out, with `rh` (its status an error, `Connection: close`).
/// An `--error-page` is served when it fits in the output buffer (up to
/// `--small-file-bytes`: a larger page would need a body sent after the
/// head, for a connection that is closing); the plain text otherwise.
#[allow(clippy::too_many_arguments)]
pub(super) fn refusal(
    settings: &Settings,
    files: &mut Files,
    rh: &mut ResponseHead<'_>,
    is_head: bool,
    server: &mut ServerView<'_>,
    out: &mut Vec<u8>,
    now: Instant,
) {
    let start = out.len();
    // Unparsed, the request named no site: the default site's page.
    let served = settings
        .site(0)
        .error_page(rh.status.code())
        .is_some_and(|page| {
            // What the page is asked for as: a GET (or HEAD) of its path,
            // nothing of the unusable request carried over.
            let page_head = RequestHead::plain(&page, is_head);
            let at = SiteRef::new(settings, 0);
            match error_body(at, files, &page_head, rh, server, out, now) {
                (_, None) => true,
                (_, Some(_)) => {
                    out.truncate(start);
                    false
                }
            }
        });
    if !served {
        encode_error_body(out, rh, is_head);
    }
}

/// Encodes `rh` with a body generated for this request (a listing, the
/// status page), as UTF-8 text of `content_type`; HEAD gets the head only.
pub(super) fn encode_generated<'a>(
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

/// Encodes the redirect `rh` to `location` with the status's short text
/// body; returns its status.
pub(super) fn redirect<'a>(
    out: &mut Vec<u8>,
    mut rh: ResponseHead<'a>,
    location: &'a [u8],
    is_head: bool,
) -> Status {
    rh.location = Some(location);
    encode_error_body(out, &mut rh, is_head);
    rh.status
}

/// Encodes `rh` with the status's short text body (omitted for HEAD).
pub(super) fn encode_error_body(out: &mut Vec<u8>, rh: &mut ResponseHead<'_>, is_head: bool) {
    let body = rh.status.error_body();
    rh.content_type = Some("text/plain");
    rh.charset_utf8 = true;
    rh.content_length = body.len() as u64;
    encode_head(out, rh);
    if !is_head {
        out.extend_from_slice(body.as_bytes());
    }
}
