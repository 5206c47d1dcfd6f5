//! A file's response: validators (ETag, Last-Modified), conditional
//! requests (304, 412), ranges (206, multipart/byteranges, 416), and how
//! the body leaves: in the same write as the head when small, with
//! sendfile when large.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::Arc;

use super::{Ctx, FileBody};
use crate::http::Status;
use crate::http::date::imf_fixdate;
use crate::http::persist::Persistence;
use crate::http::request::{Method, RequestHead};
use crate::http::response::{ContentRange, ResponseHead, encode_head, push_content_range};
use crate::http::validators::{
    Condition, Etag, Preconditions, RangeRequest, evaluate, if_range_holds, parse_range,
};

/// The largest multipart/byteranges body built in memory; a request for
/// more gets the whole file (200) instead, as RFC 9110 §14.2 allows.
const MAX_MULTIPART_BYTES: u64 = 4 * 1024 * 1024;

/// The validators and size of a file, from fstat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    pub ino: u64,
    pub len: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
}

impl From<&std::fs::Metadata> for FileMeta {
    fn from(m: &std::fs::Metadata) -> FileMeta {
        FileMeta {
            ino: m.ino(),
            len: m.len(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        }
    }
}

/// Where a file's bytes come from.
pub enum FileSource {
    Open(File),
    /// From the small-file cache.
    Memory(Arc<[u8]>),
}

impl FileSource {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match self {
            FileSource::Open(file) => file.read_exact_at(buf, offset),
            FileSource::Memory(bytes) => {
                let start = offset as usize;
                let src = bytes
                    .get(start..start + buf.len())
                    .ok_or(std::io::ErrorKind::UnexpectedEof)?;
                buf.copy_from_slice(src);
                Ok(())
            }
        }
    }
}

/// A regular file found for a request, possibly a precompressed variant.
pub struct FileRoute {
    pub source: FileSource,
    pub meta: FileMeta,
    /// The type of the file asked for (not of its .br/.gz variant).
    pub content_type: &'static str,
    pub charset: bool,
    /// `Some("br")`/`Some("gzip")` when a precompressed variant was chosen.
    pub encoding: Option<&'static str>,
    /// Send `Vary: Accept-Encoding`.
    pub vary: bool,
}

/// How a body of `len` bytes will leave.
enum BodyMode {
    None,
    /// Read into the output buffer: one write with the head.
    InMemory,
    Sendfile,
}

/// What decides how a body leaves.
struct BodySink {
    small_file_bytes: u64,
    /// The fd budget has room for one more open file body.
    file_room: bool,
    is_head: bool,
}

/// Scratch and names for a multipart body.
struct Multipart<'a> {
    body: &'a mut Vec<u8>,
    boundary: &'a str,
    /// `multipart/byteranges; boundary=...`
    content_type: &'a str,
}

impl Ctx {
    /// Encodes the response for `found` into `out`. `Err(status)` asks the
    /// caller for a plain error response instead (nothing was written).
    pub(super) fn respond_file(
        &mut self,
        head: &RequestHead<'_>,
        found: FileRoute,
        persistence: Persistence,
        out: &mut Vec<u8>,
    ) -> Result<(Status, Option<FileBody>), Status> {
        let meta = found.meta;
        let len = meta.len;
        let etag = Etag::new(meta.ino, len, meta.mtime, meta.mtime_nsec);
        let modified_secs = meta.mtime.max(0) as u64;
        let last_modified = imf_fixdate(modified_secs);
        let date = self.date.http_date_copy();
        let is_head = head.method == Method::Head;

        let mut rh = ResponseHead::new(Status::Ok, &date, persistence);
        rh.etag = Some(etag.as_bytes());
        rh.last_modified = Some(&last_modified);
        rh.cache_control = self.config.cache_control.as_deref();
        rh.vary_accept_encoding = found.vary;

        let pre = Preconditions {
            if_match: head.if_match,
            if_none_match: head.if_none_match,
            if_modified_since: head.if_modified_since,
            if_unmodified_since: head.if_unmodified_since,
        };
        match evaluate(&pre, etag.as_bytes(), modified_secs) {
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
            (Some(range), Some(validator))
                if !if_range_holds(validator, etag.as_bytes(), modified_secs) =>
            {
                let _ = range;
                RangeRequest::Full
            }
            (Some(range), _) => parse_range(range, len),
            (None, _) => RangeRequest::Full,
        };
        let ranges = match range {
            RangeRequest::Full => None,
            RangeRequest::Unsatisfiable => {
                let mut rh = ResponseHead::new(Status::RangeNotSatisfiable, &date, persistence);
                rh.content_range = Some(ContentRange::Unsatisfied { len });
                super::encode_error_body(out, &mut rh, is_head);
                return Ok((Status::RangeNotSatisfiable, None));
            }
            RangeRequest::Partial(ranges) => Some(ranges),
        };
        let sink = BodySink {
            small_file_bytes: self.config.small_file_bytes,
            file_room: self
                .budget
                .has_file_room(self.gauges.connections(), self.gauges.open_files),
            is_head,
        };
        match ranges.as_ref().map(|r| r.as_slice()) {
            None => sink.single_part(out, &mut rh, found.source, 0, len),
            Some(&[(first, last)]) => {
                rh.status = Status::PartialContent;
                rh.content_range = Some(ContentRange::Bytes { first, last, len });
                sink.single_part(out, &mut rh, found.source, first, last - first + 1)
            }
            Some(parts) => {
                let data: u64 = parts.iter().map(|(a, b)| b - a + 1).sum();
                if data > MAX_MULTIPART_BYTES {
                    sink.single_part(out, &mut rh, found.source, 0, len)
                } else {
                    let multipart = Multipart {
                        body: &mut self.status_body,
                        boundary: &self.boundary,
                        content_type: &self.multipart_type,
                    };
                    sink.multipart(out, &mut rh, &found.source, parts, len, multipart)
                }
            }
        }
    }
}

