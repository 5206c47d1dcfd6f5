//! Path rules (`--rule`): headers on every response of a path (200, 206,
//! 304, 404 and its error page), redirects with placeholders that cannot
//! inject a header, rewrites that stay beneath ROOT, denies, and a
//! site's own rules.

mod common;

use common::*;
use std::net::TcpStream;

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

fn site() -> Site {
    let site = Site::new();
    site.dir.write("www/assets/app.css", "body{}\n");
    site.dir.write("www/assets/deep/logo.svg", "<svg/>\n");
    site.dir.write("www/about.html", "<h1>about</h1>\n");
    site.dir.write("www/manual/index.html", "manual\n");
    site.dir.write("www/manual/guide.txt", "guide\n");
    site.dir.write("www/manual/part/index.html", "part\n");
    site.dir.write("www/404.html", "<p>none</p>\n");
    site.dir.write("www/.git/config", "[core]\n");
    site.dir.write("www/private/key.txt", "k\n");
    site
}

const RULES: &[&str] = &[
    "/assets/** header Cache-Control: public, max-age=31536000, immutable",
    "*.html header Cache-Control: no-cache",
    "/assets/** remove-header X-Frame-Options",
    "/assets/deep/** header X-Deep: yes",
    "/old/** redirect 301 /new/{rest}",
    "/moved redirect 308 https://example.test{path}",
    "/temp redirect 302 /elsewhere?from=temp",
    "/about rewrite /about.html",
    "/docs/** rewrite /manual/{rest}",
    "/.git/** deny 404",
    "/private/** deny 403",
];

fn start(extra: &[&str]) -> (Site, Server) {
    let site = site();
    let mut args = vec![
        "--cache-control",
        "max-age=60",
        "--header",
        "X-Frame-Options: DENY",
        "--error-page",
        "404=/404.html",
    ];
    for rule in RULES {
        args.extend(["--rule", rule]);
    }
    args.extend_from_slice(extra);
    let server = Server::start(&site.root(), &args);
    (site, server)
}

fn ask(s: &mut TcpStream, target: &str, headers: &str) -> Response {
    exchange(s, &get_with(target, headers))
}

#[test]
fn header_rules_apply_to_every_response_of_their_paths() {
    let (_site, server) = start(&[]);
    let mut s = server.connect();
    let immutable = Some("public, max-age=31536000, immutable");
    let r = ask(&mut s, "/assets/app.css", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Cache-Control"), immutable, "{}", r.head);
    assert_eq!(r.head.matches("Cache-Control").count(), 1, "{}", r.head);
    assert_eq!(r.header("X-Frame-Options"), None);
    // 304 and 206 carry them too.
    let etag = r.header("ETag").unwrap().to_string();
    let r = ask(
        &mut s,
        "/assets/app.css",
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!((r.status, r.header("Cache-Control")), (304, immutable));
    let r = ask(&mut s, "/assets/app.css", "Range: bytes=0-3\r\n");
    assert_eq!((r.status, r.header("Cache-Control")), (206, immutable));
    assert_eq!(r.body, b"body");
    // A 404 beneath the path, with its error page: the same headers.
    let r = ask(&mut s, "/assets/missing.css", "");
    assert_eq!(r.status, 404);
    assert_eq!(r.body_text(), "<p>none</p>\n");
    assert_eq!(r.header("Cache-Control"), immutable, "{}", r.head);
    assert_eq!(r.header("X-Frame-Options"), None);
    // Rules add up, in order.
    let r = ask(&mut s, "/assets/deep/logo.svg", "");
    assert_eq!(r.header("X-Deep"), Some("yes"));
    assert_eq!(r.header("Cache-Control"), immutable);
    // *.html anywhere; and paths no rule names keep the options.
    let r = ask(&mut s, "/about.html", "");
    assert_eq!(r.header("Cache-Control"), Some("no-cache"));
    assert_eq!(r.header("X-Frame-Options"), Some("DENY"));
    let r = ask(&mut s, "/hello.txt", "");
    assert_eq!(r.header("Cache-Control"), Some("max-age=60"));
    assert_eq!(r.header("X-Frame-Options"), Some("DENY"));
    // The path is matched decoded and normalized.
    let r = ask(&mut s, "/%61ssets//x/../app.css", "");
    assert_eq!((r.status, r.header("Cache-Control")), (200, immutable));
}

#[test]
fn redirects_fill_their_placeholders_escaped_and_keep_the_query() {
    let (_site, server) = start(&[]);
    let mut s = server.connect();
    let r = ask(&mut s, "/old/a/b.html?x=1", "");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("Location"), Some("/new/a/b.html?x=1"));
    // A rule's own query replaces the request's.
    let r = ask(&mut s, "/temp?y=2", "");
    assert_eq!(
        (r.status, r.header("Location")),
        (302, Some("/elsewhere?from=temp"))
    );
    let r = ask(&mut s, "/moved", "");
    assert_eq!(r.status, 308);
    assert_eq!(r.header("Location"), Some("https://example.test/moved"));
    // Decoded CR LF and friends come out encoded: no header injection,
    // no open redirect through `//`.
    let r = ask(&mut s, "/old/%0d%0aSet-Cookie:%20a=b", "");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("Set-Cookie"), None, "{}", r.head);
    assert_eq!(r.header("Location"), Some("/new/%0D%0ASet-Cookie:%20a=b"));
    let r = ask(&mut s, "/old//evil.test/", "");
    assert_eq!(r.header("Location"), Some("/new/evil.test/"));
    // The connection is still good after them all.
    assert_eq!(ask(&mut s, "/hello.txt", "").status, 200);
}

