//! The program's verdicts on crafted frames, through BPF_PROG_TEST_RUN (needs root).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{net::Ipv4Addr, thread::sleep, time::Duration};

use vigil_xdp::{
    List, RateLimit,
    abi::Reason,
    parse_cidr,
    testrun::{TestProgram, XDP_DROP, XDP_PASS},
};

const ETH_IP: [u8; 2] = [0x08, 0x00];
const ETH_IP6: [u8; 2] = [0x86, 0xdd];
const ETH_ARP: [u8; 2] = [0x08, 0x06];
const ETH_8021Q: [u8; 2] = [0x81, 0x00];
const ETH_8021AD: [u8; 2] = [0x88, 0xa8];

fn eth(ethertypes: &[[u8; 2]]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for (i, t) in ethertypes.iter().enumerate() {
        f.extend_from_slice(t);
        if i + 1 < ethertypes.len() {
            f.extend_from_slice(&[0x00, 0x64]); // VLAN TCI (id 100); next type follows
        }
    }
    f
}

/// An IPv4 + UDP packet from `src`, with `opt_words` 32-bit words of IP options.
fn ipv4(src: &str, opt_words: u8) -> Vec<u8> {
    let src: Ipv4Addr = src.parse().unwrap();
    let ihl = 5 + opt_words;
    let hdr_len = usize::from(ihl) * 4;
    let total = hdr_len + 8 + 4;
    let mut p = vec![
        0x40 | ihl,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&[198, 19, 0, 1]);
    p.extend(std::iter::repeat_n(0x01u8, usize::from(opt_words) * 4)); // NOP options
    p.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 12, 0, 0, b'v', b'i', b'g', b'l']);
    p
}

