//! Sites (virtual hosts): the `[[site]]` blocks of the `--config` file,
//! picked by the request's host, each with its ROOT and its options;
//! `--unknown-host`; a reload that adds a site, or names a ROOT that
//! cannot be served.

mod common;

use common::*;
use std::net::TcpStream;
use std::time::Duration;

/// A default site and two others, each ROOT with its own `same.txt`.
struct Sites {
    dir: TempDir,
    config: std::path::PathBuf,
}

impl Sites {
    fn new(tag: &str, extra: &str) -> Sites {
        Sites::with(tag, extra, "", "")
    }

    /// With more keys for the top level, site a and site b.
    fn with(tag: &str, extra: &str, extra_a: &str, extra_b: &str) -> Sites {
        let dir = TempDir::new(tag);
        dir.write("secret.txt", "TOP SECRET\n");
        dir.write("default/same.txt", "default\n");
        dir.write("a/same.txt", "site a\n");
        dir.write("a/404.html", "<p>a has no such page</p>\n");
        dir.write("b/same.txt", "site b\n");
        dir.write("b/only-b.txt", "b only\n");
        let root = |name: &str| dir.path().join(name).display().to_string();
        let config = dir.path().join("holdline.toml");
        let text = format!(
            "root = \"{default}\"\n\
             header = [\"X-Site: default\"]\n\
             {extra}\n\
             [[site]]\n\
             host = [\"a.test\", \"www.a.test\"]\n\
             root = \"{a}\"\n\
             header = [\"X-Site: a\"]\n\
             error-page = [\"404=/404.html\"]\n\
             {extra_a}\n\
             \n\
             [[site]]\n\
             host = [\"*.b.test\"]\n\
             root = \"{b}\"\n\
             cache-control = \"public, max-age=60\"\n\
             {extra_b}\n",
            default = root("default"),
            a = root("a"),
            b = root("b"),
        );
        std::fs::write(&config, text).unwrap();
        Sites { dir, config }
    }

    fn start(&self, args: &[&str]) -> Server {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        Server::start(&self.dir.path().join("default"), &all)
    }
}

fn ask(stream: &mut TcpStream, target: &str, host: Option<&str>) -> Response {
    let host = host.map_or(String::new(), |h| format!("Host: {h}\r\n"));
    exchange(stream, &format!("GET {target} HTTP/1.1\r\n{host}\r\n"))
}

