//! Automatic HTTPS against a real ACME server: Debian's `pebble` (Let's
//! Encrypt's test CA) with `pebble-challtestsrv` as its DNS (every name
//! resolves to 127.0.0.1), both started here with a config written here
//! and a certificate for pebble's own HTTPS made here. holdline obtains a
//! certificate by HTTP-01 and by TLS-ALPN-01, curl verifies the chain
//! against pebble's root, a restart reuses what was stored, a renewal
//! keeps open keep-alive connections, and a CA that is down leaves the
//! placeholder serving with a backoff in the log.

mod common;

use common::*;
use rustls::pki_types::pem::PemObject;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Held while a test picks its ports and until its processes bound
/// them (to its end by the test that restarts on the same ports), so no
/// other test's `free_port` takes one in between.
static PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// pebble and its DNS, validating on `http_port` and `tls_port`.
struct Pebble {
    _dns: KillOnDrop,
    _ca: KillOnDrop,
    pki: Pki,
    port: u16,
    management: u16,
}

impl Pebble {
    /// `None` (the test skips loudly) when pebble is not installed.
    fn start(http_port: u16, tls_port: u16, validity_secs: Option<u64>) -> Option<Pebble> {
        let pebble = peer_program("pebble")?;
        let challtestsrv = peer_program("pebble-challtestsrv")?;
        let pki = Pki::new();
        pki.leaf("pebble", "pebble", &["127.0.0.1", "localhost"]);
        let (port, management, dns_port, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let dns = KillOnDrop(
            Command::new(challtestsrv)
                .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .args(["-management", &format!("127.0.0.1:{dns_management}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let validity = validity_secs.map_or(String::new(), |s| {
            format!(",\n    \"certificateValidityPeriod\": {s}")
        });
        let config = format!(
            "{{\n  \"pebble\": {{\n    \"listenAddress\": \"127.0.0.1:{port}\",\n    \
             \"managementListenAddress\": \"127.0.0.1:{management}\",\n    \
             \"certificate\": \"{}\",\n    \"privateKey\": \"{}\",\n    \
             \"httpPort\": {http_port},\n    \"tlsPort\": {tls_port},\n    \
             \"ocspResponderURL\": \"\",\n    \"externalAccountBindingRequired\": false{validity}\n  }}\n}}\n",
            pki.cert("pebble"),
            pki.key("pebble"),
        );
        pki.dir.write("pebble.json", config);
        let ca = KillOnDrop(
            Command::new(pebble)
                .arg("-config")
                .arg(pki.dir.path().join("pebble.json"))
                .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
                .env("PEBBLE_VA_NOSLEEP", "1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let up = wait_until(Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
                && TcpStream::connect(("127.0.0.1", management)).is_ok()
        });
        assert!(up, "pebble never listened");
        Some(Pebble {
            _dns: dns,
            _ca: ca,
            pki,
            port,
            management,
        })
    }

    fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// The root pebble signs with (made anew at each start), as a file.
    fn root(&self) -> PathBuf {
        let out = Command::new("curl")
            .args(["-sf", "--cacert", &self.pki.ca_path().to_string_lossy()])
            .arg(format!("https://127.0.0.1:{}/roots/0", self.management))
            .output()
            .unwrap();
        assert!(out.status.success(), "pebble's root: {out:?}");
        self.pki.dir.write("pebble-root.pem", &out.stdout);
        self.pki.dir.path().join("pebble-root.pem")
    }
}

/// holdline for `a.test` with `--acme` against `pebble`.
fn holdline(
    site: &Site,
    pebble_directory: &str,
    ca_root: &Path,
    storage: &Path,
    ports: (u16, u16),
    extra: &[&str],
) -> Server {
    let (http, tls) = (
        format!("127.0.0.1:{}", ports.0),
        format!("127.0.0.1:{}", ports.1),
    );
    let mut args = vec![
        "--listen",
        &http,
        "--tls-listen",
        &tls,
        "--host",
        "a.test",
        "--host",
        "www.a.test",
        "--acme",
        "--acme-agree-tos",
        "--acme-email",
        "ops@a.test",
        "--acme-directory",
        pebble_directory,
        "--acme-ca-root",
        ca_root.to_str().unwrap(),
        "--acme-storage",
        storage.to_str().unwrap(),
        "--status-path",
        "/status",
    ];
    args.extend_from_slice(extra);
    Server::start_env(&site.root(), &args, &[("RUST_LOG", "holdline=info")])
}

/// curl over HTTPS for `name`, verifying against `root`: the body, or
/// `None` when the chain does not verify.
fn curl_verified(root: &Path, name: &str, tls_port: u16, path: &str) -> Option<String> {
    let out = Command::new("curl")
        .args([
            "-sf",
            "--max-time",
            "5",
            "--cacert",
            &root.to_string_lossy(),
        ])
        .args(["--resolve", &format!("{name}:{tls_port}:127.0.0.1")])
        .arg(format!("https://{name}:{tls_port}{path}"))
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The certificate a handshake for `name` gets, unverified (DER).
fn served_certificate(tls_port: u16, name: &str) -> Vec<u8> {
    let config = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate))
        .with_no_client_auth();
    let addr: SocketAddr = ([127, 0, 0, 1], tls_port).into();
    let stream = connect_tls(&Arc::new(config), addr, name);
    stream.conn.peer_certificates().unwrap()[0].to_vec()
}

#[derive(Debug)]
struct AnyCertificate;

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Issuance waits for the CA; once in, curl verifies it for both names.
fn wait_issued(server: &Server, root: &Path, tls_port: u16) {
    let issued = wait_until(Duration::from_secs(60), || {
        curl_verified(root, "a.test", tls_port, "/hello.txt").is_some()
    });
    assert!(issued, "no certificate from pebble:\n{}", server.log_text());
    assert_eq!(
        curl_verified(root, "www.a.test", tls_port, "/hello.txt").as_deref(),
        Some("hello\n")
    );
}

#[test]
fn http_01_issues_a_certificate_curl_verifies_and_a_restart_reuses_it() {
    // Held to the end: the restart binds the same ports again.
    let _ports = PORTS.lock().unwrap_or_else(|p| p.into_inner());
    let (http, tls) = (free_port(), free_port());
    let Some(pebble) = Pebble::start(http, tls, None) else {
        return;
    };
    let site = Site::new();
    let storage = site.dir.path().join("acme");
    let ca_root = pebble.pki.ca_path();
    let mut server = holdline(
        &site,
        &pebble.directory(),
        &ca_root,
        &storage,
        (http, tls),
        &[],
    );
    // Before the CA answered, or whatever it does: the plain listener
    // serves, and TLS has the placeholder.
    assert_eq!(
        exchange(&mut server.connect(), &get("/hello.txt")).status,
        200
    );
    let root = pebble.root();
    wait_issued(&server, &root, tls);
    let log = server.log_text();
    assert!(
        log.contains("acme: a.test: issued for a.test www.a.test"),
        "{log}"
    );
    // Hostile probes of the challenge path: 404, nothing else.
    for path in [
        "/.well-known/acme-challenge/unknown",
        "/.well-known/acme-challenge/../../hello.txt",
        "/.well-known/acme-challenge/",
    ] {
        let r = exchange(&mut server.connect(), &get(path));
        assert_eq!(r.status, 404, "{path}: {}", r.head);
    }
    // The status output: the expiry and the attempt.
    let json = status_json(&server);
    let expires = json["tls_certificates"][0]["expires"].as_u64().unwrap_or(0);
    assert!(expires > 1_700_000_000, "{json}");
    assert_eq!(json["tls_certificates"][0]["site"], "a.test", "{json}");
    assert_eq!(json["acme"]["issued"].as_u64(), Some(1), "{json}");
    let prom = status_prometheus(&server);
    assert!(
        prom.contains(&format!(
            "holdline_tls_certificate_expiry_seconds{{site=\"a.test\"}} {expires}\n"
        )),
        "{prom}"
    );
    // Stored privately, and reused by the next process: nothing issued.
    use std::os::unix::fs::PermissionsExt;
    let key = storage.join("sites/a.test/key.pem");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    let server = holdline(
        &site,
        &pebble.directory(),
        &ca_root,
        &storage,
        (http, tls),
        &[],
    );
    assert_eq!(
        curl_verified(&root, "a.test", tls, "/hello.txt").as_deref(),
        Some("hello\n")
    );
    let log = server.log_text();
    assert!(log.contains("serving the stored certificate"), "{log}");
    assert!(!log.contains("issued for"), "{log}");
}

#[test]
fn tls_alpn_01_issues_on_the_tls_listener_alone() {
    let ports = PORTS.lock().unwrap_or_else(|p| p.into_inner());
    let (http, tls) = (free_port(), free_port());
    let Some(pebble) = Pebble::start(http, tls, None) else {
        return;
    };
    let site = Site::new();
    let storage = site.dir.path().join("acme");
    let server = holdline(
        &site,
        &pebble.directory(),
        &pebble.pki.ca_path(),
        &storage,
        (http, tls),
        &["--acme-challenge", "tls-alpn-01", "--workers", "2"],
    );
    drop(ports);
    let root = pebble.root();
    wait_issued(&server, &root, tls);
    assert!(
        server.log_text().contains("by tls-alpn-01"),
        "{}",
        server.log_text()
    );
}

#[test]
fn a_renewal_keeps_open_connections_and_new_ones_get_the_new_certificate() {
    let ports = PORTS.lock().unwrap_or_else(|p| p.into_inner());
    let (http, tls) = (free_port(), free_port());
    // 15-second certificates: renewed at two thirds, 10 s in.
    let Some(pebble) = Pebble::start(http, tls, Some(15)) else {
        return;
    };
    let site = Site::new();
    let storage = site.dir.path().join("acme");
    let server = holdline(
        &site,
        &pebble.directory(),
        &pebble.pki.ca_path(),
        &storage,
        (http, tls),
        &["--keepalive-timeout", "60"],
    );
    drop(ports);
    let root = pebble.root();
    wait_issued(&server, &root, tls);
    let first = served_certificate(tls, "a.test");
    // A keep-alive connection opened on the first certificate.
    let pki_client = {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(&root).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    };
    let addr: SocketAddr = ([127, 0, 0, 1], tls).into();
    let mut open = connect_tls(&pki_client, addr, "a.test");
    let ask = |s: &mut TlsStream| {
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .unwrap();
        let mut buf = Vec::new();
        read_framed(s, &mut buf)
    };
    assert!(ask(&mut open).0.starts_with("HTTP/1.1 200"));
    let renewed = wait_until(Duration::from_secs(40), || {
        server.log_text().contains("acme: a.test: renewed")
    });
    assert!(renewed, "{}", server.log_text());
    assert!(wait_until(Duration::from_secs(5), || served_certificate(
        tls, "a.test"
    ) != first));
    // The old connection still answers (within the keep-alive timeout).
    let (head, body) = ask(&mut open);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"hello\n");
    let _ = open.read(&mut [0u8; 0]);
}

#[test]
fn a_ca_that_is_down_leaves_the_placeholder_serving_and_backs_off() {
    let ports = PORTS.lock().unwrap_or_else(|p| p.into_inner());
    let Some(_) = peer_program("pebble") else {
        return;
    };
    let (http, tls) = (free_port(), free_port());
    let site = Site::new();
    let storage = site.dir.path().join("acme");
    let pki = Pki::new();
    // Nothing listens at the directory's port.
    let nowhere = format!("https://127.0.0.1:{}/dir", free_port());
    let server = holdline(
        &site,
        &nowhere,
        &pki.ca_path(),
        &storage,
        (http, tls),
        &["--acme-retry", "1"],
    );
    drop(ports);
    assert_eq!(
        exchange(&mut server.connect(), &get("/hello.txt")).status,
        200
    );
    // The placeholder: self-signed, for the site's names.
    let der = served_certificate(tls, "a.test");
    assert!(
        contains(&der, b"holdline placeholder"),
        "not the placeholder"
    );
    // One line per attempt, each with when the next comes, doubling.
    let backing_off = wait_until(Duration::from_secs(15), || {
        let log = server.log_text();
        log.contains("acme: a.test: attempt 1 failed")
            && log.contains("acme: a.test: attempt 2 failed")
    });
    assert!(backing_off, "{}", server.log_text());
    let json = status_json(&server);
    assert!(json["acme"]["failed"].as_u64().unwrap() >= 2, "{json}");
    assert!(json["tls_certificates"][0]["expires"].is_null(), "{json}");
    // Serving goes on.
    assert_eq!(
        exchange(&mut server.connect(), &get("/hello.txt")).status,
        200
    );
}

/// The CA refuses the challenge (it validates on a port where nothing
/// answers): every attempt fails with the CA's reason, the next one is
/// scheduled, and the site goes on serving (the placeholder on TLS).
#[test]
fn a_refused_challenge_is_retried_and_serving_goes_on() {
    let ports = PORTS.lock().unwrap_or_else(|p| p.into_inner());
    let (http, tls) = (free_port(), free_port());
    // pebble validates HTTP-01 on a port nobody listens on.
    let Some(pebble) = Pebble::start(free_port(), tls, None) else {
        return;
    };
    let site = Site::new();
    let storage = site.dir.path().join("acme");
    let server = holdline(
        &site,
        &pebble.directory(),
        &pebble.pki.ca_path(),
        &storage,
        (http, tls),
        &["--acme-retry", "1", "--workers", "2"],
    );
    drop(ports);
    let refused = wait_until(Duration::from_secs(30), || {
        let log = server.log_text();
        log.contains("acme: a.test: attempt 2 failed") && log.contains("http-01 challenge invalid")
    });
    assert!(refused, "{}", server.log_text());
    assert!(contains(
        &served_certificate(tls, "a.test"),
        b"holdline placeholder"
    ));
    assert_eq!(
        exchange(&mut server.connect(), &get("/hello.txt")).status,
        200
    );
    assert!(!storage.join("sites/a.test/cert.pem").exists());
}

/// `holdline check` and the start say what an `--acme` site lacks: the
/// CA's terms agreed, a name a CA can validate; and a site's names the CA
/// will certify raise no "no certificate" warning.
#[test]
fn check_and_start_say_what_acme_lacks() {
    let site = Site::new();
    let dir = TempDir::new("acme-check");
    let root = site.root();
    let config = format!(
        "listen = [\"127.0.0.1:0\"]\ntls-listen = [\"127.0.0.1:0\"]\nroot = \"{0}\"\n\
         [[site]]\nhost = [\"a.test\", \"*.b.test\"]\nroot = \"{0}\"\nacme = true\n\
         [[site]]\nhost = [\"*.c.test\"]\nroot = \"{0}\"\nacme = true\n",
        root.display()
    );
    dir.write("holdline.toml", config);
    let path = dir.path().join("holdline.toml");
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_holdline"))
            .arg("check")
            .arg("--config")
            .arg(&path)
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("acme: needs --acme-agree-tos"), "{err}");
    assert!(
        err.contains("site 2 (*.c.test): --acme needs a host name a CA can validate"),
        "{err}"
    );
    // a.test is the CA's to certify; the wildcard is not.
    assert!(!err.contains("no certificate names a.test"), "{err}");
    assert!(err.contains("no certificate names *.b.test"), "{err}");
    let (_, err) = run(&["--acme-agree-tos"]);
    assert!(!err.contains("acme-agree-tos"), "{err}");
    // The server itself refuses to start without the agreement.
    let started = Server::try_start(&root, &["--config", path.to_str().unwrap()]);
    assert!(started.is_err());
    assert!(started.err().unwrap().contains("--acme-agree-tos"));
}

