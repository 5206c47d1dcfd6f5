//! Automatic HTTPS: certificates from an ACME CA (RFC 8555; Let's Encrypt
//! by default), obtained and renewed by holdline itself for every site
//! with `acme = true`.
//!
//! Never on the reactor: the [`Manager`] is a thread of its own that does
//! blocking HTTPS to the CA ([`client`], over ureq) and the crypto, and
//! hands each new certificate to the TLS resolver that every worker
//! shares, as a SIGHUP reload does (new handshakes use it, open
//! connections keep theirs). The reactor's part is reading two tables
//! ([`challenges`]): HTTP-01 answers, served from memory at
//! `/.well-known/acme-challenge/TOKEN` before any rule, redirect or auth,
//! and TLS-ALPN-01 certificates, which the resolver gives a handshake that
//! offers only `acme-tls/1` (RFC 8737).
//!
//! A site with no certificate yet is served a self-signed placeholder for
//! its names (its plain listener answers as always); the placeholder is
//! replaced once the CA issued. Certificates and keys are written to
//! `--acme-storage` atomically with mode 0600 and read again at start, so
//! a restart issues nothing; renewal comes at two thirds of the lifetime,
//! failures are retried with doubling backoff and jitter (and never before
//! the CA's `Retry-After`), each attempt is one log line, and the current
//! certificate keeps serving until a new one is in.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, mpsc};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

pub mod client;
pub mod jws;
mod store;
pub mod validity;

/// Where HTTP-01 answers are served.
pub const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// The ALPN protocol of TLS-ALPN-01.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Let's Encrypt's production directory (its staging one:
/// `https://acme-staging-v02.api.letsencrypt.org/directory`).
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The heap one managed site holds, at most: its certificate chain (at
/// most [`client::MAX_CHAIN`] of PEM, kept as DER), its key, and a
/// placeholder.
pub const SITE_BYTES: usize = client::MAX_CHAIN + 8 * 1024;

/// The heap of one conversation with the CA, at most: an answer (at most
/// [`client::MAX_ANSWER`]) and the JSON parsed from it, the account.
pub const CLIENT_BYTES: usize = 3 * client::MAX_ANSWER + 16 * 1024;

/// How a site proves it holds its names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// A file at `/.well-known/acme-challenge/` on port 80.
    Http01,
    /// A certificate in a handshake on port 443 (RFC 8737).
    TlsAlpn01,
}

impl ChallengeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// The challenge answers of the moment, shared by the manager (which
/// publishes) and every worker and handshake (which read). Empty unless
/// an order is being validated; `active` lets a request skip the lock.
#[derive(Default)]
pub struct Challenges {
    active: AtomicBool,
    http: RwLock<HashMap<String, Arc<str>>>,
    alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

/// The process's challenge tables (one CA conversation at a time per
/// site, whatever the workers).
pub fn challenges() -> &'static Challenges {
    static TABLE: OnceLock<Challenges> = OnceLock::new();
    TABLE.get_or_init(Challenges::default)
}

impl Challenges {
    /// The key authorization for an HTTP-01 `token`, if one is published.
    pub fn http_answer(&self, token: &str) -> Option<Arc<str>> {
        if !self.active.load(Ordering::Acquire) {
            return None;
        }
        let table = self.http.read().unwrap_or_else(|p| p.into_inner());
        table.get(token).cloned()
    }

    /// The TLS-ALPN-01 certificate for `name`, if one is published.
    pub fn alpn_certificate(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        if !self.active.load(Ordering::Acquire) {
            return None;
        }
        let table = self.alpn.read().unwrap_or_else(|p| p.into_inner());
        table.get(&name.to_ascii_lowercase()).cloned()
    }

    fn publish_http(&self, token: &str, key_authorization: &str) {
        let mut table = self.http.write().unwrap_or_else(|p| p.into_inner());
        table.insert(token.to_string(), Arc::from(key_authorization));
        self.active.store(true, Ordering::Release);
    }

    fn publish_alpn(&self, name: &str, (cert, key): (Vec<u8>, Vec<u8>)) {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let key = PrivateKeyDer::Pkcs8(key.into());
        // Not `from_der`: it checks the certificate as webpki would, and
        // webpki refuses the critical acmeIdentifier extension that the
        // CA, and only the CA, looks for.
        let signing = provider.key_provider.load_private_key(key);
        match signing.map(|key| CertifiedKey::new(vec![CertificateDer::from(cert)], key)) {
            Ok(certified) => {
                let mut table = self.alpn.write().unwrap_or_else(|p| p.into_inner());
                table.insert(name.to_ascii_lowercase(), Arc::new(certified));
                self.active.store(true, Ordering::Release);
            }
            Err(e) => log::error!("acme: {name}: cannot use the TLS-ALPN-01 certificate: {e}"),
        }
    }