#[test]
fn the_host_picks_the_site_its_root_and_its_headers() {
    let sites = Sites::new("sites-pick", "");
    let server = sites.start(&[]);
    // One keep-alive connection across sites: the file cache keeps the
    // ROOTs apart (the same path names three files).
    let mut s = server.connect();
    for (host, body, site) in [
        ("a.test", "site a\n", "a"),
        ("default.test", "default\n", "default"),
        ("A.Test:8080", "site a\n", "a"),
        ("www.a.test.", "site a\n", "a"),
        ("img.b.test", "site b\n", "b"),
        ("x.y.b.test", "site b\n", "b"),
        ("b.test", "default\n", "default"),
        ("a.test", "site a\n", "a"),
    ] {
        let r = ask(&mut s, "/same.txt", Some(host));
        assert_eq!(r.status, 200, "{host}: {}", r.head);
        assert_eq!(r.body_text(), body, "{host}");
        let cache = r.header("Cache-Control");
        match site {
            "b" => {
                assert_eq!(cache, Some("public, max-age=60"), "{host}");
                // Not set by b: inherited from the top level.
                assert_eq!(r.header("X-Site"), Some("default"), "{host}");
            }
            _ => {
                assert_eq!(cache, None, "{host}");
                assert_eq!(r.header("X-Site"), Some(site), "{host}");
            }
        }
    }
    // An absolute-form target names the host, whatever the Host says.
    let r = ask(&mut s, "http://img.b.test/only-b.txt", Some("a.test"));
    assert_eq!((r.status, r.body_text().as_str()), (200, "b only\n"));
    // Each ROOT is confined: nothing of a sibling site, nothing above.
    for target in ["/only-b.txt", "/../b/only-b.txt", "/%2e%2e/secret.txt"] {
        let r = ask(&mut s, target, Some("a.test"));
        assert_ne!(r.status, 200, "{target}");
        assert!(!r.body_text().contains("b only") && !r.body_text().contains("SECRET"));
    }
    // A's error page is a's; its headers are on its errors and its 304s.
    let r = ask(&mut s, "/missing", Some("a.test"));
    assert_eq!(r.status, 404);
    assert_eq!(r.body_text(), "<p>a has no such page</p>\n");
    assert_eq!(r.header("X-Site"), Some("a"));
    let r = ask(&mut s, "/same.txt", Some("a.test"));
    let etag = r.header("ETag").unwrap().to_string();
    let r = exchange(
        &mut s,
        &format!("GET /same.txt HTTP/1.1\r\nHost: a.test\r\nIf-None-Match: {etag}\r\n\r\n"),
    );
    assert_eq!(r.status, 304);
    assert_eq!(r.header("X-Site"), Some("a"));
    // The default site's 404 is the plain one.
    let r = ask(&mut s, "/missing", Some("elsewhere.test"));
    assert_eq!((r.status, r.body_text().as_str()), (404, "404 Not Found\n"));

    // HTTP/1.0 without a Host: the default site. HTTP/1.1 without one:
    // 400 and the connection closes (RFC 9112 §3.2).
    let mut old = server.connect();
    let r = exchange(&mut old, "GET /same.txt HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.body_text().as_str()), (200, "default\n"));
    let mut bad = server.connect();
    let r = ask(&mut bad, "/same.txt", None);
    assert_eq!(r.status, 400);
    assert_closes(&mut bad, Duration::from_secs(5));
}

#[test]
fn unknown_hosts_get_what_unknown_host_says() {
    for (answer, status) in [("421", 421), ("404", 404)] {
        let sites = Sites::new("sites-unknown", &format!("unknown-host = \"{answer}\"\n"));
        let server = sites.start(&["--status-path", "/status"]);
        let mut s = server.connect();
        let r = ask(&mut s, "/same.txt", Some("nobody.test"));
        assert_eq!(r.status, status, "{}", r.head);
        assert_eq!(r.header("X-Site"), Some("default"));
        let r = exchange(
            &mut s,
            "GET /same.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        );
        assert_eq!(r.status, status);
        // The named sites still answer, and so does the status path,
        // whatever the host.
        assert_eq!(ask(&mut s, "/same.txt", Some("a.test")).status, 200);
        assert_eq!(ask(&mut s, "/status", Some("nobody.test")).status, 200);
    }
    // The default site may name its own hosts: then it is one site among
    // the others.
    let sites = Sites::new(
        "sites-named-default",
        "host = [\"main.test\"]\nunknown-host = \"421\"\n",
    );
    let server = sites.start(&[]);
    let mut s = server.connect();
    let r = ask(&mut s, "/same.txt", Some("main.test"));
    assert_eq!((r.status, r.body_text().as_str()), (200, "default\n"));
    assert_eq!(ask(&mut s, "/same.txt", Some("other.test")).status, 421);
}

fn sighup_done(server: &Server, count: usize) -> bool {
    wait_until(Duration::from_secs(5), || {
        server.log_text().matches("SIGHUP: ").count() >= count
    })
}

#[test]
fn a_reload_adds_a_site_and_refuses_a_root_it_cannot_serve() {
    let sites = Sites::new("sites-reload", "");
    let server = sites.start(&["--workers", "2"]);
    sites.dir.write("c/same.txt", "site c\n");
    let mut open = server.connect();
    assert_eq!(
        ask(&mut open, "/same.txt", Some("c.test")).body_text(),
        "default\n"
    );

    let text = std::fs::read_to_string(&sites.config).unwrap();
    let c = sites.dir.path().join("c");
    let added = format!(
        "{text}\n[[site]]\nhost = [\"c.test\"]\nroot = \"{}\"\n",
        c.display()
    );
    std::fs::write(&sites.config, &added).unwrap();
    server.signal(libc::SIGHUP);
    assert!(sighup_done(&server, 1), "{}", server.log_text());
    assert!(
        server.log_text().contains("changed the [[site]] blocks"),
        "{}",
        server.log_text()
    );
    // The open connection and new ones (both workers) see the new site.
    assert_eq!(
        ask(&mut open, "/same.txt", Some("c.test")).body_text(),
        "site c\n"
    );
    // Worker 0 logs the reload, then wakes worker 1, which takes it on
    // its next turn: a connection that lands there in between is answered
    // under the old sites. Wait for both (SO_REUSEPORT spreads new
    // connections by their ports) before asserting.
    let every_worker = || {
        (0..8).all(|_| {
            let mut s = server.connect();
            ask(&mut s, "/same.txt", Some("c.test")).body_text() == "site c\n"
        })
    };
    assert!(
        wait_until(Duration::from_secs(5), every_worker),
        "{}",
        server.log_text()
    );
    for _ in 0..8 {
        let mut s = server.connect();
        assert_eq!(
            ask(&mut s, "/same.txt", Some("c.test")).body_text(),
            "site c\n"
        );
    }

    // A ROOT that does not exist: the reload is refused, the running
    // sites go on.
    let missing = sites.dir.path().join("no-such-dir");
    let broken = format!(
        "{added}\n[[site]]\nhost = [\"d.test\"]\nroot = \"{}\"\n",
        missing.display()
    );
    std::fs::write(&sites.config, broken).unwrap();
    server.signal(libc::SIGHUP);
    assert!(sighup_done(&server, 2), "{}", server.log_text());
    let log = server.log_text();
    assert!(
        log.contains("keeping the running configuration") && log.contains("no-such-dir"),
        "{log}"
    );
    assert_eq!(
        ask(&mut open, "/same.txt", Some("c.test")).body_text(),
        "site c\n"
    );
    assert_eq!(
        ask(&mut open, "/same.txt", Some("d.test")).body_text(),
        "default\n"
    );
}

#[test]
fn site_mistakes_stop_the_start_with_the_file_and_line() {
    let cases = [
        ("[[site]]\nroot = \"/tmp\"\n", "a [[site]] block needs host"),
        (
            "[[site]]\nhost = [\"a.test\"]\nkeepalive-timeout = 3\n",
            "'keepalive-timeout' is not a site's option",
        ),
        (
            "host = [\"a.test\"]\n[[site]]\nhost = [\"A.test\"]\n",
            "host a.test is named by two sites",
        ),
        (
            "[[site]]\nhost = [\"a.test:8080\"]\n",
            "'host': invalid value 'a.test:8080'",
        ),
        ("[site]\nhost = [\"a.test\"]\n", "sites are [[site]] blocks"),
    ];
    for (text, message) in cases {
        let dir = TempDir::new("sites-mistakes");
        let config = dir.path().join("holdline.toml");
        std::fs::write(&config, text).unwrap();
        let err = Server::try_start(dir.path(), &["--config", config.to_str().unwrap()])
            .err()
            .unwrap_or_else(|| panic!("{text:?} started"));
        assert!(err.contains(message), "{text:?}: {err}");
        assert!(err.contains(&config.display().to_string()), "{err}");
    }
}

fn ask_tls(stream: &mut TlsStream, target: &str, host: &str) -> (String, Vec<u8>) {
    use std::io::Write;
    let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.flush().unwrap();
    read_framed(stream, &mut Vec::new())
}

/// Each site's certificate is chosen by the handshake's server name, and
/// a request on that connection for another site's host is answered 421
/// (the client may retry it on a connection of its own).
#[test]
fn each_site_has_its_certificate_and_a_host_of_another_is_misdirected() {
    let pki = Pki::new();
    pki.leaf("default", "default.test", &["default.test"]);
    pki.leaf("a", "a.test", &["a.test", "www.a.test"]);
    pki.leaf("b", "b.test", &["*.b.test"]);
    let certificate = |name: &str| {
        format!(
            "tls-cert = [\"{}\"]\ntls-key = [\"{}\"]",
            pki.cert(name),
            pki.key(name)
        )
    };
    // The blocks name their certificates; the default's is the top
    // level's, given on the command line.
    let sites = Sites::with("sites-tls", "", &certificate("a"), &certificate("b"));
    let server = sites.start(&[
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &pki.cert("default"),
        "--tls-key",
        &pki.key("default"),
    ]);
    let addr = tls_addr(&server);

    let mut a = connect_tls(&pki.client(), addr, "www.a.test");
    let (head, body) = ask_tls(&mut a, "/same.txt", "a.test");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"site a\n");
    // Another site's host on a's connection: 421, and the connection
    // stays usable for a's own requests.
    let (head, _) = ask_tls(&mut a, "/same.txt", "img.b.test");
    assert!(
        head.starts_with("HTTP/1.1 421 Misdirected Request\r\n"),
        "{head}"
    );
    let (head, body) = ask_tls(&mut a, "/same.txt", "WWW.A.TEST:443");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"site a\n");

    // b's certificate (a wildcard) for b's names.
    let mut b = connect_tls(&pki.client(), addr, "img.b.test");
    let (head, body) = ask_tls(&mut b, "/same.txt", "img.b.test");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"site b\n");
    // Another name beneath the same wildcard is the same site.
    let (head, _) = ask_tls(&mut b, "/same.txt", "cdn.b.test");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");

    // The default site's name: the default certificate, and a's host is
    // misdirected there too.
    let mut d = connect_tls(&pki.client(), addr, "default.test");
    let (head, body) = ask_tls(&mut d, "/same.txt", "default.test");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"default\n");
    let (head, _) = ask_tls(&mut d, "/same.txt", "a.test");
    assert!(head.starts_with("HTTP/1.1 421 "), "{head}");
}

