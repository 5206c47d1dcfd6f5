//! Static files like a CDN origin: validators, conditional requests,
//! ranges, precompressed variants, listings, symlinks, caching headers.

mod common;

use common::*;
use std::io::Write;

fn site_with_data() -> (Site, Vec<u8>) {
    let site = Site::new();
    let data: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
    site.dir.write("www/alpha.txt", &data);
    (site, data)
}

#[test]
fn validators_and_304() {
    let (site, _) = site_with_data();
    // The small-file cache off: the ETag must change the moment the file does.
    let server = Server::start(
        &site.root(),
        &[
            "--cache-control",
            "public, max-age=60",
            "--file-cache-valid",
            "0",
        ],
    );
    let mut s = server.connect();
    let r = exchange(&mut s, &get_with("/alpha.txt", ""));
    let etag = r.header("ETag").unwrap().to_string();
    let lm = r.header("Last-Modified").unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    assert_eq!(r.header("Cache-Control"), Some("public, max-age=60"));
    assert_eq!(r.header("Accept-Ranges"), Some("bytes"));

    let r = exchange(
        &mut s,
        &get_with("/alpha.txt", &format!("If-None-Match: \"x\", {etag}\r\n")),
    );
    assert_eq!(
        r.head,
        "HTTP/1.1 304 Not Modified\r\nServer: holdline\r\nDate: *\r\nLast-Modified: *\r\nETag: *\r\n\
         Vary: Accept-Encoding\r\nCache-Control: public, max-age=60\r\nX-Content-Type-Options: nosniff\r\n\
         Connection: keep-alive\r\nKeep-Alive: timeout=5, max=98\r\n\r\n"
    );
    assert!(r.body.is_empty());
    assert_eq!(
        exchange(&mut s, &get_with("/alpha.txt", "If-None-Match: *\r\n")).status,
        304
    );
    assert_eq!(
        exchange(
            &mut s,
            &get_with("/alpha.txt", &format!("If-None-Match: W/{etag}\r\n"))
        )
        .status,
        304
    );
    let head = format!("HEAD /alpha.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n");
    assert_eq!(exchange(&mut s, &head).status, 304);
    assert_eq!(
        exchange(
            &mut s,
            &get_with("/alpha.txt", &format!("If-Modified-Since: {lm}\r\n"))
        )
        .status,
        304
    );
    let old = "Sat, 01 Jan 2000 00:00:00 GMT";
    assert_eq!(
        exchange(
            &mut s,
            &get_with("/alpha.txt", &format!("If-Modified-Since: {old}\r\n"))
        )
        .status,
        200
    );
    // If-Modified-Since is ignored when If-None-Match is present.
    let both = format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {lm}\r\n");
    assert_eq!(exchange(&mut s, &get_with("/alpha.txt", &both)).status, 200);
    assert_eq!(
        exchange(&mut s, &get_with("/alpha.txt", "If-Match: \"other\"\r\n")).status,
        412
    );
    assert_eq!(
        exchange(
            &mut s,
            &get_with("/alpha.txt", &format!("If-Match: {etag}\r\n"))
        )
        .status,
        200
    );
    assert_eq!(
        exchange(
            &mut s,
            &get_with("/alpha.txt", &format!("If-Unmodified-Since: {old}\r\n"))
        )
        .status,
        412
    );
    // Changing the file changes the ETag.
    site.dir.rewrite("www/alpha.txt", "changed");
    let r = exchange(
        &mut s,
        &get_with("/alpha.txt", &format!("If-None-Match: {etag}\r\n")),
    );
    assert_eq!(r.status, 200);
    assert_ne!(r.header("ETag").unwrap(), etag);
}

#[test]
fn single_ranges() {
    let (site, data) = site_with_data();
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let cases = [
        ("bytes=0-99", 0, 99),
        ("bytes=900-", 900, 999),
        ("bytes=-10", 990, 999),
        ("bytes=995-5000", 995, 999),
    ];
    for (range, first, last) in cases {
        let r = exchange(
            &mut s,
            &get_with("/alpha.txt", &format!("Range: {range}\r\n")),
        );
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(
            r.header("Content-Range"),
            Some(format!("bytes {first}-{last}/1000").as_str())
        );
        assert_eq!(
            r.header("Content-Length"),
            Some((last - first + 1).to_string().as_str())
        );
        assert_eq!(r.body, &data[first..=last]);
    }
    let r = exchange(&mut s, &get_with("/alpha.txt", "Range: bytes=1000-\r\n"));
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Content-Range"), Some("bytes */1000"));
    // Syntax it does not understand: the whole file.
    assert_eq!(
        exchange(&mut s, &get_with("/alpha.txt", "Range: lines=1-2\r\n")).status,
        200
    );
}