    fn withdraw_http(&self, token: &str) {
        let mut table = self.http.write().unwrap_or_else(|p| p.into_inner());
        table.remove(token);
        drop(table);
        self.settle();
    }

    fn withdraw_alpn(&self, name: &str) {
        let mut table = self.alpn.write().unwrap_or_else(|p| p.into_inner());
        table.remove(&name.to_ascii_lowercase());
        drop(table);
        self.settle();
    }

    fn settle(&self) {
        let http = self
            .http
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty();
        let alpn = self
            .alpn
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty();
        self.active.store(!(http && alpn), Ordering::Release);
    }
}

/// The `--acme-*` options.
#[derive(Debug, Clone, PartialEq)]
pub struct AcmeOptions {
    /// The CA's directory URL.
    pub directory: String,
    /// The account's contact address.
    pub email: Option<String>,
    /// The operator agreed to the CA's terms of service.
    pub agree_tos: bool,
    /// Where the account key, the certificates and their keys are kept.
    pub storage: PathBuf,
    /// The challenge; `None`: HTTP-01 if there is a plain listener, else
    /// TLS-ALPN-01.
    pub challenge: Option<ChallengeKind>,
    /// The roots the CA's own HTTPS is checked against (PEM); `None`: the
    /// system's bundle.
    pub ca_root: Option<PathBuf>,
    /// The first retry after a failed attempt (doubling up to a day).
    pub retry: Duration,
}

impl Default for AcmeOptions {
    fn default() -> Self {
        AcmeOptions {
            directory: LETS_ENCRYPT.to_string(),
            email: None,
            agree_tos: false,
            storage: PathBuf::from("/var/lib/holdline/acme"),
            challenge: None,
            ca_root: None,
            retry: Duration::from_secs(60),
        }
    }
}

/// The system's CA bundle (Debian's `ca-certificates`).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A site whose certificate holdline obtains: its index among the sites,
/// and the names it answers that a CA can validate (no wildcards, no
/// addresses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedSite {
    pub index: usize,
    pub names: Vec<String>,
}

impl ManagedSite {
    /// The site's label in the status output and its storage folder: its
    /// first name.
    pub fn label(&self) -> &str {
        self.names.first().map_or("", String::as_str)
    }
}

/// The names of `hosts` a CA can validate with HTTP-01 or TLS-ALPN-01:
/// no wildcard, no address, no `localhost`.
pub fn validatable(hosts: &[String]) -> Vec<String> {
    hosts
        .iter()
        .filter(|h| {
            !h.starts_with("*.")
                && h.parse::<std::net::IpAddr>().is_err()
                && !h.starts_with('[')
                && h.contains('.')
        })
        .cloned()
        .collect()
}

/// One site's certificate as the status output shows it.
#[derive(Debug, Clone)]
pub struct SiteCertificate {
    pub site: String,
    /// `notAfter` of the certificate served (`None`: a placeholder).
    pub expires: Option<SystemTime>,
}

/// What the manager did, for the status output.
#[derive(Debug, Default)]
pub struct AcmeStatus {
    pub sites: Mutex<Vec<SiteCertificate>>,
    pub issued: AtomicU64,
    pub failed: AtomicU64,
}

impl AcmeStatus {
    fn forget(&self, site: &str) {
        let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        sites.retain(|s| s.site != site);
    }

    fn set(&self, site: &str, expires: Option<SystemTime>) {
        let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        match sites.iter_mut().find(|s| s.site == site) {
            Some(entry) => entry.expires = expires,
            None => sites.push(SiteCertificate {
                site: site.to_string(),
                expires,
            }),
        }
    }
}

/// Puts a site's certificate in the resolver every worker shares, or
/// (`None`) takes it out: the site is no longer managed.
pub type Install = Box<dyn Fn(&ManagedSite, Option<Arc<CertifiedKey>>) + Send>;

/// A running manager: tell it of new sites (a reload), or to stop.
pub struct Manager {
    tx: mpsc::Sender<Message>,
    thread: Option<std::thread::JoinHandle<()>>,
}

