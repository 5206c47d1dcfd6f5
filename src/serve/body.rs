//! How a file's body leaves: the file's validators and source, and the
//! body sink that decides between one write with the head (small bodies,
//! from memory) and sendfile from a shared fd (everything larger, each
//! part of a multipart/byteranges body included). A compressed
//! representation larger than a small file is written from the cache's
//! shared bytes the same way, range by range, never copied whole into
//! the connection's buffer.
//!
//! Panics: none from a request or a file. `parts[0]` in `multipart`: the
//! ranges of a 206 hold at least one; `last - first + 1`: [`parse_range`]
//! makes `first <= last < len`. A body built in the output buffer is at
//! most `--small-file-bytes` (1 GiB at most, the parser checks) or a
//! cached copy's own length. A file that shrinks is a read error (500)
//! here, and a close while it is sent.
//!
//! [`parse_range`]: crate::http::validators::parse_range

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::{Arc, OnceLock};

use crate::files::{OpenFile, OpenFiles};
use crate::http::Status;
use crate::http::date::imf_fixdate;
use crate::http::response::{ContentRange, ResponseHead, encode_head, push_content_range};
use crate::http::validators::{Etag, Ranges};

/// The multipart/byteranges boundary, fixed per process: unpredictable
/// enough that no file contains it by accident.
fn boundary() -> &'static str {
    static BOUNDARY: OnceLock<String> = OnceLock::new();
    BOUNDARY.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        format!(
            "holdline-{:016x}",
            nanos ^ (u64::from(std::process::id()) << 40)
        )
    })
}

/// `multipart/byteranges; boundary=...`
fn multipart_type() -> &'static str {
    static TYPE: OnceLock<String> = OnceLock::new();
    TYPE.get_or_init(|| format!("multipart/byteranges; boundary={}", boundary()))
}

/// A file body still to be sent: one range, or the parts of a
/// multipart/byteranges body. A part's head is written to the output
/// buffer only when the part before it is out, so no body, however many
/// ranges it has, is ever held in a connection's buffers.
#[derive(Debug)]
pub struct FileBody {
    pub source: BodySource,
    /// The range being sent: `remaining` bytes of the file from `offset`.
    pub offset: u64,
    pub remaining: u64,
    /// multipart/byteranges: the parts, and which one is being sent.
    /// Boxed: sixteen ranges inline would make every body (and every
    /// reply moved with one) ten times larger, for the rare multipart
    /// response, which pays one allocation instead.
    parts: Option<Box<Parts>>,
}

/// Where a body that does not go with the head is sent from.
#[derive(Debug)]
pub enum BodySource {
    /// A shared fd, with sendfile(2).
    File(Arc<OpenFile>),
    /// Bytes shared with a cache: a representation compressed once (or,
    /// were one ever sent after its head, a small file's cached bytes).
    Bytes(Arc<[u8]>),
}

#[derive(Debug)]
struct Parts {
    ranges: Ranges,
    current: usize,
    head: PartHead,
    /// Bytes of the body after the first range: the later parts, their
    /// heads and the closing delimiter (for the access log).
    after_first: u64,
}

impl FileBody {
    /// `count` bytes of `file` from `offset`: a single range.
    pub fn whole(file: Arc<OpenFile>, offset: u64, count: u64) -> FileBody {
        FileBody {
            source: BodySource::File(file),
            offset,
            remaining: count,
            parts: None,
        }
    }

    /// The bytes this body will send, counted when it is made: the first
    /// range, and for a multipart body every later part, its head and
    /// the closing delimiter.
    pub fn bytes_to_send(&self) -> u64 {
        self.remaining + self.parts.as_ref().map_or(0, |p| p.after_first)
    }

    /// The current range is sent. For a multipart body, writes the next
    /// part's head (or the closing delimiter) to `out` and returns whether
    /// another range follows; a single range returns false.
    pub fn next_part(&mut self, out: &mut Vec<u8>) -> bool {
        debug_assert_eq!(self.remaining, 0, "the current range is not sent yet");
        let Some(parts) = self.parts.as_mut() else {
            return false;
        };
        parts.current += 1;
        match parts.ranges.as_slice().get(parts.current) {
            Some(&(first, last)) => {
                parts.head.push(out, first, last);
                self.offset = first;
                self.remaining = last - first + 1;
                true
            }
            None => {
                push_close_delimiter(out);
                false
            }
        }
    }
}

