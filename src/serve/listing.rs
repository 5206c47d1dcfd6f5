//! `--listing`: an index of a directory that has no index.html, as HTML
//! or, for `?format=json` or an `Accept` that prefers
//! `application/json`, as JSON. Names are HTML-escaped in text and
//! percent-encoded in links (JSON-escaped in JSON); sizes and
//! modification times are shown; entries are sorted by name, or by
//! `?sort=size` or `?sort=time` (`&order=desc` reverses; the HTML
//! column heads are those links), directories marked with a trailing
//! slash. Rare, so it may allocate.
//!
//! Bounded, because a listing is built whole in memory and a client may
//! ask for it and never read it: at most [`MAX_ENTRIES`] entries are read
//! (in directory order, then sorted) and the page stops growing past
//! [`MAX_LISTING_BYTES`], ending with a line that says how many entries
//! are not shown. A directory of a million files costs the same as one
//! of a thousand.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use crate::http::date::imf_fixdate;

/// Bytes that must be encoded in a path segment of a link.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'\'')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// The most directory entries one listing reads.
pub const MAX_ENTRIES: usize = 1000;

/// A listing stops adding rows once its HTML is this long; one row more
/// (at most about 2.5 KiB for a 255-byte name) and the end of the page
/// may follow.
pub const MAX_LISTING_BYTES: usize = 256 * 1024;

/// The most bytes [`render`] writes.
pub const MAX_RENDERED_BYTES: usize = MAX_LISTING_BYTES + 4096;

/// How a listing is asked for: its format and its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asked {
    pub json: bool,
    pub sort: Sort,
    pub descending: bool,
}

/// The key a listing is sorted by (then by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Name,
    Size,
    Time,
}

impl Asked {
    /// What `query` (without its `?`) and `accept` ask for: JSON for
    /// `format=json`, or an Accept naming `application/json` and not
    /// `text/html` (a browser's names both, and gets HTML).
    pub fn from(query: &str, accept: Option<&[u8]>) -> Asked {
        let value = |key: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        };
        let names = |media: &[u8]| {
            accept.is_some_and(|a| {
                a.windows(media.len())
                    .any(|w| w.eq_ignore_ascii_case(media))
            })
        };
        let json = match value("format") {
            Some(format) => format == "json",
            None => names(b"application/json") && !names(b"text/html"),
        };
        let sort = match value("sort") {
            Some("size") => Sort::Size,
            Some("time") => Sort::Time,
            _ => Sort::Name,
        };
        Asked {
            json,
            sort,
            descending: value("order") == Some("desc"),
        }
    }
}

/// One entry read: its name, whether it is a directory, its size and
/// modification time.
struct Entry {
    name: String,
    is_dir: bool,
    size: u64,
    mtime: i64,
}

impl Entry {
    /// A directory's size is its own metadata, not its contents': it is
    /// shown (and sorted) as none.
    fn shown_size(&self) -> u64 {
        if self.is_dir { 0 } else { self.size }
    }
}

/// Renders the listing of the open directory `dir`, reached as `target`,
/// as `asked`; returns its content type.
pub fn render(
    out: &mut Vec<u8>,
    dir: &File,
    target: &str,
    dotfiles: bool,
    asked: Asked,
) -> &'static str {
    let path = target.split('?').next().unwrap_or("/");
    // Read the directory through its fd, not its path: the fd is the one
    // openat2 verified to lie beneath ROOT.
    let proc_path = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let mut names = std::fs::read_dir(&proc_path)
        .into_iter()
        .flatten()
        .flatten();
    let mut entries: Vec<Entry> = Vec::new();
    let mut unread = false;
    for entry in names.by_ref() {
        if entries.len() == MAX_ENTRIES {
            unread = true;
            break;
        }
        let name = entry.file_name();
        let name = String::from_utf8_lossy(name.as_bytes()).into_owned();
        if name.starts_with('.') && !dotfiles {
            continue;
        }
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        let mtime = std::os::unix::fs::MetadataExt::mtime(&meta);
        entries.push(Entry {
            name,
            is_dir: meta.is_dir(),
            size: meta.len(),
            mtime,
        });
    }
    entries.sort_by(|a, b| {
        let key = match asked.sort {
            Sort::Name => std::cmp::Ordering::Equal,
            Sort::Size => a.shown_size().cmp(&b.shown_size()),
            Sort::Time => a.mtime.cmp(&b.mtime),
        };
        key.then_with(|| a.name.cmp(&b.name))
    });
    if asked.descending {
        entries.reverse();
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    if asked.json {
        render_json(out, &decoded, &entries, unread);
        return "application/json";
    }
    let title = escape(&decoded);
    let head = |key: &str, label: &str| {
        let flip = asked.sort_key() == key && !asked.descending;
        let order = if flip { "&amp;order=desc" } else { "" };
        format!("<th><a href=\"?sort={key}{order}\">{label}</a></th>")
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body><h1>Index of {title}</h1>\n<table>\n<tr>{}{}{}</tr>\n",
        head("name", "Name"),
        head("size", "Size"),
        head("time", "Modified"),
    );
    if path != "/" {
        let _ = writeln!(
            out,
            "<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>"
        );
    }
    let start = out.len();
    let mut shown = 0;
    for entry in &entries {
        if out.len() - start >= MAX_LISTING_BYTES {
            break;
        }
        shown += 1;
        let slash = if entry.is_dir { "/" } else { "" };
        let href = utf8_percent_encode(&entry.name, SEGMENT);
        let size = if entry.is_dir {
            "-".to_string()
        } else {
            entry.size.to_string()
        };
        let modified = imf_fixdate(entry.mtime.max(0) as u64);
        let _ = writeln!(
            out,
            "<tr><td><a href=\"{href}{slash}\">{}{slash}</a></td><td>{size}</td><td>{}</td></tr>",
            escape(&entry.name),
            String::from_utf8_lossy(&modified)
        );
    }
    out.extend_from_slice(b"</table>\n");
    if unread || shown < entries.len() {
        let _ = writeln!(
            out,
            "<p>{shown} entries shown; this listing stops at {MAX_ENTRIES} entries or {} KiB.</p>",
            MAX_LISTING_BYTES / 1024
        );
    }
    out.extend_from_slice(b"</body></html>\n");
    "text/html"
}

