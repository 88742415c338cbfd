//! The SYN guard against a real spoofed SYN flood: vigild with XDP on the host end of a veth
//! pair, a flood of SYNs from 65,536 spoofed sources sent at full speed from the namespace
//! (AF_PACKET, bounded in time and count), and a real TLS client (curl) opening 200
//! connections through it meanwhile. With the guard every one succeeds; without it (after a
//! reload that turns it off) the test reports how many did. It prints the flood's rate, the
//! SYNs answered from XDP per second and the box's CPU.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::{IpAddr, Ipv4Addr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use vigil_e2e::{netns::Netns, run_ok, unique, upstream::Upstream};
use vigil_testkit::{ports::free_port, vigild::Vigild};
use vigil_xdp::frames::{self, LINUX_SYN_OPTIONS, SYN, Segment};

const PORT_SUBNET: u8 = 121;
/// At most this long, and this many frames, per flood.
const FLOOD_LIMIT: Duration = Duration::from_secs(90);
const FLOOD_MAX_FRAMES: u64 = 200_000_000;

fn mac_of(iface: &str) -> [u8; 6] {
    let out = Command::new("ip")
        .args(["-o", "link", "show", iface])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mac = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC for {iface}: {text}"));
    let b: Vec<u8> = mac
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    b.try_into().unwrap()
}

/// Spoofed SYNs from 198.19.0.0/16, random ports and sequence numbers, to `dst:port`.
fn flood_frames(src_mac: [u8; 6], dst_mac: [u8; 6], dst: Ipv4Addr, port: u16) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            frames::tcp_frame(&Segment {
                src_mac,
                dst_mac,
                src: IpAddr::V4(Ipv4Addr::new(198, 19, (x >> 8) as u8, x as u8)),
                dst: IpAddr::V4(dst),
                sport: 1024 + (x >> 16) as u16 % 60000,
                dport: port,
                seq: (x >> 32) as u32,
                ack: 0,
                flags: SYN,
                options: &LINUX_SYN_OPTIONS,
            })
        })
        .collect()
}