fn holdline_check(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_holdline"))
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `holdline check` prints what it would serve and exits 0, or prints
/// every mistake with its file and line and exits 1.
#[test]
fn check_prints_the_sites_or_every_mistake() {
    let sites = Sites::new("sites-check", "unknown-host = \"421\"\n");
    let config = sites.config.to_str().unwrap();
    let (code, out, err) = holdline_check(&["--config", config, "--rule", "/.git/** deny 404"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.ends_with("holdline: the configuration is ok\n"),
        "{err}"
    );
    for line in [
        "listeners: http://127.0.0.1:8080\n",
        "unknown hosts: 421\n",
        "default site: (any host no other site names)\n",
        "  rule 1: /.git/** deny 404\n",
        "site 1: a.test www.a.test\n",
        "  header: X-Site: a\n",
        "  error-page: 404=/404.html\n",
        "site 2: *.b.test\n",
        "  cache-control: public, max-age=60\n",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }
    // A ROOT that cannot be opened: exit 1, the site named.
    let broken = sites.dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "[[site]]\nhost = [\"gone.test\"]\nroot = \"/no/such/dir\"\n",
    )
    .unwrap();
    let (code, _, err) = holdline_check(&["--config", broken.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("error: site 1 (gone.test): cannot serve /no/such/dir: No such file"),
        "{err}"
    );
    // Every mistake of the file, in its order, each with its line.
    std::fs::write(
        &broken,
        "keepalive-timeout = \"soon\"\nno-such-key = 1\nrule = [\"/a deny 500\"]\n[[site]]\nroot = \"/\"\n",
    )
    .unwrap();
    let (code, out, err) = holdline_check(&["--config", broken.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
    let path = broken.display().to_string();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 5, "{err}");
    assert!(lines[0].starts_with(&format!("holdline: error: {path}:1: 'keepalive-timeout'")));
    assert!(lines[1].starts_with(&format!("holdline: error: {path}:2: unknown key")));
    assert!(lines[2].starts_with(&format!("holdline: error: {path}:3: 'rule'")));
    assert!(lines[3].starts_with(&format!(
        "holdline: error: {path}:4: a [[site]] block needs host"
    )));
    assert_eq!(lines[4], "holdline: the configuration has 4 errors");
}

/// `contrib/sites-example.toml`, README's worked example, serves what
/// README says it does.
#[test]
fn the_worked_example_serves_as_readme_says() {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(manifest.join("contrib/sites-example.toml")).unwrap();
    let readme = std::fs::read_to_string(manifest.join("README.md")).unwrap();
    let body: String = example.lines().skip(3).map(|l| format!("{l}\n")).collect();
    assert!(
        readme.contains(&body),
        "README's worked example differs from the file"
    );
    let dir = TempDir::new("sites-example");
    dir.write("empty/.keep", "");
    dir.write("app/index.html", "<div id=app></div>\n");
    dir.write("app/about.html", "<h1>about</h1>\n");
    dir.write("app/404.html", "<p>lost</p>\n");
    dir.write("app/assets/app.3f2a1c.js", "run()\n");
    dir.write("app/admin/index.html", "<h1>admin</h1>\n");
    dir.write("app/.git/config", "[core]\n");
    dir.write("files/a.tar.gz", "tar");
    // admin / letmein, at bcrypt cost 4 (htpasswd -B -C 4 writes the same
    // kind of line).
    let hash = holdline::serve::auth::hash_password("letmein", 4).unwrap();
    dir.write("admin.users", format!("admin:{hash}\n"));
    let srv = format!("{}/", dir.path().display());
    let text = example
        .replace("/srv/", &srv)
        .replace("listen = [\"127.0.0.1:8080\"]\n", "");
    let config = dir.path().join("example.toml");
    std::fs::write(&config, text).unwrap();
    let server = Server::start(
        &dir.path().join("empty"),
        &["--config", config.to_str().unwrap()],
    );
    let mut s = server.connect();
    let r = ask(&mut s, "/shop/item?id=7", Some("example.com"));
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("Location"),
        Some("https://www.example.com/shop/item?id=7")
    );
    let www = Some("www.example.com");
    let r = ask(&mut s, "/assets/app.3f2a1c.js", www);
    assert_eq!(
        r.header("Cache-Control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
    // The app's routes are its index, with no-cache.
    let r = ask(&mut s, "/shop/item/7", www);
    assert_eq!(
        (r.status, r.body_text().as_str()),
        (200, "<div id=app></div>\n")
    );
    assert_eq!(r.header("Cache-Control"), Some("no-cache"));
    assert_eq!(ask(&mut s, "/about", www).body_text(), "<h1>about</h1>\n");
    // 127.0.0.1 is in the office list here; the test's client is it.
    assert_eq!(ask(&mut s, "/admin/", www).status, 401);
    let r = exchange(
        &mut s,
        "GET /admin/ HTTP/1.1\r\nHost: www.example.com\r\nAuthorization: Basic YWRtaW46bGV0bWVpbg==\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let mut outsider = connect_from("127.0.0.2".parse().unwrap(), server.addr);
    assert_eq!(ask(&mut outsider, "/admin/", www).status, 403);
    let r = ask(&mut s, "/old-blog/2024/post", www);
    assert_eq!(
        (r.status, r.header("Location")),
        (308, Some("https://blog.example.com/2024/post"))
    );
    assert_eq!(
        ask(&mut s, "/.git/config", www).body_text(),
        "<p>lost</p>\n"
    );
    let r = ask(&mut s, "/?format=json", Some("files.example.com"));
    assert!(
        r.body_text().contains("\"name\":\"a.tar.gz\""),
        "{}",
        r.body_text()
    );
    assert_eq!(ask(&mut s, "/", Some("elsewhere.example")).status, 421);
}
