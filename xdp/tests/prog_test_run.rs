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

/// Runs this thread on `cpu` only: the rate state is per CPU, and BPF_PROG_TEST_RUN runs
/// the program on the calling thread's CPU.
fn pin_cpu(cpu: usize) {
    // SAFETY: cpu_set_t is plain data (all zeroes is the empty set); the pointer is valid for
    // the call.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(
        rc,
        0,
        "pinning to CPU {cpu}: {}",
        std::io::Error::last_os_error()
    );
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

#[test]
fn rate_limit_drops_above_burst_per_source() {
    pin_cpu(0);
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

#[test]
fn rate_limit_holds_per_cpu() {
    // The documented approximation: each CPU keeps its own buckets, so a source whose packets
    // land on several CPUs gets the limit on each of them.
    let mut p = prog();
    p.maps
        .as_mut()
        .unwrap()
        .set_config(Some(RateLimit { pps: 1, burst: 2 }), 0)
        .unwrap();
    let flood = v4("198.18.41.1");
    for cpu in 0..cpus().min(4) {
        pin_cpu(cpu);
        let verdicts: Vec<u32> = (0..4).map(|_| action(&mut p, &flood)).collect();
        assert_eq!(
            verdicts,
            [XDP_PASS, XDP_PASS, XDP_DROP, XDP_DROP],
            "on CPU {cpu}"
        );
    }
}

#[test]
fn rate_sketch_collisions_only_make_limits_stricter() {
    pin_cpu(0);
    let mut p = prog();
    let maps = p.maps.as_mut().unwrap();
    maps.set_config(Some(RateLimit { pps: 1, burst: 2 }), 0)
        .unwrap();
    let bits = maps.rate_bits();
    assert_eq!(
        bits, 16,
        "the test program's sketch has 65536 buckets per row"
    );
    let buckets = |a: Ipv4Addr| vigil_xdp::maps::rate_buckets(a.into(), bits);
    // A source sharing its row-0 bucket with the flooder, and one sharing none.
    let flooder = Ipv4Addr::new(198, 18, 42, 1);
    let fb = buckets(flooder);
    let mut twin = None;
    let mut apart = None;
    for n in 0..(1u32 << 17) {
        let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + n);
        let b = buckets(a);
        if a == flooder {
            continue;
        }
        if b[0] == fb[0] && b[1] != fb[1] && twin.is_none() {
            twin = Some(a);
        }
        if b[0] != fb[0] && b[1] != fb[1] && apart.is_none() {
            apart = Some(a);
        }
    }
    let (twin, apart) = (twin.expect("a colliding source"), apart.unwrap());
    let flood = v4(&flooder.to_string());
    let verdicts: Vec<u32> = (0..4).map(|_| action(&mut p, &flood)).collect();
    assert_eq!(verdicts, [XDP_PASS, XDP_PASS, XDP_DROP, XDP_DROP]);
    // The colliding source finds one of its buckets drained: it is limited too (the
    // sketch overestimates its rate), while a source with buckets of its own passes.
    assert_eq!(action(&mut p, &v4(&twin.to_string())), XDP_DROP);
    assert_eq!(action(&mut p, &v4(&apart.to_string())), XDP_PASS);
}

