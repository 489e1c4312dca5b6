//! The client's address: the peer of the connection, unless that peer is a proxy the
//! application trusts, in which case the address that proxy (and any trusted one before it)
//! reports in `Forwarded` (RFC 7239) or `X-Forwarded-For`. Headers from an untrusted peer are
//! never believed: anybody can send them.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose forwarding headers are believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// No proxy: the connection's peer is the client.
    pub fn none() -> Self {
        TrustedProxies(Vec::new())
    }

    /// Proxies given as addresses or networks (`10.0.0.0/8`, `192.0.2.7`, `::1`).
    pub fn parse<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in items {
            let text = item.as_ref().trim();
            let net = match text.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => text
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| format!("`{text}` is not an IP address or network (as in `10.0.0.0/8`)"))?,
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address, from the connection's `peer` and the request's headers.
    pub fn client_ip(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?.ip());
        if !self.trusts(peer) {
            return Some(peer);
        }
        // Right to left: each trusted hop vouches for the address before it; the first one
        // that is not trusted is the client (or whoever claims to be, which is all anybody
        // can know).
        let hops = forwarded_for(headers);
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = *hop else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        Some(client)
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.7`) as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The addresses the proxies reported, oldest first (`None` for one that is obfuscated or
/// unreadable: nothing before it can be believed). `Forwarded` wins over `X-Forwarded-For`.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers
        .get_all(http::header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| node_ip(v.trim()))
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| node_ip(v.trim()))
        .collect()
}

/// The address of a node as `Forwarded` or `X-Forwarded-For` write it: `192.0.2.7`,
/// `"192.0.2.7:4711"`, `"[2001:db8::1]:4711"`, `[2001:db8::1]`.
fn node_ip(node: &str) -> Option<IpAddr> {
    let node = node.trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    node.strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        map
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 4711))
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let none = TrustedProxies::none();
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(
            none.client_ip(peer("203.0.113.9"), &spoofed),
            Some("203.0.113.9".parse().unwrap())
        );
    }

    #[test]
    fn trusted_proxies_are_walked_from_the_right() {
        let trusted = TrustedProxies::parse(["10.0.0.0/8", "192.168.1.1"]).unwrap();
        // The client prepended a lie; the proxies appended what they saw.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.4, 10.1.2.3")]);
        assert_eq!(
            trusted.client_ip(peer("192.168.1.1"), &h),
            Some("198.51.100.4".parse().unwrap())
        );
        let h = headers(&[(
            "forwarded",
            r#"for=6.6.6.6, for="[2001:db8::cafe]:4711";proto=https, for=10.0.0.2"#,
        )]);
        assert_eq!(
            trusted.client_ip(peer("10.9.9.9"), &h),
            Some("2001:db8::cafe".parse().unwrap())
        );
        // An obfuscated hop stops the walk at the last known one.
        let h = headers(&[("forwarded", "for=1.1.1.1, for=_hidden, for=10.0.0.2")]);
        assert_eq!(
            trusted.client_ip(peer("10.9.9.9"), &h),
            Some("10.0.0.2".parse().unwrap())
        );
        // No header: the proxy itself.
        assert_eq!(
            trusted.client_ip(peer("::ffff:10.0.0.5"), &HeaderMap::new()),
            Some("10.0.0.5".parse().unwrap())
        );
        assert!(TrustedProxies::parse(["nope"]).is_err());
    }
}
