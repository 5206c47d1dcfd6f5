//! Static files: what is served, from where, and never from outside ROOT.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::*;

#[test]
fn directory_serves_its_index_html() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let r = exchange(&mut s, &get("/"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.body, b"<h1>home</h1>\n");
    let r = exchange(&mut s, &get("/sub/"));
    assert_eq!(r.body, b"sub\n");
}

#[test]
fn directory_without_slash_redirects() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let r = exchange(&mut s, &get("/sub?x=1"));
    assert_eq!(
        r.head,
        "HTTP/1.1 301 Moved Permanently\r\nServer: holdline\r\nDate: *\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 22\r\nLocation: /sub/?x=1\r\nX-Content-Type-Options: nosniff\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5, max=99\r\n\r\n"
    );
    assert_eq!(r.body, b"301 Moved Permanently\n");
}

#[test]
fn missing_is_404_and_directory_without_index_is_404() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let r = exchange(&mut s, &get("/nope.txt"));
    assert_eq!(
        r.head,
        "HTTP/1.1 404 Not Found\r\nServer: holdline\r\nDate: *\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 14\r\nX-Content-Type-Options: nosniff\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5, max=99\r\n\r\n"
    );
    assert_eq!(r.body, b"404 Not Found\n");
    assert_eq!(exchange(&mut s, &get("/empty/")).status, 404);
    assert_eq!(exchange(&mut s, &get("/hello.txt/")).status, 404);
    // The connection survives errors that keep framing intact.
    assert_eq!(exchange(&mut s, &get("/hello.txt")).status, 200);
}

#[test]
fn not_a_regular_file_is_403() {
    let site = Site::new();
    let fifo = site.root().join("pipe");
    let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0);
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let r = exchange(&mut s, &get("/pipe"));
    assert_eq!(r.status, 403);
    assert_eq!(r.body, b"403 Forbidden\n");
}

/// A file the server may not read is 403. Root reads any file, so as root
/// (as CI runs) the server is started as `nobody` instead of skipping.
#[test]
fn unreadable_file_is_403() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let site = Site::new();
    let path = site.root().join("hello.txt");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_holdline"));
    cmd.args(["--listen", "127.0.0.1:0"]).arg(site.root());
    if unsafe { libc::geteuid() } == 0 {
        // nobody: uid and gid 65534 on Debian and most distributions.
        cmd.uid(65534).gid(65534);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0);
    }
    let server = Server::spawn(cmd).expect("the server starts as nobody");
    let mut s = server.connect();
    // Another file in the same directory is readable: the 403 is the
    // permission, not a server that cannot serve at all.
    assert_eq!(exchange(&mut s, &get("/a.txt")).status, 200);
    assert_eq!(exchange(&mut s, &get("/hello.txt")).status, 403);
}

#[test]
fn traversal_never_reaches_outside_root() {
    let site = Site::new();
    std::os::unix::fs::symlink("../secret.txt", site.root().join("link-out")).unwrap();
    std::os::unix::fs::symlink("hello.txt", site.root().join("link-in")).unwrap();
    let server = Server::start(&site.root(), &[]);
    for target in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2fsecret.txt",
        "/sub/../../secret.txt",
        "/..%2fsecret.txt",
        "/secret.txt%00.html",
        "/link-out",
        "http://x/../secret.txt",
        "/./../secret.txt",
    ] {
        let mut s = server.connect();
        let r = exchange(&mut s, &get(target));
        assert!(r.status == 400 || r.status == 404, "{target}: {}", r.status);
        assert!(
            !r.body_text().contains("SECRET"),
            "{target} leaked the secret"
        );
    }
    let mut s = server.connect();
    let r = exchange(&mut s, &get("/link-in"));
    assert_eq!(r.body, b"hello\n", "a symlink inside ROOT is followed");
}

#[test]
fn head_has_the_same_head_and_no_body() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let g = exchange(&mut s, &get("/hello.txt"));
    let h = exchange(&mut s, "HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(h.head.replace("max=98", "max=99"), g.head);
    assert!(h.body.is_empty());
    // Nothing else follows the head: the next response starts right away.
    let r = exchange(&mut s, &get("/a.txt"));
    assert_eq!(r.body, b"a\n");
}