#[test]
fn rewrites_serve_another_path_beneath_root_and_denies_refuse() {
    let (_site, server) = start(&[]);
    let mut s = server.connect();
    let r = ask(&mut s, "/about", "");
    assert_eq!(
        (r.status, r.body_text().as_str()),
        (200, "<h1>about</h1>\n")
    );
    // The rewritten file's own rules apply too (*.html) only if they name
    // the path asked for: /about is not *.html.
    assert_eq!(r.header("Cache-Control"), Some("max-age=60"));
    let r = ask(&mut s, "/docs/guide.txt", "");
    assert_eq!((r.status, r.body_text().as_str()), (200, "guide\n"));
    // A rewrite to a directory: the slash goes on the path asked for.
    let r = ask(&mut s, "/docs/part?q=1", "");
    assert_eq!(
        (r.status, r.header("Location")),
        (301, Some("/docs/part/?q=1"))
    );
    let r = ask(&mut s, "/docs/part/", "");
    assert_eq!((r.status, r.body_text().as_str()), (200, "part\n"));
    // `/docs/**` is what is beneath /docs/, not /docs itself.
    assert_eq!(ask(&mut s, "/docs", "").status, 404);
    let r = ask(&mut s, "/docs/", "");
    assert_eq!((r.status, r.body_text().as_str()), (200, "manual\n"));
    // {rest} cannot climb: the path is normalized before it matches, and
    // what climbs above ROOT never decodes.
    for target in [
        "/docs/../../secret.txt",
        "/docs/%2e%2e/%2e%2e/secret.txt",
        "/docs/..%2f..%2fsecret.txt",
    ] {
        let r = ask(&mut s, target, "");
        assert_ne!(r.status, 200, "{target}");
        assert!(!r.body_text().contains("SECRET"), "{target}");
    }
    let r = ask(&mut s, "/.git/config", "");
    assert_eq!((r.status, r.body_text().as_str()), (404, "<p>none</p>\n"));
    let r = ask(&mut s, "/private/key.txt", "");
    assert_eq!(r.status, 403);
    // Denied whatever the spelling.
    assert_eq!(ask(&mut s, "/x/../private/./key.txt", "").status, 403);
    assert_eq!(ask(&mut s, "/%70rivate/key.txt", "").status, 403);
}

