//! A file's response: validators (ETag, Last-Modified), conditional
//! requests (304, 412) and ranges (206, multipart/byteranges, 416); how
//! its body leaves is [`super::body`]'s.

use super::ServerView;
use super::body::{BodySink, FileBody, FileRoute, FileSource, PartHead};
use super::errors::encode_error_body;
use super::lookup::Files;
use super::settings::SiteRef;
use crate::close::CloseReason;
use crate::http::Status;
use crate::http::persist::Persistence;
use crate::http::request::{Method, RequestHead};
use crate::http::response::{ContentRange, ResponseHead, encode_head};
use crate::http::validators::{
    Condition, Etag, Preconditions, RangeRequest, evaluate, if_range_holds, parse_range,
};

/// Encodes the response for `found` into `out`. `Err(status)` asks the
/// caller for a plain error response instead (nothing was written).
#[allow(clippy::too_many_arguments)]
pub(super) fn respond_file(
    at: SiteRef<'_>,
    files: &mut Files,
    date: &[u8],
    head: &RequestHead<'_>,
    found: FileRoute,
    persistence: Persistence,
    server: &ServerView<'_>,
    out: &mut Vec<u8>,
) -> Result<(Status, Option<FileBody>), Status> {
    // A file just opened costs an fd if its body is sent with sendfile;
    // one from the cache is already charged.
    let file_room = matches!(found.source, FileSource::Open(_)) && files.file_room(server);
    let meta = found.meta;
    // The selected representation's: the file, a precompressed
    // variant, or the bytes compressed here (whose tag names the
    // coding; its Last-Modified is the file's).
    let len = found.representation_len();
    // --etag hash: none until the version's hash is in (Last-Modified
    // still validates meanwhile).
    let validators = files.validators(&meta);
    let mut etag = match files.hashes {
        None => Some(validators.etag),
        Some(hashes) => hashes.tag(&found).map(|hash| Etag::from_hash(&hash)),
    };
    if let (FileSource::Compressed(_), Some(coding)) = (&found.source, found.encoding) {
        etag = etag.map(|etag| etag.with_coding(coding));
    }
    let etag_bytes = etag.as_ref().map_or(&b""[..], |etag| etag.as_bytes());
    let modified_secs = meta.mtime.max(0) as u64;
    let last_modified = validators.last_modified;
    let settings = at.settings;
    let extra = at.extra;
    let is_head = head.method == Method::Head;

    let mut rh = ResponseHead::with_extra(Status::Ok, date, extra, persistence);
    rh.etag = etag.as_ref().map(|etag| etag.as_bytes());
    rh.last_modified = Some(&last_modified);
    rh.cache_control = at.cache_control;
    rh.vary_accept_encoding = found.vary;

    let pre = Preconditions {
        if_match: head.if_match,
        if_none_match: head.if_none_match,
        if_modified_since: head.if_modified_since,
        if_unmodified_since: head.if_unmodified_since,
    };
    match evaluate(&pre, etag_bytes, modified_secs) {
        Condition::Proceed => {}
        Condition::NotModified => {
            // RFC 9110 §15.4.5: the validators and caching headers, no body.
            rh.status = Status::NotModified;
            encode_head(out, &rh);
            return Ok((Status::NotModified, None));
        }
        Condition::PreconditionFailed => return Err(Status::PreconditionFailed),
    }

    rh.accept_ranges = true;
    rh.content_type = Some(found.content_type);
    rh.charset_utf8 = found.charset;
    rh.content_encoding = found.encoding;
    let range = match (head.range, head.if_range) {
        (Some(_), Some(validator)) if !if_range_holds(validator, etag_bytes, modified_secs) => {
            RangeRequest::Full
        }
        (Some(range), _) => parse_range(range, len),
        (None, _) => RangeRequest::Full,
    };
    let ranges = match range {
        RangeRequest::Full => None,
        RangeRequest::Unsatisfiable => {
            let mut rh =
                ResponseHead::with_extra(Status::RangeNotSatisfiable, date, extra, persistence);
            rh.content_range = Some(ContentRange::Unsatisfied { len });
            encode_error_body(out, &mut rh, is_head);
            return Ok((Status::RangeNotSatisfiable, None));
        }
        RangeRequest::Partial(ranges) => Some(ranges),
    };
    let sink = BodySink {
        small_file_bytes: settings.small_file_bytes,
        is_head,
        open_files: file_room.then_some(&files.open_files),
        sendfile: server.closing != Some(CloseReason::Overflow),
    };
    match ranges {
        None => sink.single_part(out, &mut rh, found.source, 0, len),
        Some(ranges) => match *ranges.as_slice() {
            [(first, last)] => {
                rh.status = Status::PartialContent;
                rh.content_range = Some(ContentRange::Bytes { first, last, len });
                sink.single_part(out, &mut rh, found.source, first, last - first + 1)
            }
            // Content-Encoding on a multipart/byteranges message would
            // say the multipart body is encoded, which it is not (its
            // parts are slices of the encoded bytes); nor does any
            // header say a part's coding. RFC 9110 §14.2 lets a server
            // ignore Range: the whole encoded representation, 200.
            _ if found.encoding.is_some() => sink.single_part(out, &mut rh, found.source, 0, len),
            _ => {
                let part_head = PartHead {
                    content_type: found.content_type,
                    charset: found.charset,
                    len,
                };
                sink.multipart(out, &mut rh, found.source, ranges, part_head)
            }
        },
    }
}
