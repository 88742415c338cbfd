//! The SYN guard on crafted segments, through BPF_PROG_TEST_RUN (needs root): the SYN-ACK it
//! writes, the cookie it puts there and checks again on the ACK, the threshold, the ports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use vigil_xdp::{
    SynGuard, SynGuardPort,
    abi::Reason,
    frames::{self, ACK, FIN, LINUX_SYN_OPTIONS, RST, SYN, Segment},
    testrun::{TestProgram, XDP_DROP, XDP_PASS, XDP_TX},
};

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const BOX_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

fn guard(ports: &[(u16, u32)]) -> SynGuard {
    SynGuard {
        ports: ports
            .iter()
            .map(|&(port, syn_rate)| SynGuardPort { port, syn_rate })
            .collect(),
        hold: Duration::from_secs(10),
        mss4: 1460,
        mss6: 1440,
        wscale: 7,
        ttl: 64,
    }
}

fn prog(ports: &[(u16, u32)]) -> TestProgram {
    let mut p = TestProgram::vigil().expect("loading the program (tests need root)");
    p.maps
        .as_mut()
        .unwrap()
        .set_syn_guard(Some(&guard(ports)))
        .unwrap();
    p
}

fn seg<'a>(src: &str, dst: &str, dport: u16, flags: u8, options: &'a [u8]) -> Segment<'a> {
    Segment {
        src_mac: CLIENT_MAC,
        dst_mac: BOX_MAC,
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        sport: 40123,
        dport,
        seq: 1_000_000,
        ack: 0,
        flags,
        options,
    }
}

/// A Linux client's SYN from 198.18.9.2 to the box's `port`, framed.
fn linux_syn(port: u16) -> Vec<u8> {
    frames::tcp_frame(&seg(
        "198.18.9.2",
        "198.18.9.1",
        port,
        SYN,
        &LINUX_SYN_OPTIONS,
    ))
}

fn count(p: &TestProgram, r: Reason) -> u64 {
    p.maps.as_ref().unwrap().counters().unwrap().get(r).packets
}

/// Sends the SYN, checks the SYN-ACK field by field and returns its cookie.
fn syn_ack(p: &mut TestProgram, syn: &Segment<'_>) -> u32 {
    let (action, out) = p.run_out(&frames::tcp_frame(syn)).unwrap();
    assert_eq!(action, XDP_TX, "a guarded SYN is answered from XDP");
    let r = frames::parse_tcp_frame(&out).expect("the reply is a TCP frame");
    assert!(r.checksums_ok, "IP and TCP checksums of the SYN-ACK verify");
    assert_eq!((r.src_mac, r.dst_mac), (BOX_MAC, CLIENT_MAC));
    assert_eq!((r.src, r.dst), (syn.dst, syn.src));
    assert_eq!((r.sport, r.dport), (syn.dport, syn.sport));
    assert_eq!(r.flags, SYN | ACK);
    assert_eq!(r.ack, syn.seq + 1);
    assert_eq!(r.window, 0, "no data before the proxy has the connection");
    assert_eq!(r.ttl, 64);
    r.seq
}

#[test]
fn syns_get_cookies_and_only_acks_carrying_one_pass() {
    for (src, dst, mss) in [
        ("198.18.9.2", "198.18.9.1", 1460u16),
        ("2001:db8:9::2", "2001:db8:9::1", 1440),
    ] {
        let mut p = prog(&[(443, 0)]);
        let syn = seg(src, dst, 443, SYN, &LINUX_SYN_OPTIONS);
        let (_, out) = p.run_out(&frames::tcp_frame(&syn)).unwrap();
        let opts = frames::tcp_options(&frames::parse_tcp_frame(&out).unwrap().options);
        // MSS ours, SACK kept, the client's TSval echoed, our window scale.
        assert_eq!(opts[0], (2, mss.to_be_bytes().to_vec()), "{src}");
        assert_eq!(opts[1], (4, vec![]));
        assert_eq!(opts[2].0, 8);
        assert_eq!(
            &opts[2].1[4..],
            &[1, 2, 3, 4],
            "TSecr echoes the client's TSval"
        );
        // The TSval low bits carry the client's window scale (7) and SACK, as the kernel's
        // timestamp cookie does.
        assert_eq!(opts[2].1[3] & 0x3f, 7 | 0x10);
        assert_eq!(opts[3], (3, vec![7]));
        let cookie = syn_ack(&mut p, &syn);

        let mut ack = seg(src, dst, 443, ACK, &[]);
        ack.seq = syn.seq + 1;
        ack.ack = cookie.wrapping_add(1);
        let (action, _) = p.run_out(&frames::tcp_frame(&ack)).unwrap();
        assert_eq!(
            action, XDP_PASS,
            "{src}: the ACK with the cookie goes to the proxy"
        );
        // Off by one in the cookie's hash bits (not its low MSS-index bits, where a neighbour
        // can decode as another valid MSS, as in the kernel).
        ack.ack = (cookie ^ 0x0100_0000).wrapping_add(1);
        let (action, _) = p.run_out(&frames::tcp_frame(&ack)).unwrap();
        assert_eq!(action, XDP_DROP, "{src}: a guessed ACK is dropped");
        let (action, _) = p
            .run_out(&frames::tcp_frame(&seg(src, dst, 443, RST, &[])))
            .unwrap();
        assert_eq!(
            action, XDP_DROP,
            "{src}: a RST for no connection is dropped"
        );

        assert_eq!(count(&p, Reason::SynCookie), 2);
        assert_eq!(count(&p, Reason::SynCookieAck), 1);
        assert_eq!(count(&p, Reason::SynGuardDrop), 2);
        let st = p.maps.as_ref().unwrap().syn_guard_status().unwrap();
        assert_eq!(st.len(), 1);
        assert_eq!(
            (
                st[0].port,
                st[0].armed,
                st[0].syns,
                st[0].cookies,
                st[0].cookie_acks,
                st[0].dropped
            ),
            (443, true, 2, 2, 1, 2)
        );
    }
}