#[test]
fn methods_options_405_501() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let r = exchange(
        &mut s,
        "POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(
        r.head,
        "HTTP/1.1 405 Method Not Allowed\r\nServer: holdline\r\nDate: *\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 23\r\nAllow: GET, HEAD, OPTIONS\r\nX-Content-Type-Options: nosniff\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5, max=99\r\n\r\n"
    );
    let r = exchange(&mut s, "BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 501);
    assert_eq!(r.body, b"501 Not Implemented\n");
    let r = exchange(&mut s, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        r.head,
        "HTTP/1.1 204 No Content\r\nServer: holdline\r\nDate: *\r\nAllow: GET, HEAD, OPTIONS\r\n\
         X-Content-Type-Options: nosniff\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5, max=97\r\n\r\n"
    );
    assert_eq!(exchange(&mut s, &get("/a.txt")).body, b"a\n");
}

#[test]
fn large_file_goes_out_whole_with_sendfile() {
    let site = Site::new();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    site.dir.write("www/big.bin", &data);
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let r = exchange(&mut s, &get("/big.bin"));
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
    assert_eq!(r.header("Content-Length"), Some("3000000"));
    assert!(r.body == data, "body differs");
    // Keep-alive continues after a sendfile body.
    assert_eq!(exchange(&mut s, &get("/a.txt")).body, b"a\n");
}

#[test]
fn names_with_spaces_and_non_ascii() {
    let site = Site::new();
    site.dir.write("www/with space.txt", "space\n");
    site.dir.write("www/café/ünï.txt", "accents\n");
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    assert_eq!(exchange(&mut s, &get("/with%20space.txt")).body, b"space\n");
    assert_eq!(
        exchange(&mut s, &get("/caf%C3%A9/%C3%BCn%C3%AF.txt")).body,
        b"accents\n"
    );
}

#[test]
fn dotfiles_are_hidden_unless_asked() {
    let site = Site::new();
    site.dir.write("www/.env", "KEY=1\n");
    site.dir.write("www/.git/config", "[core]\n");
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    assert_eq!(exchange(&mut s, &get("/.env")).status, 404);
    assert_eq!(exchange(&mut s, &get("/.git/config")).status, 404);
    assert_eq!(exchange(&mut s, &get("/%2egit/config")).status, 404);
    let server = Server::start(&site.root(), &["--dotfiles"]);
    let mut s = server.connect();
    assert_eq!(exchange(&mut s, &get("/.env")).body, b"KEY=1\n");
}

#[test]
fn absolute_form_target_is_served() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    let r = exchange(
        &mut s,
        "GET http://example.com/hello.txt?q HTTP/1.1\r\nHost: example.com\r\n\r\n",
    );
    assert_eq!(r.body, b"hello\n");
}

#[test]
fn every_response_has_date_server_and_length() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut s = server.connect();
    for request in [
        get("/hello.txt"),
        get("/nope"),
        get("/sub"),
        "PUT / HTTP/1.1\r\nHost: x\r\n\r\n".into(),
    ] {
        let r = exchange(&mut s, &request);
        assert!(
            r.header("Date")
                .is_some_and(|d| d.ends_with(" GMT") && d.len() == 29)
        );
        assert_eq!(r.header("Server"), Some("holdline"));
        assert!(r.header("Content-Length").is_some(), "{request}");
    }
}

#[test]
fn extra_headers_are_on_every_response() {
    let site = Site::new();
    let server = Server::start(
        &site.root(),
        &[
            "--header",
            "Strict-Transport-Security: max-age=63072000",
            "--header",
            "Access-Control-Allow-Origin: *",
        ],
    );
    let mut s = server.connect();
    let ok = exchange(&mut s, &get("/hello.txt"));
    let missing = exchange(&mut s, &get("/nope"));
    let etag = ok.header("ETag").unwrap().to_string();
    let not_modified = exchange(
        &mut s,
        &format!("GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n"),
    );
    let redirect = exchange(&mut s, &get("/sub"));
    let mut bad = server.connect();
    let error = exchange(&mut bad, "GET / HTTP/1.1\r\n\r\n");
    for (what, r, status) in [
        ("200", &ok, 200),
        ("404", &missing, 404),
        ("304", &not_modified, 304),
        ("301", &redirect, 301),
        ("400", &error, 400),
    ] {
        assert_eq!(r.status, status, "{what}");
        assert_eq!(
            r.header("Strict-Transport-Security"),
            Some("max-age=63072000"),
            "{what}"
        );
        assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"), "{what}");
    }
    // Once each, in the order given, before the connection headers.
    assert!(
        ok.head.contains(
            "Strict-Transport-Security: max-age=63072000\r\nAccess-Control-Allow-Origin: *\r\nConnection: keep-alive\r\n"
        ),
        "{}",
        ok.head
    );
}

