//! The netfilter half of the SYN guard. XDP answers SYNs with cookies and lets through the
//! ACKs that carry a valid one; netfilter's SYN proxy (nftables `synproxy`) checks the cookie
//! again, opens the connection to the local listener on the client's behalf and splices the
//! two. Without it a cookie ACK would reach a listener that never saw the SYN and be reset.
//!
//! One nftables table per guarded interface (`inet vigil_syn_<iface>`), replaced whole in one
//! transaction, and conntrack's loose pickup turned off (an ACK for an unknown connection must
//! stay INVALID so the proxy sees it). The table lives as long as the XDP attachment: a vigild
//! that stops leaves both, as the drops outlive it; `xdp detach` removes both.

use std::{
    io::Write,
    process::{Command, Stdio},
    sync::Mutex,
};

use anyhow::{Context, bail};
use tracing::{info, warn};
use vigil_xdp::SynGuard;

const LOOSE: &str = "/proc/sys/net/netfilter/nf_conntrack_tcp_loose";

/// The loose-pickup setting found before the guard changed it, restored when it goes.
static SAVED_LOOSE: Mutex<Option<String>> = Mutex::new(None);

/// The table's name: nftables names take letters, digits and underscores.
pub(crate) fn table_name(iface: &str) -> String {
    let safe: String = iface
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("vigil_syn_{safe}")
}

/// The nftables script that (re)creates the table for `g` on `iface`.
pub(crate) fn script(iface: &str, g: &SynGuard) -> String {
    let table = table_name(iface);
    let ports = g
        .ports
        .iter()
        .map(|p| p.port.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let rule = |family: &str, mss: u16| {
        format!(
            "    meta nfproto {family} iifname \"{iface}\" tcp dport {{ {ports} }} ct state \
             invalid,untracked synproxy mss {mss} wscale {} timestamp sack-perm\n",
            g.wscale
        )
    };
    format!(
        "table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n  chain input {{\n    \
         type filter hook input priority filter - 10; policy accept;\n{}{}    iifname \"{iface}\" \
         tcp dport {{ {ports} }} ct state invalid drop\n  }}\n}}\n",
        rule("ipv4", g.mss4),
        rule("ipv6", g.mss6),
    )
}

fn nft(script: &str) -> anyhow::Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context(
            "running nft: the SYN guard needs nftables (install the nftables package) for \
             netfilter's SYN proxy",
        )?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .context("writing the nftables script")?;
    }
    let out = child.wait_with_output().context("waiting for nft")?;
    if !out.status.success() {
        bail!(
            "nft refused the SYN proxy table: {} (the kernel needs nf_synproxy and conntrack)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Installs (or replaces) the SYN proxy for `g` on `iface`.
pub(crate) fn install(iface: &str, g: &SynGuard) -> anyhow::Result<()> {
    nft(&script(iface, g))?;
    // The table's `ct state` loaded conntrack, so the setting exists now.
    let was = std::fs::read_to_string(LOOSE)
        .with_context(|| format!("reading {LOOSE} (is conntrack available?)"))?;
    if was.trim() != "0" {
        if let Err(e) = std::fs::write(LOOSE, "0") {
            let table = table_name(iface);
            let _ = nft(&format!("table inet {table}\ndelete table inet {table}\n"));
            bail!(
                "the SYN guard needs net.netfilter.nf_conntrack_tcp_loose = 0 and writing it \
                 failed ({e}): set it at boot (/etc/sysctl.d, with nf_conntrack in \
                 /etc/modules-load.d) or let vigild write /proc/sys"
            );
        }
        let mut saved = SAVED_LOOSE.lock().unwrap_or_else(|p| p.into_inner());
        saved.get_or_insert_with(|| was.trim().to_owned());
    }
    let ports: Vec<u16> = g.ports.iter().map(|p| p.port).collect();
    info!(%iface, ?ports, table = %table_name(iface), "SYN guard on: XDP answers SYN floods with cookies, netfilter's SYN proxy completes the handshakes");
    Ok(())
}

/// Removes the SYN proxy of `iface`, if there is one, and puts back the loose-pickup setting.
pub(crate) fn remove(iface: &str) {
    let table = table_name(iface);
    if let Err(e) = nft(&format!("table inet {table}\ndelete table inet {table}\n")) {
        warn!(%iface, error = %format!("{e:#}"), "removing the SYN proxy table failed");
    }
    let saved = SAVED_LOOSE.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(v) = saved {
        if let Err(e) = std::fs::write(LOOSE, &v) {
            warn!(error = %e, "restoring {LOOSE} failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_table_per_interface_with_both_families() {
        let g = SynGuard {
            ports: vec![
                vigil_xdp::SynGuardPort {
                    port: 443,
                    syn_rate: 0,
                },
                vigil_xdp::SynGuardPort {
                    port: 8443,
                    syn_rate: 10,
                },
            ],
            hold: std::time::Duration::from_secs(10),
            mss4: 1460,
            mss6: 1440,
            wscale: 7,
            ttl: 64,
        };
        assert_eq!(table_name("eth0.100"), "vigil_syn_eth0_100");
        let s = script("eth0", &g);
        assert!(s.starts_with("table inet vigil_syn_eth0\ndelete table inet vigil_syn_eth0\n"));
        assert!(s.contains(
            "meta nfproto ipv4 iifname \"eth0\" tcp dport { 443, 8443 } ct state \
             invalid,untracked synproxy mss 1460 wscale 7 timestamp sack-perm"
        ));
        assert!(s.contains("synproxy mss 1440 wscale 7"));
        assert!(s.contains("tcp dport { 443, 8443 } ct state invalid drop"));
    }
}