/// A reload that changes an `--acme` site's names: the new names get
/// their own certificate (a placeholder here: the CA is down), the old
/// ones lose theirs; the status output follows.
#[test]
fn a_reload_moves_acme_certificates_with_the_sites() {
    let Some(_) = peer_program("pebble") else {
        return;
    };
    let ports = PORTS.lock().unwrap_or_else(|p| p.into_inner());
    let (http, tls) = (free_port(), free_port());
    let site = Site::new();
    let dir = TempDir::new("acme-reload");
    let pki = Pki::new();
    let config = |hosts: &str| {
        format!(
            "listen = [\"127.0.0.1:{http}\"]\ntls-listen = [\"127.0.0.1:{tls}\"]\n\
             root = \"{root}\"\nstatus-path = \"/status\"\n\
             acme-agree-tos = true\nacme-retry = 60\n\
             acme-directory = \"https://127.0.0.1:{nowhere}/dir\"\n\
             acme-ca-root = \"{ca}\"\nacme-storage = \"{storage}\"\n\
             [[site]]\nhost = [{hosts}]\nroot = \"{root}\"\nacme = true\n",
            root = site.root().display(),
            nowhere = free_port(),
            ca = pki.ca_path().display(),
            storage = dir.path().join("acme").display(),
        )
    };
    dir.write("holdline.toml", config("\"a.test\""));
    let path = dir.path().join("holdline.toml");
    let server = Server::start(&site.root(), &["--config", path.to_str().unwrap()]);
    drop(ports);
    let names_in = |der: &[u8], name: &str| contains(der, name.as_bytes());
    assert!(names_in(&served_certificate(tls, "a.test"), "a.test"));
    dir.write("holdline.toml", config("\"c.test\""));
    server.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(5), || {
            server
                .log_text()
                .contains("acme: a.test: no longer managed")
        }),
        "{}",
        server.log_text()
    );
    let c = served_certificate(tls, "c.test");
    assert!(names_in(&c, "c.test") && contains(&c, b"holdline placeholder"));
    let json = status_json(&server);
    let sites: Vec<&str> = json["tls_certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["site"].as_str().unwrap())
        .collect();
    assert_eq!(sites, ["c.test"], "{json}");
}
