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
}

impl CertSet {
    fn load(pairs: &[CertPaths], provider: &CryptoProvider) -> Result<CertSet, CertError> {
        let keys = pairs
            .iter()
            .map(|pair| load_pair(pair, provider).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(CertError {
                path: PathBuf::new(),
                reason: "no certificate given (--tls-cert and --tls-key)".into(),
            });
        }
        Ok(CertSet { keys })
    }

    /// The pair for `sni`: the first whose certificate is valid for the
    /// name (wildcards included, as webpki checks them for clients), else
    /// the first pair (no SNI, an IP literal, an unknown name). `None`
    /// only for an empty set, which [`CertSet::load`] never makes.
    fn choose(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let default = self.keys.first()?;
        let (Some(sni), true) = (sni, self.keys.len() > 1) else {
            return Some(Arc::clone(default));
        };
        let Ok(name) = ServerName::try_from(sni) else {
            return Some(Arc::clone(default));
        };
        let chosen = self.keys.iter().find(|key| {
            key.cert.first().is_some_and(|der| {
                webpki::EndEntityCert::try_from(der)
                    .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&name).is_ok())
            })
        });
        Some(Arc::clone(chosen.unwrap_or(default)))
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
/// reload. Handshakes take a read lock for the time of one lookup.
#[derive(Debug)]
pub struct Certificates {
    pairs: Vec<CertPaths>,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertSet>>,
}

impl Certificates {
    fn current(&self) -> Arc<CertSet> {
        match self.current.read() {
            Ok(set) => Arc::clone(&set),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current().choose(hello.server_name())
    }
}

/// Everything TLS listeners need, shared by the workers.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    config: Arc<ServerConfig>,
    certs: Arc<Certificates>,
}

impl TlsSetup {
    /// Loads every pair (the first is the default) and builds the rustls
    /// configuration with a `session_cache`-entry session cache and, if
    /// `tickets`, a rotating ticketer.
    pub fn load(
        pairs: &[CertPaths],
        session_cache: usize,
        tickets: bool,
    ) -> Result<TlsSetup, CertError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let set = CertSet::load(pairs, &provider)?;
        let certs = Arc::new(Certificates {
            pairs: pairs.to_vec(),
            provider: Arc::clone(&provider),
            current: RwLock::new(Arc::new(set)),
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
        Ok(TlsSetup {
            config: Arc::new(config),
            certs,
        })
    }

    /// Reads every pair again. On success new handshakes use the new set
    /// (open connections keep theirs, tickets stay valid); on error the
    /// old set stays and the error says which file.
    pub fn reload(&self) -> Result<usize, CertError> {
        let set = CertSet::load(&self.certs.pairs, &self.certs.provider)?;
        let count = set.keys.len();
        match self.certs.current.write() {
            Ok(mut current) => *current = Arc::new(set),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
        }
        Ok(count)
    }

    /// A new server-side TLS connection over an accepted socket.
    pub fn accept(&self, tcp: Tcp) -> Result<Tls, rustls::Error> {
        let conn = UnbufferedServerConnection::new(Arc::clone(&self.config))?;
        Ok(Tls::new(tcp, conn))
    }
}
