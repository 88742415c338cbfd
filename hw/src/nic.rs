//! Network interface facts from sysfs: driver, queues, MTU, native XDP support.

use std::path::Path;

use crate::thermal::SysfsRoot;

/// Drivers with native (driver-mode) XDP in mainline Linux 6.x. Others fall back to generic XDP,
/// which runs after the kernel allocates an skb and so saves far less work per dropped packet.
pub const NATIVE_XDP_DRIVERS: &[&str] = &[
    "veth",
    "virtio_net",
    "tun",
    "mlx5_core",
    "mlx4_en",
    "i40e",
    "ice",
    "ixgbe",
    "ixgbevf",
    "igb",
    "igc",
    "bnxt_en",
    "ena",
    "nfp",
    "qede",
    "sfc",
    "hv_netvsc",
    "xen-netfront",
    "mvneta",
    "mvpp2",
    "stmmac",
    "fec",
    "enetc",
    "thunder-nicvf",
    "bonding",
];

/// Facts about one network interface.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NicFacts {
    /// Interface name.
    pub name: String,
    /// Kernel driver (`virtio_net`, `veth`, `loopback`, ...), `None` if it cannot be told.
    pub driver: Option<String>,
    /// True for interfaces without a backing device (veth, tun, bridges, loopback).
    pub is_virtual: bool,
    /// Receive queues (`queues/rx-*`).
    pub rx_queues: u32,
    /// Transmit queues (`queues/tx-*`).
    pub tx_queues: u32,
    /// MTU in bytes, if readable.
    pub mtu: Option<u32>,
    /// `operstate` (`up`, `down`, `unknown`, ...).
    pub operstate: Option<String>,
    /// Whether the driver is in [`NATIVE_XDP_DRIVERS`].
    pub native_xdp: bool,
}

impl NicFacts {
    /// Reads the facts of interface `name` under `root` (`class/net/NAME`). Returns `None` if
    /// the interface does not exist; unreadable attributes are left empty.
    pub fn read(root: &SysfsRoot, name: &str) -> Option<Self> {
        // Interface names never contain '/', and refusing them keeps reads inside class/net.
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return None;
        }
        let dir = root.path().join("class/net").join(name);
        if !dir.is_dir() {
            return None;
        }
        let (driver, is_virtual) = driver_of(&dir);
        let native_xdp = driver
            .as_deref()
            .is_some_and(|d| NATIVE_XDP_DRIVERS.contains(&d));
        Some(Self {
            name: name.to_owned(),
            driver,
            is_virtual,
            rx_queues: count_prefixed(&dir.join("queues"), "rx-"),
            tx_queues: count_prefixed(&dir.join("queues"), "tx-"),
            mtu: read_attr(&dir, "mtu").and_then(|s| s.parse().ok()),
            operstate: read_attr(&dir, "operstate"),
            native_xdp,
        })
    }

    /// Facts for every interface under `root`, sorted by name.
    pub fn read_all(root: &SysfsRoot) -> Vec<Self> {
        let Ok(rd) = std::fs::read_dir(root.path().join("class/net")) else {
            return Vec::new();
        };
        let mut names: Vec<String> = rd
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names.iter().filter_map(|n| Self::read(root, n)).collect()
    }
}

fn read_attr(dir: &Path, attr: &str) -> Option<String> {
    // Bounded: the sysfs root is configurable, so the tree may hold a FIFO or a device.
    vigil_files::read_to_string(&dir.join(attr), vigil_files::FileKind::SysfsAttribute)
        .ok()
        .map(|s| s.trim().to_owned())
}

