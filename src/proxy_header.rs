//! The PROXY protocol's header (HAProxy's, versions 1 and 2), sans-IO: a
//! load balancer that passes TCP through (HAProxy's `send-proxy`, AWS's
//! NLB, a CDN's origin shield) writes it at the start of the connection,
//! before TLS or HTTP, to say which client it carries. [`parse`] reads it
//! off the first bytes; the connection ([`crate::conn`]) peeks them off the
//! socket beneath any TLS and consumes exactly the header, so what follows
//! (a ClientHello, a request) reaches its transport untouched.
//!
//! Only a trusted peer's header is read (`--proxy-protocol` with
//! `--trusted-proxy`): anyone else could name any client.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Version 1's longest line, CRLF included (the spec's bound).
const V1_MAX: usize = 107;

/// Version 2's signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest header read, of version 2 with its TLVs (which holdline
/// skips): HAProxy's ALPN, authority and TLS TLVs fit many times over. A
/// peer that needs more is refused rather than buffered for.
pub const MAX_HEADER: usize = 1024;

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// Not enough bytes yet to tell.
    Incomplete,
    /// Not a PROXY header (or not one holdline reads); framing is lost.
    Invalid(&'static str),
    /// A header of `len` bytes. `source`: the client it carries; `None`
    /// when the header names no client (v1 `UNKNOWN`, v2 `LOCAL` such as
    /// a health check, an address family other than TCP over IPv4/IPv6):
    /// the connection's own peer stands.
    Complete {
        len: usize,
        source: Option<SocketAddr>,
    },
}

/// Reads a PROXY header from the start of `buf`.
pub fn parse(buf: &[u8]) -> Header {
    if buf.is_empty() {
        return Header::Incomplete;
    }
    let v1 = b"PROXY ";
    let v2 = &V2_SIGNATURE[..];
    let n = buf.len().min(v2.len());
    if buf[..n.min(v1.len())] == v1[..n.min(v1.len())] {
        parse_v1(buf)
    } else if buf[..n] == v2[..n] {
        parse_v2(buf)
    } else {
        Header::Invalid("no PROXY header")
    }
}

fn parse_v1(buf: &[u8]) -> Header {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return match buf.len() >= V1_MAX {
            true => Header::Invalid("PROXY v1 line too long"),
            false => Header::Incomplete,
        };
    };
    let len = end + 2;
    let Ok(line) = std::str::from_utf8(&buf[6..end]) else {
        return Header::Invalid("PROXY v1 line not ASCII");
    };
    let mut words = line.split(' ');
    let source = match words.next() {
        Some("UNKNOWN") => None,
        Some(family @ ("TCP4" | "TCP6")) => {
            let fields = (words.next(), words.next(), words.next(), words.next());
            let ((Some(src), Some(dst), Some(sport), Some(dport)), None) = (fields, words.next())
            else {
                return Header::Invalid("PROXY v1 line has the wrong fields");
            };
            let (Some(src), Some(dst), Some(sport), Some(_)) =
                (address(src), address(dst), port(sport), port(dport))
            else {
                return Header::Invalid("PROXY v1 address or port malformed");
            };
            if src.is_ipv4() != (family == "TCP4") || dst.is_ipv4() != src.is_ipv4() {
                return Header::Invalid("PROXY v1 address of the wrong family");
            }
            Some(SocketAddr::new(src, sport))
        }
        _ => return Header::Invalid("PROXY v1 protocol unknown"),
    };
    Header::Complete { len, source }
}

/// An address as v1 writes it: dotted quad or IPv6 text, nothing more.
fn address(text: &str) -> Option<IpAddr> {
    let ok = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':');
    ok.then(|| text.parse().ok()).flatten()
}

/// A port as v1 writes it: decimal, no sign, no leading zero.
fn port(text: &str) -> Option<u16> {
    let digits = text.bytes().all(|b| b.is_ascii_digit());
    let canonical = text == "0" || !text.starts_with('0');
    (digits && canonical && !text.is_empty() && text.len() <= 5)
        .then(|| text.parse().ok())
        .flatten()
}