fn ipv6(src: &str) -> Vec<u8> {
    let src: std::net::Ipv6Addr = src.parse().unwrap();
    let mut p = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(
        &"2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    p.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 8, 0, 0]);
    p
}

fn frame(types: &[[u8; 2]], l3: Vec<u8>) -> Vec<u8> {
    let mut f = eth(types);
    f.extend(l3);
    f
}

fn v4(src: &str) -> Vec<u8> {
    frame(&[ETH_IP], ipv4(src, 0))
}

fn v6(src: &str) -> Vec<u8> {
    frame(&[ETH_IP6], ipv6(src))
}

fn prog() -> TestProgram {
    TestProgram::vigil().expect("loading the program (tests need root)")
}

fn add(p: &mut TestProgram, list: List, cidr: &str, ttl: Option<Duration>) {
    let maps = p.maps.as_mut().unwrap();
    maps.insert(list, parse_cidr(cidr).unwrap(), ttl, "test", 0)
        .unwrap();
}

fn action(p: &mut TestProgram, f: &[u8]) -> u32 {
    p.run(f, 1).unwrap().action
}

fn count(p: &TestProgram, r: Reason) -> u64 {
    p.maps.as_ref().unwrap().counters().unwrap().get(r).packets
}

#[test]
fn passes_unlisted_sources_and_counts_them() {
    let mut p = prog();
    assert_eq!(action(&mut p, &v4("198.18.0.1")), XDP_PASS);
    assert_eq!(action(&mut p, &v6("2001:db8::1")), XDP_PASS);
    assert_eq!(count(&p, Reason::Pass), 2);
    let bytes = p
        .maps
        .as_ref()
        .unwrap()
        .counters()
        .unwrap()
        .get(Reason::Pass)
        .bytes;
    assert_eq!(
        bytes,
        (v4("198.18.0.1").len() + v6("2001:db8::1").len()) as u64
    );
}

#[test]
fn blocks_v4_and_v6_by_longest_prefix() {
    let mut p = prog();
    add(&mut p, List::Block, "198.18.7.0/24", None);
    add(&mut p, List::Block, "2001:db8:bad::/48", None);
    assert_eq!(action(&mut p, &v4("198.18.7.200")), XDP_DROP);
    assert_eq!(action(&mut p, &v4("198.18.8.1")), XDP_PASS);
    assert_eq!(action(&mut p, &v6("2001:db8:bad::99")), XDP_DROP);
    assert_eq!(action(&mut p, &v6("2001:db8:bae::1")), XDP_PASS);
    assert_eq!(count(&p, Reason::Blocked), 2);
    // Deleting the rule lets the source back in.
    assert!(
        p.maps
            .as_mut()
            .unwrap()
            .remove(List::Block, parse_cidr("198.18.7.0/24").unwrap())
            .unwrap()
    );
    assert_eq!(action(&mut p, &v4("198.18.7.200")), XDP_PASS);
}

#[test]
fn allowlist_wins_over_blocklist() {
    let mut p = prog();
    add(&mut p, List::Block, "198.18.0.0/16", None);
    add(&mut p, List::Allow, "198.18.5.0/24", None);
    add(&mut p, List::Block, "198.18.5.5/32", None); // more specific block still loses
    add(&mut p, List::Allow, "2001:db8::/32", None);
    add(&mut p, List::Block, "2001:db8::1/128", None);
    assert_eq!(action(&mut p, &v4("198.18.5.5")), XDP_PASS);
    assert_eq!(action(&mut p, &v4("198.18.6.5")), XDP_DROP);
    assert_eq!(action(&mut p, &v6("2001:db8::1")), XDP_PASS);
    assert_eq!(count(&p, Reason::Allowlisted), 2);
    assert_eq!(count(&p, Reason::Blocked), 1);
}

#[test]
fn expired_rules_stop_applying_and_uncover_shorter_prefixes() {
    let mut p = prog();
    add(
        &mut p,
        List::Block,
        "198.18.9.9/32",
        Some(Duration::from_millis(150)),
    );
    add(&mut p, List::Block, "198.18.10.0/24", None);
    add(
        &mut p,
        List::Block,
        "198.18.10.10/32",
        Some(Duration::from_millis(150)),
    );
    add(
        &mut p,
        List::Block,
        "2001:db8:1::1/128",
        Some(Duration::from_millis(150)),
    );
    assert_eq!(action(&mut p, &v4("198.18.9.9")), XDP_DROP);
    assert_eq!(action(&mut p, &v6("2001:db8:1::1")), XDP_DROP);
    sleep(Duration::from_millis(300));
    assert_eq!(
        action(&mut p, &v4("198.18.9.9")),
        XDP_PASS,
        "expired /32 still dropping"
    );
    assert_eq!(action(&mut p, &v6("2001:db8:1::1")), XDP_PASS);
    // The expired /32 must not hide the permanent /24 under it.
    assert_eq!(action(&mut p, &v4("198.18.10.10")), XDP_DROP);
    // The sweep removes exactly the expired rules.
    let swept = p.maps.as_mut().unwrap().sweep_expired().unwrap();
    let mut cidrs: Vec<String> = swept.iter().map(|(_, e)| e.cidr.to_string()).collect();
    cidrs.sort();
    assert_eq!(
        cidrs,
        ["198.18.10.10/32", "198.18.9.9/32", "2001:db8:1::1/128"]
    );
    let left = p.maps.as_ref().unwrap().list(List::Block).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].cidr.to_string(), "198.18.10.0/24");
}

#[test]
fn parses_vlan_tags() {
    let mut p = prog();
    add(&mut p, List::Block, "198.18.20.1", None);
    add(&mut p, List::Block, "2001:db8:20::1", None);
    let single = frame(&[ETH_8021Q, ETH_IP], ipv4("198.18.20.1", 0));
    let qinq = frame(&[ETH_8021AD, ETH_8021Q, ETH_IP], ipv4("198.18.20.1", 0));
    let qinq6 = frame(&[ETH_8021AD, ETH_8021Q, ETH_IP6], ipv6("2001:db8:20::1"));
    let ok = frame(&[ETH_8021Q, ETH_IP], ipv4("198.18.20.2", 0));
    assert_eq!(action(&mut p, &single), XDP_DROP);
    assert_eq!(action(&mut p, &qinq), XDP_DROP);
    assert_eq!(action(&mut p, &qinq6), XDP_DROP);
    assert_eq!(action(&mut p, &ok), XDP_PASS);
    assert_eq!(count(&p, Reason::Blocked), 3);
    // A third tag is not parsed, so the frame is refused rather than passed unexamined.
    let triple = frame(
        &[ETH_8021Q, ETH_8021Q, ETH_8021Q, ETH_IP],
        ipv4("198.18.20.2", 0),
    );
    assert_eq!(action(&mut p, &triple), XDP_DROP);
    assert_eq!(count(&p, Reason::Malformed), 1);
}

