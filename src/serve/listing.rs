//! `--listing`: an HTML index of a directory that has no index.html.
//! Names are HTML-escaped in text and percent-encoded in links; sizes and
//! modification times are shown; entries are sorted by name, directories
//! marked with a trailing slash. Rare, so it may allocate.
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

/// Renders the listing of the open directory `dir`, reached as `target`.
pub fn render(out: &mut Vec<u8>, dir: &File, target: &str, dotfiles: bool) {
    let path = target.split('?').next().unwrap_or("/");
    // Read the directory through its fd, not its path: the fd is the one
    // openat2 verified to lie beneath ROOT.
    let proc_path = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let mut names = std::fs::read_dir(&proc_path)
        .into_iter()
        .flatten()
        .flatten();
    let mut entries: Vec<(String, bool, u64, i64)> = Vec::new();
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
        entries.push((name, meta.is_dir(), meta.len(), mtime));
    }
    entries.sort();
    let title = escape(&percent_encoding::percent_decode_str(path).decode_utf8_lossy());
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body><h1>Index of {title}</h1>\n<table>\n<tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n"
    );
    if path != "/" {
        let _ = writeln!(
            out,
            "<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>"
        );
    }
    let start = out.len();
    let mut shown = 0;
    for (name, is_dir, size, mtime) in &entries {
        if out.len() - start >= MAX_LISTING_BYTES {
            break;
        }
        shown += 1;
        let slash = if *is_dir { "/" } else { "" };
        let href = utf8_percent_encode(name, SEGMENT);
        let size = if *is_dir {
            "-".to_string()
        } else {
            size.to_string()
        };
        let modified = imf_fixdate((*mtime).max(0) as u64);
        let _ = writeln!(
            out,
            "<tr><td><a href=\"{href}{slash}\">{}{slash}</a></td><td>{size}</td><td>{}</td></tr>",
            escape(name),
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
        render(&mut out, &file, "/files/?x", false);
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
        render(&mut out, &file, "/huge/", false);
        let html = String::from_utf8(out).unwrap();
        assert!(html.len() <= MAX_RENDERED_BYTES, "{}", html.len());
        assert!(html.len() >= MAX_LISTING_BYTES);
        assert!(html.contains("entries shown; this listing stops at 1000 entries"));
        assert!(html.ends_with("</body></html>\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