#[test]
fn ranges_of_a_large_file_go_out_with_sendfile_from_the_offset() {
    let site = Site::new();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 253) as u8).collect();
    site.dir.write("www/big.bin", &data);
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let r = exchange(
        &mut s,
        &get_with("/big.bin", "Range: bytes=100000-2499999\r\n"),
    );
    assert_eq!(r.status, 206);
    assert!(r.body == data[100_000..2_500_000], "body differs");
    assert_eq!(exchange(&mut s, &get_with("/alpha.txt", "")).status, 404);
}

#[test]
fn multipart_byteranges() {
    let (site, data) = site_with_data();
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let r = exchange(
        &mut s,
        &get_with("/alpha.txt", "Range: bytes=200-299,0-99,50-149\r\n"),
    );
    assert_eq!(r.status, 206);
    let ct = r.header("Content-Type").unwrap();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .expect(ct);
    let body = r.body_text();
    let parts: Vec<&str> = body.split(&format!("--{boundary}")).collect();
    // "", part (0-149, coalesced), part (200-299), "--\r\n"
    assert_eq!(parts.len(), 4, "{body}");
    assert_eq!(parts[3], "--\r\n");
    let expect = |part: &str, first: usize, last: usize| {
        let (head, content) = part.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains("Content-Type: text/plain; charset=utf-8"),
            "{head}"
        );
        assert!(
            head.contains(&format!("Content-Range: bytes {first}-{last}/1000")),
            "{head}"
        );
        assert_eq!(
            content.strip_suffix("\r\n").unwrap().as_bytes(),
            &data[first..=last]
        );
    };
    expect(parts[1], 0, 149);
    expect(parts[2], 200, 299);
    // More than 16 ranges: ignored, the whole file.
    let many: Vec<String> = (0..17)
        .map(|i| format!("{}-{}", i * 20, i * 20 + 5))
        .collect();
    let r = exchange(
        &mut s,
        &get_with(
            "/alpha.txt",
            &format!("Range: bytes={}\r\n", many.join(",")),
        ),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn if_range() {
    let (site, data) = site_with_data();
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let r = exchange(&mut s, &get_with("/alpha.txt", ""));
    let (etag, lm) = (
        r.header("ETag").unwrap().to_string(),
        r.header("Last-Modified").unwrap().to_string(),
    );
    let r = exchange(
        &mut s,
        &get_with(
            "/alpha.txt",
            &format!("Range: bytes=0-9\r\nIf-Range: {etag}\r\n"),
        ),
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &data[..10]));
    let r = exchange(
        &mut s,
        &get_with("/alpha.txt", "Range: bytes=0-9\r\nIf-Range: \"stale\"\r\n"),
    );
    assert_eq!((r.status, r.body.len()), (200, 1000));
    let r = exchange(
        &mut s,
        &get_with(
            "/alpha.txt",
            &format!("Range: bytes=0-9\r\nIf-Range: {lm}\r\n"),
        ),
    );
    assert_eq!(r.status, 206);
    let r = exchange(
        &mut s,
        &get_with(
            "/alpha.txt",
            "Range: bytes=0-9\r\nIf-Range: Sat, 01 Jan 2000 00:00:00 GMT\r\n",
        ),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn precompressed_variants() {
    let site = Site::new();
    site.dir.write("www/app.js", "console.log('plain');\n");
    site.dir.write("www/app.js.br", "BROTLI");
    site.dir.write("www/app.js.gz", "GZIP!!!");
    site.dir.write("www/only.css", "body{}\n");
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let plain = exchange(&mut s, &get_with("/app.js", ""));
    let br = exchange(
        &mut s,
        &get_with("/app.js", "Accept-Encoding: gzip, deflate, br\r\n"),
    );
    let gz = exchange(
        &mut s,
        &get_with("/app.js", "Accept-Encoding: gzip;q=0.8, br;q=0\r\n"),
    );
    let none = exchange(
        &mut s,
        &get_with("/app.js", "Accept-Encoding: gzip;q=0, br;q=0\r\n"),
    );
    assert_eq!(br.header("Content-Encoding"), Some("br"));
    assert_eq!(br.body, b"BROTLI");
    assert_eq!(gz.header("Content-Encoding"), Some("gzip"));
    assert_eq!(gz.body, b"GZIP!!!");
    assert_eq!(none.header("Content-Encoding"), None);
    assert_eq!(none.body, plain.body);
    for r in [&plain, &br, &gz, &none] {
        assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
        assert_eq!(
            r.header("Content-Type"),
            Some("text/javascript; charset=utf-8")
        );
    }
    assert_ne!(
        br.header("ETag"),
        plain.header("ETag"),
        "each variant has its own ETag"
    );
    assert_ne!(br.header("ETag"), gz.header("ETag"));
    // A file without variants still says Vary (caches must key on it).
    let css = exchange(&mut s, &get_with("/only.css", "Accept-Encoding: br\r\n"));
    assert_eq!(
        (css.header("Content-Encoding"), css.header("Vary")),
        (None, Some("Accept-Encoding"))
    );
    // Without variants and without on-the-fly compression, nothing varies.
    let off = Server::start(&site.root(), &["--no-precompressed", "--no-compress"]);
    let mut s = off.connect();
    let r = exchange(&mut s, &get_with("/app.js", "Accept-Encoding: br\r\n"));
    assert_eq!(
        (r.header("Content-Encoding"), r.header("Vary")),
        (None, None)
    );
}

#[test]
fn listing_when_asked() {
    let site = Site::new();
    site.dir.write("www/docs/a <b>.txt", "x");
    site.dir.write("www/docs/sub/z.txt", "y");
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    assert_eq!(exchange(&mut s, &get_with("/docs/", "")).status, 404);
    let server = Server::start(&site.root(), &["--listing"]);
    let mut s = server.connect();
    let r = exchange(&mut s, &get_with("/docs/", ""));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    let html = r.body_text();
    assert!(
        html.contains("<a href=\"a%20%3Cb%3E.txt\">a &lt;b&gt;.txt</a>"),
        "{html}"
    );
    assert!(html.contains("<a href=\"sub/\">sub/</a>"), "{html}");
    // A directory with an index still serves it.
    assert_eq!(exchange(&mut s, &get_with("/sub/", "")).body, b"sub\n");
}

/// A listing as JSON (by its query or an Accept that prefers it), and
/// sorted by size or time, either way.
#[test]
fn listings_in_json_and_sorted() {
    let site = Site::new();
    site.dir.write("www/docs/big.txt", "x".repeat(300));
    site.dir.write("www/docs/mid \"q\".txt", "x".repeat(20));
    site.dir.write("www/docs/a.txt", "x");
    site.dir.write("www/docs/sub/z.txt", "y");
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    let file = std::fs::File::options()
        .write(true)
        .open(site.root().join("docs/big.txt"))
        .unwrap();
    file.set_modified(old).unwrap();
    let server = Server::start(&site.root(), &["--listing"]);
    let mut s = server.connect();
    let names = |json: &serde_json::Value| -> Vec<String> {
        json["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    let r = exchange(&mut s, &get_with("/docs/?format=json", ""));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.header("Vary"), Some("Accept"));
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["path"], "/docs/");
    assert_eq!(json["truncated"], false);
    assert_eq!(names(&json), ["a.txt", "big.txt", "mid \"q\".txt", "sub"]);
    let big = &json["entries"][1];
    assert_eq!(
        (big["type"].as_str(), big["size"].as_u64()),
        (Some("file"), Some(300))
    );
    assert_eq!(big["modified"].as_i64(), Some(1_000_000));
    assert_eq!(json["entries"][3]["type"], "directory");
    // By Accept; a browser's Accept (which names HTML too) gets HTML.
    let r = exchange(
        &mut s,
        &get_with(
            "/docs/?sort=size&order=desc",
            "Accept: application/json\r\n",
        ),
    );
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    // Directories count as size 0.
    assert_eq!(names(&json), ["big.txt", "mid \"q\".txt", "a.txt", "sub"]);
    let r = exchange(
        &mut s,
        &get_with(
            "/docs/?sort=time",
            "Accept: text/html,application/json;q=0.9\r\n",
        ),
    );
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    let html = r.body_text();
    // The oldest first; the column heads sort (and reverse the current).
    assert!(
        html.find("big.txt").unwrap() < html.find("a.txt").unwrap(),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"?sort=time&amp;order=desc\">Modified</a>"),
        "{html}"
    );
    assert!(html.contains("<a href=\"?sort=size\">Size</a>"), "{html}");
}

#[test]
fn symlinks_outside_root_only_with_follow_symlinks() {
    let site = Site::new();
    std::os::unix::fs::symlink("../secret.txt", site.root().join("out")).unwrap();
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    assert_eq!(exchange(&mut s, &get_with("/out", "")).status, 404);
    let server = Server::start(&site.root(), &["--follow-symlinks"]);
    let mut s = server.connect();
    assert_eq!(
        exchange(&mut s, &get_with("/out", "")).body,
        b"TOP SECRET\n"
    );
    // Even so, the request path itself cannot climb out.
    assert_eq!(
        exchange(&mut s, &get_with("/../secret.txt", "")).status,
        400
    );
}

#[test]
fn nosniff_on_every_response() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    for request in [
        get_with("/a.txt", ""),
        get_with("/nope", ""),
        get_with("/sub", ""),
        "BREW / HTTP/1.1\r\nHost: x\r\n\r\n".into(),
    ] {
        let mut s = server.connect();
        let r = exchange(&mut s, &request);
        assert_eq!(
            r.header("X-Content-Type-Options"),
            Some("nosniff"),
            "{request}"
        );
    }
    let mut s = server.connect();
    s.write_all(b"GET / HTTP/9.9\r\n\r\n").unwrap();
    assert_eq!(
        read_response(&mut s).header("X-Content-Type-Options"),
        Some("nosniff")
    );
}

#[test]
fn curl_etag_compare_and_multirange() {
    let Some(curl) = peer_program("curl") else {
        return;
    };
    let (site, data) = site_with_data();
    let server = Server::start(&site.root(), &[]);
    let etag_file = site.dir.path().join("etag");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&curl)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let url = server.url("/alpha.txt");
    let etag_path = etag_file.to_str().unwrap();
    run(&["-s", "-o", "/dev/null", "--etag-save", etag_path, &url]);
    let code = run(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--etag-compare",
        etag_path,
        &url,
    ]);
    assert_eq!(code, b"304");
    let body = run(&["-s", "-r", "0-99,200-299", "-D", "-", &url]);
    let text = String::from_utf8_lossy(&body);
    assert!(text.starts_with("HTTP/1.1 206 Partial Content"), "{text}");
    assert!(text.contains("Content-Type: multipart/byteranges; boundary="));
    assert!(text.contains("Content-Range: bytes 0-99/1000"));
    assert!(text.contains("Content-Range: bytes 200-299/1000"));
    assert!(text.contains(std::str::from_utf8(&data[200..300]).unwrap()));
}

