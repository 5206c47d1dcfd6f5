//! HTTPS: rustls on the same reactor.
//!
//! [`TlsSetup`] is what `--tls-listen` needs, built once at start and
//! shared by every worker: the rustls `ServerConfig` (TLS 1.2 and 1.3,
//! ALPN `http/1.1`, resumption on, 0-RTT off) and [`Certificates`], the
//! certificate resolver that picks a pair by SNI and that SIGHUP reloads
//! in place. [`Tls`] is the [`Transport`] that carries one connection's
//! records: the reactor, the session and the timer wheel never see a
//! difference between it and plain TCP. It is built in three files, by
//! job: `tls/buffers.rs` (the record buffers and their per-thread pool),
//! `tls/records.rs` (rustls's unbuffered state machine over those
//! buffers), `tls/hello.rs` (the ClientHello's server name, which the
//! sites check a request's host against), `tls/stream.rs` (the
//! `Transport` on top, over the socket).
//!
//! The handshake happens inside the transport's reads: the connection
//! asks to read (the session lends it an exchange, see
//! [`crate::http::session`]), `Tls::read` feeds the socket's bytes to
//! rustls and queues its flights as pending output, and says WouldBlock
//! until plaintext comes. The session, having received nothing, gives the
//! exchange back and stays Fresh: the handshake runs under the header
//! deadline from accept, and counts as "fresh" for eviction. Handshake
//! flights waiting for the socket are not a response (`Conn::settle`
//! leaves them out), so they do not move the connection to Writing.
//!
//! Resumption: TLS 1.3 tickets from rustls's rotating ticketer (a new key
//! every 6 hours, the previous one still accepted), which survive a
//! certificate reload because the ticketer is not replaced; TLS 1.2 clients
//! use tickets too, or the session-id cache of `--tls-session-cache`
//! entries. 0-RTT (early data) stays off: a replayed early request is
//! harmless for GET of a static file, but rustls leaves replay protection
//! to the application and nothing here would gain a round trip worth the
//! risk of a replayed request reaching a future handler.
//!
//! Later, kTLS: once the kernels holdline runs on ship the `tls` module,
//! the session keys (rustls's `dangerous_extract_secrets`) can be handed
//! to the kernel after the handshake, and file bodies go back to
//! sendfile; today every record is encrypted here.
//!
//! [`Transport`]: crate::transport::Transport

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::UnbufferedServerConnection;
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;

use crate::transport::Tcp;

mod buffers;
pub(crate) mod hello;
mod records;
mod stream;

pub use records::SEND_BUFFER_LIMIT;
pub use stream::Tls;

/// A certificate chain and its key, as files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate or key that could not be used; `Display` is one line.
#[derive(Debug)]
pub struct CertError {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for CertError {}

/// The pairs loaded, in the order given: the first is the default.
#[derive(Debug)]
struct CertSet {
    keys: Vec<Arc<CertifiedKey>>,
    /// ACME sites have certificates too: a name no pair is for is
    /// theirs to answer (may be empty then).
    acme: bool,
}

impl CertSet {
    fn load(
        pairs: &[CertPaths],
        provider: &CryptoProvider,
        acme: bool,
    ) -> Result<CertSet, CertError> {
        let keys = pairs
            .iter()
            .map(|pair| load_pair(pair, provider).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() && acme {
            return Ok(CertSet { keys, acme });
        }
        if keys.is_empty() {
            return Err(CertError {
                path: PathBuf::new(),
                reason: "no certificate given (--tls-cert and --tls-key)".into(),
            });
        }
        Ok(CertSet { keys, acme })
    }

    /// The first pair whose certificate is valid for `sni` (wildcards
    /// included, as webpki checks them for clients); with one pair and no
    /// ACME site, that pair whatever the name. `None`: no SNI, an IP
    /// literal, a name no pair is for.
    fn chosen(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if self.keys.len() == 1 && !self.acme {
            return self.keys.first().map(Arc::clone);
        }
        let name = ServerName::try_from(sni?).ok()?;
        let chosen = self.keys.iter().find(|key| {
            key.cert.first().is_some_and(|der| {
                webpki::EndEntityCert::try_from(der)
                    .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&name).is_ok())
            })
        });
        chosen.map(Arc::clone)
    }
}

