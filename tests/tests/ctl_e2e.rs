//! vigilctl against a real vigild: `thermal` (levels, hysteresis, overrides) over a fake sysfs
//! tree, `status` with and without the gateway, and `keys rotate` serving a new TPM-sealed key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_testkit::config::{Config, Upstream};
use vigil_testkit::pki::{served_cert_pem, spki_sha256};
use vigil_testkit::procs::assert_failed;
use vigil_testkit::swtpm::Swtpm;
use vigil_testkit::vigild::Vigild;

const NAME: &str = "gw.vigil.test";

/// vigild over a fake sysfs tree, polled every 100 ms, and the vigilctl calls made against it.
struct Daemon(Vigild);

impl Daemon {
    /// Not started yet; `zone0` is the first thermal zone's reading in millidegrees (`None`: no
    /// sensors at all).
    fn new(zone0: Option<u32>) -> Self {
        let d = Vigild::new("ctl").unwrap();
        if let Some(milli) = zone0 {
            d.set_temp(milli).unwrap();
        }
        Self(d)
    }

    /// Starts vigild with `cfg`'s sections.
    fn run(mut self, cfg: Config) -> Self {
        self.0
            .configure(cfg.sysfs(&self.0.sysfs_root(), 100))
            .unwrap();
        self.0.start().unwrap();
        self
    }

    /// `vigilctl keys init` of a TPM-sealed key in `dir`; what it reports.
    fn keys_init(&self, dir: &std::path::Path, tcti: &str) -> Value {
        let dir = dir.to_str().unwrap();
        let args = [
            "keys",
            "init",
            "--dir",
            dir,
            "--tcti",
            tcti,
            "--subject",
            NAME,
        ];
        self.0.ctl_json(&args).unwrap()
    }

    /// The SHA-256 of the public key the TLS listener at `addr` serves.
    fn served_spki(&self, addr: &str) -> String {
        spki_sha256(&served_cert_pem(addr, NAME).unwrap()).unwrap()
    }

    /// vigilctl's stdout; fails the test with its stderr and vigild's log.
    fn ok(&self, args: &[&str]) -> String {
        self.0
            .ctl(args)
            .unwrap_or_else(|e| panic!("{e:#}\nvigild log:\n{}", self.0.log()))
    }

    /// vigilctl fails with a readable message (no panic) holding every one of `needles`;
    /// returns it.
    fn fails(&self, args: &[&str], needles: &[&str]) -> String {
        assert_failed(&self.0.ctl_output(args).unwrap(), needles)
    }

    fn thermal(&self) -> Value {
        serde_json::from_str(&self.ok(&["thermal", "--json"])).unwrap()
    }