#[test]
fn cached_small_file_is_rechecked_after_file_cache_valid() {
    let (site, data) = site_with_data();
    // One connection polls for the two windows: more than the default
    // 100 requests.
    let args = ["--file-cache-valid", "0.5", "--max-requests", "0"];
    let server = Server::start(&site.root(), &args);
    let mut s = server.connect();
    let first = exchange(&mut s, &get_with("/alpha.txt", ""));
    assert_eq!(first.body, data);
    site.dir.rewrite("www/alpha.txt", "changed\n");
    let changed_at = std::time::Instant::now();
    // Within the window the cached copy may be served; after it, never.
    let window = std::time::Duration::from_millis(600);
    assert!(wait_until(2 * window, || {
        let r = exchange(&mut s, &get_with("/alpha.txt", ""));
        if r.body == b"changed\n" {
            assert_ne!(r.header("ETag"), first.header("ETag"));
            assert_eq!(r.header("Content-Length"), Some("8"));
            return true;
        }
        assert_eq!(r.body, data, "either the old file whole, or the new one");
        assert_eq!(r.header("ETag"), first.header("ETag"));
        assert!(changed_at.elapsed() < window, "stale past the window");
        false
    }));
    // A removed file is noticed too, within the window.
    std::fs::remove_file(site.root().join("alpha.txt")).unwrap();
    let removed_at = std::time::Instant::now();
    assert!(wait_until(2 * window, || {
        let gone = exchange(&mut s, &get_with("/alpha.txt", "")).status == 404;
        assert!(
            gone || removed_at.elapsed() < window,
            "served past the window"
        );
        gone
    }));
}