fn parse_v2(buf: &[u8]) -> Header {
    if buf.len() < 16 {
        return Header::Incomplete;
    }
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0f);
    if version != 2 {
        return Header::Invalid("PROXY v2 version unknown");
    }
    let family = buf[13];
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body;
    if len > MAX_HEADER {
        return Header::Invalid("PROXY v2 header too long");
    }
    if buf.len() < len {
        return Header::Incomplete;
    }
    let addresses = &buf[16..len];
    let source = match command {
        // LOCAL: the proxy's own connection (a health check).
        0x0 => None,
        0x1 => match family {
            // TCP over IPv4: source, destination, source port, dest port.
            0x11 => match addresses {
                [a, b, c, d, _, _, _, _, p, q, _, _, ..] => Some(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d)),
                    u16::from_be_bytes([*p, *q]),
                )),
                _ => return Header::Invalid("PROXY v2 IPv4 addresses cut short"),
            },
            0x21 => match addresses.get(..36) {
                Some(a) => {
                    let mut ip = [0u8; 16];
                    ip.copy_from_slice(&a[..16]);
                    Some(SocketAddr::new(
                        IpAddr::V6(Ipv6Addr::from(ip)),
                        u16::from_be_bytes([a[32], a[33]]),
                    ))
                }
                None => return Header::Invalid("PROXY v2 IPv6 addresses cut short"),
            },
            // UNSPEC, UDP, unix sockets: no client address to use.
            _ => None,
        },
        _ => return Header::Invalid("PROXY v2 command unknown"),
    };
    Header::Complete { len, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> (usize, Option<SocketAddr>) {
        match parse(buf) {
            Header::Complete { len, source } => (len, source),
            other => panic!("{other:?} for {:?}", buf.escape_ascii().to_string()),
        }
    }

    fn sock(text: &str) -> Option<SocketAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn version_1_names_the_client_and_leaves_what_follows() {
        let line = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(complete(line), (41, sock("192.0.2.7:56324")));
        let line = b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 80\r\n";
        assert_eq!(complete(line), (line.len(), sock("[2001:db8::7]:4000")));
        let line = b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
        assert_eq!(complete(line), (line.len(), None));
        assert_eq!(complete(b"PROXY UNKNOWN\r\n"), (15, None));
    }

    #[test]
    fn version_1_waits_for_its_line_and_refuses_what_it_is_not() {
        for partial in [
            &b"P"[..],
            b"PROX",
            b"PROXY TCP4 1.2.3.4 ",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r",
        ] {
            assert_eq!(parse(partial), Header::Incomplete, "{partial:?}");
        }
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 100]].concat();
        assert_eq!(parse(&long), Header::Invalid("PROXY v1 line too long"));
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"\x16\x03\x01\x02\x00",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 ::1 ::2 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
            b"PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r\n",
            b"PROXY TCP4 \xff.2.3.4 5.6.7.8 1 2\r\n",
        ] {
            assert!(
                matches!(parse(bad), Header::Invalid(_)),
                "{:?}",
                bad.escape_ascii().to_string()
            );
        }
    }

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        h.extend_from_slice(addresses);
        h
    }

    #[test]
    fn version_2_names_the_client_skipping_its_tlvs() {
        let mut v4 = vec![192, 0, 2, 7, 10, 0, 0, 1];
        v4.extend_from_slice(&56324u16.to_be_bytes());
        v4.extend_from_slice(&443u16.to_be_bytes());
        let header = v2(1, 0x11, &v4);
        let mut buf = header.clone();
        buf.extend_from_slice(b"\x16\x03\x01");
        assert_eq!(complete(&buf), (28, sock("192.0.2.7:56324")));
        // A TLV (ALPN "h2") after the addresses is skipped.
        let with_tlv = v2(
            1,
            0x11,
            &[v4.as_slice(), &[0x01, 0, 2, b'h', b'2']].concat(),
        );
        assert_eq!(complete(&with_tlv), (33, sock("192.0.2.7:56324")));

        let mut v6 = Vec::new();
        v6.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[0x0f, 0xa0, 0, 80]);
        assert_eq!(
            complete(&v2(1, 0x21, &v6)),
            (52, sock("[2001:db8::7]:4000"))
        );

        // LOCAL (a health check), and families with no client to name.
        assert_eq!(complete(&v2(0, 0x00, &[])), (16, None));
        assert_eq!(complete(&v2(0, 0x11, &v4)), (28, None));
        assert_eq!(complete(&v2(1, 0x00, &[])), (16, None));
        assert_eq!(complete(&v2(1, 0x31, &[0; 216])), (232, None));
        assert_eq!(complete(&v2(1, 0x12, &v4)), (28, None));
    }

    #[test]
    fn version_2_waits_for_its_length_and_refuses_what_it_cannot_hold() {
        let header = v2(1, 0x11, &[1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]);
        for cut in 1..header.len() {
            assert_eq!(parse(&header[..cut]), Header::Incomplete, "{cut}");
        }
        let mut version_1 = header.clone();
        version_1[12] = 0x11;
        assert_eq!(
            parse(&version_1),
            Header::Invalid("PROXY v2 version unknown")
        );
        let mut command = header.clone();
        command[12] = 0x22;
        assert_eq!(parse(&command), Header::Invalid("PROXY v2 command unknown"));
        assert!(matches!(
            parse(&v2(1, 0x11, &[1, 2, 3])),
            Header::Invalid(_)
        ));
        assert!(matches!(parse(&v2(1, 0x21, &[0; 20])), Header::Invalid(_)));
        let huge = v2(1, 0x11, &[0; MAX_HEADER]);
        assert_eq!(
            parse(&huge[..16]),
            Header::Invalid("PROXY v2 header too long")
        );
        // The signature cut short by something else.
        assert!(matches!(parse(b"\r\n\r\nGET"), Header::Invalid(_)));
        assert!(matches!(parse(b"\r\n\r\n\0\r\nQUIT\r"), Header::Invalid(_)));
    }

    #[test]
    fn any_bytes_give_an_answer_never_a_panic() {
        // Every prefix of every header above, and junk of every length.
        let mut junk = Vec::new();
        for i in 0..600u32 {
            junk.push((i.wrapping_mul(2654435761) >> 13) as u8);
            let _ = parse(&junk);
            let mut sig = V2_SIGNATURE.to_vec();
            sig.extend_from_slice(&junk);
            let _ = parse(&sig);
            let mut v1 = b"PROXY ".to_vec();
            v1.extend_from_slice(&junk);
            let _ = parse(&v1);
        }
    }
}
