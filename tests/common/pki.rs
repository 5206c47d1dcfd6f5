//! Certificates made at test time: a test CA and leaf certificates it
//! signed (rcgen), and a rustls client that trusts it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use super::{Server, TempDir};

/// A test CA and the files of leaf certificates it signed.
pub struct Pki {
    pub dir: TempDir,
    pub ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    pub fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "holdline test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = TempDir::new("pki");
        dir.write("ca.pem", ca.pem());
        Pki { dir, ca }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Writes `NAME.crt` and `NAME.key` for a leaf valid for `names` with
    /// common name `cn` (an ECDSA P-256 key); returns its DER.
    pub fn leaf(&self, file: &str, cn: &str, names: &[&str]) -> CertificateDer<'static> {
        self.leaf_with(file, cn, names, KeyPair::generate().unwrap())
    }

    /// [`Pki::leaf`] with the given key.
    pub fn leaf_with(
        &self,
        file: &str,
        cn: &str,
        names: &[&str],
        key: KeyPair,
    ) -> CertificateDer<'static> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.ca).unwrap();
        self.dir.write(&format!("{file}.crt"), cert.pem());
        self.dir.write(&format!("{file}.key"), key.serialize_pem());
        cert.der().clone()
    }

    pub fn cert(&self, file: &str) -> String {
        self.path(&format!("{file}.crt"))
    }

    pub fn key(&self, file: &str) -> String {
        self.path(&format!("{file}.key"))
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// A rustls client that trusts the test CA and remembers sessions.
    pub fn client(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let mut config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// The HTTPS address from the server's "listening on" line.
pub fn tls_addr(server: &Server) -> SocketAddr {
    let log = server.log_text();
    log.split("https://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .expect("an https:// listener in the log")
}

/// A rustls client stream over TCP.
pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// A TLS connection to `addr` for server name `name`, its handshake done.
pub fn connect_tls(config: &Arc<ClientConfig>, addr: SocketAddr, name: &str) -> TlsStream {
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .expect("handshake");
    }
    stream
}
