//! TCP frames built and read byte by byte, for the tests, the SYN flood sender and `perf/xdp`:
//! Ethernet + IPv4 or IPv6 (no options, no extension headers) + TCP with options, checksums
//! right.

use std::net::IpAddr;

/// The source MAC of test floods: a station that is not there. The far end of a test veth pair
/// drops frames sent to it (`bpf/test_peer.c`), as a router would carry them away.
pub const PHANTOM_MAC: [u8; 6] = [0x02, 0xde, 0xad, 0xbe, 0xef, 0x01];

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

/// The options a Linux client puts in its SYN: MSS 1460, SACK permitted, a timestamp
/// (TSval 0x01020304), NOP, window scale 7.
pub const LINUX_SYN_OPTIONS: [u8; 20] = [
    2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0x01, 0x02, 0x03, 0x04, 0, 0, 0, 0, 1, 3, 3, 7,
];

/// One TCP segment to frame.
#[derive(Clone, Debug)]
pub struct Segment<'a> {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    /// A multiple of 4 bytes, at most 40.
    pub options: &'a [u8],
}

fn sum16(data: &[u8], mut acc: u64) -> u64 {
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        acc += u64::from(w);
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn pseudo(src: IpAddr, dst: IpAddr, len: usize) -> u64 {
    let mut acc = 6u64 + len as u64;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc = sum16(&s.octets(), acc);
            acc = sum16(&d.octets(), acc);
        }
        (s, d) => {
            acc = sum16(&v6_octets(s), acc);
            acc = sum16(&v6_octets(d), acc);
        }
    }
    acc
}

fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

/// The segment as an Ethernet frame. Both addresses must be of one family.
pub fn tcp_frame(s: &Segment<'_>) -> Vec<u8> {
    let tcp_len = 20 + s.options.len();
    let mut tcp = Vec::with_capacity(tcp_len);
    tcp.extend_from_slice(&s.sport.to_be_bytes());
    tcp.extend_from_slice(&s.dport.to_be_bytes());
    tcp.extend_from_slice(&s.seq.to_be_bytes());
    tcp.extend_from_slice(&s.ack.to_be_bytes());
    tcp.push(((tcp_len / 4) as u8) << 4);
    tcp.push(s.flags);
    tcp.extend_from_slice(&64240u16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]);
    tcp.extend_from_slice(s.options);
    let check = fold(sum16(&tcp, pseudo(s.src, s.dst, tcp_len)));
    tcp[16..18].copy_from_slice(&check.to_be_bytes());

    let mut f = Vec::with_capacity(14 + 40 + tcp_len);
    f.extend_from_slice(&s.dst_mac);
    f.extend_from_slice(&s.src_mac);
    match (s.src, s.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            f.extend_from_slice(&[0x08, 0x00]);
            let total = (20 + tcp_len) as u16;
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&total.to_be_bytes());
            ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
            ip.extend_from_slice(&src.octets());
            ip.extend_from_slice(&dst.octets());
            let c = fold(sum16(&ip, 0));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend(ip);
        }
        (src, dst) => {
            f.extend_from_slice(&[0x86, 0xdd]);
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(tcp_len as u16).to_be_bytes());
            f.extend_from_slice(&[6, 64]);
            f.extend_from_slice(&v6_octets(src));
            f.extend_from_slice(&v6_octets(dst));
        }
    }
    f.extend(tcp);
    f
}

/// A TCP segment read back from a frame built as [`tcp_frame`] builds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub options: Vec<u8>,
    /// Both the IPv4 header's and the TCP checksum verify.
    pub checksums_ok: bool,
}

/// Reads a frame back; `None` when it is not Ethernet + IPv4/IPv6 + TCP, whole.
pub fn parse_tcp_frame(f: &[u8]) -> Option<Parsed> {
    let mac = |at: usize| -> Option<[u8; 6]> { f.get(at..at + 6)?.try_into().ok() };
    let (dst_mac, src_mac) = (mac(0)?, mac(6)?);
    let (src, dst, ttl, l4, ip_ok) = match f.get(12..14)? {
        [0x08, 0x00] => {
            let ip = f.get(14..34)?;
            let a = |o: usize| -> Option<IpAddr> {
                let b: [u8; 4] = ip.get(o..o + 4)?.try_into().ok()?;
                Some(IpAddr::from(b))
            };
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            (
                a(12)?,
                a(16)?,
                ip[8],
                f.get(34..14 + total)?,
                fold(sum16(ip, 0)) == 0,
            )
        }
        [0x86, 0xdd] => {
            let ip = f.get(14..54)?;
            let a = |o: usize| -> Option<IpAddr> {
                let b: [u8; 16] = ip.get(o..o + 16)?.try_into().ok()?;
                Some(IpAddr::from(b))
            };
            let len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            (a(8)?, a(24)?, ip[7], f.get(54..54 + len)?, true)
        }
        _ => return None,
    };
    let doff = usize::from(l4.get(12)? >> 4) * 4;
    let be16 = |o: usize| u16::from_be_bytes([l4[o], l4[o + 1]]);
    let be32 = |o: usize| u32::from_be_bytes([l4[o], l4[o + 1], l4[o + 2], l4[o + 3]]);
    if doff < 20 || l4.len() < doff {
        return None;
    }
    Some(Parsed {
        src_mac,
        dst_mac,
        src,
        dst,
        ttl,
        sport: be16(0),
        dport: be16(2),
        seq: be32(4),
        ack: be32(8),
        flags: l4[13],
        window: be16(14),
        options: l4[20..doff].to_vec(),
        checksums_ok: ip_ok && fold(sum16(l4, pseudo(src, dst, l4.len()))) == 0,
    })
}

/// The options of a segment as (kind, data) pairs, NOPs left out.
pub fn tcp_options(o: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < o.len() {
        match o[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let Some(&len) = o.get(i + 1) else { break };
                let len = usize::from(len);
                if len < 2 || i + len > o.len() {
                    break;
                }
                out.push((kind, o[i + 2..i + len].to_vec()));
                i += len;
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_with_valid_checksums() {
        for (src, dst) in [("198.18.0.2", "198.18.0.1"), ("2001:db8::2", "2001:db8::1")] {
            let seg = Segment {
                src_mac: [2, 0, 0, 0, 0, 2],
                dst_mac: [2, 0, 0, 0, 0, 1],
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                sport: 40000,
                dport: 443,
                seq: 7,
                ack: 0,
                flags: SYN,
                options: &LINUX_SYN_OPTIONS,
            };
            let p = parse_tcp_frame(&tcp_frame(&seg)).unwrap();
            assert!(p.checksums_ok);
            assert_eq!((p.sport, p.dport, p.seq, p.flags), (40000, 443, 7, SYN));
            assert_eq!(
                tcp_options(&p.options),
                vec![
                    (2, vec![0x05, 0xb4]),
                    (4, vec![]),
                    (8, vec![1, 2, 3, 4, 0, 0, 0, 0]),
                    (3, vec![7]),
                ]
            );
            let mut bad = tcp_frame(&seg);
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(!parse_tcp_frame(&bad).unwrap().checksums_ok);
        }
    }
}