enum Message {
    Sites(Vec<ManagedSite>),
    Stop,
}

impl Manager {
    /// Installs every site's stored certificate (or a placeholder), then
    /// starts the thread that obtains and renews them.
    pub fn start(
        options: AcmeOptions,
        kind: ChallengeKind,
        sites: Vec<ManagedSite>,
        install: Install,
        status: Arc<AcmeStatus>,
    ) -> std::io::Result<Manager> {
        let mut state = State {
            options,
            kind,
            install,
            status,
            sites: Vec::new(),
            client: None,
        };
        state.take_sites(sites, Instant::now());
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("holdline-acme".into())
            .spawn(move || state.run(rx))?;
        Ok(Manager {
            tx,
            thread: Some(thread),
        })
    }

    /// The sites after a reload.
    pub fn set_sites(&self, sites: Vec<ManagedSite>) {
        let _ = self.tx.send(Message::Sites(sites));
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.tx.send(Message::Stop);
        // An attempt under way ends within its HTTP timeouts; the process
        // does not wait for it.
        drop(self.thread.take());
    }
}

/// One managed site's schedule.
struct SiteState {
    site: ManagedSite,
    /// The certificate served has these bounds (`None`: a placeholder).
    validity: Option<(SystemTime, SystemTime)>,
    /// The certificate served (or the placeholder).
    key: Option<Arc<CertifiedKey>>,
    /// No attempt before this (backoff, Retry-After).
    not_before: Instant,
    failures: u32,
}

impl SiteState {
    /// The certificate must be (re)obtained: none, or two thirds of its
    /// lifetime gone.
    fn due(&self, now: SystemTime) -> bool {
        match self.validity {
            None => true,
            Some((from, until)) => {
                let life = until.duration_since(from).unwrap_or_default();
                now >= from + life * 2 / 3
            }
        }
    }

    /// When it becomes due, from now.
    fn due_in(&self, now: SystemTime) -> Duration {
        match self.validity {
            None => Duration::ZERO,
            Some((from, until)) => {
                let life = until.duration_since(from).unwrap_or_default();
                (from + life * 2 / 3)
                    .duration_since(now)
                    .unwrap_or_default()
            }
        }
    }
}

struct State {
    options: AcmeOptions,
    kind: ChallengeKind,
    install: Install,
    status: Arc<AcmeStatus>,
    sites: Vec<SiteState>,
    client: Option<client::Client>,
}

impl State {
    /// Takes a site list (at start, or after a reload): a site known
    /// keeps its schedule and certificate (under its index now); a new
    /// one gets its stored certificate or a placeholder; one no longer
    /// listed loses its certificate.
    fn take_sites(&mut self, sites: Vec<ManagedSite>, now: Instant) {
        let mut old = std::mem::take(&mut self.sites);
        // Every certificate out first (indices may have moved); each kept
        // site's goes back in under its index below.
        for known in &old {
            (self.install)(&known.site, None);
        }
        for site in sites {
            let state = match old.iter().position(|s| s.site.names == site.names) {
                Some(i) => {
                    let mut known = old.swap_remove(i);
                    known.site.index = site.index;
                    known
                }
                None => {
                    let (validity, key) = self.stored_or_placeholder(&site);
                    SiteState {
                        site,
                        validity,
                        key,
                        not_before: now,
                        failures: 0,
                    }
                }
            };
            if let Some(key) = &state.key {
                (self.install)(&state.site, Some(Arc::clone(key)));
            }
            self.sites.push(state);
        }
        for gone in old {
            self.status.forget(gone.site.label());
            log::info!("acme: {}: no longer managed", gone.site.label());
        }
    }