#[test]
fn a_framing_header_is_refused_at_start() {
    let site = Site::new();
    let err = Server::try_start(&site.root(), &["--header", "Content-Length: 0"])
        .err()
        .expect("refused");
    assert!(
        err.contains("'--header' must not set Content-Length"),
        "{err}"
    );
}

#[test]
fn fallback_serves_the_app_for_paths_that_name_no_file() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--fallback", "/index.html"]);
    let mut s = server.connect();
    // A deep link of a single-page app: the app, with 200.
    let r = exchange(&mut s, &get("/app/route/42?tab=1"));
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.body_text(), "<h1>home</h1>\n");
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    // Files that exist are served as they are; a dotfile stays hidden
    // behind the fallback, which never serves it.
    assert_eq!(exchange(&mut s, &get("/hello.txt")).body_text(), "hello\n");
    let r = exchange(&mut s, &get("/.env"));
    assert_eq!((r.status, r.body_text()), (200, "<h1>home</h1>\n".into()));
    // HEAD too; other methods keep their answers.
    let r = exchange(&mut s, "HEAD /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("14"));
    let r = exchange(
        &mut s,
        "POST /nope HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.status, 405);
    // Nothing outside ROOT through the fallback either.
    let r = exchange(&mut s, &get("/../secret.txt"));
    assert_ne!(r.body_text(), "TOP SECRET\n");
}

#[test]
fn error_pages_keep_the_status_and_serve_the_page() {
    let site = Site::new();
    site.dir.write("www/errors/404.html", "<h1>not here</h1>\n");
    let server = Server::start(
        &site.root(),
        &[
            "--error-page",
            "404=/errors/404.html",
            "--error-page",
            "405=/errors/missing.html",
        ],
    );
    let mut s = server.connect();
    let r = exchange(&mut s, &get("/nope"));
    assert_eq!(r.status, 404);
    assert_eq!(r.body_text(), "<h1>not here</h1>\n");
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    let r = exchange(&mut s, "HEAD /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((r.status, r.body.len()), (404, 0));
    assert_eq!(r.header("Content-Length"), Some("18"));
    // A page that cannot be found: the plain error body, same status and
    // headers.
    let r = exchange(&mut s, "DELETE /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    assert!(r.body_text().starts_with("405"), "{}", r.body_text());
    // A hidden dotfile is a 404 like any other.
    let r = exchange(&mut s, &get("/empty/.keep"));
    assert_eq!(r.status, 404);
    assert_eq!(r.body_text(), "<h1>not here</h1>\n");
}

/// Errors answered before a request could be parsed (a malformed head,
/// a head too large, one too slow) get their page too, in the same write
/// as the head, and the connection still closes after it.
#[test]
fn error_pages_cover_requests_that_could_not_be_parsed() {
    let site = Site::new();
    site.dir
        .write("www/errors/400.html", "<h1>bad request</h1>\n");
    site.dir.write("www/errors/431.html", "<h1>too big</h1>\n");
    site.dir.write("www/errors/408.html", "<h1>too slow</h1>\n");
    site.dir.write("www/errors/big.html", vec![b'x'; 40_000]);
    let server = Server::start(
        &site.root(),
        &[
            "--error-page",
            "400=/errors/400.html",
            "--error-page",
            "431=/errors/431.html",
            "--error-page",
            "408=/errors/408.html",
            "--error-page",
            "505=/errors/big.html",
            "--max-header-bytes",
            "1024",
            "--header-timeout",
            "0.5",
        ],
    );
    let cases: [(&[u8], u16, &str); 3] = [
        (
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            400,
            "<h1>bad request</h1>\n",
        ),
        (&[b'a'; 2000], 431, "<h1>too big</h1>\n"),
        (b"GET / HTTP/1.1\r\nHost", 408, "<h1>too slow</h1>\n"),
    ];
    for (request, status, page) in cases {
        let mut s = server.connect();
        let mut request = request.to_vec();
        if status == 431 {
            request = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &request].concat();
        }
        s.write_all(&request).unwrap();
        let r = read_response(&mut s);
        assert_eq!(r.status, status);
        assert_eq!(r.body_text(), page);
        assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("Connection"), Some("close"));
        assert_closes(&mut s, Duration::from_secs(5));
    }
    // A page past --small-file-bytes is not sent to a closing connection:
    // the plain text.
    let mut s = server.connect();
    s.write_all(b"GET / HTTP/2.0\r\n\r\n").unwrap();
    let r = read_response(&mut s);
    assert_eq!(r.status, 505);
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    assert!(r.body_text().starts_with("505"), "{}", r.body_text());
}

#[test]
fn fallback_and_error_page_paths_are_checked() {
    let site = Site::new();
    for args in [
        &["--fallback", "index.html"][..],
        &["--error-page", "404"],
        &["--error-page", "200=/ok.html"],
        &["--error-page", "404=relative.html"],
    ] {
        let err = Server::try_start(&site.root(), args).err();
        assert!(err.is_some_and(|e| e.contains("error:")), "{args:?}");
    }
}

/// `--clean-urls`: pages without `.html`, one URL each. A path that names
/// no file is its `.html`, before a directory of the same name; the
/// `.html` spellings and a file's trailing slash are redirected (308,
/// query kept) to it; a rewrite, a fallback and an error page are never
/// redirected; nothing outside ROOT is reached.
#[test]
fn clean_urls_serve_pages_without_html_and_redirect_the_other_spellings() {
    let site = Site::new();
    site.dir.write("www/about.html", "about\n");
    site.dir.write("www/blog.html", "blog\n");
    site.dir.write("www/blog/post.html", "post\n");
    site.dir.write("www/docs/index.html", "docs\n");
    site.dir.write("www/404.html", "gone\n");
    site.dir.write("secret.html", "TOP SECRET\n");
    // Off (the default): /about is no page.
    let plain = Server::start(&site.root(), &[]);
    assert_eq!(exchange(&mut plain.connect(), &get("/about")).status, 404);
    let server = Server::start(
        &site.root(),
        &[
            "--clean-urls",
            "--rule",
            "/old rewrite /about.html",
            "--error-page",
            "404=/404.html",
        ],
    );
    let mut s = server.connect();
    let page = |s: &mut TcpStream, path: &str| {
        let r = exchange(s, &get(path));
        (r.status, r.body_text())
    };
    let moved = |s: &mut TcpStream, path: &str| {
        let r = exchange(s, &get(path));
        assert_eq!(r.status, 308, "{path}: {}", r.head);
        r.header("Location").unwrap_or("").to_string()
    };
    let r = exchange(&mut s, &get("/about?x=1"));
    assert_eq!((r.status, r.body_text().as_str()), (200, "about\n"));
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    // Twice: the second from the file cache, the same.
    assert_eq!(page(&mut s, "/about"), (200, "about\n".into()));
    // blog.html before the directory blog/, whose pages are pages too.
    assert_eq!(page(&mut s, "/blog"), (200, "blog\n".into()));
    assert_eq!(page(&mut s, "/blog/post"), (200, "post\n".into()));
    // A directory with its index keeps its slash.
    assert_eq!(page(&mut s, "/docs/"), (200, "docs\n".into()));
    assert_eq!(exchange(&mut s, &get("/docs")).status, 301);
    // The other spellings, redirected, query kept.
    assert_eq!(moved(&mut s, "/about.html?x=1"), "/about?x=1");
    assert_eq!(moved(&mut s, "/about/"), "/about");
    assert_eq!(moved(&mut s, "/blog/"), "/blog");
    assert_eq!(moved(&mut s, "/blog/post.html"), "/blog/post");
    assert_eq!(moved(&mut s, "/docs/index.html"), "/docs/");
    assert_eq!(moved(&mut s, "/index.html"), "/");
    // Other files as they are; a name with no page is 404 (its error
    // page served, not redirected).
    assert_eq!(page(&mut s, "/hello.txt"), (200, "hello\n".into()));
    assert_eq!(page(&mut s, "/hello"), (404, "gone\n".into()));
    assert_eq!(page(&mut s, "/missing/"), (404, "gone\n".into()));
    // A rewrite to an .html path serves it.
    assert_eq!(page(&mut s, "/old"), (200, "about\n".into()));
    // Never above ROOT, however spelled.
    for path in ["/../secret", "/%2e%2e/secret", "/sub/../../secret"] {
        let r = exchange(&mut server.connect(), &get(path));
        assert!(!r.body_text().contains("SECRET"), "{path}: {}", r.head);
        assert!(r.status == 404 || r.status == 400, "{path}: {}", r.head);
    }
}