/// What every part head of one multipart body repeats (RFC 9110 §14.6).
#[derive(Debug, Clone, Copy)]
pub(super) struct PartHead {
    pub content_type: &'static str,
    pub charset: bool,
    /// The complete length, for `Content-Range`.
    pub len: u64,
}

impl PartHead {
    fn push(&self, out: &mut Vec<u8>, first: u64, last: u64) {
        out.extend_from_slice(b"\r\n--");
        out.extend_from_slice(boundary().as_bytes());
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(self.content_type.as_bytes());
        if self.charset {
            out.extend_from_slice(b"; charset=utf-8");
        }
        out.extend_from_slice(b"\r\nContent-Range: ");
        let len = self.len;
        push_content_range(out, ContentRange::Bytes { first, last, len });
        out.extend_from_slice(b"\r\n\r\n");
    }
}

fn push_close_delimiter(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(boundary().as_bytes());
    out.extend_from_slice(b"--\r\n");
}

/// The validators and size of a file, from fstat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    pub ino: u64,
    pub len: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
}

impl FileMeta {
    /// The validators of this version, as the response heads write them.
    pub fn validators(&self) -> Validators {
        Validators {
            etag: Etag::new(self.len, self.mtime),
            last_modified: imf_fixdate(self.mtime.max(0) as u64),
        }
    }
}

/// A version's `ETag` (`--etag mtime`'s) and `Last-Modified`, formatted:
/// made once when the file cache takes the version in, not per response,
/// as h2o's file cache does.
#[derive(Clone, Copy)]
pub struct Validators {
    pub etag: Etag,
    pub last_modified: [u8; 29],
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
    /// Just opened for this request: keeping it for a body costs an fd.
    Open(File),
    /// From the file cache: a small file's bytes.
    Memory(Arc<[u8]>),
    /// From the file cache: a large file's fd, already charged.
    Shared(Arc<OpenFile>),
    /// The file compressed by holdline, from the compression cache: the
    /// representation is these bytes (see [`super::compress`]).
    Compressed(Arc<[u8]>),
}

impl FileSource {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match self {
            FileSource::Open(file) => file.read_exact_at(buf, offset),
            FileSource::Shared(open) => open.file().read_exact_at(buf, offset),
            FileSource::Memory(bytes) | FileSource::Compressed(bytes) => {
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
    /// Its type is worth compressing on the fly (mime-db's flag).
    pub compressible: bool,
}

impl FileRoute {
    /// The selected representation's length: the file's, or that of the
    /// bytes compressed from it.
    pub fn representation_len(&self) -> u64 {
        match &self.source {
            FileSource::Compressed(bytes) => bytes.len() as u64,
            _ => self.meta.len,
        }
    }
}

/// What decides how a body leaves.
pub(super) struct BodySink<'a> {
    pub small_file_bytes: u64,
    pub is_head: bool,
    /// Charges a newly opened file's fd; `None` when the fd budget has no
    /// room for one more.
    pub open_files: Option<&'a OpenFiles>,
    /// A body may be sent with sendfile: false for a connection that will
    /// be closed after one write (no slot: see
    /// [`ServerView::closing`](super::ServerView::closing)).
    pub sendfile: bool,
}

impl BodySink<'_> {
    /// Bodies of at most this many bytes go in the output buffer with the
    /// head (one write); larger ones with sendfile from a shared fd, or
    /// (compressed) written from the shared bytes.
    fn in_memory(&self, count: u64, source: &FileSource) -> bool {
        count <= self.small_file_bytes || matches!(source, FileSource::Memory(_))
    }