    /// The site's stored certificate if it is usable (with its
    /// validity), else a self-signed placeholder.
    fn stored_or_placeholder(
        &self,
        site: &ManagedSite,
    ) -> (Option<(SystemTime, SystemTime)>, Option<Arc<CertifiedKey>>) {
        let dir = store::site_dir(&self.options.storage, site.label());
        match load_certified(&dir) {
            Ok((certified, validity)) if validity.1 > SystemTime::now() => {
                self.status.set(site.label(), Some(validity.1));
                log::info!(
                    "acme: {}: serving the stored certificate (valid until {})",
                    site.label(),
                    httpdate::fmt_http_date(validity.1)
                );
                return (Some(validity), Some(Arc::new(certified)));
            }
            Ok(_) => log::info!("acme: {}: the stored certificate has expired", site.label()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("acme: {}: stored certificate unusable: {e}", site.label()),
        }
        self.status.set(site.label(), None);
        match placeholder(&site.names) {
            Ok(certified) => (None, Some(Arc::new(certified))),
            Err(e) => {
                log::error!("acme: {}: no placeholder: {e}", site.label());
                (None, None)
            }
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Message>) {
        loop {
            let now = Instant::now();
            let wall = SystemTime::now();
            for i in 0..self.sites.len() {
                let site = &self.sites[i];
                if site.due(wall) && now >= site.not_before {
                    self.attempt(i);
                }
            }
            let now = Instant::now();
            let wall = SystemTime::now();
            let wait = self
                .sites
                .iter()
                .map(|s| {
                    s.due_in(wall)
                        .max(s.not_before.saturating_duration_since(now))
                })
                .min()
                .unwrap_or(Duration::from_secs(3600))
                .clamp(Duration::from_millis(50), Duration::from_secs(3600));
            match rx.recv_timeout(wait) {
                Ok(Message::Sites(sites)) => self.take_sites(sites, Instant::now()),
                Ok(Message::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// One attempt for site `i`: an order, and the certificate installed
    /// and stored; or a failure scheduled for a retry.
    fn attempt(&mut self, i: usize) {
        let site = self.sites[i].site.clone();
        let renewing = self.sites[i].validity.is_some();
        let started = Instant::now();
        let kind = self.kind;
        let outcome = self
            .client()
            .and_then(|client| {
                client.obtain(&site.names, kind).map_err(|e| {
                    let wait = e.retry_after();
                    (e.to_string(), wait)
                })
            })
            .and_then(|issued| self.keep(&site, issued).map_err(|e| (e, None)));
        let state = &mut self.sites[i];
        match outcome {
            Ok((validity, key)) => {
                self.status.issued.fetch_add(1, Ordering::Relaxed);
                self.status.set(site.label(), Some(validity.1));
                state.validity = Some(validity);
                state.key = Some(key);
                state.failures = 0;
                log::info!(
                    "acme: {}: {} for {} in {:.1}s, valid until {}",
                    site.label(),
                    if renewing { "renewed" } else { "issued" },
                    site.names.join(" "),
                    started.elapsed().as_secs_f64(),
                    httpdate::fmt_http_date(validity.1)
                );
            }
            Err((why, retry_after)) => {
                self.status.failed.fetch_add(1, Ordering::Relaxed);
                state.failures += 1;
                let backoff = backoff(self.options.retry, state.failures);
                let wait = retry_after.map_or(backoff, |r| r.max(backoff));
                state.not_before = Instant::now() + wait;
                log::warn!(
                    "acme: {}: attempt {} failed: {why}; next in {}s{}",
                    site.label(),
                    state.failures,
                    wait.as_secs(),
                    if renewing {
                        ", the current certificate keeps serving"
                    } else {
                        ""
                    }
                );
            }
        }
    }

    /// The client, made on first use: the account key read (or made and
    /// stored), the CA's roots read.
    fn client(&mut self) -> Result<&mut client::Client, (String, Option<Duration>)> {
        if self.client.is_none() {
            let options = &self.options;
            let key = store::account_key(&options.storage).map_err(|e| (e, None))?;
            let roots_path = options
                .ca_root
                .as_deref()
                .unwrap_or(Path::new(SYSTEM_ROOTS));
            let roots = CertificateDer::pem_file_iter(roots_path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| (format!("{}: {e}", roots_path.display()), None))?;
            let roots = roots.into_iter().map(|c| c.to_vec()).collect();
            self.client = Some(client::Client::new(
                &options.directory,
                roots,
                key,
                options.email.clone(),
            ));
        }
        Ok(self.client.as_mut().expect("made above"))
    }

    /// Stores what was issued and installs it.
    fn keep(
        &self,
        site: &ManagedSite,
        issued: client::Issued,
    ) -> Result<((SystemTime, SystemTime), Arc<CertifiedKey>), String> {
        let dir = store::site_dir(&self.options.storage, site.label());
        let (certified, validity) =
            certified(issued.chain_pem.as_bytes(), issued.key_pem.as_bytes())?;
        store::write_pair(&dir, &issued.chain_pem, &issued.key_pem)
            .map_err(|e| format!("cannot store in {}: {e}", dir.display()))?;
        let key = Arc::new(certified);
        (self.install)(site, Some(Arc::clone(&key)));
        Ok((validity, key))
    }
}

/// The delay before retry `failures` (1, 2, ...): `first` doubling, at
/// most a day, with ±20% jitter so that many sites do not retry at once.
fn backoff(first: Duration, failures: u32) -> Duration {
    let base = first
        .saturating_mul(1 << failures.saturating_sub(1).min(20))
        .min(Duration::from_secs(86_400));
    let mut byte = [0u8; 1];
    let _ = aws_lc_rs::rand::fill(&mut byte);
    // 0.8 to 1.2.
    base.mul_f64(0.8 + f64::from(byte[0]) / 255.0 * 0.4)
}

/// A chain and key (PEM) as rustls serves them, with the leaf's validity.
fn certified(chain: &[u8], key: &[u8]) -> Result<(CertifiedKey, (SystemTime, SystemTime)), String> {
    let chain = CertificateDer::pem_slice_iter(chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the chain: {e}"))?;
    let leaf = chain.first().ok_or("an empty chain")?;
    let validity = validity::validity(leaf).ok_or("the leaf's validity is unreadable")?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("the key: {e}"))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| e.to_string())?;
    Ok((certified, validity))
}

fn load_certified(dir: &Path) -> std::io::Result<(CertifiedKey, (SystemTime, SystemTime))> {
    let (chain, key) = store::read_pair(dir)?;
    certified(&chain, &key).map_err(std::io::Error::other)
}

/// A self-signed certificate for `names`, served until the CA issued.
fn placeholder(names: &[String]) -> Result<CertifiedKey, String> {
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(|e| e.to_string())?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(
        rcgen::DnType::CommonName,
        "holdline placeholder (no certificate yet)",
    );
    params.distinguished_name = dn;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    CertifiedKey::from_der(vec![cert.der().clone()], key, &provider).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_a_ca_can_validate_are_managed() {
        let hosts: Vec<String> = [
            "example.com",
            "*.example.com",
            "10.0.0.1",
            "[::1]",
            "localhost",
            "www.example.com",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(validatable(&hosts), ["example.com", "www.example.com"]);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_a_day() {
        let first = Duration::from_secs(60);
        for (failures, base) in [(1, 60u64), (2, 120), (3, 240), (12, 86_400), (40, 86_400)] {
            let wait = backoff(first, failures).as_secs_f64();
            let base = base as f64;
            assert!(
                wait >= base * 0.79 && wait <= base * 1.21,
                "{failures}: {wait}"
            );
        }
    }

    #[test]
    fn renewal_is_due_at_two_thirds_of_the_lifetime() {
        let from = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let until = from + Duration::from_secs(90 * 86_400);
        let site = SiteState {
            site: ManagedSite {
                index: 0,
                names: vec!["a.test".into()],
            },
            validity: Some((from, until)),
            key: None,
            not_before: Instant::now(),
            failures: 0,
        };
        assert!(!site.due(from + Duration::from_secs(59 * 86_400)));
        assert!(site.due(from + Duration::from_secs(60 * 86_400)));
        assert_eq!(
            site.due_in(from + Duration::from_secs(59 * 86_400)),
            Duration::from_secs(86_400)
        );
        let placeholder = SiteState {
            validity: None,
            ..site
        };
        assert!(placeholder.due(from));
    }

    #[test]
    fn the_placeholder_is_for_the_sites_names() {
        let names = vec!["a.test".to_string(), "www.a.test".to_string()];
        let certified = placeholder(&names).unwrap();
        let ee = webpki::EndEntityCert::try_from(&certified.cert[0]).unwrap();
        for name in &names {
            let name = rustls::pki_types::ServerName::try_from(name.as_str()).unwrap();
            assert!(ee.verify_is_valid_for_subject_name(&name).is_ok());
        }
    }

    #[test]
    fn challenge_answers_are_published_and_withdrawn() {
        let table = Challenges::default();
        assert!(table.http_answer("t1").is_none());
        table.publish_http("t1", "t1.thumb");
        assert_eq!(table.http_answer("t1").as_deref(), Some("t1.thumb"));
        assert!(table.http_answer("t2").is_none());
        table.withdraw_http("t1");
        assert!(table.http_answer("t1").is_none());
        assert!(!table.active.load(Ordering::Relaxed));
    }
}