fn count_prefixed(dir: &Path, prefix: &str) -> u32 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let n = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The driver name and whether the interface is virtual. Physical (and virtio) devices name
/// their driver through the `device/driver` symlink; virtual ones have no `device`, so the
/// driver is inferred without ethtool from what each kind leaves in sysfs.
fn driver_of(dir: &Path) -> (Option<String>, bool) {
    if let Ok(target) = std::fs::read_link(dir.join("device/driver")) {
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned());
        return (name, false);
    }
    let uevent = read_attr(dir, "uevent").unwrap_or_default();
    let devtype = uevent
        .lines()
        .find_map(|l| l.strip_prefix("DEVTYPE="))
        .map(str::to_owned);
    let driver = if read_attr(dir, "type").as_deref() == Some("772") {
        Some("loopback".to_owned())
    } else if dir.join("tun_flags").exists() {
        Some("tun".to_owned())
    } else if dir.join("bridge").is_dir() {
        Some("bridge".to_owned())
    } else if dir.join("bonding").is_dir() {
        Some("bonding".to_owned())
    } else if let Some(devtype) = devtype {
        // vlan, vxlan, wlan, ... name their kind here.
        Some(devtype)
    } else if let (Some(index), Some(link)) = (read_attr(dir, "ifindex"), read_attr(dir, "iflink"))
    {
        // A veth's iflink is its peer's ifindex; other untyped virtual devices (ifb, dummy)
        // point at themselves.
        (index != link && link != "0").then(|| "veth".to_owned())
    } else {
        None
    };
    (driver, true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::test_support::put;

    fn nic(r: &Path, name: &str, ifindex: u32, iflink: u32, queues: u32) {
        let base = format!("class/net/{name}");
        put(r, &format!("{base}/ifindex"), &format!("{ifindex}\n"));
        put(r, &format!("{base}/iflink"), &format!("{iflink}\n"));
        put(r, &format!("{base}/type"), "1\n");
        put(r, &format!("{base}/mtu"), "1500\n");
        put(r, &format!("{base}/operstate"), "up\n");
        put(
            r,
            &format!("{base}/uevent"),
            &format!("INTERFACE={name}\nIFINDEX={ifindex}\n"),
        );
        for q in 0..queues {
            std::fs::create_dir_all(r.join(format!("{base}/queues/rx-{q}"))).unwrap();
            std::fs::create_dir_all(r.join(format!("{base}/queues/tx-{q}"))).unwrap();
        }
    }

    #[test]
    fn drivers_queues_and_xdp_support_from_a_fake_tree() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        nic(r, "eth0", 2, 2, 4);
        std::fs::create_dir_all(r.join("bus/pci/drivers/ixgbe")).unwrap();
        std::fs::create_dir_all(r.join("devices/pci0")).unwrap();
        std::os::unix::fs::symlink(r.join("devices/pci0"), r.join("class/net/eth0/device"))
            .unwrap();
        std::os::unix::fs::symlink(
            r.join("bus/pci/drivers/ixgbe"),
            r.join("devices/pci0/driver"),
        )
        .unwrap();
        nic(r, "veth1", 5, 6, 1);
        nic(r, "ifb0", 3, 3, 1);
        nic(r, "lo", 1, 1, 1);
        put(r, "class/net/lo/type", "772\n");
        nic(r, "tap0", 7, 7, 2);
        put(r, "class/net/tap0/tun_flags", "0x1002\n");
        nic(r, "br0", 8, 8, 1);
        std::fs::create_dir_all(r.join("class/net/br0/bridge")).unwrap();
        nic(r, "eth0.10", 9, 2, 1);
        put(
            r,
            "class/net/eth0.10/uevent",
            "DEVTYPE=vlan\nINTERFACE=eth0.10\n",
        );
        put(r, "class/net/eth0.10/mtu", "jumbo\n");

        let all = NicFacts::read_all(&SysfsRoot::new(r));
        let got: Vec<(&str, Option<&str>, bool, u32, bool)> = all
            .iter()
            .map(|n| {
                (
                    n.name.as_str(),
                    n.driver.as_deref(),
                    n.is_virtual,
                    n.rx_queues,
                    n.native_xdp,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("br0", Some("bridge"), true, 1, false),
                ("eth0", Some("ixgbe"), false, 4, true),
                ("eth0.10", Some("vlan"), true, 1, false),
                ("ifb0", None, true, 1, false),
                ("lo", Some("loopback"), true, 1, false),
                ("tap0", Some("tun"), true, 2, true),
                ("veth1", Some("veth"), true, 1, true),
            ]
        );
        let vlan = &all[2];
        assert_eq!((vlan.mtu, vlan.tx_queues), (None, 1));
        assert_eq!(all[1].mtu, Some(1500));
        assert_eq!(all[1].operstate.as_deref(), Some("up"));
    }

    #[test]
    fn unknown_and_path_like_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysfsRoot::new(dir.path());
        assert_eq!(NicFacts::read(&root, "eth9"), None);
        assert_eq!(NicFacts::read(&root, "../.."), None);
        assert_eq!(NicFacts::read(&root, ".."), None);
        assert!(NicFacts::read_all(&root).is_empty());
    }
}