    /// What a body sent after the head is sent from: the cached fd, the
    /// file just opened (now charged to the budget), or compressed bytes.
    fn shared_source(&self, source: FileSource) -> Result<BodySource, Status> {
        if !self.sendfile {
            return Err(Status::ServiceUnavailable);
        }
        match source {
            FileSource::Shared(open) => Ok(BodySource::File(open)),
            FileSource::Open(file) => match self.open_files {
                Some(open_files) => Ok(BodySource::File(open_files.adopt(file))),
                None => Err(Status::ServiceUnavailable),
            },
            // A cached small file goes with the head (`in_memory`); were
            // one sent after it, its shared bytes would serve as well.
            FileSource::Compressed(bytes) | FileSource::Memory(bytes) => {
                Ok(BodySource::Bytes(bytes))
            }
        }
    }

    /// The head, then `count` bytes of the file from `offset`.
    pub fn single_part(
        &self,
        out: &mut Vec<u8>,
        rh: &mut ResponseHead<'_>,
        source: FileSource,
        offset: u64,
        count: u64,
    ) -> Result<(Status, Option<FileBody>), Status> {
        rh.content_length = count;
        if self.is_head || count == 0 {
            encode_head(out, rh);
            return Ok((rh.status, None));
        }
        if !self.in_memory(count, &source) {
            let source = self.shared_source(source)?;
            encode_head(out, rh);
            let body = FileBody {
                source,
                offset,
                remaining: count,
                parts: None,
            };
            return Ok((rh.status, Some(body)));
        }
        let head_start = out.len();
        encode_head(out, rh);
        // Bytes in memory are appended (not zeroed first, then copied).
        if let FileSource::Memory(bytes) | FileSource::Compressed(bytes) = &source
            && let Some(range) = bytes.get(offset as usize..(offset + count) as usize)
        {
            out.extend_from_slice(range);
            return Ok((rh.status, None));
        }
        let body_start = out.len();
        out.resize(body_start + count as usize, 0);
        if let Err(e) = source.read_at(&mut out[body_start..], offset) {
            out.truncate(head_start);
            return Err(super::disk::read_failed(&e));
        }
        super::disk::read();
        Ok((rh.status, None))
    }

    /// 206 multipart/byteranges (RFC 9110 §14.6). Small in all (at most
    /// `--small-file-bytes` of data) it is built in the output buffer;
    /// otherwise streamed part by part (see [`FileBody::next_part`]).
    pub fn multipart(
        &self,
        out: &mut Vec<u8>,
        rh: &mut ResponseHead<'_>,
        source: FileSource,
        ranges: Ranges,
        part_head: PartHead,
    ) -> Result<(Status, Option<FileBody>), Status> {
        let parts = ranges.as_slice();
        let data: u64 = parts.iter().map(|(a, b)| b - a + 1).sum();
        // The length of what frames the data, measured by encoding it
        // past the end of `out` (no scratch buffer, no allocation once
        // `out` has grown to fit a response).
        let frame_start = out.len();
        for &(first, last) in parts {
            part_head.push(out, first, last);
        }
        push_close_delimiter(out);
        let framing = (out.len() - frame_start) as u64;
        out.truncate(frame_start);

        rh.status = Status::PartialContent;
        rh.content_type = Some(multipart_type());
        rh.charset_utf8 = false;
        rh.content_length = framing + data;
        let head_start = out.len();
        encode_head(out, rh);
        if self.is_head {
            return Ok((Status::PartialContent, None));
        }
        if !self.in_memory(data, &source) {
            let source = match self.shared_source(source) {
                Ok(source) => source,
                Err(status) => {
                    out.truncate(head_start);
                    return Err(status);
                }
            };
            let (first, last) = parts[0];
            let before = out.len();
            part_head.push(out, first, last);
            let first_part = (out.len() - before) as u64 + (last - first + 1);
            let body = FileBody {
                source,
                offset: first,
                remaining: last - first + 1,
                parts: Some(Box::new(Parts {
                    ranges,
                    current: 0,
                    head: part_head,
                    after_first: framing + data - first_part,
                })),
            };
            return Ok((Status::PartialContent, Some(body)));
        }
        for &(first, last) in parts {
            part_head.push(out, first, last);
            let start = out.len();
            out.resize(start + (last - first + 1) as usize, 0);
            if let Err(e) = source.read_at(&mut out[start..], first) {
                out.truncate(head_start);
                return Err(super::disk::read_failed(&e));
            }
        }
        push_close_delimiter(out);
        Ok((Status::PartialContent, None))
    }
}
