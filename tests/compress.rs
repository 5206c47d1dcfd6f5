//! On-the-fly compression against the real server: what is compressed,
//! what a client receives (decoded and compared with the file), the
//! encoded representation's validators, ranges and 304s, a changed file,
//! the cache's bound, curl as a real client, and the pause the first
//! request for a large file causes to other clients.

mod common;

use common::*;
use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long a test waits for the compressor (a debug build's brotli is
/// slow: a 40 KiB file takes about a second).
const COMPRESSED_WITHIN: Duration = Duration::from_secs(60);

/// JavaScript-like text of `len` bytes, different for each `seed`, that
/// compresses about 3:1 (a random token on every line), like a minified
/// script.
fn script(len: usize, seed: u64) -> Vec<u8> {
    let mut out = String::new();
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    while out.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let (a, b) = (x >> 52, x >> 20 & 0xff);
        out.push_str(&format!(
            "function h{a}(e,o){{if(o.n>{b})return r(e.t,'{x:016x}');return null}}\n"
        ));
    }
    out.truncate(len);
    out.into_bytes()
}

/// A server for these tests: no cap on requests per connection, since
/// they ask again and again while the compressor works.
fn start(site: &Site, args: &[&str]) -> Server {
    let mut all = vec!["--max-requests", "0"];
    all.extend_from_slice(args);
    Server::start(&site.root(), &all)
}

/// The head without the line that counts down requests.
fn head_without_keep_alive(r: &Response) -> String {
    r.head
        .lines()
        .filter(|l| !l.starts_with("Keep-Alive"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Equal bytes, without printing them all when they are not.
#[track_caller]
fn assert_same(got: &[u8], want: &[u8]) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{} bytes, expected {} (first difference at {at:?})",
            got.len(),
            want.len()
        );
    }
}

/// The body as the client means it: decoded per `Content-Encoding`.
fn decoded(r: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    match r.header("Content-Encoding") {
        None => out.extend_from_slice(&r.body),
        Some("gzip") => {
            flate2::read::GzDecoder::new(&r.body[..])
                .read_to_end(&mut out)
                .expect("valid gzip");
        }
        Some("br") => {
            brotli::Decompressor::new(&r.body[..], 4096)
                .read_to_end(&mut out)
                .expect("valid brotli");
        }
        Some(other) => panic!("unexpected coding {other}"),
    }
    out
}

/// Asks for `path` with `accept` until the answer is in a coding (the
/// compressor has finished); returns it.
fn compressed(s: &mut TcpStream, path: &str, accept: &str) -> Response {
    let mut last = None;
    let done = wait_until(COMPRESSED_WITHIN, || {
        let r = exchange(
            s,
            &get_with(path, &format!("Accept-Encoding: {accept}\r\n")),
        );
        let coded = r.header("Content-Encoding").is_some();
        last = Some(r);
        coded
    });
    let r = last.unwrap();
    assert!(done, "{path} was never compressed: {}", r.head);
    r
}

