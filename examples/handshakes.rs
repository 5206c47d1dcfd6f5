//! Full TLS handshakes, one after another, with the key exchange chosen:
//! the server's CPU per handshake for a classical client (X25519) and for
//! a post-quantum one (X25519MLKEM768 first, X25519 beside it), as
//! scripts/handshakes.sh reports it. wrk and ab link Debian 12's OpenSSL 3.0, which offers no ML-KEM, so
//! this client is rustls's.
//!
//! ```text
//! cargo run --release --example handshakes -- ADDR N x25519|mlkem
//! ```
//!
//! Each of the N connections makes a full handshake (no resumption),
//! sends `GET /1k.txt` with `Connection: close`, reads the response to
//! the server's close, and checks it is a 200. The certificate is not
//! verified (any certificate is taken; its signature over the handshake
//! is): the cost measured is the server's, not the client's trust
//! decision. It prints the group negotiated and the handshakes done.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// Takes any certificate; checks the handshake signatures with the
/// provider's algorithms.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: handshakes ADDR N x25519|mlkem";
    let [addr, n, kx] = args.as_slice() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let addr: SocketAddr = addr.parse().expect(usage);
    let n: usize = n.parse().expect(usage);
    // A post-quantum client as browsers are: X25519MLKEM768 first, and an
    // X25519 share beside it (rustls sends both), so a server without
    // ML-KEM answers with X25519 and no extra round trip.
    let groups = match kx.as_str() {
        "x25519" => vec![aws_lc_rs::kx_group::X25519],
        "mlkem" => vec![
            aws_lc_rs::kx_group::X25519MLKEM768,
            aws_lc_rs::kx_group::X25519,
        ],
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let provider = Arc::new(CryptoProvider {
        kx_groups: groups,
        ..aws_lc_rs::default_provider()
    });
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    let config = Arc::new(config);
    let name = ServerName::try_from("localhost").unwrap();
    let mut negotiated = None;
    let mut response = Vec::with_capacity(4096);
    for _ in 0..n {
        let mut conn = rustls::ClientConnection::new(Arc::clone(&config), name.clone())
            .expect("a client connection");
        let mut sock = TcpStream::connect(addr).expect("connect");
        // The client's Finished and its request are separate writes:
        // without this, Nagle holds the request for the server's delayed
        // ACK (tens of milliseconds a handshake).
        sock.set_nodelay(true).expect("TCP_NODELAY");
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        tls.write_all(b"GET /1k.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .expect("request");
        response.clear();
        // The server closes after the response: the read ends there (a
        // missing close_notify is not this client's concern).
        let _ = tls.read_to_end(&mut response);
        assert!(
            response.starts_with(b"HTTP/1.1 200"),
            "not a 200: {:?}",
            String::from_utf8_lossy(&response[..response.len().min(80)])
        );
        negotiated = conn.negotiated_key_exchange_group().map(|g| g.name());
    }
    let group = negotiated.map_or_else(|| "none".to_string(), |g| format!("{g:?}"));
    println!("{n} handshakes, {group}");
}