/// LINUX_SYN_OPTIONS with a jumbo MSS (9000).
const JUMBO_SYN_OPTIONS: [u8; 20] = {
    let mut o = LINUX_SYN_OPTIONS;
    o[2] = 0x23;
    o[3] = 0x28;
    o
};

/// The SYN-ACK's zero window leaves a client whose ACK was lost nothing to send but zero-window
/// probes (seq = ISN, one before the ACK's): the guard turns such a probe into the lost ACK
/// (seq + 1, checksum updated) instead of dropping the client's only way in. That needs a
/// cookie with the last MSS index (IPv4 1460, IPv6 8940), where one off in seq cannot decode
/// as another MSS.
#[test]
fn a_window_probe_after_a_lost_ack_stands_in_for_it() {
    for (src, dst, options) in [
        ("198.18.9.2", "198.18.9.1", &LINUX_SYN_OPTIONS),
        ("2001:db8:9::2", "2001:db8:9::1", &JUMBO_SYN_OPTIONS),
    ] {
        let mut p = prog(&[(443, 0)]);
        let syn = seg(src, dst, 443, SYN, options);
        let cookie = syn_ack(&mut p, &syn);

        let mut probe = seg(src, dst, 443, ACK, &[]);
        probe.seq = syn.seq; // snd_una - 1
        probe.ack = cookie.wrapping_add(1);
        // As it comes off a wire: padded to the 60-byte minimum frame.
        let mut frame = frames::tcp_frame(&probe);
        frame.resize(frame.len().max(60), 0);
        let (action, out) = p.run_out(&frame).unwrap();
        assert_eq!(action, XDP_PASS, "{src}: the probe goes to the proxy");
        let r = frames::parse_tcp_frame(&out).unwrap();
        assert_eq!(r.seq, syn.seq + 1, "{src}: rewritten into the ACK");
        assert_eq!(r.ack, cookie.wrapping_add(1));
        assert_eq!(r.flags, ACK);
        assert!(
            r.checksums_ok,
            "{src}: the TCP checksum follows the new seq"
        );

        // One that checks at neither seq, and a FIN in the probe's place, stay out.
        probe.seq = syn.seq.wrapping_sub(1);
        let (action, _) = p.run_out(&frames::tcp_frame(&probe)).unwrap();
        assert_eq!(action, XDP_DROP, "{src}: seq two before the ACK's");
        probe.seq = syn.seq;
        probe.flags = ACK | FIN;
        let (action, _) = p.run_out(&frames::tcp_frame(&probe)).unwrap();
        assert_eq!(action, XDP_DROP, "{src}: a FIN is not a probe");
        assert_eq!(count(&p, Reason::SynCookieAck), 1);
        assert_eq!(count(&p, Reason::SynGuardDrop), 2);
    }
}

/// With any other MSS index a probe also checks as an ACK (with the neighbouring MSS): it is
/// taken as that ACK and passed as it is, never rewritten, as netfilter's proxy would take it.
#[test]
fn a_segment_whose_cookie_checks_as_it_is_is_never_rewritten() {
    let (src, dst) = ("2001:db8:9::2", "2001:db8:9::1");
    let mut p = prog(&[(443, 0)]);
    let syn = seg(src, dst, 443, SYN, &LINUX_SYN_OPTIONS); // MSS 1460: IPv6 index 2 (1440)
    let cookie = syn_ack(&mut p, &syn);
    let mut probe = seg(src, dst, 443, ACK, &[]);
    probe.seq = syn.seq;
    probe.ack = cookie.wrapping_add(1);
    let frame = frames::tcp_frame(&probe);
    let (action, out) = p.run_out(&frame).unwrap();
    assert_eq!(action, XDP_PASS);
    assert_eq!(out, frame, "passed untouched");
}

