//! Drop rate on a veth pair: the same bounded sender, the same blocked source, once with Vigil
//! attached natively to the host end and once with an nftables netdev-ingress drop rule. On
//! veth the sender is the bottleneck, so these are regression signals, not line rates.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    process::Command,
    thread::sleep,
    time::Duration,
};

use anyhow::{Context, bail};
use ipnet::IpNet;
use serde_json::Value;
use vigil_e2e::netns::Netns;
use vigil_testkit::procs::output;
use vigil_xdp::{AttachOptions, Attachment, List, ModePolicy, abi::Reason};

use crate::{
    frame,
    sender::{self, Limits, SendStats},
    stop,
};

/// 198.18.<SUBNET>.0/24; the end-to-end tests use 101 and up.
const SUBNET: u8 = 240;
const NFT_TABLE: &str = "vigilbench";
/// Time for NAPI to finish what the sender queued before the counters are read.
const SETTLE: Duration = Duration::from_millis(200);

#[derive(Clone, Debug)]
pub struct Options {
    pub limits: Limits,
    pub frame_len: usize,
    /// Rules loaded next to the sender's own /32, so Vigil runs with a realistic trie.
    pub blocklist: Vec<IpNet>,
}

#[derive(Clone, Debug)]
pub struct DropRun {
    pub dropper: &'static str,
    pub detail: String,
    pub send: SendStats,
    /// Packets the dropper counted.
    pub dropped: u64,
    /// Frames the veth itself discarded (ring full) before any dropper saw them.
    pub veth_dropped: u64,
}

impl DropRun {
    pub fn dropped_pps(&self) -> f64 {
        sender::per_second(self.dropped, self.send.elapsed)
    }
}

#[derive(Debug)]
pub struct Report {
    pub iface: String,
    pub source: Ipv4Addr,
    pub frame_len: usize,
    pub limits: Limits,
    pub vigil_rules: usize,
    pub runs: Vec<DropRun>,
}

pub fn run(opts: &Options) -> anyhow::Result<Report> {
    let tag = format!("px{}", std::process::id() % 100_000);
    let ns =
        Netns::new(&tag, SUBNET, 1).context("creating the benchmark namespace (needs root)")?;
    let peer_if = format!("vgp{tag}");
    let src: Ipv4Addr = ns
        .client_addrs
        .first()
        .context("the namespace has no client address")?
        .parse()?;
    let dst: Ipv4Addr = ns.host_addr.parse()?;
    let mac_text = fs::read_to_string(format!("/sys/class/net/{}/address", ns.host_if))
        .with_context(|| format!("reading the MAC address of {}", ns.host_if))?;
    let ep = frame::Endpoints {
        dst_mac: parse_mac(&mac_text)?,
        src_mac: [0x02, 0x76, 0x67, 0x6c, 0x00, 0x02],
        src,
        dst,
    };
    let frame = frame::udp4(&ep, opts.frame_len)?;

    let mut runs = Vec::new();
    let mut vigil_rules = 0;
    {
        let mut xdp = XdpGuard::new(&ns.host_if);
        let att = xdp.attach()?;
        let own = IpNet::from(IpAddr::V4(src));
        let mut list = opts.blocklist.clone();
        list.push(own);
        att.maps
            .insert_many(List::Block, &list, "perf", 0)
            .context("loading the blocklist")?;
        vigil_rules += list.len();
        let before = att.maps.counters()?.get(Reason::Blocked).packets;
        let (send, veth_dropped) = send_from(&ns, &peer_if, &frame, opts.limits)?;
        let after = att.maps.counters()?.get(Reason::Blocked).packets;
        runs.push(DropRun {
            dropper: "vigil-xdp",
            detail: format!(
                "native XDP on {}, {vigil_rules} blocklist entries",
                ns.host_if
            ),
            send,
            dropped: after.wrapping_sub(before),
            veth_dropped,
        });
    }
    {
        let nft = NftGuard::create(&ns.host_if, src)?;
        let before = nft.dropped()?;
        let (send, veth_dropped) = send_from(&ns, &peer_if, &frame, opts.limits)?;
        let after = nft.dropped()?;
        runs.push(DropRun {
            dropper: "nft-netdev-ingress",
            detail: format!("table netdev {NFT_TABLE}, ip saddr {src} counter drop"),
            send,
            dropped: after.wrapping_sub(before),
            veth_dropped,
        });
    }
    for r in &runs {
        if r.dropped == 0 {
            bail!(
                "{} counted no drops of {} frames sent; the comparison would be meaningless",
                r.dropper,
                r.send.sent
            );
        }
    }
    Ok(Report {
        iface: ns.host_if.clone(),
        source: src,
        frame_len: opts.frame_len,
        limits: opts.limits,
        vigil_rules,
        runs,
    })
}

/// Runs the sender inside the namespace and returns its stats and what the veth dropped.
fn send_from(
    ns: &Netns,
    peer_if: &str,
    frame: &[u8],
    limits: Limits,
) -> anyhow::Result<(SendStats, u64)> {
    let before = tx_dropped(ns, peer_if)?;
    let (iface, frame) = (peer_if.to_owned(), frame.to_vec());
    let stats = ns
        .run(move || sender::send(&iface, &frame, limits))?
        .with_context(|| format!("sending from {peer_if}"))?;
    stop::check()?;
    sleep(SETTLE);
    let after = tx_dropped(ns, peer_if)?;
    Ok((stats, after.wrapping_sub(before)))
}

