//! XDP on a veth pair in native mode, driven through vigild and vigilctl (needs root).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::ErrorKind,
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::{Duration, Instant},
};

use vigil_e2e::{netns::Netns, unique};
use vigil_testkit::config::Config;
use vigil_testkit::vigild::Vigild;

/// Sends `n` UDP datagrams from `src` (inside the namespace) to `dst`, bounded by `limit`.
fn udp_flood(ns: &Netns, src: &str, dst: SocketAddr, n: u32, limit: Duration) -> u32 {
    let src: SocketAddr = format!("{src}:0").parse().unwrap();
    ns.run(move || {
        // On one CPU: the veth receives (and XDP runs) on the sender's CPU, and the rate limit
        // holds per CPU (docs/xdp.md), so a sender that migrated could get it twice.
        pin_to_cpu0();
        let s = UdpSocket::bind(src).unwrap();
        let start = Instant::now();
        let mut sent = 0;
        while sent < n && start.elapsed() < limit {
            if s.send_to(b"vigil-e2e", dst).is_ok() {
                sent += 1;
            }
        }
        sent
    })
    .unwrap()
}

fn pin_to_cpu0() {
    // SAFETY: cpu_set_t is plain data (all zeroes is the empty set); the pointer is valid for
    // the call, which only changes this thread's affinity.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(
        rc,
        0,
        "pinning the sender: {}",
        std::io::Error::last_os_error()
    );
}

/// Counts datagrams arriving until `quiet` passes with none.
fn udp_drain(sock: &UdpSocket, quiet: Duration) -> u32 {
    sock.set_read_timeout(Some(quiet)).unwrap();
    let mut buf = [0u8; 64];
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match sock.recv_from(&mut buf) {
            Ok(_) => n += 1,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("recv: {e}"),
        }
    }
    n
}

fn tcp_connects(ns: &Netns, src: &str, dst: SocketAddr) -> bool {
    let src: SocketAddr = format!("{src}:0").parse().unwrap();
    ns.run(move || {
        let sock = socket2_connect(src, dst, Duration::from_millis(1500));
        sock.is_ok()
    })
    .unwrap()
}