#[test]
fn rule_changes_never_let_a_covered_source_pass() {
    // One thread runs packets from an address a permanent /16 blocks while another adds and
    // removes longer prefixes over it, in both lists' tables: every change rebuilds the
    // tables beside the live ones and switches in one store, so not one packet may pass.
    let mut p = prog();
    add(&mut p, List::Block, "198.18.0.0/16", None);
    add(&mut p, List::Block, "2001:db8:77::/48", None);
    let dir = p.pin_dir().unwrap().to_owned();
    let mut writer = vigil_xdp::VigilMaps::open(&dir).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let frames = [v4("198.18.77.7"), v6("2001:db8:77:7::7")];
            let mut runs = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && runs < 100_000 {
                let f = &frames[runs as usize % 2];
                assert_eq!(p.run(f, 200).unwrap().action, XDP_DROP);
                runs += 1;
            }
            (p, runs)
        })
    };
    for i in 0..60u32 {
        for (net, wide) in [
            (format!("198.18.77.{}/32", i % 8), "198.18.77.0/24"),
            (
                format!("2001:db8:77:7::{}/128", i % 8),
                "2001:db8:77:7::/64",
            ),
        ] {
            let (net, wide) = (parse_cidr(&net).unwrap(), parse_cidr(wide).unwrap());
            writer.insert(List::Block, wide, None, "churn", 0).unwrap();
            writer.insert(List::Block, net, None, "churn", 0).unwrap();
            writer.remove(List::Block, wide).unwrap();
            writer.remove(List::Block, net).unwrap();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (p, runs) = runner.join().unwrap();
    assert!(runs > 10, "only {runs} runs overlapped the changes");
    assert_eq!(count(&p, Reason::Pass), 0, "a covered source passed");
    assert_eq!(count(&p, Reason::Blocked), u64::from(runs) * 200);
}

#[test]
fn counts_by_origin_follow_inserts_and_deletes() {
    let mut p = prog();
    let maps = p.maps.as_mut().unwrap();
    let net = |s: &str| parse_cidr(s).unwrap();
    maps.insert(List::Block, net("198.18.80.0/24"), None, "op", 0)
        .unwrap();
    maps.insert(
        List::Block,
        net("198.18.81.0/24"),
        None,
        "auto",
        vigil_xdp::abi::RULE_F_AUTO,
    )
    .unwrap();
    maps.insert_from(List::Block, net("2001:db8:81::/48"), None, "f", 0, "box-b")
        .unwrap();
    maps.insert(List::Allow, net("198.18.82.1"), None, "vip", 0)
        .unwrap();
    // Replacing a rule moves it between origins, it does not add one.
    maps.insert(
        List::Block,
        net("198.18.80.0/24"),
        None,
        "now auto",
        vigil_xdp::abi::RULE_F_AUTO,
    )
    .unwrap();
    let c = maps.rule_counts();
    assert_eq!(c.list(List::Block), 3);
    assert_eq!(c.get(List::Block, "auto-ban"), 2);
    assert_eq!(c.get(List::Block, "fleet"), 1);
    assert_eq!(c.get(List::Block, "operator"), 0);
    assert_eq!(c.get(List::Allow, "operator"), 1);
    maps.remove(List::Block, net("198.18.81.0/24")).unwrap();
    assert_eq!(maps.rule_counts().get(List::Block, "auto-ban"), 1);
    // A rebuild from the rule store (what attaching does) agrees with the counters.
    let before = maps.rule_counts();
    assert_eq!(maps.resync().unwrap(), 3);
    assert_eq!(maps.rule_counts(), before);
    assert_eq!(maps.flush(List::Block).unwrap(), 2);
    assert_eq!(maps.rule_counts().list(List::Block), 0);
    assert_eq!(maps.rule_counts().list(List::Allow), 1);
    assert!(maps.list(List::Block).unwrap().is_empty());
    assert_eq!(action(&mut p, &v4("198.18.80.1")), XDP_PASS);
    assert_eq!(action(&mut p, &v4("198.18.82.1")), XDP_PASS);
}

#[test]
fn ipv6_lookups_take_the_longest_prefix_and_expiry_uncovers_the_next() {
    let mut p = prog();
    add(&mut p, List::Block, "2001:db8:90::/48", None);
    add(&mut p, List::Allow, "2001:db8:90:1::/64", None);
    add(
        &mut p,
        List::Block,
        "2001:db8:90:1::5/128",
        Some(Duration::from_millis(100)),
    );
    add(
        &mut p,
        List::Allow,
        "2001:db8:90:2::/64",
        Some(Duration::from_millis(100)),
    );
    assert_eq!(
        action(&mut p, &v6("2001:db8:90:1::5")),
        XDP_PASS,
        "allow wins"
    );
    assert_eq!(action(&mut p, &v6("2001:db8:90:2::9")), XDP_PASS);
    assert_eq!(action(&mut p, &v6("2001:db8:90:3::9")), XDP_DROP);
    assert_eq!(action(&mut p, &v6("2001:db8:91::1")), XDP_PASS);
    sleep(Duration::from_millis(250));
    // The expired allow uncovers the /48 block under it.
    assert_eq!(action(&mut p, &v6("2001:db8:90:2::9")), XDP_DROP);
    assert_eq!(action(&mut p, &v6("2001:db8:90:1::5")), XDP_PASS);
}

/// Random nested IPv6 rules of both lists, each probe address checked against a plain model:
/// any covering allow passes, else the longest covering block drops. `tops` distinct /32s
/// (few: buckets overflow into the binary search; many: buckets answer), lengths from
/// `min_len` (below 32: the search serves the short prefixes too).
fn check_ipv6_against_model(tops: u64, min_len: u8, rules_n: usize) {
    let mut p = prog();
    let mut seed = 0x1234_5678_u64 ^ tops;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seed >> 11
    };
    let base = u128::from("2001:db8::".parse::<std::net::Ipv6Addr>().unwrap());
    let mut addr = || {
        base | (u128::from(next() % tops) << 96)
            | (u128::from(next() % 4) << 94)
            | (u128::from(next() % 8) << 60)
            | u128::from(next() % 4)
    };
    let mut rules: Vec<(ipnet::Ipv6Net, List)> = Vec::new();
    for i in 0..rules_n {
        let a = addr();
        let len = min_len + (seed_len(i) % u64::from(129 - min_len)) as u8;
        let net = ipnet::Ipv6Net::new(a.into(), len).unwrap().trunc();
        let list = if i % 5 == 0 { List::Allow } else { List::Block };
        if rules.iter().any(|(n, l)| *n == net && *l == list) {
            continue;
        }
        add(&mut p, list, &net.to_string(), None);
        rules.push((net, list));
    }
    let covered =
        |a: std::net::Ipv6Addr, list: List| rules.iter().any(|(n, l)| *l == list && n.contains(&a));
    for _ in 0..400 {
        let a: std::net::Ipv6Addr = addr().into();
        let want = if covered(a, List::Allow) || !covered(a, List::Block) {
            XDP_PASS
        } else {
            XDP_DROP
        };
        assert_eq!(action(&mut p, &v6(&a.to_string())), want, "{a}");
    }
}

/// Lengths spread by a fixed sequence (a multiplicative hash of the rule's index).
fn seed_len(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40
}

#[test]
fn ipv6_search_agrees_with_a_longest_match_model_over_many_lengths() {
    // One /32: its bucket overflows and the binary search answers.
    check_ipv6_against_model(1, 33, 80);
}

#[test]
fn ipv6_buckets_agree_with_a_longest_match_model() {
    // Many /32s: most buckets answer alone; prefixes down to /16 go through the search.
    check_ipv6_against_model(40, 16, 120);
}
