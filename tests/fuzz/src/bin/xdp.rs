//! Frames through Vigil's XDP program with `BPF_PROG_TEST_RUN` (root, bpffs). The program is
//! loaded and verified once, before the fork server starts, with a few allow and block rules;
//! every input is then one test run, checked against a userspace model of the verdict the ABI
//! documents (allowlist ▸ blocklist ▸ pass; malformed, truncated and triple-tagged frames
//! dropped; non-IP passed). The action and the counter the program bumped must both match.
//!
//! The BPF program itself is not instrumented (it is C, compiled for the kernel): coverage
//! comes from the model, which branches on the same header fields, so the fuzzer still learns
//! the frame structure and drives the program through every parse path.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vigil_xdp::abi::Reason;
use vigil_xdp::testrun::{TestProgram, XDP_DROP, XDP_PASS};
use vigil_xdp::{List, parse_cidr};

const ALLOW: [&str; 3] = ["198.51.100.0/24", "192.0.2.128/25", "2001:db8:a::/48"];
const BLOCK: [&str; 5] = [
    "203.0.113.0/24",
    "10.0.0.0/8",
    "198.51.100.7/32",
    "2001:db8:b::/48",
    "::ffff:0:0/96",
];
/// Largest frame `BPF_PROG_TEST_RUN` takes for XDP is a page less head- and tailroom; an
/// Ethernet MTU frame is what matters.
const MAX_FRAME: usize = 1514;

fn main() {
    let mut prog = TestProgram::vigil().unwrap_or_else(|e| panic!("loading the program: {e}"));
    {
        let Some(maps) = prog.maps.as_mut() else {
            panic!("the test program has no maps");
        };
        for (list, cidrs) in [(List::Allow, &ALLOW[..]), (List::Block, &BLOCK[..])] {
            for c in cidrs {
                let net = parse_cidr(c).unwrap_or_else(|e| panic!("{c}: {e}"));
                maps.insert(list, net, None, "fuzz", 0)
                    .unwrap_or_else(|e| panic!("inserting {c}: {e}"));
            }
        }
        maps.set_config(None, 0)
            .unwrap_or_else(|e| panic!("config map: {e}"));
    }
    // The maps stay alive through the program's and our file descriptors; unpinning now means
    // a crashed or killed fuzzer leaves nothing behind in /sys/fs/bpf.
    if let Some(dir) = prog.pin_dir() {
        let _ = std::fs::remove_dir_all(dir);
    }
    let allow: Vec<_> = ALLOW.iter().filter_map(|c| parse_cidr(c).ok()).collect();
    let block: Vec<_> = BLOCK.iter().filter_map(|c| parse_cidr(c).ok()).collect();
    afl::fuzz!(|data: &[u8]| {
        // The kernel refuses frames shorter than an Ethernet header (EINVAL, not a verdict).
        if data.len() < 14 || data.len() > MAX_FRAME {
            return;
        }
        let expected = model(
            data,
            &|a: IpAddr| allow.iter().any(|n| n.contains(&a)),
            &|a: IpAddr| block.iter().any(|n| n.contains(&a)),
        );
        // Read around every run: the counters live in the kernel and outlast each forked child.
        let before = counts(&prog);
        let run = prog
            .run(data, 1)
            .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN: {e}"));
        let now = counts(&prog);
        let bumped: Vec<Reason> = Reason::ALL
            .into_iter()
            .zip(now.iter().zip(&before))
            .filter(|(_, (n, l))| n > l)
            .map(|(r, _)| r)
            .collect();
        let want_action = if expected.drops() { XDP_DROP } else { XDP_PASS };
        assert_eq!(
            run.action, want_action,
            "action {} for a frame the ABI gives {expected:?}",
            run.action
        );
        assert_eq!(
            bumped,
            vec![expected],
            "counter bumped (model: {expected:?})"
        );
    });
}

fn counts(prog: &TestProgram) -> Vec<u64> {
    let Some(maps) = prog.maps.as_ref() else {
        return Vec::new();
    };
    let c = maps
        .counters()
        .unwrap_or_else(|e| panic!("reading counters: {e}"));
    Reason::ALL.iter().map(|r| c.get(*r).packets).collect()
}

fn be16(f: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]))
}

/// The verdict `bpf/vigil.c` documents for a frame, without rate limiting.
fn model(f: &[u8], allowed: &dyn Fn(IpAddr) -> bool, blocked: &dyn Fn(IpAddr) -> bool) -> Reason {
    const VLAN: [u16; 2] = [0x8100, 0x88a8];
    let Some(mut proto) = be16(f, 12) else {
        return Reason::Malformed;
    };
    let mut off = 14;
    for _ in 0..2 {
        if !VLAN.contains(&proto) {
            break;
        }
        let Some(inner) = be16(f, off + 2) else {
            return Reason::Malformed;
        };
        proto = inner;
        off += 4;
    }
    if VLAN.contains(&proto) {
        return Reason::Malformed;
    }
    let src = match proto {
        0x0800 => {
            let Some(ip) = f.get(off..off + 20) else {
                return Reason::Malformed;
            };
            let ihl = usize::from(ip[0] & 0x0f);
            if ip[0] >> 4 != 4 || ihl < 5 {
                return Reason::Malformed;
            }
            let tot_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            if f.len() < off + ihl * 4 || tot_len < ihl * 4 {
                return Reason::Malformed;
            }
            IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]))
        }
        0x86dd => {
            let Some(ip) = f.get(off..off + 40) else {
                return Reason::Malformed;
            };
            if ip[0] >> 4 != 6 {
                return Reason::Malformed;
            }
            let mut a = [0u8; 16];
            a.copy_from_slice(&ip[8..24]);
            IpAddr::V6(Ipv6Addr::from(a))
        }
        _ => return Reason::NonIp,
    };
    if allowed(src) {
        Reason::Allowlisted
    } else if blocked(src) {
        Reason::Blocked
    } else {
        Reason::Pass
    }
}