impl BodySink {
    /// The head, then `count` bytes of the file from `offset`.
    fn single_part(
        &self,
        out: &mut Vec<u8>,
        rh: &mut ResponseHead<'_>,
        source: FileSource,
        offset: u64,
        count: u64,
    ) -> Result<(Status, Option<FileBody>), Status> {
        let mode = if self.is_head || count == 0 {
            BodyMode::None
        } else if count <= self.small_file_bytes || matches!(source, FileSource::Memory(_)) {
            BodyMode::InMemory
        } else if self.file_room {
            BodyMode::Sendfile
        } else {
            return Err(Status::ServiceUnavailable);
        };
        rh.content_length = count;
        let head_start = out.len();
        encode_head(out, rh);
        match mode {
            BodyMode::None => Ok((rh.status, None)),
            BodyMode::InMemory => {
                let body_start = out.len();
                out.resize(body_start + count as usize, 0);
                if let Err(e) = source.read_at(&mut out[body_start..], offset) {
                    log::warn!("reading {count} bytes of a file failed: {e}");
                    out.truncate(head_start);
                    return Err(Status::InternalServerError);
                }
                Ok((rh.status, None))
            }
            BodyMode::Sendfile => {
                let FileSource::Open(file) = source else {
                    unreachable!("memory sources are sent in memory")
                };
                Ok((
                    rh.status,
                    Some(FileBody {
                        file,
                        offset,
                        remaining: count,
                    }),
                ))
            }
        }
    }

    /// 206 multipart/byteranges (RFC 9110 §14.6), built in memory.
    fn multipart<'a>(
        &self,
        out: &mut Vec<u8>,
        rh: &mut ResponseHead<'a>,
        source: &FileSource,
        parts: &[(u64, u64)],
        len: u64,
        multipart: Multipart<'a>,
    ) -> Result<(Status, Option<FileBody>), Status> {
        let body = multipart.body;
        body.clear();
        for &(first, last) in parts {
            body.extend_from_slice(b"\r\n--");
            body.extend_from_slice(multipart.boundary.as_bytes());
            body.extend_from_slice(b"\r\nContent-Type: ");
            body.extend_from_slice(
                rh.content_type
                    .unwrap_or("application/octet-stream")
                    .as_bytes(),
            );
            if rh.charset_utf8 {
                body.extend_from_slice(b"; charset=utf-8");
            }
            body.extend_from_slice(b"\r\nContent-Range: ");
            push_content_range(body, ContentRange::Bytes { first, last, len });
            body.extend_from_slice(b"\r\n\r\n");
            let start = body.len();
            body.resize(start + (last - first + 1) as usize, 0);
            if let Err(e) = source.read_at(&mut body[start..], first) {
                log::warn!("reading a byte range failed: {e}");
                return Err(Status::InternalServerError);
            }
        }
        body.extend_from_slice(b"\r\n--");
        body.extend_from_slice(multipart.boundary.as_bytes());
        body.extend_from_slice(b"--\r\n");
        rh.status = Status::PartialContent;
        rh.content_type = Some(multipart.content_type);
        rh.charset_utf8 = false;
        rh.content_length = body.len() as u64;
        encode_head(out, rh);
        if !self.is_head {
            out.extend_from_slice(body);
        }
        Ok((Status::PartialContent, None))
    }
}
