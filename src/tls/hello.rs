//! The server name (SNI, RFC 6066 §3) of a ClientHello, read from the
//! first record's bytes before rustls takes them: rustls's unbuffered
//! server connection does not tell its server name, and the sites need it
//! to answer a request whose host names another site 421.
//!
//! The same first record says whether the client lists ChaCha20 before
//! AES-GCM ([`prefers_chacha`]), which picks the server's suite order.
//!
//! Plain code over bytes, bounded by the record's own lengths: a
//! malformed or truncated hello is simply one without a name (rustls then
//! refuses it itself). A ClientHello split over several records (legal,
//! never sent by a browser) is read as one without a name: the 421 check
//! is not a security boundary (every site is this server's), only a
//! courtesy to a client that reused a connection for the wrong host.

/// What the first bytes of a TLS connection say of its server name.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello<'a> {
    /// The first record is not complete yet.
    Incomplete,
    /// The ClientHello names this host (as sent: compare without case).
    Name(&'a str),
    /// No name: none sent, not a ClientHello, or one that cannot be read.
    NoName,
}

/// Reads the server name of the ClientHello at the start of `bytes`.
pub fn server_name(bytes: &[u8]) -> Hello<'_> {
    let record = match first_record(bytes) {
        Ok(record) => record,
        Err(None) => return Hello::Incomplete,
        Err(Some(())) => return Hello::NoName,
    };
    let name = (|| {
        let (_, extensions) = hello_lists(record)?;
        let mut extensions = Reader(extensions);
        while !extensions.0.is_empty() {
            let kind = extensions.u16()?;
            let n = extensions.u16()?;
            let data = extensions.take(n)?;
            if kind != 0 {
                continue;
            }
            let mut list = Reader(data);
            let n = list.u16()?;
            let mut names = Reader(list.take(n)?);
            while !names.0.is_empty() {
                let kind = names.u8()?;
                let n = names.u16()?;
                let name = names.take(n)?;
                if kind == 0 {
                    return std::str::from_utf8(name).ok();
                }
            }
            return None;
        }
        None
    })();
    match name {
        Some(name) if !name.is_empty() => Hello::Name(name),
        _ => Hello::NoName,
    }
}

/// Whether the ClientHello at the start of `bytes` lists a ChaCha20-
/// Poly1305 suite before every AES-GCM one: what a client without AES
/// hardware does (BoringSSL and Go order their suites by the CPU), and
/// the one case where the server's AES-128-first order would make the
/// client slower. False for anything else, a hello not complete included.
pub fn prefers_chacha(bytes: &[u8]) -> bool {
    const CHACHA: [u16; 3] = [0x1303, 0xcca8, 0xcca9];
    const AES_GCM: [u16; 6] = [0x1301, 0x1302, 0xc02b, 0xc02c, 0xc02f, 0xc030];
    let Some((suites, _)) = first_record(bytes).ok().and_then(hello_lists) else {
        return false;
    };
    for pair in suites.chunks_exact(2) {
        let suite = u16::from_be_bytes([pair[0], pair[1]]);
        if CHACHA.contains(&suite) {
            return true;
        }
        if AES_GCM.contains(&suite) {
            return false;
        }
    }
    false
}

/// The first record's body, if it is a handshake record: `Err(None)`
/// while it is incomplete, `Err(Some(()))` when it is not one.
fn first_record(bytes: &[u8]) -> Result<&[u8], Option<()>> {
    const HANDSHAKE: u8 = 22;
    if bytes.len() < 5 {
        return Err(None);
    }
    if bytes[0] != HANDSHAKE {
        return Err(Some(()));
    }
    let record_len = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
    bytes.get(5..5 + record_len).ok_or(None)
}

/// A ClientHello record's cipher suites and extensions, as the bytes of
/// each list.
fn hello_lists(record: &[u8]) -> Option<(&[u8], &[u8])> {
    const CLIENT_HELLO: u8 = 1;
    let mut r = Reader(record);
    if r.u8()? != CLIENT_HELLO {
        return None;
    }
    let len = r.u24()?;
    let mut hello = Reader(r.take(len)?);
    // Version and random, then the session id, cipher suites and
    // compression methods, each with its length.
    hello.take(2 + 32)?;
    let n = usize::from(hello.u8()?);
    hello.take(n)?;
    let n = hello.u16()?;
    let suites = hello.take(n)?;
    let n = usize::from(hello.u8()?);
    hello.take(n)?;
    let n = hello.u16()?;
    let extensions = hello.take(n)?;
    Some((suites, extensions))
}

/// A cursor over bytes whose reads fail past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The first flight of a real rustls client for `name`.
    fn client_hello(name: &str) -> Vec<u8> {
        client_hello_with(name, rustls::crypto::aws_lc_rs::default_provider())
    }

    /// The same, from a client whose suites are `provider`'s, in order.
    fn client_hello_with(name: &str, provider: rustls::crypto::CryptoProvider) -> Vec<u8> {
        let provider = Arc::new(provider);
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let server = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), server).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn a_real_client_hello_names_its_server() {
        let hello = client_hello("www.Example.test");
        // As sent: the sites compare it without case.
        assert_eq!(server_name(&hello), Hello::Name("www.Example.test"));
        // Every prefix is incomplete, never a name read too early.
        for cut in 0..hello.len() {
            assert_eq!(server_name(&hello[..cut]), Hello::Incomplete, "{cut}");
        }
        // An address is never sent as a server name (RFC 6066 §3).
        assert_eq!(server_name(&client_hello("127.0.0.1")), Hello::NoName);
    }

    #[test]
    fn a_client_that_lists_chacha_first_is_seen() {
        use rustls::crypto::aws_lc_rs::{cipher_suite as cs, default_provider};
        let ordered = |suites: Vec<rustls::SupportedCipherSuite>| rustls::crypto::CryptoProvider {
            cipher_suites: suites,
            ..default_provider()
        };
        let chacha_first = ordered(vec![
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ]);
        let hello = client_hello_with("a.test", chacha_first);
        assert!(prefers_chacha(&hello));
        // Never decided on part of the hello.
        for cut in 0..hello.len() {
            assert!(!prefers_chacha(&hello[..cut]), "{cut}");
        }
        // rustls's own default order (AES-256 first), and OpenSSL's: no.
        assert!(!prefers_chacha(&client_hello("a.test")));
        let openssl_like = ordered(vec![
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS13_AES_128_GCM_SHA256,
        ]);
        assert!(!prefers_chacha(&client_hello_with("a.test", openssl_like)));
        assert!(!prefers_chacha(b"GET / HTTP/1.1\r\n"));
    }

    #[test]
    fn anything_else_has_no_name() {
        assert_eq!(server_name(b"GET / HTTP/1.1\r\n"), Hello::NoName);
        let mut hello = client_hello("a.test");
        // A truncated inner length, and every corrupted byte: never a
        // panic, a name only where the bytes still say one.
        for i in 5..hello.len() {
            let was = hello[i];
            hello[i] = 0xff;
            let _ = server_name(&hello);
            hello[i] = was;
        }
        hello[5] = 2; // not a ClientHello
        assert_eq!(server_name(&hello), Hello::NoName);
        assert_eq!(server_name(&[22, 3, 1, 0, 0]), Hello::NoName);
    }
}