/// Sends `frames` round and round out of `iface` (in the calling thread's namespace) until
/// `stop`, the time limit or the frame limit; returns the frames the kernel took.
fn flood(iface: &str, frames: &[Vec<u8>], stop: &AtomicBool, sent: &AtomicU64) {
    let name = std::ffi::CString::new(iface).unwrap();
    // SAFETY: `name` is NUL-terminated; socket() and bind() get valid arguments and their
    // results are checked; the fd is owned by `sock` from here on.
    let sock = unsafe {
        let idx = libc::if_nametoindex(name.as_ptr());
        assert!(idx != 0, "no interface {iface}");
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        let sock = OwnedFd::from_raw_fd(fd);
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = idx as i32;
        let rc = libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        sock
    };
    const BATCH: usize = 64;
    let start = Instant::now();
    let mut next = 0;
    while !stop.load(Ordering::Relaxed)
        && start.elapsed() < FLOOD_LIMIT
        && sent.load(Ordering::Relaxed) < FLOOD_MAX_FRAMES
    {
        let mut iov: Vec<libc::iovec> = (0..BATCH)
            .map(|i| {
                let f = &frames[(next + i) % frames.len()];
                libc::iovec {
                    iov_base: f.as_ptr() as *mut libc::c_void,
                    iov_len: f.len(),
                }
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iov
            .iter_mut()
            .map(|v| {
                // SAFETY: all-zero is a valid mmsghdr; the iovec outlives the call below.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_iov = v;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        // SAFETY: `msgs` are initialised headers pointing at frames that outlive the call.
        let rc = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, 0) };
        if rc > 0 {
            sent.fetch_add(rc as u64, Ordering::Relaxed);
            next = (next + rc as usize) % frames.len();
        } else {
            thread::sleep(Duration::from_micros(50)); // the veth ring is full
        }
    }
}

/// Busy and total jiffies of all CPUs.
fn cpu_times() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    let idle = v[3] + v[4];
    let total: u64 = v.iter().take(8).sum();
    (total - idle, total)
}

/// `n` HTTPS requests through vigild by curl from the namespace, one connection each; returns
/// how many got a 200.
fn curl_loop(ns: &Netns, host: &str, port: u16, ca: &std::path::Path, n: u32) -> u32 {
    let mut ok = 0;
    for i in 0..n {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns.name, "curl", "-sS", "--max-time", "15"])
            .arg("--cacert")
            .arg(ca)
            .args(["-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("https://{host}:{port}/conn/{i}"))
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout) == "200" {
            ok += 1;
        } else {
            eprintln!(
                "connection {i}: {} {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    ok
}

struct FloodRun {
    ok: u32,
    sent: u64,
    secs: f64,
    cpu: f64,
}

/// Floods while curl opens `n` connections; stops the flood when curl is done.
fn under_flood(ns: &Netns, host: &str, port: u16, ca: &std::path::Path, n: u32) -> FloodRun {
    let peer = format!("vgp{}", &ns.name[3..]);
    let frames = flood_frames(
        frames::PHANTOM_MAC,
        mac_of(&ns.host_if),
        host.parse().unwrap(),
        port,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let (s2, c2) = (stop.clone(), sent.clone());
    let file = std::fs::File::open(format!("/var/run/netns/{}", ns.name)).unwrap();
    let sender = thread::spawn(move || {
        // SAFETY: `file` is an open namespace file; setns only affects this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        flood(&peer, &frames, &s2, &c2);
    });
    thread::sleep(Duration::from_millis(500)); // the flood is on before the first client
    let (busy0, total0) = cpu_times();
    let start = Instant::now();
    let ok = curl_loop(ns, host, port, ca, n);
    let secs = start.elapsed().as_secs_f64();
    let (busy1, total1) = cpu_times();
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    FloodRun {
        ok,
        sent: sent.load(Ordering::Relaxed),
        secs,
        cpu: 100.0 * (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64,
    }
}

/// Whatever a failed run leaves of the SYN guard's netfilter half goes on drop: the table and
/// conntrack's loose pickup as it was before the test.
struct NetfilterCleanup {
    table: String,
    loose: Option<String>,
}

impl Drop for NetfilterCleanup {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .output();
        if let Some(v) = &self.loose {
            let _ = std::fs::write(LOOSE, v);
        }
    }
}

const LOOSE: &str = "/proc/sys/net/netfilter/nf_conntrack_tcp_loose";

fn xdp_count(d: &Vigild, reason: &str) -> u64 {
    d.xdp_packets(reason)
}

#[test]
fn a_spoofed_syn_flood_does_not_keep_real_clients_out() {
    let tag = unique(21);
    let ns = Netns::new(&tag, PORT_SUBNET, 1).unwrap();
    let _cleanup = NetfilterCleanup {
        table: format!("vigil_syn_{}", ns.host_if),
        loose: std::fs::read_to_string(LOOSE).ok(),
    };
    // A local stack leaves the TCP checksum to the NIC, and veth hands it on unfinished; frames
    // from a real wire carry a whole one, which the guard checks before it answers a SYN.
    let peer = format!("vgp{}", &ns.name[3..]);
    run_ok(Command::new("ip").args([
        "netns", "exec", &ns.name, "ethtool", "-K", &peer, "tx", "off",
    ]));
    // And veth hands XDP_TX frames (the SYN-ACKs answered from XDP) to its peer only when the
    // peer runs XDP too; a NIC puts them on the wire. The peer's program also drops the
    // SYN-ACKs for the flood's phantom station at once, as a router would carry them away.
    let pass = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pass.path(), vigil_xdp::TEST_PEER_OBJECT).unwrap();
    run_ok(
        Command::new("ip")
            .args(["-n", &ns.name, "link", "set", "dev", &peer, "xdpdrv", "obj"])
            .arg(pass.path())
            .args(["sec", "xdp"]),
    );
    // Replies to the spoofed sources go back into the namespace, which drops them, never out
    // of the machine's own interfaces. The route goes with the veth.
    let via = &ns.client_addrs[0];
    run_ok(Command::new("ip").args([
        "route",
        "add",
        "198.19.0.0/16",
        "via",
        via,
        "dev",
        &ns.host_if,
    ]));

    let upstream = Upstream::start().unwrap();
    let port = free_port().unwrap();
    let metrics_port = free_port().unwrap();
    let mut d = Vigild::with_xdp(&tag, &ns.host_if).unwrap();
    let base = d
        .gateway_config(&ns.host_addr, port, format!("http://{}", upstream.addr))
        .unwrap()
        .set("metrics.listen", format!("127.0.0.1:{metrics_port}"))
        .set("xdp.mode", "native")
        .set("xdp.syn_guard.ports", vec![i64::from(port)]);
    // syn_rate 0: every SYN is answered from XDP, so every connection below goes through a
    // cookie and netfilter's SYN proxy.
    d.configure(base.clone().set("xdp.syn_guard.syn_rate", 0))
        .unwrap();
    d.start().unwrap();
    let ca = d.ca();
    let table = format!("vigil_syn_{}", ns.host_if);
    let nft = Command::new("nft")
        .args(["list", "table", "inet", &table])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&nft.stdout);
    assert!(
        rules.contains("synproxy"),
        "SYN proxy table missing: {rules}"
    );

    let ok = curl_loop(&ns, &ns.host_addr, port, &ca, 5);
    let stats = d.ctl(&["stats"]).unwrap();
    assert_eq!(ok, 5, "TLS through cookie handshakes:\n{stats}");
    assert!(xdp_count(&d, "syn_cookie") >= 5, "{stats}");
    assert!(xdp_count(&d, "syn_cookie_ack") >= 5, "{stats}");
    assert!(stats.contains("answer"), "{stats}");

    // A handshake ACK lost on the way (the SYN-ACK's window is 0, so the client has only
    // zero-window probes left to send, one sequence number early): the connection still opens.
    let rule = format!(
        "add rule inet vigil_lose_ack out tcp dport {port} tcp flags == ack \
         ct original packets 2 counter drop"
    );
    for args in [
        vec!["sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1"],
        vec!["nft", "add table inet vigil_lose_ack"],
        vec![
            "nft",
            "add chain inet vigil_lose_ack out { type filter hook output priority 0 ; }",
        ],
        vec!["nft", &rule],
    ] {
        run_ok(
            Command::new("ip")
                .args(["netns", "exec", &ns.name])
                .args(&args),
        );
    }
    let acks = xdp_count(&d, "syn_cookie_ack");
    let opened = curl_loop(&ns, &ns.host_addr, port, &ca, 3);
    assert_eq!(
        opened,
        3,
        "connections whose ACK was lost:\n{}",
        d.ctl(&["stats"]).unwrap()
    );
    let listed = run_ok(Command::new("ip").args([
        "netns",
        "exec",
        &ns.name,
        "nft",
        "list table inet vigil_lose_ack",
    ]));
    assert!(
        listed.contains("counter packets 3 "),
        "each connection lost its ACK: {listed}"
    );
    assert_eq!(
        xdp_count(&d, "syn_cookie_ack") - acks,
        3,
        "each came in through a probe"
    );
    run_ok(Command::new("ip").args([
        "netns",
        "exec",
        &ns.name,
        "nft",
        "delete table inet vigil_lose_ack",
    ]));

    // From here the guard arms at 200 SYN/s per CPU.
    d.configure(base.clone().set("xdp.syn_guard.syn_rate", 200))
        .unwrap();
    d.ctl(&["reload"]).unwrap();
    thread::sleep(Duration::from_secs(1));
    let quiet = xdp_count(&d, "syn_cookie");
    assert_eq!(curl_loop(&ns, &ns.host_addr, port, &ca, 5), 5);
    assert_eq!(
        xdp_count(&d, "syn_cookie"),
        quiet,
        "guard armed without a flood"
    );

    let guarded = under_flood(&ns, &ns.host_addr, port, &ca, 200);
    let status = d.ctl(&["status"]).unwrap();
    let stats = d.ctl(&["stats"]).unwrap();
    let cookies = xdp_count(&d, "syn_cookie") - quiet;
    println!(
        "guard on: {}/200 TLS connections; flood {} SYNs in {:.1} s ({:.0} pps sent), {} \
         answered from XDP ({:.0}/s); box CPU {:.0}% of all CPUs\n{stats}",
        guarded.ok,
        guarded.sent,
        guarded.secs,
        guarded.sent as f64 / guarded.secs,
        cookies,
        cookies as f64 / guarded.secs,
        guarded.cpu
    );
    assert_eq!(
        guarded.ok, 200,
        "every real client must get through the flood"
    );
    assert!(
        cookies > 10_000,
        "the flood was answered from XDP: {cookies}"
    );
    assert!(
        status.contains(&format!("syn guard:     port {port}")),
        "{status}"
    );
    let metrics = Command::new("curl")
        .args(["-sS", &format!("http://127.0.0.1:{metrics_port}/metrics")])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    let line = format!("vigil_xdp_syn_guard_cookies_total{{port=\"{port}\"}} ");
    let exported: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("{line} missing from /metrics"))
        .trim()
        .parse()
        .unwrap();
    assert!(exported >= cookies, "{exported} vs {cookies}");

    // The same flood with the guard turned off by a reload: reported, not asserted.
    d.configure(base.unset("xdp.syn_guard")).unwrap();
    d.ctl(&["reload"]).unwrap();
    let nft = Command::new("nft")
        .args(["list", "table", "inet", &table])
        .output()
        .unwrap();
    assert!(
        !nft.status.success(),
        "the SYN proxy table outlived the guard"
    );
    let before = xdp_count(&d, "syn_cookie");
    let unguarded = under_flood(&ns, &ns.host_addr, port, &ca, 200);
    println!(
        "guard off: {}/200 TLS connections; flood {} SYNs in {:.1} s; box CPU {:.0}%",
        unguarded.ok, unguarded.sent, unguarded.secs, unguarded.cpu
    );
    assert_eq!(
        xdp_count(&d, "syn_cookie"),
        before,
        "no SYN answered from XDP with the guard off"
    );
    d.ctl(&["xdp", "detach", "--yes"]).unwrap();
    let nft = Command::new("nft")
        .args(["list", "table", "inet", &table])
        .output()
        .unwrap();
    assert!(!nft.status.success(), "detach left the SYN proxy table");
}
