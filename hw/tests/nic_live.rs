//! NIC facts against real interfaces (needs root to create a veth pair, as CI runs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use vigil_hw::NicFacts;
use vigil_hw::thermal::SysfsRoot;

/// A veth pair that is deleted (both ends) when dropped, even if the test fails.
struct VethPair {
    a: String,
}

impl VethPair {
    fn create() -> Self {
        // Names unique per process so parallel runs do not collide (15 chars max).
        let id = std::process::id() % 100_000;
        let (a, b) = (format!("vhw{id}a"), format!("vhw{id}b"));
        let status = Command::new("ip")
            .args(["link", "add", &a, "type", "veth", "peer", "name", &b])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "ip link add failed (this test needs root)"
        );
        Self { a }
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.a]).status();
    }
}

#[test]
fn veth_is_recognised_as_native_xdp_capable() {
    let pair = VethPair::create();
    let facts = NicFacts::read(&SysfsRoot::new("/sys"), &pair.a).unwrap();
    assert_eq!(facts.driver.as_deref(), Some("veth"));
    assert!(facts.native_xdp);
    assert!(facts.is_virtual);
    assert_eq!(facts.mtu, Some(1500));
    assert!(facts.rx_queues >= 1 && facts.tx_queues >= 1, "{facts:?}");
}

#[test]
fn loopback_is_not_native_xdp_capable() {
    let facts = NicFacts::read(&SysfsRoot::new("/sys"), "lo").unwrap();
    assert_eq!(facts.driver.as_deref(), Some("loopback"));
    assert!(!facts.native_xdp);
}