#[test]
fn ipv4_options_are_skipped_not_trusted() {
    let mut p = prog();
    add(&mut p, List::Block, "198.18.30.1", None);
    assert_eq!(
        action(&mut p, &frame(&[ETH_IP], ipv4("198.18.30.1", 10))),
        XDP_DROP
    );
    assert_eq!(
        action(&mut p, &frame(&[ETH_IP], ipv4("198.18.30.2", 3))),
        XDP_PASS
    );
    assert_eq!(count(&p, Reason::Blocked), 1);
}

#[test]
fn truncated_and_malformed_headers_are_dropped() {
    let mut p = prog();
    let mut cases: Vec<Vec<u8>> = Vec::new();
    // IPv4 header cut short.
    cases.push(frame(&[ETH_IP], ipv4("198.18.0.1", 0)[..10].to_vec()));
    // IHL claims options the frame does not carry.
    let mut long_ihl = ipv4("198.18.0.1", 0)[..20].to_vec();
    long_ihl[0] = 0x4f;
    cases.push(frame(&[ETH_IP], long_ihl));
    // IHL below the minimum.
    let mut short_ihl = ipv4("198.18.0.1", 0);
    short_ihl[0] = 0x44;
    cases.push(frame(&[ETH_IP], short_ihl));
    // Total length shorter than the header.
    let mut short_total = ipv4("198.18.0.1", 0);
    short_total[2] = 0;
    short_total[3] = 10;
    cases.push(frame(&[ETH_IP], short_total));
    // Version field disagreeing with the ethertype.
    let mut wrong_version = ipv4("198.18.0.1", 0);
    wrong_version[0] = 0x65;
    cases.push(frame(&[ETH_IP], wrong_version));
    // IPv6 header cut short; VLAN tag cut short.
    cases.push(frame(&[ETH_IP6], ipv6("2001:db8::1")[..30].to_vec()));
    let mut vlan_cut = eth(&[ETH_8021Q]);
    vlan_cut.extend_from_slice(&[0x00]);
    cases.push(vlan_cut);
    for (i, c) in cases.iter().enumerate() {
        assert_eq!(action(&mut p, c), XDP_DROP, "case {i}");
    }
    assert_eq!(count(&p, Reason::Malformed), cases.len() as u64);
}

#[test]
fn non_ip_frames_pass() {
    let mut p = prog();
    add(&mut p, List::Block, "0.0.0.0/0", None);
    let arp = frame(&[ETH_ARP], vec![0u8; 28]);
    assert_eq!(action(&mut p, &arp), XDP_PASS);
    assert_eq!(count(&p, Reason::NonIp), 1);
    // 0.0.0.0/0 blocks every IPv4 source.
    assert_eq!(action(&mut p, &v4("198.18.0.1")), XDP_DROP);
}