#[test]
fn a_client_gets_br_or_gzip_that_decodes_to_the_file() {
    let site = Site::new();
    // Above --small-file-bytes even compressed (written from the cache's
    // bytes after the head), and a small one (in the head's write).
    let big = script(120_000, 1);
    let small = script(4_000, 2);
    site.dir.write("www/app.js", &big);
    site.dir.write("www/small.css", &small);
    let server = start(&site, &["--status-path", "/status"]);
    let mut s = server.connect();

    // The first request is answered at once, uncompressed, and says that
    // the response varies.
    let first = exchange(
        &mut s,
        &get_with("/app.js", "Accept-Encoding: gzip, br\r\n"),
    );
    assert_eq!(first.header("Content-Encoding"), None);
    assert_eq!(first.header("Vary"), Some("Accept-Encoding"));
    assert_same(&first.body, &big);
    let identity_etag = first.header("ETag").unwrap().to_string();

    let br = compressed(&mut s, "/app.js", "gzip, deflate, br");
    assert_eq!(
        br.head,
        format!(
            "HTTP/1.1 200 OK\r\nServer: holdline\r\nDate: *\r\nContent-Type: text/javascript; charset=utf-8\r\n\
             Content-Length: {}\r\nContent-Encoding: br\r\nLast-Modified: *\r\nETag: *\r\nAccept-Ranges: bytes\r\n\
             Vary: Accept-Encoding\r\nX-Content-Type-Options: nosniff\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n",
            br.body.len(),
        )
    );
    assert_same(&decoded(&br), &big);
    assert!(
        br.body.len() < big.len() / 2 && br.body.len() > 16_384,
        "{} bytes",
        br.body.len()
    );
    // RFC 9110 §8.8.3: a distinct strong tag, the file's with the coding.
    let br_etag = br.header("ETag").unwrap();
    assert_eq!(
        br_etag,
        format!("{}-br\"", identity_etag.trim_end_matches('"'))
    );
    assert_eq!(br.header("Last-Modified"), first.header("Last-Modified"));

    // gzip for a client that refuses br (q=0).
    let gz = compressed(&mut s, "/app.js", "br;q=0, gzip;q=0.5");
    assert_eq!(gz.header("Content-Encoding"), Some("gzip"));
    assert_same(&decoded(&gz), &big);
    let gz_etag = gz.header("ETag").unwrap();
    assert!(gz_etag.ends_with("-gzip\"") && gz_etag != br_etag);

    // Without Accept-Encoding, or refusing both: identity, still Vary.
    for accept in [
        "",
        "Accept-Encoding: identity\r\n",
        "Accept-Encoding: *;q=0\r\n",
    ] {
        let r = exchange(&mut s, &get_with("/app.js", accept));
        assert_eq!(
            (r.header("Content-Encoding"), r.header("Vary")),
            (None, Some("Accept-Encoding")),
            "{accept:?}"
        );
        assert_eq!(r.header("ETag"), Some(identity_etag.as_str()));
        assert_same(&r.body, &big);
    }

    let css = compressed(&mut s, "/small.css", "br");
    assert_eq!(css.header("Content-Type"), Some("text/css; charset=utf-8"));
    assert_same(&decoded(&css), &small);

    // The counters: two requests sent files to the compressor (app.js in
    // both codings at once, small.css in br), three files came back, and
    // three responses were served from the cache.
    let status = exchange(&mut s, &get("/status?format=json"));
    let v: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(
        v["compression"],
        serde_json::json!({"hit": 3, "queued": 2, "skipped": 0, "compressed": 3}),
        "{v}"
    );
    let metrics = exchange(&mut s, &get("/status?format=prometheus")).body_text();
    assert!(metrics.contains("holdline_compression_total{outcome=\"hit\"} 3\n"));
}

#[test]
fn head_304_and_ranges_are_those_of_the_encoded_representation() {
    let site = Site::new();
    let big = script(60_000, 3);
    site.dir.write("www/app.js", &big);
    let server = start(&site, &[]);
    let mut s = server.connect();
    let br = compressed(&mut s, "/app.js", "br");
    let etag = br.header("ETag").unwrap().to_string();
    let identity_etag = format!("{}\"", etag.trim_end_matches("-br\""));
    let len = br.body.len();
    let ask = |s: &mut TcpStream, method: &str, extra: &str| {
        let req = format!(
            "{method} /app.js HTTP/1.1\r\nHost: test\r\nAccept-Encoding: br\r\n{extra}\r\n"
        );
        exchange(s, &req)
    };

    // HEAD: the same head, no body.
    let head = ask(&mut s, "HEAD", "");
    assert_eq!(head_without_keep_alive(&head), head_without_keep_alive(&br));
    assert!(head.body.is_empty());

    // 304 for the encoded tag, with the tag and Vary.
    let r = ask(&mut s, "GET", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(r.status, 304);
    assert_eq!(r.header("ETag"), Some(etag.as_str()));
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    assert_eq!(r.header("Content-Encoding"), None, "a 304 has no body");
    assert!(r.body.is_empty());
    // The identity's tag does not validate the br representation.
    let r = ask(
        &mut s,
        "GET",
        &format!("If-None-Match: {identity_etag}\r\n"),
    );
    assert_eq!((r.status, r.body.len()), (200, len));

    // A range is of the encoded bytes.
    let r = ask(&mut s, "GET", "Range: bytes=100-199\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes 100-199/{len}").as_str())
    );
    assert_eq!(r.header("Content-Encoding"), Some("br"));
    assert_same(&r.body, &br.body[100..200]);
    let r = ask(&mut s, "GET", "Range: bytes=-10\r\n");
    assert_same(&r.body, &br.body[len - 10..]);
    // If-Range: the encoded tag holds; the identity's does not (full 200).
    let r = ask(
        &mut s,
        "GET",
        &format!("Range: bytes=0-9\r\nIf-Range: {etag}\r\n"),
    );
    assert_eq!(r.status, 206);
    assert_same(&r.body, &br.body[..10]);
    let r = ask(
        &mut s,
        "GET",
        &format!("Range: bytes=0-9\r\nIf-Range: {identity_etag}\r\n"),
    );
    assert_eq!((r.status, r.body.len()), (200, len));
    assert_same(&decoded(&r), &big);
    // Several ranges of an encoded representation: the whole of it, 200
    // (a multipart body cannot carry Content-Encoding for its parts).
    let r = ask(&mut s, "GET", "Range: bytes=0-9,100-199\r\n");
    assert_eq!((r.status, r.body.len()), (200, len));
    assert_eq!(r.header("Content-Encoding"), Some("br"));
    assert_eq!(r.header("Content-Range"), None);
    assert_same(&decoded(&r), &big);
    // Beyond the encoded length: 416 with that length.
    let r = ask(&mut s, "GET", &format!("Range: bytes={len}-\r\n"));
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes */{len}").as_str())
    );
}