/// The veth's TX drops on the namespace end (frames the receiving ring had no room for).
fn tx_dropped(ns: &Netns, iface: &str) -> anyhow::Result<u64> {
    let out = Command::new("ip")
        .args(["-n", &ns.name, "-s", "-j", "link", "show", "dev", iface])
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip -s link show {iface}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    v.pointer("/0/stats64/tx/dropped")
        .and_then(Value::as_u64)
        .with_context(|| format!("no TX drop counter for {iface} in `ip -s -j link` output"))
}

fn parse_mac(text: &str) -> anyhow::Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = text.trim().split(':').collect();
    if parts.len() != 6 {
        bail!("not a MAC address: {text:?}");
    }
    for (b, p) in mac.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).with_context(|| format!("not a MAC address: {text:?}"))?;
    }
    Ok(mac)
}

/// Vigil attached under a private pin root; detached and unpinned on drop, even after a
/// failed or partial attach.
struct XdpGuard {
    iface: String,
    pin_root: PathBuf,
    attachment: Option<Attachment>,
}

impl XdpGuard {
    fn new(iface: &str) -> Self {
        XdpGuard {
            iface: iface.to_owned(),
            pin_root: PathBuf::from(format!("/sys/fs/bpf/vigil-perf-{}", std::process::id())),
            attachment: None,
        }
    }

    fn attach(&mut self) -> anyhow::Result<&mut Attachment> {
        let att = vigil_xdp::attach(&AttachOptions {
            iface: self.iface.clone(),
            pin_root: self.pin_root.clone(),
            mode: ModePolicy::Native,
            rate: None,
            rate_table_size: 65536,
            syn_guard: None,
            load_syn_guard: false,
        })
        .with_context(|| format!("attaching Vigil natively to {}", self.iface))?;
        Ok(self.attachment.insert(att))
    }
}

impl Drop for XdpGuard {
    fn drop(&mut self) {
        self.attachment = None;
        if let Err(e) = vigil_xdp::detach(&self.pin_root, &self.iface) {
            eprintln!("warning: detaching from {}: {e}", self.iface);
        }
        if self.pin_root.exists() {
            if let Err(e) = fs::remove_dir_all(&self.pin_root) {
                eprintln!("warning: removing {}: {e}", self.pin_root.display());
            }
        }
    }
}

/// The nftables reference: a netdev table whose ingress chain on the host end drops the
/// sender's source. Deleted on drop.
struct NftGuard;

impl NftGuard {
    fn create(iface: &str, src: Ipv4Addr) -> anyhow::Result<Self> {
        // A table left by a run that was killed would make the rule below a duplicate.
        let _ = nft(&["delete", "table", "netdev", NFT_TABLE], None);
        let script = format!(
            "table netdev {NFT_TABLE} {{\n\
             \tchain ingress {{\n\
             \t\ttype filter hook ingress device \"{iface}\" priority 0; policy accept;\n\
             \t\tip saddr {src} counter drop\n\
             \t}}\n\
             }}\n"
        );
        // One transaction: if it fails, nothing was created and there is nothing to remove.
        nft(&["-f", "-"], Some(&script)).context("creating the nftables reference rule")?;
        Ok(NftGuard)
    }

    /// Packets the rule's counter has seen.
    fn dropped(&self) -> anyhow::Result<u64> {
        let out = nft(&["-j", "list", "table", "netdev", NFT_TABLE], None)?;
        let v: Value = serde_json::from_str(&out)?;
        Ok(counter_packets(&v))
    }
}

impl Drop for NftGuard {
    fn drop(&mut self) {
        if let Err(e) = nft(&["delete", "table", "netdev", NFT_TABLE], None) {
            eprintln!("warning: removing the nftables table {NFT_TABLE}: {e:#}");
        }
    }
}

/// Sums the packets of every `counter` statement in `nft -j` output.
fn counter_packets(v: &Value) -> u64 {
    v.get("nftables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| item.pointer("/rule/expr").and_then(Value::as_array))
        .flatten()
        .filter_map(|e| e.pointer("/counter/packets").and_then(Value::as_u64))
        .sum()
}

fn nft(args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let out = output(Command::new("nft").args(args), stdin.map(str::as_bytes))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_the_counter_of_nft_json() {
        let v: Value = serde_json::from_str(
            r#"{"nftables":[{"metainfo":{"version":"1.1.3"}},
            {"table":{"family":"netdev","name":"vigilbench","handle":1}},
            {"chain":{"family":"netdev","table":"vigilbench","name":"ingress"}},
            {"rule":{"family":"netdev","table":"vigilbench","chain":"ingress","handle":2,
              "expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},
              "right":"198.18.240.2"}},{"counter":{"packets":1234,"bytes":78976}},
              {"drop":null}]}}]}"#,
        )
        .unwrap();
        assert_eq!(counter_packets(&v), 1234);
    }

    #[test]
    fn parses_sysfs_mac_addresses() {
        assert_eq!(
            parse_mac("02:76:67:6c:00:0a\n").unwrap(),
            [2, 0x76, 0x67, 0x6c, 0, 0x0a]
        );
        assert!(parse_mac("02:76:67").is_err());
    }
}