#[test]
fn a_syn_without_options_gets_an_mss_only_answer_and_a_bare_one_is_refused() {
    let mut p = prog(&[(443, 0)]);
    let syn = seg("198.18.9.2", "198.18.9.1", 443, SYN, &[]);
    syn_ack(&mut p, &syn);
    let (_, out) = p.run_out(&frames::tcp_frame(&syn)).unwrap();
    let r = frames::parse_tcp_frame(&out).unwrap();
    // No timestamp to carry the options in: the cookie keeps only the MSS.
    assert_eq!(frames::tcp_options(&r.options), vec![(2, vec![0x05, 0xb4])]);

    let mut bad = frames::tcp_frame(&syn);
    let n = bad.len();
    bad[n - 1] ^= 0x40; // the urgent pointer: the TCP checksum no longer holds
    assert_eq!(p.run_out(&bad).unwrap().0, XDP_DROP, "bad checksum");
    let mut data = frames::tcp_frame(&seg("198.18.9.2", "198.18.9.1", 443, SYN, &[]));
    data.extend_from_slice(b"fast-open data");
    data[17] += 14; // IPv4 total length
    assert_eq!(p.run_out(&data).unwrap().0, XDP_DROP, "SYN with data");
}

#[test]
fn below_the_threshold_and_on_other_ports_syns_go_to_the_stack() {
    // 800 SYNs/s per CPU: 100 per 1/8 s window.
    let mut p = prog(&[(443, 800), (8443, 0)]);
    let syn = linux_syn(443);
    assert_eq!(
        p.run_out(&syn).unwrap().0,
        XDP_PASS,
        "quiet port: the stack answers"
    );
    let other = linux_syn(80);
    assert_eq!(p.run_out(&other).unwrap().0, XDP_PASS, "unguarded port");
    let always = linux_syn(8443);
    assert_eq!(
        p.run_out(&always).unwrap().0,
        XDP_TX,
        "syn_rate 0 always answers"
    );
    let ack = frames::tcp_frame(&seg("198.18.9.2", "198.18.9.1", 443, ACK, &[]));
    assert_eq!(
        p.run_out(&ack).unwrap().0,
        XDP_PASS,
        "unarmed: no cookie check"
    );

    // A burst over the window's 100 SYNs on one CPU arms the guard; from then on SYNs are
    // answered and stray ACKs dropped.
    pin_to_cpu0();
    let actions: Vec<u32> = (0..300).map(|_| p.run_out(&syn).unwrap().0).collect();
    let answered = actions.iter().filter(|a| **a == XDP_TX).count();
    assert_eq!(
        actions.last(),
        Some(&XDP_TX),
        "the last SYN of the burst was answered"
    );
    assert!(
        (190..=201).contains(&answered),
        "{answered} of 300 answered"
    );
    assert_eq!(p.run_out(&ack).unwrap().0, XDP_DROP);
    let st = p.maps.as_ref().unwrap().syn_guard_status().unwrap();
    assert!(st[0].armed && st[0].syn_rate == 800, "{st:?}");

    // Turning the guard off releases the ports.
    p.maps.as_mut().unwrap().set_syn_guard(None).unwrap();
    assert_eq!(p.run_out(&syn).unwrap().0, XDP_PASS);
    assert_eq!(p.run_out(&always).unwrap().0, XDP_PASS);
    assert!(
        p.maps
            .as_ref()
            .unwrap()
            .syn_guard_status()
            .unwrap()
            .is_empty()
    );
}

fn pin_to_cpu0() {
    // SAFETY: cpu_set_t is plain C data; CPU_SET and sched_setaffinity act on this thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0
        );
    }
}

#[test]
fn blocked_sources_are_dropped_before_the_guard() {
    let mut p = prog(&[(443, 0)]);
    p.maps
        .as_mut()
        .unwrap()
        .insert(
            vigil_xdp::List::Block,
            "198.18.9.0/24".parse().unwrap(),
            None,
            "test",
            0,
        )
        .unwrap();
    let syn = linux_syn(443);
    assert_eq!(p.run_out(&syn).unwrap().0, XDP_DROP);
    assert_eq!(count(&p, Reason::Blocked), 1);
    assert_eq!(count(&p, Reason::SynCookie), 0);
}
