//! Who the reader is, as far as routing needs: the address a request came
//! from, and so its country.
//!
//! The socket's peer is the reader unless it is one of `[server]
//! trusted_proxies`. Then the reader is the right-most address of the
//! forwarding chain that is not a trusted proxy: each trusted hop appends
//! the address it received from, so everything to the right of the first
//! untrusted hop was written by our own proxies, and everything to its left
//! by whoever sent the request (the reader can write anything there).
//! `Forwarded` (RFC 7239) is read when present, else `X-Forwarded-For`.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::country::Country;
use crate::vantage::geoip::Databases;

/// The reader's address, or None when a trusted proxy's chain names no
/// address we can read (`for=unknown`, an obfuscated node, garbage).
pub fn reader_address<'h>(
    peer: IpAddr,
    trusted: &[IpNet],
    headers: impl Iterator<Item = (&'h str, &'h [u8])> + Clone,
) -> Option<IpAddr> {
    if !is_trusted(trusted, peer) {
        return Some(peer);
    }
    let forwarded = headers.clone().any(|(name, _)| name.eq_ignore_ascii_case("forwarded"));
    let mut chain: Vec<Option<IpAddr>> = Vec::new();
    for (name, value) in headers {
        let Ok(value) = std::str::from_utf8(value) else {
            return None;
        };
        if forwarded && name.eq_ignore_ascii_case("forwarded") {
            for element in value.split(',') {
                let node = element.split(';').find_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    key.trim().eq_ignore_ascii_case("for").then(|| value.trim())
                });
                if let Some(node) = node {
                    chain.push(forwarded_node(node));
                }
            }
        } else if !forwarded && name.eq_ignore_ascii_case("x-forwarded-for") {
            chain.extend(value.split(',').map(|hop| forwarded_node(hop.trim())));
        }
    }
    if chain.is_empty() {
        return Some(peer);
    }
    for hop in chain.iter().rev() {
        match hop {
            Some(address) if is_trusted(trusted, *address) => continue,
            other => return *other,
        }
    }
    // Every hop is one of ours: the first is where the request started.
    chain.first().copied().flatten()
}

fn is_trusted(trusted: &[IpNet], address: IpAddr) -> bool {
    let address = match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    };
    trusted.iter().any(|net| net.contains(&address))
}

/// An address as the chain writes it: `192.0.2.1`, `192.0.2.1:4711`,
/// `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn forwarded_node(node: &str) -> Option<IpAddr> {
    let node = node.trim_matches('"');
    if let Ok(address) = node.parse::<IpAddr>() {
        return Some(address);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The reader's country, when the country database knows the address.
pub fn reader_country<'h>(
    peer: IpAddr,
    trusted: &[IpNet],
    headers: impl Iterator<Item = (&'h str, &'h [u8])> + Clone,
    databases: &Databases,
) -> Option<Country> {
    databases.country.as_ref()?;
    databases.country(reader_address(peer, trusted, headers)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn address(peer: &str, trusted: &[&str], headers: &[(&'static str, &'static str)]) -> Option<String> {
        let trusted = nets(trusted);
        reader_address(
            peer.parse().unwrap(),
            &trusted,
            headers.iter().map(|(n, v)| (*n, v.as_bytes())),
        )
        .map(|a| a.to_string())
    }

    #[test]
    fn an_untrusted_peer_is_the_reader_whatever_it_claims() {
        assert_eq!(
            address("81.2.69.142", &["10.0.0.0/8"], &[("X-Forwarded-For", "111.235.160.1")]).as_deref(),
            Some("81.2.69.142")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_reader() {
        // The reader wrote 1.1.1.1 itself; 111.235.160.1 is what our proxy saw.
        let headers = [("x-forwarded-for", "1.1.1.1, 111.235.160.1, 10.0.0.7")];
        assert_eq!(
            address("10.0.0.5", &["10.0.0.0/8"], &headers).as_deref(),
            Some("111.235.160.1")
        );
        let split = [("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "111.235.160.1")];
        assert_eq!(
            address("10.0.0.5", &["10.0.0.0/8"], &split).as_deref(),
            Some("111.235.160.1")
        );
        assert_eq!(address("10.0.0.5", &["10.0.0.0/8"], &[]).as_deref(), Some("10.0.0.5"));
        assert_eq!(
            address("10.0.0.5", &["10.0.0.0/8"], &[("X-Forwarded-For", "garbage, 10.0.0.9")]),
            None
        );
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for() {
        let headers = [
            ("X-Forwarded-For", "89.160.20.130"),
            ("Forwarded", "for=1.1.1.1;proto=https, for=\"[2001:db8::1]:4711\""),
        ];
        assert_eq!(
            address("10.0.0.5", &["10.0.0.0/8"], &headers).as_deref(),
            Some("2001:db8::1")
        );
        let port = [("Forwarded", "for=\"81.2.69.142:1234\"")];
        assert_eq!(
            address("10.0.0.5", &["10.0.0.0/8"], &port).as_deref(),
            Some("81.2.69.142")
        );
        assert_eq!(
            address("10.0.0.5", &["10.0.0.0/8"], &[("Forwarded", "for=unknown")]),
            None
        );
    }

    #[test]
    fn a_chain_of_trusted_hops_starts_at_its_first() {
        let headers = [("X-Forwarded-For", "10.1.1.1, 10.2.2.2")];
        assert_eq!(
            address("10.0.0.5", &["10.0.0.0/8"], &headers).as_deref(),
            Some("10.1.1.1")
        );
    }
}
