//! The one test frame every case uses: Ethernet + IPv4 + UDP, padded to a fixed length so the
//! program-cost cases and the veth sender all see packets of the same size.

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::bail;

const ETH_HLEN: usize = 14;
const IPV4_HLEN: usize = 20;
const UDP_HLEN: usize = 8;
/// The smallest frame that holds all three headers.
pub const MIN_LEN: usize = ETH_HLEN + IPV4_HLEN + UDP_HLEN;

/// Addresses of one frame. MACs only matter on the veth (the host end's address keeps the
/// frame from being "other host"); the program never looks at them.
#[derive(Clone, Copy, Debug)]
pub struct Endpoints {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
}

impl Endpoints {
    /// For `BPF_PROG_TEST_RUN`, where nothing but the source address matters.
    pub fn test_run(src: Ipv4Addr) -> Self {
        Endpoints {
            dst_mac: [0x02, 0, 0, 0, 0, 0x01],
            src_mac: [0x02, 0, 0, 0, 0, 0x02],
            src,
            dst: Ipv4Addr::new(198, 18, 0, 1),
        }
    }
}

/// A UDP datagram (port 40000 to the discard port) filling exactly `len` bytes of frame, with
/// a valid IPv4 header checksum and no UDP checksum (0 = none, legal for IPv4).
pub fn udp4(ep: &Endpoints, len: usize) -> anyhow::Result<Vec<u8>> {
    if !(MIN_LEN..=1514).contains(&len) {
        bail!("frame length {len} is outside {MIN_LEN}..=1514 bytes");
    }
    let ip_len = u16::try_from(len - ETH_HLEN)?;
    let udp_len = ip_len - IPV4_HLEN as u16;
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&ep.dst_mac);
    f.extend_from_slice(&ep.src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let ip_start = f.len();
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&ip_len.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&ep.src.octets());
    f.extend_from_slice(&ep.dst.octets());
    let sum = ipv4_checksum(&f[ip_start..ip_start + IPV4_HLEN]);
    f[ip_start + 10..ip_start + 12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&9u16.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.resize(len, 0);
    Ok(f)
}

const IPV6_HLEN: usize = 40;

/// An IPv6 UDP datagram from `src` filling exactly `len` bytes of frame, for
/// `BPF_PROG_TEST_RUN` (the program reads only the headers; the UDP checksum is left 0).
pub fn udp6_test_run(src: Ipv6Addr, len: usize) -> anyhow::Result<Vec<u8>> {
    let min = ETH_HLEN + IPV6_HLEN + UDP_HLEN;
    if !(min..=1514).contains(&len) {
        bail!("frame length {len} is outside {min}..=1514 bytes for IPv6");
    }
    let payload = u16::try_from(len - ETH_HLEN - IPV6_HLEN)?;
    let ep = Endpoints::test_run(Ipv4Addr::UNSPECIFIED);
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&ep.dst_mac);
    f.extend_from_slice(&ep.src_mac);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&payload.to_be_bytes());
    f.extend_from_slice(&[17, 64]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&9u16.to_be_bytes());
    f.extend_from_slice(&payload.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.resize(len, 0);
    Ok(f)
}

/// RFC 1071 one's-complement sum over a header whose checksum field is zero.
fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frame_has_the_asked_length_and_a_valid_header() {
        let ep = Endpoints::test_run(Ipv4Addr::new(198, 19, 77, 11));
        let f = udp4(&ep, 64).unwrap();
        assert_eq!(f.len(), 64);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 50);
        assert_eq!(&f[26..30], &[198, 19, 77, 11]);
        // A header with its checksum in place sums to zero.
        assert_eq!(ipv4_checksum(&f[14..34]), 0);
        assert_eq!(u16::from_be_bytes([f[38], f[39]]), 30);
    }

    #[test]
    fn ipv6_frame_has_the_asked_length_and_source() {
        let src: Ipv6Addr = "2001:db8:77::11".parse().unwrap();
        let f = udp6_test_run(src, 64).unwrap();
        assert_eq!(f.len(), 64);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        assert_eq!(f[14] >> 4, 6);
        assert_eq!(&f[22..38], &src.octets());
        assert_eq!(u16::from_be_bytes([f[18], f[19]]), 10);
        assert!(udp6_test_run(src, 61).is_err());
    }

    #[test]
    fn refuses_lengths_that_cannot_hold_the_headers() {
        let ep = Endpoints::test_run(Ipv4Addr::LOCALHOST);
        assert!(udp4(&ep, MIN_LEN - 1).is_err());
        assert!(udp4(&ep, MIN_LEN).is_ok());
        assert!(udp4(&ep, 1515).is_err());
    }
}