/// Two instances behind one load balancer, serving copies of the same
/// file with its mtime kept (rsync -t, a container image): the same ETag
/// and Last-Modified from both, so a revalidation or a resumed download
/// that lands on the other instance gets 304 or 206, not the whole file
/// again. (With the inode in the tag, as before, it did not.)
#[test]
fn copies_on_two_instances_share_their_validators() {
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let (one, two) = (Site::new(), Site::new());
    let when = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    for site in [&one, &two] {
        site.dir.write("www/app.bin", &data);
        let file = std::fs::File::options()
            .write(true)
            .open(site.root().join("app.bin"))
            .unwrap();
        file.set_modified(when).unwrap();
    }
    let (a, b) = (
        Server::start(&one.root(), &[]),
        Server::start(&two.root(), &[]),
    );
    let first = exchange(&mut a.connect(), &get("/app.bin"));
    let etag = first.header("ETag").unwrap().to_string();
    // nginx's formula: hex mtime, hex size.
    assert_eq!(etag, format!("\"{:x}-{:x}\"", 1_700_000_000u64, data.len()));
    let other = exchange(&mut b.connect(), &get("/app.bin"));
    assert_eq!(other.header("ETag"), Some(etag.as_str()));
    assert_eq!(other.header("Last-Modified"), first.header("Last-Modified"));
    for server in [&a, &b] {
        let revalidate = get_with("/app.bin", &format!("If-None-Match: {etag}\r\n"));
        assert_eq!(exchange(&mut server.connect(), &revalidate).status, 304);
        let resume = get_with(
            "/app.bin",
            &format!("Range: bytes=40000-\r\nIf-Range: {etag}\r\n"),
        );
        let r = exchange(&mut server.connect(), &resume);
        assert_eq!(r.status, 206);
        assert_eq!(r.body, &data[40_000..]);
    }
}