    /// Polls `thermal --json` until `pred` holds; panics with the last reply after `within`.
    fn wait_thermal(&self, within: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.thermal();
            if pred(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not seen within {within:?}; last reply:\n{v:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Writes `milli`, waits until vigild has read it, and asserts the level it set then
    /// (the governor updates temperature and level in the same observation).
    fn step(&self, milli: u32, level: &str) {
        self.0.set_temp(milli).unwrap();
        let celsius = f64::from(milli) / 1000.0;
        let v = self.wait_thermal(
            Duration::from_secs(2),
            &format!("{celsius} °C read"),
            |v| v["status"]["temperature_c"].as_f64() == Some(celsius),
        );
        assert_eq!(v["status"]["level"], level, "at {celsius} °C: {v:#}");
    }
}

#[test]
fn thermal_levels_follow_the_sensors_with_hysteresis_and_overrides() {
    let d = Daemon::new(Some(45_000)).run(Config::new());
    let v = d.wait_thermal(Duration::from_secs(2), "first reading", |v| {
        v["status"]["temperature_c"].as_f64() == Some(45.0)
    });
    assert_eq!(v["status"]["level"], "full", "{v:#}");
    assert_eq!(v["sensors"]["readings"][0]["name"], "x86_pkg_temp");
    assert_eq!(v["thresholds"]["reduced_c"].as_f64(), Some(80.0));
    assert_eq!(v["thresholds"]["hysteresis_c"].as_f64(), Some(5.0));

    let text = d.ok(&["thermal"]);
    assert!(
        text.contains("level:         full  (from temperature)"),
        "{text}"
    );
    assert!(text.contains("45.0 °C"), "{text}");
    assert!(text.contains("thermal_zone0"), "{text}");
    assert!(text.contains("x86_pkg_temp"), "{text}");
    assert!(text.contains("override:      none"), "{text}");
    assert!(
        text.contains("reduced 80.0 °C, minimal 90.0 °C, shed 95.0 °C"),
        "{text}"
    );

    // Rising: the hottest threshold reached wins at once.
    d.step(85_000, "reduced");
    d.step(92_000, "minimal");
    d.step(97_000, "shed");
    // Falling: a level is left only 5 °C below its threshold.
    d.step(92_000, "shed");
    d.step(91_000, "shed");
    d.step(89_000, "minimal");
    d.step(86_000, "minimal");
    d.step(84_000, "reduced");
    d.step(77_000, "reduced");
    d.step(76_000, "reduced");
    d.step(70_000, "full");

    // An override pins the level and then expires by itself.
    let pinned_at = Instant::now();
    let text = d.ok(&["thermal", "override", "minimal", "--for", "2s"]);
    assert!(
        text.contains("pinned the inspection level at minimal for 2s"),
        "{text}"
    );
    assert!(
        text.contains("level:         minimal  (forced by operator; temperature alone gives full)"),
        "{text}"
    );
    assert!(text.contains("override:      minimal for "), "{text}");
    let v = d.thermal();
    assert_eq!(v["status"]["level"], "minimal", "{v:#}");
    assert_eq!(v["status"]["override_level"], "minimal", "{v:#}");
    // The governor counts the remaining time from its last poll, which may precede the
    // override by up to one poll interval (100 ms here).
    assert!(
        v["status"]["override_remaining_ms"].as_u64().unwrap() <= 2100,
        "{v:#}"
    );
    let v = d.wait_thermal(Duration::from_secs(5), "override expiry", |v| {
        v["status"]["override_level"].is_null()
    });
    assert!(
        pinned_at.elapsed() >= Duration::from_millis(1500),
        "expired too early: {v:#}"
    );
    assert_eq!(v["status"]["level"], "full", "{v:#}");

    // Clear ends an override at once.
    let v: Value =
        serde_json::from_str(&d.ok(&["thermal", "override", "shed", "--for", "10m", "--json"]))
            .unwrap();
    assert_eq!(v["status"]["level"], "shed", "{v:#}");
    let text = d.ok(&["thermal", "clear"]);
    assert!(text.starts_with("override cleared"), "{text}");
    assert!(text.contains("level:         full"), "{text}");
    assert!(d.thermal()["status"]["override_level"].is_null());

    // Client-side validation: nothing reaches vigild.
    d.fails(
        &["thermal", "override", "hot", "--for", "1m"],
        &["unknown level \"hot\"", "full, reduced, minimal or shed"],
    );
    d.fails(
        &["thermal", "override", "shed", "--for", "banana"],
        &["banana", "--for"],
    );
    d.fails(
        &["thermal", "override", "shed", "--for", "0s"],
        &["between 1s and 7d"],
    );
    d.fails(&["thermal", "override", "shed"], &["--for"]);
    assert_eq!(d.thermal()["status"]["level"], "full");
}

#[test]
fn without_sensors_or_gateway_vigild_says_so() {
    let d = Daemon::new(None).run(Config::new());
    let text = d.ok(&["thermal"]);
    assert!(text.contains("level:         full"), "{text}");
    assert!(text.contains("no sensors: staying at full depth"), "{text}");

    d.fails(
        &["keys", "rotate"],
        &["gateway is not running", "no key to rotate"],
    );

    // status keeps its lines and adds the gateway and host blocks.
    let text = d.ok(&["status"]);
    assert!(text.contains("vigild:        running (pid"), "{text}");
    assert!(text.contains("xdp:           not attached"), "{text}");
    assert!(
        text.contains("gateway:       not running (no [listener] section)"),
        "{text}"
    );
    assert!(text.contains("cpu:           AES-NI "), "{text}");
    assert!(text.contains("AVX-512"), "{text}");
    let v: Value = serde_json::from_str(&d.ok(&["status", "--json"])).unwrap();
    assert!(v["gateway"].is_null(), "{v:#}");
    assert!(v["host"]["cpu"]["aes_ni"].is_boolean(), "{v:#}");
    for nic in v["host"]["nics"].as_array().unwrap() {
        let name = nic["name"].as_str().unwrap();
        assert!(text.contains(name), "NIC {name} missing:\n{text}");
    }
}

#[test]
fn gateway_in_status_and_keys_rotate_serves_the_new_key() {
    let tpm = Swtpm::start().unwrap();
    let d = Daemon::new(Some(45_000));
    let keys = d.0.path("keys");
    let tcti = tpm.tcti();
    let first = d.keys_init(&keys, &tcti);
    let cfg = Config::new()
        .keys(&keys, &tcti)
        .set("listener.https", "127.0.0.1:0")
        .set("metrics.listen", "127.0.0.1:0")
        .upstream(Upstream::new("api", "http://127.0.0.1:9"));
    let d = d.run(cfg);

    let v: Value = serde_json::from_str(&d.ok(&["status", "--json"])).unwrap();
    let https = v["gateway"]["https"].as_str().unwrap().to_owned();
    let metrics = v["gateway"]["metrics"].as_str().unwrap().to_owned();
    assert!(https.starts_with("127.0.0.1:"), "{v:#}");
    let text = d.ok(&["status"]);
    assert!(
        text.contains(&format!(
            "gateway:       https {https}, http off, metrics {metrics}\n"
        )),
        "{text}"
    );
    assert!(text.contains("upstreams:     api\n"), "{text}");
    assert!(text.contains("vigild:        running"), "{text}");

    assert_eq!(d.served_spki(&https), first["spki_sha256"]);

    // A new key in a fresh directory, swapped in by rename, then rotate.
    let fresh = keys.with_file_name("keys.new");
    let second = d.keys_init(&fresh, &tcti);
    assert_ne!(first["spki_sha256"], second["spki_sha256"]);
    std::fs::rename(&keys, keys.with_file_name("keys.old")).unwrap();
    std::fs::rename(&fresh, &keys).unwrap();
    let text = d.ok(&["keys", "rotate"]);
    assert!(
        text.contains("rotated: vigild serves the tpm-sealed key"),
        "{text}"
    );
    let v: Value = serde_json::from_str(&d.ok(&["keys", "rotate", "--json"])).unwrap();
    assert_eq!(v["rotated"], true, "{v:#}");
    assert_eq!(v["mode"], "tpm-sealed", "{v:#}");
    assert_eq!(d.served_spki(&https), second["spki_sha256"]);

    // A key directory that became unusable: rotation is refused and the old key stays.
    std::fs::remove_file(keys.join("sealed.blob")).unwrap();
    d.fails(&["keys", "rotate"], &["keys rotate refused", "sealed.blob"]);
    assert_eq!(d.served_spki(&https), second["spki_sha256"]);
}