fn sockaddr(a: std::net::SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

/// A TCP connect from a chosen source address; SO_SNDTIMEO bounds the blocking connect.
fn socket2_connect(
    src: SocketAddr,
    dst: SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (src, dst) else {
        return Err(std::io::Error::other("IPv4 only"));
    };
    // SAFETY: plain socket(2); the fd is owned by the TcpStream made from it right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket nobody else owns.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    stream.set_write_timeout(Some(timeout))?;
    let len = size_of::<libc::sockaddr_in>() as u32;
    let (sa, da) = (sockaddr(src), sockaddr(dst));
    // SAFETY: `sa` is a valid sockaddr_in of `len` bytes.
    if unsafe { libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `da` is a valid sockaddr_in of `len` bytes.
    if unsafe { libc::connect(fd, (&da as *const libc::sockaddr_in).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stream)
}

/// vigild with XDP on `ns`'s host end and `cfg`, started.
fn xdp_daemon(tag: &str, ns: &Netns, cfg: Config) -> Vigild {
    let mut d = Vigild::with_xdp(tag, &ns.host_if).unwrap();
    d.configure(cfg).unwrap();
    d.start().unwrap();
    d
}

#[test]
fn blocked_sources_are_dropped_and_allowed_ones_pass() {
    let tag = unique(1);
    let ns = Netns::new(&tag, 101, 3).unwrap();
    let cfg = Config::new()
        .set("xdp.mode", "native")
        .set("xdp.allow", vec!["198.18.101.4/32"]);
    let d = xdp_daemon(&tag, &ns, cfg);
    let status = d.ctl_json(&["status"]).unwrap();
    assert_eq!(status["xdp"]["mode"], "native", "{status}");
    let (good, bad, vip) = (
        &ns.client_addrs[0],
        &ns.client_addrs[1],
        &ns.client_addrs[2],
    );

    d.ctl(&["block", "add", "198.18.101.3", "--reason", "e2e"])
        .unwrap();
    // An allowlisted source stays reachable even when a wider block covers it.
    d.ctl(&["block", "add", "198.18.101.0/24", "--ttl", "10m"])
        .unwrap();
    d.ctl(&["block", "del", "198.18.101.0/24"]).unwrap();
    d.ctl(&["block", "add", "198.18.101.4/32"]).unwrap();

    assert!(
        ns.ping_from(good, 2),
        "ping from an unlisted source must pass"
    );
    assert!(
        !ns.ping_from(bad, 2),
        "ping from a blocked source must be dropped"
    );
    assert!(
        ns.ping_from(vip, 2),
        "allowlisted source must pass despite a block"
    );

    let udp = UdpSocket::bind(format!("{}:0", ns.host_addr)).unwrap();
    let dst = udp.local_addr().unwrap();
    assert_eq!(udp_flood(&ns, good, dst, 5, Duration::from_secs(2)), 5);
    assert_eq!(udp_drain(&udp, Duration::from_millis(300)), 5);
    udp_flood(&ns, bad, dst, 5, Duration::from_secs(2));
    assert_eq!(
        udp_drain(&udp, Duration::from_millis(300)),
        0,
        "UDP from a blocked source arrived"
    );

    let tcp = TcpListener::bind(format!("{}:0", ns.host_addr)).unwrap();
    let tdst = tcp.local_addr().unwrap();
    assert!(
        tcp_connects(&ns, good, tdst),
        "TCP handshake from an unlisted source must complete"
    );
    assert!(
        !tcp_connects(&ns, bad, tdst),
        "TCP handshake from a blocked source completed"
    );

    let blocked = d.xdp_packets("blocked");
    // 2 pings, 5 datagrams, at least one SYN.
    assert!(blocked >= 8, "blocked counter {blocked}");
    assert!(d.xdp_packets("allowlisted") >= 2);
    let list = d.ctl(&["block", "list"]).unwrap();
    assert!(
        list.contains("198.18.101.3/32") && list.contains("e2e"),
        "{list}"
    );
}

#[test]
fn packets_over_the_source_rate_are_dropped() {
    let tag = unique(2);
    let ns = Netns::new(&tag, 102, 2).unwrap();
    let cfg = Config::new()
        .set("xdp.rate_limit.pps", 20)
        .set("xdp.rate_limit.burst", 20);
    let d = xdp_daemon(&tag, &ns, cfg);
    let udp = UdpSocket::bind(format!("{}:0", ns.host_addr)).unwrap();
    let dst = udp.local_addr().unwrap();
    let start = Instant::now();
    let sent = udp_flood(&ns, &ns.client_addrs[0], dst, 2000, Duration::from_secs(3));
    let secs = start.elapsed().as_secs_f64();
    let got = udp_drain(&udp, Duration::from_millis(300));
    // Burst plus what the bucket refilled while the flood ran (20/s), plus slack for ARP.
    let allowed = 20.0 + 20.0 * secs + 5.0;
    assert!(sent >= 1000, "sender managed only {sent}");
    assert!(
        f64::from(got) <= allowed,
        "received {got} of {sent}; at most {allowed} expected"
    );
    assert!(got >= 15, "received {got}: the burst should pass");
    let limited = d.xdp_packets("rate_limited");
    assert!(
        limited >= u64::from(sent - got) - 5,
        "rate_limited {limited}, sent {sent}, got {got}"
    );
    // Another source has its own bucket.
    udp_flood(&ns, &ns.client_addrs[1], dst, 10, Duration::from_secs(2));
    assert_eq!(udp_drain(&udp, Duration::from_millis(300)), 10);
}

#[test]
fn drops_survive_kill_9_and_a_restart_adopts_the_pins() {
    let tag = unique(3);
    let ns = Netns::new(&tag, 103, 2).unwrap();
    let mut d = xdp_daemon(&tag, &ns, Config::new());
    let bad = ns.client_addrs[1].clone();
    d.ctl(&["block", "add", &bad, "--ttl", "1h", "--reason", "survives"])
        .unwrap();
    assert!(!ns.ping_from(&bad, 2));
    let before = d.xdp_packets("blocked");
    assert!(before >= 2);

    d.kill9();
    // Traffic keeps flowing while the daemon is dead: the pinned program still drops it.
    assert!(
        !ns.ping_from(&bad, 3),
        "blocked source got through after kill -9"
    );
    assert!(ns.ping_from(&ns.client_addrs[0], 1));
    let offline = d.ctl_json(&["status"]).unwrap();
    assert_eq!(offline["daemon"]["running"], false);
    assert_eq!(offline["xdp"]["mode"], "native");
    let during = d.xdp_packets("blocked");
    assert!(
        during >= before + 3,
        "counters must keep counting: {before} -> {during}"
    );
    // Operators can still manage blocks with the daemon down.
    d.ctl(&["block", "add", "198.18.103.200", "--reason", "offline"])
        .unwrap();

    d.start().unwrap();
    let status = d.ctl_json(&["status"]).unwrap();
    assert_eq!(status["daemon"]["running"], true);
    assert_eq!(status["xdp"]["adopted"], true, "{status}\n{}", d.log());
    let rules = d.ctl_json(&["block", "list"]).unwrap();
    let cidrs: Vec<&str> = rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cidr"].as_str().unwrap())
        .collect();
    assert_eq!(cidrs, [format!("{bad}/32").as_str(), "198.18.103.200/32"]);
    assert_eq!(rules["rules"][0]["reason"], "survives");
    assert!(
        d.xdp_packets("blocked") >= during,
        "counters reset on restart"
    );
    assert!(!ns.ping_from(&bad, 1));

    // A clean stop (SIGTERM) also leaves the program attached and its socket removed.
    let status = d.term().unwrap();
    assert!(
        status.success(),
        "vigild exited with {status} on SIGTERM: {}",
        d.log()
    );
    assert!(
        !d.socket().exists(),
        "control socket left behind after SIGTERM"
    );
    assert!(
        !ns.ping_from(&bad, 2),
        "blocked source got through after SIGTERM"
    );

    // Detach removes the program and the pins: the source gets through again.
    d.ctl(&["xdp", "detach"]).unwrap();
    assert!(!d.pin_dir().exists());
    assert!(ns.ping_from(&bad, 2));
}

#[test]
fn expired_blocks_let_the_source_back_in() {
    let tag = unique(4);
    let ns = Netns::new(&tag, 104, 1).unwrap();
    let d = xdp_daemon(&tag, &ns, Config::new());
    let src = ns.client_addrs[0].clone();
    d.ctl(&["block", "add", &src, "--ttl", "2s"]).unwrap();
    assert!(!ns.ping_from(&src, 1));
    std::thread::sleep(Duration::from_millis(2500));
    assert!(ns.ping_from(&src, 2), "source still dropped after its ttl");
    // The daemon's sweep removed the expired rule.
    let rules = d.ctl_json(&["block", "list"]).unwrap();
    assert_eq!(rules["rules"].as_array().unwrap().len(), 0, "{rules}");
}

#[test]
fn imported_feeds_drop_their_sources_and_flush_needs_yes() {
    let tag = unique(5);
    let ns = Netns::new(&tag, 106, 2).unwrap();
    let mut d = xdp_daemon(&tag, &ns, Config::new());
    let (good, bad) = (&ns.client_addrs[0], &ns.client_addrs[1]);
    // Spamhaus DROP and FireHOL netset lines, comments, blank lines, IPv4 and IPv6.
    let feed = d.path("drop.netset");
    std::fs::write(
        &feed,
        format!(
            "; Spamhaus DROP List - (c) The Spamhaus Project\n\
             ; Last-Modified: Sat, 05 Dec 2026 09:00:00 GMT\n\
             198.19.0.0/24 ; SBL100001\n\
             \n\
             #\n\
             # FireHOL netset: test feed\n\
             #\n\
             {bad}\n\
             198.19.16.0/20   # a trailing comment\n\
             2001:db8:106::/48 ; SBL100002\n"
        ),
    )
    .unwrap();
    assert!(
        ns.ping_from(bad, 1),
        "the source must pass before the import"
    );
    let out = d
        .ctl(&[
            "block",
            "import",
            feed.to_str().unwrap(),
            "--reason",
            "feed",
        ])
        .unwrap();
    assert!(
        out.contains("imported 4 networks (3 IPv4, 1 IPv6)"),
        "{out}"
    );
    assert!(!ns.ping_from(bad, 2), "an imported source must be dropped");
    assert!(ns.ping_from(good, 2), "an unlisted source must pass");
    assert!(d.xdp_packets("blocked") >= 2);
    let list = d.ctl(&["block", "list"]).unwrap();
    assert!(
        list.contains("2001:db8:106::/48") && list.contains("feed"),
        "{list}"
    );

    // A bad line is refused with its number, and nothing of that feed is applied.
    let broken = d.path("broken.txt");
    std::fs::write(&broken, "198.19.1.0/24\n# fine so far\n198.19.2.9/24\n").unwrap();
    let out = d
        .ctl_output(&["block", "import", broken.to_str().unwrap()])
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("line 3:") && err.contains("did you mean 198.19.2.0/24"),
        "{err}"
    );
    let status = d.ctl_json(&["status"]).unwrap();
    assert_eq!(status["xdp"]["block_rules"], 4, "{status}");
    assert!(
        status["xdp"]["tables"]["memory_bytes"].as_u64().unwrap() > 0,
        "{status}"
    );
    let human = d.ctl(&["status"]).unwrap();
    assert!(
        human.contains("tables:") && human.contains("MiB"),
        "{human}"
    );

    // Without --yes a flush only says what it would remove.
    let out = d.ctl_output(&["block", "flush"]).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("would remove all 4 rules"), "{err}");
    assert!(
        !ns.ping_from(bad, 1),
        "a flush without --yes changed something"
    );

    let out = d.ctl(&["block", "flush", "--yes"]).unwrap();
    assert!(out.contains("removed 4 rules from the block list"), "{out}");
    assert!(
        ns.ping_from(bad, 2),
        "the source is still dropped after the flush"
    );
    let status = d.ctl_json(&["status"]).unwrap();
    assert_eq!(status["xdp"]["block_rules"], 0, "{status}");

    // With vigild down vigilctl imports into the pinned maps itself, and a restarted vigild
    // adopts them with their rules and counts.
    d.kill9();
    let out = d.ctl(&["block", "import", feed.to_str().unwrap()]).unwrap();
    assert!(out.contains("imported 4 networks"), "{out}");
    assert!(
        !ns.ping_from(bad, 2),
        "an import made while vigild was down must drop"
    );
    d.start().unwrap();
    let status = d.ctl_json(&["status"]).unwrap();
    assert_eq!(status["xdp"]["adopted"], true, "{status}\n{}", d.log());
    assert_eq!(status["xdp"]["block_rules"], 4, "{status}");
    assert!(
        !ns.ping_from(bad, 1),
        "the adopted rules must keep dropping"
    );
    assert!(ns.ping_from(good, 1), "an unlisted source must still pass");
}
