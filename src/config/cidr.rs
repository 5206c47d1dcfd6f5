//! Address ranges (`10.0.0.0/8`, `2001:db8::/32`, or one address) for the
//! rules' `allow-from` / `deny-from` and `--trusted-proxy`. An IPv4
//! client seen on an IPv6 socket (`::ffff:10.1.2.3`) is compared as the
//! IPv4 address it is.

use std::net::IpAddr;

/// One address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network's address, its host bits zero.
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or `ADDR` (the whole address).
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        let addr = canonical(addr);
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => p.parse().ok()?,
            Some(_) => return None,
            None => width,
        };
        if prefix > width {
            return None;
        }
        Some(Cidr {
            net: mask(addr, prefix),
            prefix,
        })
    }

    /// `addr` is in the range.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        addr.is_ipv4() == self.net.is_ipv4() && mask(addr, self.prefix) == self.net
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// `addr` with the bits past `prefix` cleared.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & keep).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & keep).into())
        }
    }
}

/// The client behind `peer`: the peer itself, unless it is one of
/// `trusted` proxies and sent an `X-Forwarded-For` line, whose rightmost
/// address that is not a trusted proxy is the client (the addresses left
/// of it were written by whoever sent them, so only the proxies' own
/// additions are believed). A line that does not parse leaves the peer.
pub fn client_address(peer: IpAddr, forwarded_for: Option<&[u8]>, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |addr: IpAddr| trusted.iter().any(|c| c.contains(addr));
    let (Some(line), true) = (forwarded_for, is_trusted(peer)) else {
        return peer;
    };
    let Ok(line) = std::str::from_utf8(line) else {
        return peer;
    };
    let mut client = peer;
    for item in line.rsplit(',') {
        let Ok(addr) = item.trim().parse::<IpAddr>() else {
            return client;
        };
        client = canonical(addr);
        if !is_trusted(client) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_contain_their_addresses() {
        let lan = Cidr::parse("10.1.2.3/8").unwrap();
        assert_eq!(lan.to_string(), "10.0.0.0/8");
        assert!(lan.contains(ip("10.255.0.1")));
        assert!(lan.contains(ip("::ffff:10.9.9.9")));
        assert!(!lan.contains(ip("11.0.0.1")));
        assert!(!lan.contains(ip("::1")));
        let v6 = Cidr::parse("[2001:db8::]/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("1.2.3.4")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("::2")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "x",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_trusted_proxies_name_the_client() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let xff = |s: &'static str| Some(s.as_bytes());
        // Not a proxy: its header is not believed.
        assert_eq!(
            client_address(ip("1.2.3.4"), xff("5.6.7.8"), &trusted),
            ip("1.2.3.4")
        );
        // A proxy: the rightmost address that is not one.
        let proxy = ip("10.0.0.1");
        assert_eq!(
            client_address(proxy, xff("5.6.7.8"), &trusted),
            ip("5.6.7.8")
        );
        assert_eq!(
            client_address(proxy, xff("9.9.9.9, 5.6.7.8, 10.0.0.2"), &trusted),
            ip("5.6.7.8")
        );
        assert_eq!(client_address(proxy, None, &trusted), proxy);
        // Garbage stops at what was believed so far.
        assert_eq!(client_address(proxy, xff("1.1.1.1, junk"), &trusted), proxy);
        assert_eq!(
            client_address(proxy, xff("junk, 5.6.7.8"), &trusted),
            ip("5.6.7.8")
        );
        assert_eq!(
            client_address(proxy, xff("10.0.0.3"), &trusted),
            ip("10.0.0.3")
        );
    }
}
