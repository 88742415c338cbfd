//! Parsing CIDRs from operators and turning them into trie keys.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::XdpError;

/// Parses `198.18.0.0/15`, `2001:db8::/32`, or a bare address (a /32 or /128).
///
/// Host bits set below the prefix (`198.18.0.5/24`) are refused with the network the operator
/// probably meant: silently widening or narrowing a block is worse than asking.
pub fn parse_cidr(input: &str) -> Result<IpNet, XdpError> {
    let s = input.trim();
    let err = |why: String| XdpError::InvalidCidr {
        input: input.to_owned(),
        why,
    };
    if s.is_empty() {
        return Err(err("empty; expected an address or ADDRESS/PREFIX".into()));
    }
    let net = if s.contains('/') {
        s.parse::<IpNet>().map_err(|e| {
            err(format!(
                "{e}; expected ADDRESS/PREFIX such as 198.18.0.0/24 or 2001:db8::/48"
            ))
        })?
    } else {
        let ip: IpAddr = s
            .parse()
            .map_err(|e| err(format!("{e}; expected an IPv4 or IPv6 address")))?;
        IpNet::from(ip)
    };
    if net.trunc() != net {
        return Err(err(format!(
            "host bits are set below /{}; did you mean {}?",
            net.prefix_len(),
            net.trunc()
        )));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn accepts_networks_and_bare_addresses() {
        assert_eq!(
            parse_cidr("198.18.0.0/15").unwrap().to_string(),
            "198.18.0.0/15"
        );
        assert_eq!(
            parse_cidr(" 198.18.0.7 ").unwrap().to_string(),
            "198.18.0.7/32"
        );
        assert_eq!(
            parse_cidr("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(parse_cidr("2001:db8::1").unwrap().prefix_len(), 128);
        assert_eq!(parse_cidr("0.0.0.0/0").unwrap().prefix_len(), 0);
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        for bad in [
            "",
            "198.18.0.0/33",
            "300.1.1.1",
            "198.18.0.0/",
            "abc",
            "2001:db8::/129",
        ] {
            let e = parse_cidr(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid CIDR"), "{bad}: {e}");
        }
        let e = parse_cidr("198.18.0.5/24").unwrap_err().to_string();
        assert!(e.contains("did you mean 198.18.0.0/24"), "{e}");
    }
}
