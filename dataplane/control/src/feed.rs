//! Blocklist feeds for `vigilctl block import`: a plain list of CIDRs, Spamhaus DROP
//! (`1.2.3.0/24 ; SBL123`) or FireHOL `.netset` (`#` comments). One network per line; blank
//! lines and comments (`#` or `;` to the end of the line) are skipped. A bad line refuses the
//! whole feed, naming its line number: nothing is applied from a feed that is not understood.

use std::collections::HashSet;

use ipnet::IpNet;

use crate::Cidr;

/// Why a feed was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {why}; nothing was imported (fix the line or remove it)")]
pub struct FeedError {
    /// 1-based.
    pub line: usize,
    pub why: String,
}

/// The networks of a feed, in file order, each once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feed {
    pub nets: Vec<IpNet>,
    /// Lines that named a network already listed above them.
    pub duplicates: usize,
}

impl Feed {
    pub fn ipv4(&self) -> usize {
        self.nets.iter().filter(|n| n.addr().is_ipv4()).count()
    }

    pub fn ipv6(&self) -> usize {
        self.nets.len() - self.ipv4()
    }
}

/// Parses a feed. Host bits below the prefix and prefixes of length 0 (every address of a
/// family) are refused like any bad line.
pub fn parse(text: &str) -> Result<Feed, FeedError> {
    let mut feed = Feed::default();
    let mut seen = HashSet::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = raw.split(['#', ';']).next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let mut words = content.split_whitespace();
        let (Some(first), None) = (words.next(), words.next()) else {
            return Err(FeedError {
                line,
                why: format!("{content:?} is not one network: expected one CIDR per line"),
            });
        };
        let cidr: Cidr = first.parse().map_err(|e: vigil_xdp::XdpError| FeedError {
            line,
            why: e.to_string(),
        })?;
        let net = cidr.net();
        if net.prefix_len() == 0 {
            return Err(FeedError {
                line,
                why: format!(
                    "{net} covers every address of its family; a feed may not block them all \
                     (use `vigilctl block add {net} --force` if that is really meant)"
                ),
            });
        }
        if seen.insert(net) {
            feed.nets.push(net);
        } else {
            feed.duplicates += 1;
        }
    }
    Ok(feed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_plain_drop_and_netset_formats() {
        let text = "\
; Spamhaus DROP List 2026/12/05 - (c) 2026 The Spamhaus Project
; Last-Modified: Sat, 05 Dec 2026 09:00:00 GMT
198.18.0.0/24 ; SBL123
198.18.1.0/24;SBL124

#
# FireHOL netset
#
198.18.2.7
2001:db8:bad::/48   # a comment after the network
\t198.18.3.0/25\t
198.18.0.0/24 ; listed twice
";
        let f = parse(text).unwrap();
        let nets: Vec<String> = f.nets.iter().map(ToString::to_string).collect();
        assert_eq!(
            nets,
            [
                "198.18.0.0/24",
                "198.18.1.0/24",
                "198.18.2.7/32",
                "2001:db8:bad::/48",
                "198.18.3.0/25"
            ]
        );
        assert_eq!((f.ipv4(), f.ipv6(), f.duplicates), (4, 1, 1));
        assert_eq!(parse("").unwrap(), Feed::default());
    }

    #[test]
    fn a_bad_line_is_refused_with_its_number() {
        let cases = [
            ("198.18.0.0/24\n\nnot-an-address\n", 3, "invalid CIDR"),
            ("# ok\n198.18.0.9/24\n", 2, "did you mean 198.18.0.0/24"),
            ("198.18.0.0/24 198.18.1.0/24\n", 1, "one CIDR per line"),
            ("198.18.0.0/33\n", 1, "invalid CIDR"),
            ("1.2.3.0/24\n0.0.0.0/0 ; all\n", 2, "every address"),
        ];
        for (text, line, why) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}");
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("line {line}: ")), "{msg}");
            assert!(msg.contains(why), "{msg}");
            assert!(msg.contains("nothing was imported"), "{msg}");
        }
    }
}