impl Asked {
    fn sort_key(&self) -> &'static str {
        match self.sort {
            Sort::Name => "name",
            Sort::Size => "size",
            Sort::Time => "time",
        }
    }
}

/// The listing as JSON: `{"path": ..., "entries": [{"name", "type",
/// "size", "modified" (Unix seconds)}], "truncated": bool}`, bounded as
/// the HTML is.
fn render_json(out: &mut Vec<u8>, path: &str, entries: &[Entry], unread: bool) {
    out.extend_from_slice(b"{\"path\":");
    json_string(out, path);
    out.extend_from_slice(b",\"entries\":[");
    let start = out.len();
    let mut shown = 0;
    for entry in entries {
        if out.len() - start >= MAX_LISTING_BYTES {
            break;
        }
        if shown > 0 {
            out.push(b',');
        }
        shown += 1;
        out.extend_from_slice(b"{\"name\":");
        json_string(out, &entry.name);
        let kind = if entry.is_dir { "directory" } else { "file" };
        let _ = write!(
            out,
            ",\"type\":\"{kind}\",\"size\":{},\"modified\":{}}}",
            entry.shown_size(),
            entry.mtime
        );
    }
    let truncated = unread || shown < entries.len();
    let _ = writeln!(out, "],\"truncated\":{truncated}}}");
}

/// `text` as a JSON string (RFC 8259 §7): quotes, backslashes and control
/// characters escaped.
fn json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_encodes_names() {
        let dir = std::env::temp_dir().join(format!("holdline-listing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub dir")).unwrap();
        std::fs::write(dir.join("<b>&x.txt"), "12345").unwrap();
        std::fs::write(dir.join(".hidden"), "").unwrap();
        std::fs::write(dir.join("é #1.txt"), "").unwrap();
        let file = File::open(&dir).unwrap();
        let mut out = Vec::new();
        render(&mut out, &file, "/files/?x", false, Asked::from("x", None));
        let html = String::from_utf8(out).unwrap();
        assert!(
            html.contains("<a href=\"%3Cb%3E%26x.txt\">&lt;b&gt;&amp;x.txt</a></td><td>5</td>"),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"sub%20dir/\">sub dir/</a></td><td>-</td>"),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"%C3%A9%20%231.txt\">é #1.txt</a>"),
            "{html}"
        );
        assert!(!html.contains("hidden"));
        assert!(html.contains("<title>Index of /files/</title>"));
        // Sorted by name.
        assert!(html.find("&lt;b&gt;").unwrap() < html.find("sub dir").unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_huge_directory_gives_a_bounded_page() {
        let dir = std::env::temp_dir().join(format!("holdline-huge-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Long names: the byte cap is reached before the entry cap.
        for i in 0..MAX_ENTRIES + 50 {
            let name = format!("{i:05}-{}", "&".repeat(200));
            std::fs::write(dir.join(name), "").unwrap();
        }
        let file = File::open(&dir).unwrap();
        let mut out = Vec::new();
        render(&mut out, &file, "/huge/", false, Asked::from("", None));
        let html = String::from_utf8(out).unwrap();
        assert!(html.len() <= MAX_RENDERED_BYTES, "{}", html.len());
        assert!(html.len() >= MAX_LISTING_BYTES);
        assert!(html.contains("entries shown; this listing stops at 1000 entries"));
        assert!(html.ends_with("</body></html>\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