/// `--etag hash`: the tag is the content's (SHA-256, 128 bits, hex), so
/// two versions with the same size and mtime (a Nix store sets every
/// mtime to 1) get two tags, and copies whose mtimes differ get one. A
/// version's first responses carry no ETag (its hash is made off the
/// reactor); once it is in, 304s and If-Range work with it, and the
/// gzip representation made here carries it with its coding.
#[test]
fn etag_hash_follows_the_content_not_the_mtime() {
    let epoch_one = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1);
    let set_mtime = |site: &Site, name: &str, when: std::time::SystemTime| {
        let file = std::fs::File::options()
            .write(true)
            .open(site.root().join(name))
            .unwrap();
        file.set_modified(when).unwrap();
    };
    let text = "let x = 1;\n".repeat(400);
    let (one, two) = (Site::new(), Site::new());
    one.dir.write("www/app.js", &text);
    two.dir.write("www/app.js", &text);
    set_mtime(&one, "app.js", epoch_one);
    set_mtime(&two, "app.js", std::time::SystemTime::now());
    // The same size and mtime as app.js, other bytes: a new build.
    one.dir.write("www/next.js", text.replace('1', "2"));
    set_mtime(&one, "next.js", epoch_one);
    let (a, b) = (
        Server::start(&one.root(), &["--etag", "hash"]),
        Server::start(&two.root(), &["--etag", "hash"]),
    );
    let tag_of = |server: &Server, path: &str, headers: &str| {
        let mut tag = None;
        let found = wait_until(std::time::Duration::from_secs(5), || {
            let r = exchange(&mut server.connect(), &get_with(path, headers));
            assert_eq!(r.status, 200, "{}", r.head);
            tag = r.header("ETag").map(str::to_string);
            tag.is_some()
        });
        assert!(found, "no ETag for {path}");
        tag.unwrap()
    };
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let tag = tag_of(&a, "/app.js", "");
    assert_eq!(tag, format!("\"{hex}\""));
    // The copy with another mtime: the same tag.
    assert_eq!(tag_of(&b, "/app.js", ""), tag);
    // The other build of the same size and mtime: another tag.
    assert_ne!(tag_of(&a, "/next.js", ""), tag);
    // Revalidation and resumption with it, on either instance.
    for server in [&a, &b] {
        let revalidate = get_with("/app.js", &format!("If-None-Match: {tag}\r\n"));
        assert_eq!(exchange(&mut server.connect(), &revalidate).status, 304);
        let resume = get_with(
            "/app.js",
            &format!("Range: bytes=4000-\r\nIf-Range: {tag}\r\n"),
        );
        let r = exchange(&mut server.connect(), &resume);
        assert_eq!(r.status, 206, "{}", r.head);
        assert_eq!(r.body, &text.as_bytes()[4000..]);
    }
    // The gzip representation compressed here: the tag with its coding.
    let gzip = tag_of(&a, "/app.js", "Accept-Encoding: gzip\r\n");
    let gzip_tag = format!("\"{hex}-gzip\"");
    assert!(gzip == gzip_tag || gzip == tag, "{gzip}");
    assert!(wait_until(std::time::Duration::from_secs(5), || {
        let r = exchange(
            &mut a.connect(),
            &get_with("/app.js", "Accept-Encoding: gzip\r\n"),
        );
        r.header("ETag") == Some(gzip_tag.as_str())
    }));
}