#[test]
fn a_changed_file_is_compressed_again_and_never_served_stale_past_the_cache_validity() {
    let site = Site::new();
    let old = script(30_000, 4);
    let new = script(31_000, 5);
    site.dir.write("www/app.js", &old);
    let server = start(&site, &["--file-cache-valid", "0.3"]);
    let mut s = server.connect();
    assert_same(&decoded(&compressed(&mut s, "/app.js", "br")), &old);

    site.dir.write("www/app.js", &new);
    let changed = Instant::now();
    let valid = Duration::from_millis(300) + TICK;
    let mut compressed_new = false;
    let done = wait_until(COMPRESSED_WITHIN, || {
        // Read before the request is sent: an answer made before the
        // deadline may arrive after it.
        let asked_at = changed.elapsed();
        let r = exchange(&mut s, &get_with("/app.js", "Accept-Encoding: br\r\n"));
        let body = decoded(&r);
        if asked_at > valid {
            assert!(body == new, "stale past --file-cache-valid: {}", r.head);
        } else {
            assert!(body == old || body == new);
        }
        compressed_new = body == new && r.header("Content-Encoding") == Some("br");
        compressed_new
    });
    assert!(done, "the new version was never compressed");
}

#[test]
fn binary_large_and_precompressed_files_are_not_compressed() {
    let site = Site::new();
    let text = script(20_000, 6);
    site.dir.write("www/app.js", &text);
    // A PNG that would compress well: its type says no.
    site.dir.write("www/image.png", vec![0u8; 20_000]);
    site.dir.write("www/large.js", script(30_000, 7));
    site.dir.write("www/pre.js", &text);
    site.dir.write("www/pre.js.gz", b"PRECOMPRESSED");
    let server = start(&site, &["--compress-max-bytes", "25000"]);
    let mut s = server.connect();
    let all = "Accept-Encoding: br, gzip\r\n";
    // Ask for each first, then once a file has been compressed (so the
    // compressor had its chance at all of them), again.
    for path in ["/image.png", "/large.js", "/pre.js"] {
        exchange(&mut s, &get_with(path, all));
    }
    compressed(&mut s, "/app.js", "br, gzip");
    let png = exchange(&mut s, &get_with("/image.png", all));
    assert_eq!(
        (png.header("Content-Encoding"), png.header("Vary")),
        (None, None)
    );
    assert_same(&png.body, &[0u8; 20_000]);
    let large = exchange(&mut s, &get_with("/large.js", all));
    assert_eq!(large.header("Content-Encoding"), None);
    assert_eq!(large.body.len(), 30_000);
    // The operator's variant wins.
    let pre = exchange(&mut s, &get_with("/pre.js", all));
    assert_eq!(pre.header("Content-Encoding"), Some("gzip"));
    assert_eq!(pre.body, b"PRECOMPRESSED");

    let off = start(&site, &["--no-compress"]);
    let mut s = off.connect();
    for _ in 0..3 {
        let r = exchange(&mut s, &get_with("/app.js", all));
        assert_eq!(r.header("Content-Encoding"), None);
        assert_same(&r.body, &text);
    }
}