#[test]
fn rate_limit_drops_above_burst_per_source() {
    let mut p = prog();
    // 1 packet/s with a burst of 3: the 4th packet in quick succession is over the limit.
    p.maps
        .as_mut()
        .unwrap()
        .set_config(Some(RateLimit { pps: 1, burst: 3 }), 0)
        .unwrap();
    add(&mut p, List::Allow, "198.18.40.9", None);
    let flood = v4("198.18.40.1");
    let verdicts: Vec<u32> = (0..6).map(|_| action(&mut p, &flood)).collect();
    assert_eq!(
        verdicts,
        [XDP_PASS, XDP_PASS, XDP_PASS, XDP_DROP, XDP_DROP, XDP_DROP]
    );
    assert_eq!(count(&p, Reason::RateLimited), 3);
    // Limits are per source: another address still has its burst.
    assert_eq!(action(&mut p, &v4("198.18.40.2")), XDP_PASS);
    assert_eq!(action(&mut p, &v6("2001:db8::40")), XDP_PASS);
    // Allowlisted sources are never rate limited.
    let vip = v4("198.18.40.9");
    assert!((0..10).all(|_| action(&mut p, &vip) == XDP_PASS));
    // After a second, the flooding source earns one more packet.
    sleep(Duration::from_millis(1100));
    assert_eq!(action(&mut p, &flood), XDP_PASS);
    assert_eq!(action(&mut p, &flood), XDP_DROP);
    // Turning the limit off passes everything again.
    p.maps.as_mut().unwrap().set_config(None, 0).unwrap();
    assert_eq!(action(&mut p, &flood), XDP_PASS);
}

#[test]
fn list_shows_reason_ttl_and_origin() {
    let mut p = prog();
    let maps = p.maps.as_mut().unwrap();
    maps.insert(
        List::Block,
        parse_cidr("198.18.50.0/24").unwrap(),
        Some(Duration::from_secs(600)),
        "scanner",
        0,
    )
    .unwrap();
    maps.insert(
        List::Block,
        parse_cidr("2001:db8:50::/64").unwrap(),
        None,
        "auto-ban: 401 burst",
        vigil_xdp::abi::RULE_F_AUTO,
    )
    .unwrap();
    let long = "x".repeat(60);
    assert!(
        maps.insert(
            List::Block,
            parse_cidr("198.18.51.0/24").unwrap(),
            None,
            &long,
            0
        )
        .is_err()
    );
    let list = maps.list(List::Block).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].reason, "scanner");
    let left = list[0].expires_in_secs.unwrap();
    assert!((599..=600).contains(&left), "{left}");
    assert!(!list[0].auto);
    assert_eq!(list[1].expires_in_secs, None);
    assert!(list[1].auto);
    assert!(maps.list(List::Allow).unwrap().is_empty());
}

#[test]
fn empty_allowlists_are_skipped_but_never_ignored_when_filled() {
    let mut p = prog();
    add(&mut p, List::Block, "198.18.60.0/24", None);
    let cfg = |p: &TestProgram| p.maps.as_ref().unwrap().config().unwrap();
    assert_eq!((cfg(&p).allow_v4_used, cfg(&p).allow_v6_used), (0, 0));
    add(&mut p, List::Allow, "198.18.60.1", None);
    add(&mut p, List::Allow, "198.18.60.2", None);
    assert_eq!((cfg(&p).allow_v4_used, cfg(&p).allow_v6_used), (1, 0));
    assert_eq!(action(&mut p, &v4("198.18.60.1")), XDP_PASS);
    let maps = p.maps.as_mut().unwrap();
    maps.remove(List::Allow, parse_cidr("198.18.60.1").unwrap())
        .unwrap();
    // One entry left: still looked up.
    assert_eq!(cfg(&p).allow_v4_used, 1);
    assert_eq!(action(&mut p, &v4("198.18.60.1")), XDP_DROP);
    assert_eq!(action(&mut p, &v4("198.18.60.2")), XDP_PASS);
    p.maps
        .as_mut()
        .unwrap()
        .remove(List::Allow, parse_cidr("198.18.60.2").unwrap())
        .unwrap();
    assert_eq!(cfg(&p).allow_v4_used, 0);
    assert_eq!(action(&mut p, &v4("198.18.60.2")), XDP_DROP);
    // Rate-limit changes keep the flags.
    add(&mut p, List::Allow, "2001:db8:60::/48", None);
    p.maps
        .as_mut()
        .unwrap()
        .set_config(
            Some(RateLimit {
                pps: 100,
                burst: 100,
            }),
            0,
        )
        .unwrap();
    assert_eq!(cfg(&p).allow_v6_used, 1);
    assert_eq!(action(&mut p, &v6("2001:db8:60::1")), XDP_PASS);
    assert_eq!(count(&p, Reason::Allowlisted), 3);
}
