//! A deterministic blocklist shaped like a real one: mostly IPv4 prefixes from /16 to /32,
//! some IPv6, spread over the address space, never touching the benchmark's own range except
//! for the one entry the "hit" case is aimed at.

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use ipnet::IpNet;

/// The benchmark's own addresses (RFC 2544's range): generated prefixes stay out of it.
const BENCH_RANGE: IpNet = IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 0)), 15);

/// One IPv6 entry for every `V6_EVERY` entries.
const V6_EVERY: usize = 10;

/// splitmix64: small, fast and the same on every machine, which is all a fixed list needs.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn in_bench_range(net: &IpNet) -> bool {
    BENCH_RANGE.contains(net) || net.contains(&BENCH_RANGE)
}

/// How the IPv4 prefix lengths of a generated list are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// /16 to /32, uniform: about half the prefixes are longer than /24, each in its own /24
    /// (the 10,000-entry list; the hardest case for DIR-24-8's second level per entry).
    Uniform,
    /// Shaped like large published feeds (country and DROP-style lists): 75% /24s, 22% /12 to
    /// /23, 3% /25 to /32. A million uniform prefixes would put ~470,000 /24s in the second
    /// level, more than the table's 32,768 groups (see docs/xdp.md).
    Feed,
}

fn v4_len(rng: &mut Rng, shape: Shape) -> u8 {
    match shape {
        Shape::Uniform => 16 + rng.below(17) as u8,
        Shape::Feed => match rng.below(100) {
            0..75 => 24,
            75..97 => 12 + rng.below(12) as u8,
            _ => 25 + rng.below(8) as u8,
        },
    }
}

/// `total` distinct prefixes: `extra` first (kept as given), then generated ones with the
/// IPv4 lengths drawn as `shape` says. The same `seed` gives the same list.
pub fn generate_shaped(total: usize, extra: &[IpNet], seed: u64, shape: Shape) -> Vec<IpNet> {
    let mut rng = Rng(seed);
    let mut seen: HashSet<IpNet> = extra.iter().copied().collect();
    let mut out: Vec<IpNet> = extra.to_vec();
    let mut i = 0usize;
    while out.len() < total {
        i += 1;
        let net = if i.is_multiple_of(V6_EVERY) {
            // Global unicast 2000::/3, /32 to /128.
            let hi = (0x2000u128 | u128::from(rng.next() as u16 & 0x1fff)) << 112;
            let lo = (u128::from(rng.next()) << 64 | u128::from(rng.next())) & (u128::MAX >> 16);
            let len = 32 + rng.below(97) as u8;
            IpNet::new(IpAddr::V6(Ipv6Addr::from(hi | lo)), len)
        } else {
            // 1.0.0.0 to 223.255.255.255: unicast, no multicast or reserved space.
            let addr = 0x0100_0000 + rng.below(0xdf00_0000 - 0x0100_0000) as u32;
            let len = v4_len(&mut rng, shape);
            IpNet::new(IpAddr::V4(Ipv4Addr::from(addr)), len)
        };
        let Ok(net) = net.map(|n| n.trunc()) else {
            continue;
        };
        if in_bench_range(&net) || !seen.insert(net) {
            continue;
        }
        out.push(net);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn feed_shape_keeps_long_prefixes_rare() {
        let a = generate_shaped(20_000, &[], 9, Shape::Feed);
        let v4: Vec<u8> = a
            .iter()
            .filter_map(|n| match n {
                IpNet::V4(n) => Some(n.prefix_len()),
                IpNet::V6(_) => None,
            })
            .collect();
        let long = v4.iter().filter(|&&l| l > 24).count();
        let slash24 = v4.iter().filter(|&&l| l == 24).count();
        assert!(long * 100 < v4.len() * 5, "{long} of {}", v4.len());
        assert!(slash24 * 100 > v4.len() * 70, "{slash24} of {}", v4.len());
        assert!(v4.iter().all(|l| (12..=32).contains(l)));
    }

    #[test]
    fn is_deterministic_distinct_and_mixed() {
        let hit: IpNet = "198.19.77.10/32".parse().unwrap();
        let a = generate_shaped(10_000, &[hit], 7, Shape::Uniform);
        assert_eq!(a, generate_shaped(10_000, &[hit], 7, Shape::Uniform));
        assert_eq!(a.len(), 10_000);
        assert_eq!(a.iter().collect::<HashSet<_>>().len(), 10_000);
        assert_eq!(a[0], hit);
        let v6 = a.iter().filter(|n| matches!(n, IpNet::V6(_))).count();
        assert!((900..=1100).contains(&v6), "{v6} IPv6 entries");
        for n in &a[1..] {
            match n {
                IpNet::V4(n) => assert!((16..=32).contains(&n.prefix_len())),
                IpNet::V6(n) => assert!((32..=128).contains(&n.prefix_len())),
            }
            assert!(!in_bench_range(n), "{n} overlaps the benchmark range");
            assert_eq!(n.trunc(), *n);
        }
    }
}