/// Loads `pair` as a start-up or a reload would (`holdline check`).
pub fn check_pair(pair: &CertPaths) -> Result<(), CertError> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    load_pair(pair, &provider).map(|_| ())
}

/// `pair`'s certificate (as its file says now) is valid for `name`, a
/// host name or an address (bracketed or not).
pub fn pair_covers(pair: &CertPaths, name: &str) -> bool {
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let Ok(name) = ServerName::try_from(name) else {
        return false;
    };
    let Ok(Some(Ok(der))) = CertificateDer::pem_file_iter(&pair.cert).map(|mut c| c.next()) else {
        return false;
    };
    webpki::EndEntityCert::try_from(&der)
        .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&name).is_ok())
}

fn load_pair(pair: &CertPaths, provider: &CryptoProvider) -> Result<CertifiedKey, CertError> {
    let fail = |path: &Path, reason: String| CertError {
        path: path.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(&pair.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail(&pair.cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(fail(&pair.cert, "no CERTIFICATE in the file".into()));
    }
    let key =
        PrivateKeyDer::from_pem_file(&pair.key).map_err(|e| fail(&pair.key, e.to_string()))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| fail(&pair.key, e.to_string()))
}

/// The certificate resolver: the current set of pairs, swapped whole by a
/// reload, and the certificates of the sites holdline obtains itself
/// (ACME), each replaced when the manager has a new one. Handshakes take
/// a read lock for the time of one lookup.
#[derive(Debug)]
pub struct Certificates {
    pairs: Vec<CertPaths>,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertSet>>,
    acme: RwLock<Vec<AcmeCert>>,
}

/// An ACME site's certificate (or its placeholder), with the names it is
/// for (exact names: ACME sites have no wildcard).
#[derive(Debug)]
struct AcmeCert {
    site: usize,
    names: Vec<String>,
    key: Arc<CertifiedKey>,
}

impl Certificates {
    fn current(&self) -> Arc<CertSet> {
        match self.current.read() {
            Ok(set) => Arc::clone(&set),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

impl Certificates {
    /// The ACME certificate for `name`; with `None`, the first one.
    fn acme_for(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let certs = self.acme.read().unwrap_or_else(|p| p.into_inner());
        let found = match name {
            Some(name) => certs
                .iter()
                .find(|c| c.names.iter().any(|n| n.eq_ignore_ascii_case(name))),
            None => certs.first(),
        };
        found.map(|c| Arc::clone(&c.key))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name();
        // RFC 8737: a handshake offering acme-tls/1 (only a CA validating
        // a TLS-ALPN-01 challenge does) gets the challenge's certificate,
        // or none.
        let acme_tls = hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|p| p == crate::acme::ACME_TLS_ALPN));
        if acme_tls {
            return sni.and_then(|name| crate::acme::challenges().alpn_certificate(name));
        }
        let set = self.current();
        // A file pair for the name first, then an ACME site's, then the
        // default pair, then any ACME certificate.
        if let Some(key) = set.chosen(sni) {
            return Some(key);
        }
        self.acme_for(sni)
            .or_else(|| set.keys.first().map(Arc::clone))
            .or_else(|| self.acme_for(None))
    }
}

/// Everything TLS listeners need, shared by the workers.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    /// The server's suite order (AES-128-GCM first), for most clients.
    config: Arc<ServerConfig>,
    /// The same configuration in the client's order, for a client that
    /// lists ChaCha20 before AES (see [`server_suite_order`]).
    client_order: Arc<ServerConfig>,
    certs: Arc<Certificates>,
}

/// The cipher suites in the server's order: AES-128-GCM, then AES-256-GCM,
/// then ChaCha20-Poly1305, in TLS 1.3 and then TLS 1.2. With AES hardware
/// AES-128-GCM is the cheapest, and its TLS 1.3 suite's key schedule uses
/// SHA-256, which x86 CPUs accelerate, where AES-256-GCM's uses SHA-384,
/// which they do not (a quarter of a full handshake's CPU went to SHA-384
/// when clients' order picked AES-256: OpenSSL lists it first). Security
/// is equal for this purpose (128-bit AES is not the weak link of a
/// handshake whose key exchange is X25519). A client that lists ChaCha20
/// first says it has no AES hardware, and gets its own order: the
/// configuration is chosen per connection from the ClientHello
/// ([`hello::prefers_chacha`]). The key-exchange groups keep the client's
/// order, so X25519MLKEM768 stays first for the clients that offer it.
fn server_suite_order(suites: &mut [rustls::SupportedCipherSuite]) {
    use rustls::CipherSuite as S;
    let rank = |suite: &rustls::SupportedCipherSuite| match suite.suite() {
        S::TLS13_AES_128_GCM_SHA256 => 0,
        S::TLS13_AES_256_GCM_SHA384 => 1,
        S::TLS13_CHACHA20_POLY1305_SHA256 => 2,
        S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 3,
        S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 4,
        _ => 5,
    };
    suites.sort_by_key(rank);
}

impl TlsSetup {
    /// Loads every pair (the first is the default) and builds the rustls
    /// configuration with a `session_cache`-entry session cache and, if
    /// `tickets`, a rotating ticketer.
    /// With `acme`, some sites' certificates come from
    /// [`TlsSetup::install_acme`] (and `pairs` may be empty), and the
    /// `acme-tls/1` protocol of TLS-ALPN-01 is offered.
    pub fn load(
        pairs: &[CertPaths],
        session_cache: usize,
        tickets: bool,
        acme: bool,
    ) -> Result<TlsSetup, CertError> {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        server_suite_order(&mut provider.cipher_suites);
        let provider = Arc::new(provider);
        let set = CertSet::load(pairs, &provider, acme)?;
        let certs = Arc::new(Certificates {
            pairs: pairs.to_vec(),
            provider: Arc::clone(&provider),
            current: RwLock::new(Arc::new(set)),
            acme: RwLock::new(Vec::new()),
        });
        let setup_error = |e: rustls::Error| CertError {
            path: PathBuf::new(),
            reason: e.to_string(),
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(setup_error)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&certs) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        if acme {
            config
                .alpn_protocols
                .push(crate::acme::ACME_TLS_ALPN.to_vec());
        }
        config.session_storage = if session_cache > 0 {
            ServerSessionMemoryCache::new(session_cache)
        } else {
            Arc::new(rustls::server::NoServerSessionStorage {})
        };
        if tickets {
            config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(setup_error)?;
        } else {
            // Without a ticketer, TLS 1.3 "tickets" are ids into the
            // session cache (stateful), as TLS 1.2 session ids are.
            config.send_tls13_tickets = if session_cache > 0 { 1 } else { 0 };
        }
        config.max_early_data_size = 0;
        let client_order = Arc::new(config.clone());
        config.ignore_client_order = true;
        Ok(TlsSetup {
            config: Arc::new(config),
            client_order,
            certs,
        })
    }

    /// Reads every pair again. On success new handshakes use the new set
    /// (open connections keep theirs, tickets stay valid); on error the
    /// old set stays and the error says which file.
    pub fn reload(&self) -> Result<usize, CertError> {
        let acme = self.certs.current().acme;
        let set = CertSet::load(&self.certs.pairs, &self.certs.provider, acme)?;
        let count = set.keys.len();
        match self.certs.current.write() {
            Ok(mut current) => *current = Arc::new(set),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
        }
        Ok(count)
    }

    /// `site`'s certificate from now on (new handshakes; open
    /// connections keep theirs): the ACME manager's, or its placeholder;
    /// `None`: the site is no longer managed.
    pub fn install_acme(&self, site: &crate::acme::ManagedSite, key: Option<Arc<CertifiedKey>>) {
        let mut certs = self.certs.acme.write().unwrap_or_else(|p| p.into_inner());
        let Some(key) = key else {
            certs.retain(|c| c.site != site.index);
            return;
        };
        let cert = AcmeCert {
            site: site.index,
            names: site.names.clone(),
            key,
        };
        match certs.iter_mut().find(|c| c.site == site.index) {
            Some(old) => *old = cert,
            None => certs.push(cert),
        }
    }

    /// A new server-side TLS connection over an accepted socket, in the
    /// server's suite order until its ClientHello asks for the client's.
    pub fn accept(&self, tcp: Tcp) -> Result<Tls, rustls::Error> {
        let conn = UnbufferedServerConnection::new(Arc::clone(&self.config))?;
        Ok(Tls::new(tcp, conn, Arc::clone(&self.client_order)))
    }
}