#[test]
fn the_cache_holds_at_most_its_bytes() {
    let site = Site::new();
    let (a, b) = (script(30_000, 8), script(30_000, 9));
    site.dir.write("www/a.js", &a);
    site.dir.write("www/b.js", &b);
    // Their compressed lengths, from a server with room for both.
    let sizes = start(&site, &[]);
    let mut s = sizes.connect();
    let a_len = compressed(&mut s, "/a.js", "br").body.len();
    let b_len = compressed(&mut s, "/b.js", "br").body.len();
    // Room for either (its bytes, its key twice, the overhead), not both.
    let entry = |len: usize| len + 2 * "/a.js\0\0\x01".len() + 128;
    let room = entry(a_len).max(entry(b_len)) + a_len.min(b_len) / 2;
    let server = start(&site, &["--compress-cache-bytes", &room.to_string()]);
    let mut s = server.connect();
    assert_same(&decoded(&compressed(&mut s, "/a.js", "br")), &a);
    assert_same(&decoded(&compressed(&mut s, "/b.js", "br")), &b);
    // b took a's place: a is sent as it is, and compressed again.
    let r = exchange(&mut s, &get_with("/a.js", "Accept-Encoding: br\r\n"));
    assert_eq!(r.header("Content-Encoding"), None);
    assert_same(&r.body, &a);
    assert_same(&decoded(&compressed(&mut s, "/a.js", "br")), &a);
    let r = exchange(&mut s, &get_with("/b.js", "Accept-Encoding: br\r\n"));
    assert_eq!(r.header("Content-Encoding"), None);
}

#[test]
fn curl_compressed_gets_the_file() {
    let Some(curl) = peer_program("curl") else {
        return;
    };
    let site = Site::new();
    let text = script(50_000, 10);
    site.dir.write("www/app.js", &text);
    let server = start(&site, &[]);
    let mut s = server.connect();
    // curl asks for what its libcurl decodes (deflate, gzip, br, zstd).
    compressed(&mut s, "/app.js", "deflate, gzip, br, zstd");
    let saved = site.dir.path().join("got.js");
    let out = std::process::Command::new(curl)
        .args(["-sS", "--compressed", "-D", "-", "-o"])
        .arg(&saved)
        .arg(server.url("/app.js"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.contains("content-encoding: br\r\n"), "{head}");
    assert_same(&std::fs::read(saved).unwrap(), &text);
}

/// The first request for a file at the size limit starts its compression;
/// a small request on another connection meanwhile must not wait for it.
/// `cargo test --release --test compress pause -- --nocapture` prints the
/// figures README quotes.
#[test]
fn compressing_a_file_at_the_limit_does_not_pause_other_clients() {
    let site = Site::new();
    let limit = 1024 * 1024;
    site.dir.write("www/big.js", script(limit, 11));
    site.dir.write("www/small.txt", "small\n");
    let server = start(&site, &[]);
    let mut other = server.connect();
    let mut worst_before = Duration::ZERO;
    for _ in 0..200 {
        let t = Instant::now();
        assert_eq!(exchange(&mut other, &get("/small.txt")).status, 200);
        worst_before = worst_before.max(t.elapsed());
    }
    let mut first = server.connect();
    let started = Instant::now();
    let r = exchange(&mut first, &get_with("/big.js", "Accept-Encoding: br\r\n"));
    let first_took = started.elapsed();
    assert_eq!((r.header("Content-Encoding"), r.body.len()), (None, limit));
    // While brotli works on the file (1.5 s in a release build), time
    // small requests on the other connection.
    let mut took = Vec::new();
    while started.elapsed() < Duration::from_secs(1) {
        let t = Instant::now();
        assert_eq!(exchange(&mut other, &get("/small.txt")).status, 200);
        took.push(t.elapsed());
    }
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
    let worst = took[took.len() - 1];
    eprintln!(
        "first request for a {limit}-byte file: answered in {first_took:?}; \
         {} small requests on another connection meanwhile: median {:?}, \
         p99 {:?}, p99.9 {:?}, worst {worst:?} (before: worst {worst_before:?} of 200)",
        took.len(),
        at(0.5),
        at(0.99),
        at(0.999),
    );
    // Compressing on the reactor would stall it for the whole file (1.5 s
    // in a release build, longer in a debug one): the loop above would
    // then get one answer, after the stall. Served alongside, it gets
    // hundreds. (No latency bound here: speed is for benchmarks; the
    // figures printed above are README's, from a release build.)
    assert!(
        took.len() >= 20,
        "only {} small requests answered in the second the file was being compressed (worst wait {worst:?})",
        took.len()
    );
}