#[test]
fn a_site_has_its_own_rules() {
    let site = site();
    let dir = TempDir::new("rules-sites");
    let config = dir.path().join("holdline.toml");
    std::fs::write(
        &config,
        "rule = [\"/hello.txt header X-Top: 1\"]\n\
         [[site]]\n\
         host = [\"a.test\"]\n\
         rule = [\"/hello.txt deny 403\"]\n\
         [[site]]\n\
         host = [\"b.test\"]\n",
    )
    .unwrap();
    let server = Server::start(&site.root(), &["--config", config.to_str().unwrap()]);
    let mut s = server.connect();
    let host = |name: &str| format!("GET /hello.txt HTTP/1.1\r\nHost: {name}\r\n\r\n");
    let r = exchange(&mut s, &host("other.test"));
    assert_eq!((r.status, r.header("X-Top")), (200, Some("1")));
    let r = exchange(&mut s, &host("a.test"));
    assert_eq!((r.status, r.header("X-Top")), (403, None));
    // b sets no rule: it inherits the top level's.
    let r = exchange(&mut s, &host("b.test"));
    assert_eq!((r.status, r.header("X-Top")), (200, Some("1")));
}

#[test]
fn bad_rules_stop_the_start_with_what_was_expected() {
    let site = site();
    let err = Server::try_start(&site.root(), &["--rule", "/a redirect 303 /b"])
        .err()
        .expect("a 303 rule starts");
    assert!(err.contains("redirect"), "{err}");
}

#[test]
fn access_rules_refuse_by_client_address_v4_v6_and_trusted_proxies() {
    let site = site();
    let server = Server::start(
        &site.root(),
        &[
            "--listen",
            "[::1]:0",
            "--rule",
            "/private/** allow-from 127.0.0.1 ::1/128",
            "--rule",
            "/** deny-from 127.0.0.66 10.9.0.0/16",
            "--trusted-proxy",
            "127.0.0.5",
        ],
    );
    let v6: std::net::SocketAddr = server
        .log_text()
        .split("http://[::1]:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .map(|port| format!("[::1]:{port}").parse().unwrap())
        .expect("the [::1] listener in the log");
    let status = |s: &mut TcpStream, target: &str, headers: &str| ask(s, target, headers).status;
    // Allowed: 127.0.0.1 and ::1; another loopback source is not.
    let mut ok4 = connect_from(ip("127.0.0.1"), server.addr);
    assert_eq!(status(&mut ok4, "/private/key.txt", ""), 200);
    let mut ok6 = connect_from(ip("::1"), v6);
    assert_eq!(status(&mut ok6, "/private/key.txt", ""), 200);
    let mut other = connect_from(ip("127.0.0.2"), server.addr);
    assert_eq!(status(&mut other, "/private/key.txt", ""), 403);
    // ... whatever the spelling of the path, and only there.
    assert_eq!(status(&mut other, "/x/../%70rivate/key.txt", ""), 403);
    assert_eq!(status(&mut other, "/hello.txt", ""), 200);
    // deny-from, everywhere.
    let mut denied = connect_from(ip("127.0.0.66"), server.addr);
    assert_eq!(status(&mut denied, "/hello.txt", ""), 403);
    // X-Forwarded-For is believed from the trusted proxy only.
    let mut stranger = connect_from(ip("127.0.0.2"), server.addr);
    let spoof = "X-Forwarded-For: 127.0.0.1\r\n";
    assert_eq!(status(&mut stranger, "/private/key.txt", spoof), 403);
    let mut proxy = connect_from(ip("127.0.0.5"), server.addr);
    assert_eq!(status(&mut proxy, "/private/key.txt", spoof), 200);
    assert_eq!(status(&mut proxy, "/private/key.txt", ""), 403);
    // The rightmost address the proxy did not write itself counts.
    let chain = "X-Forwarded-For: 127.0.0.1, 10.9.1.2\r\n";
    assert_eq!(status(&mut proxy, "/hello.txt", chain), 403);
    let chain = "X-Forwarded-For: 10.9.1.2, 127.0.0.1\r\n";
    assert_eq!(status(&mut proxy, "/private/key.txt", chain), 200);
}
