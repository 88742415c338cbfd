//! The firmware, built and lived with (needs root: mmdebstrap, and QEMU with swtpm as the TPM).
//! `images/build.sh` makes the disk image (2 boot attempts per slot, a test shell on ttyS1) and
//! two more bundles; the box boots under OVMF in QEMU and then goes through what a box in the
//! field does:
//! 1. first boot: the TLS key is made and sealed to the TPM under the image's signed PCR
//!    policy, XDP attaches natively on virtio_net, HTTPS answers from the host's upstream, the
//!    slot is marked good, and PCR 9 holds what the build predicted;
//! 2. a bundle signed by another CA and one for another product are refused before any slot
//!    is written;
//! 3. bundle v2 installs with `vigilctl image install`, boots, is marked good and unseals the
//!    same key under its own signed policy;
//! 4. a bundle whose vigild cannot start fails its health check on each of its 2 attempts and
//!    the box returns to v2 by itself, and `vigilctl image status` says so;
//! 5. a modified boot (grub.cfg changed on the ESP): the key does not unseal, the gateway
//!    stays down, and XDP keeps dropping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use vigil_e2e::{run_ok, upstream::Upstream, vmbox::VmBox, workspace_root};

const BOOT: Duration = Duration::from_secs(600);
const SHELL: Duration = Duration::from_secs(120);

/// Runs images/build.sh into `out`. With VIGIL_IMAGE_TEST_OUT set (a developer re-running the
/// test), a version already built there is reused from its saved log.
fn build(out: &Path, args: &[&str]) -> String {
    let version = args[args.iter().position(|a| *a == "--version").unwrap() + 1];
    let saved = out.join(format!("build-{version}.log"));
    if std::env::var_os("VIGIL_IMAGE_TEST_OUT").is_some()
        && let Ok(log) = std::fs::read_to_string(&saved)
    {
        return log;
    }
    let started = Instant::now();
    let log = run_ok(
        Command::new(workspace_root().join("images/build.sh"))
            .args(["--profile", "debug", "--out"])
            .arg(out)
            .args(args),
    );
    eprintln!("build {args:?}: {:?}\n{log}", started.elapsed());
    std::fs::write(&saved, &log).unwrap();
    log
}

fn summary_value(log: &str, key: &str) -> String {
    log.lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .map(|v| v.split_whitespace().next().unwrap_or("").to_owned())
        .unwrap_or_else(|| panic!("no {key} in the build summary:\n{log}"))
}

fn https_get(b: &VmBox, path: &str, limit_secs: u32) -> String {
    let out = Command::new("curl")
        .args([
            "-sk",
            "-w",
            "\n%{http_code}",
            "--max-time",
            &limit_secs.to_string(),
        ])
        .arg(format!("https://127.0.0.1:{}{path}", b.https))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A bundle made from `src`'s root filesystem with another manifest or key.
/// `keys`: the build's key directory (its CA verifies `src`).
fn rebundle(
    dir: &Path,
    keys: &Path,
    src: &Path,
    name: &str,
    compatible: &str,
    cert: &Path,
    key: &Path,
) {
    let x = dir.join(format!("x-{name}"));
    run_ok(
        Command::new("rauc")
            .arg("extract")
            .arg(format!("--keyring={}", keys.join("dev-ca.pem").display()))
            .arg(src)
            .arg(&x),
    );
    let content = dir.join(format!("c-{name}"));
    std::fs::create_dir(&content).unwrap();
    std::fs::rename(x.join("rootfs.img"), content.join("rootfs.img")).unwrap();
    std::fs::write(
        content.join("manifest.raucm"),
        format!(
            "[update]\ncompatible={compatible}\nversion=9.9.9\n\n[bundle]\nformat=verity\n\n\
             [image.rootfs]\nfilename=rootfs.img\n"
        ),
    )
    .unwrap();
    run_ok(
        Command::new("rauc")
            .arg("bundle")
            .arg(format!("--cert={}", cert.display()))
            .arg(format!("--key={}", key.display()))
            .arg(&content)
            .arg(dir.join("bundles").join(name)),
    );
    let _ = std::fs::remove_dir_all(&x);
    let _ = std::fs::remove_dir_all(&content);
}

fn openssl_ca(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=another vendor",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    (cert, key)
}

#[test]
fn the_image_boots_updates_rolls_back_and_refuses_a_modified_boot() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let reuse = std::env::var_os("VIGIL_IMAGE_TEST_OUT");
    let out = reuse
        .clone()
        .map_or_else(|| dir.join("image"), std::path::PathBuf::from);
    // Reused images have the upstream's port baked in: serve on it again.
    let port_file = out.join("upstream-port");
    let up = match std::fs::read_to_string(&port_file) {
        Ok(port) if reuse.is_some() => Upstream::start_on(&format!("127.0.0.1:{}", port.trim())),
        _ => Upstream::start(),
    }
    .unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(&port_file, up.addr.port().to_string()).unwrap();
    let upstream = format!("http://10.0.2.2:{}", up.addr.port());

    // The image (v1), then bundles v2 and a broken v3 from the same package download.
    let common = [
        "--upstream",
        &upstream,
        "--boot-attempts",
        "2",
        "--dev-console",
    ];
    let build_version = |version: &str, extra: &[&str]| {
        let mut args = vec!["--version", version];
        args.extend(common);
        args.extend(extra);
        build(&out, &args)
    };
    let v1 = build_version("0.1.0-test", &[]);
    let pcr9_v1 = summary_value(&v1, "PCR 9:");
    let base = out.join("cache/base.tar");
    let base = base.to_str().unwrap();
    let v2 = build_version("0.2.0-test", &["--bundle-only", "--base-tar", base]);
    let pcr9_v2 = summary_value(&v2, "PCR 9:");
    assert_ne!(pcr9_v1, pcr9_v2, "a new initramfs must change PCR 9");
    let broken = dir.join("broken.toml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(workspace_root().join("images/box/vigild.toml"))
            .unwrap()
            .replace("https = \"0.0.0.0:443\"", "https = \"0.0.0.0:not-a-port\""),
    )
    .unwrap();
    build_version(
        "0.3.0-broken",
        &[
            "--bundle-only",
            "--base-tar",
            base,
            "--config",
            broken.to_str().unwrap(),
        ],
    );
    let img = out.join("vigil-0.1.0-test.img");
    let table = run_ok(Command::new("sgdisk").arg("-p").arg(&img));
    for label in ["esp", "rootfs-a", "rootfs-b", "vigil-data"] {
        assert!(table.contains(label), "no {label} partition:\n{table}");
    }

    // The bundles the box will see on its second disk, two of them not acceptable.
    let bundles = dir.join("bundles");
    std::fs::create_dir(&bundles).unwrap();
    for v in ["0.2.0-test", "0.3.0-broken"] {
        std::fs::copy(
            out.join(format!("vigil-{v}.raucb")),
            bundles.join(format!("vigil-{v}.raucb")),
        )
        .unwrap();
    }
    let v2_bundle = bundles.join("vigil-0.2.0-test.raucb");
    let (other_cert, other_key) = openssl_ca(dir, "other-vendor");
    let keys = out.join("keys");
    rebundle(
        dir,
        &keys,
        &v2_bundle,
        "foreign.raucb",
        "vigil-x86_64",
        &other_cert,
        &other_key,
    );
    rebundle(
        dir,
        &keys,
        &v2_bundle,
        "other-product.raucb",
        "toaster-arm64",
        &out.join("keys/dev-signing.pem"),
        &out.join("keys/dev-signing.key"),
    );
    // The box's CA does not verify the foreign bundle (checked on the host too).
    let refused = Command::new("rauc")
        .arg("info")
        .arg(format!(
            "--keyring={}",
            out.join("keys/dev-ca.pem").display()
        ))
        .arg(bundles.join("foreign.raucb"))
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "the host verified a foreign bundle"
    );
    let bundles_img = dir.join("bundles.img");
    let size: u64 = std::fs::read_dir(&bundles)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    run_ok(
        Command::new("truncate")
            .arg(format!("-s{}", size + (64 << 20)))
            .arg(&bundles_img),
    );
    run_ok(
        Command::new("mkfs.ext4")
            .args(["-q", "-d"])
            .arg(&bundles)
            .arg(&bundles_img),
    );

    // 1. First boot.
    let disk = dir.join("disk.img");
    run_ok(
        Command::new("cp")
            .arg("--sparse=always")
            .arg(&img)
            .arg(&disk),
    );
    let boot = Instant::now();
    let mut b = VmBox::boot(dir, &disk, Some(&bundles_img));
    b.phase("1. first boot (v1, slot A)");
    let line = b.console_until("VIGIL-HEALTH:", BOOT);
    let first_boot = boot.elapsed();
    if !line.contains("slot=A good version=0.1.0-test") {
        // vigild's own words are in the journal, not on the console.
        let journal = b
            .sh(
                "journalctl -u vigild -n 80 --no-pager",
                Duration::from_secs(60),
            )
            .1;
        panic!(
            "{line}\n{}\n--- journalctl -u vigild ---\n{journal}",
            b.tail()
        );
    }
    let status: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(
        status.contains("\"interface\":\"eth0\",\"mode\":\"native\""),
        "XDP not native on eth0: {line}"
    );
    assert!(
        status.contains("\"mode\":\"tpm-sealed\",\"source\":\"/var/lib/vigil/keys\""),
        "key not sealed: {line}"
    );
    let body = https_get(&b, "/from-the-host", 20);
    assert!(body.trim_end().ends_with("200"), "{body}");
    assert!(body.contains("/from-the-host"), "{body}");
    b.shell_ready(SHELL);
    let pcr9 = b.sh_ok("cat /sys/class/tpm/tpm0/pcr-sha256/9", SHELL);
    assert_eq!(
        pcr9.trim().to_ascii_lowercase(),
        pcr9_v1,
        "PCR 9 is not what the build predicted"
    );
    let st = b.sh_ok("vigilctl image status", SHELL);
    assert!(st.contains("0.1.0-test"), "{st}");
    assert!(st.contains("booted from slot A"), "{st}");
    // vigild's own status names the image, the slot and the key mode.
    let st = b.sh_ok("vigilctl status", SHELL);
    assert!(
        st.contains("firmware:      Vigil 0.1.0-test, slot A"),
        "{st}"
    );
    assert!(
        st.contains("key:           tpm-sealed from /var/lib/vigil/keys"),
        "{st}"
    );
    // The box guards its TLS port against SYN floods on its own kernel's verifier.
    assert!(st.contains("syn guard:     port 443"), "{st}");
    let nft = b.sh_ok("nft list table inet vigil_syn_eth0", SHELL);
    assert!(nft.contains("synproxy"), "{nft}");

    // 2. Refused before any slot is written.
    b.sh_ok("mount -o ro /dev/vdb /mnt", SHELL);
    let (rc, msg) = b.sh("vigilctl image install /mnt/foreign.raucb", SHELL);
    assert_ne!(rc, 0, "{msg}");
    assert!(msg.contains("not a bundle this box trusts"), "{msg}");
    let (rc, msg) = b.sh("vigilctl image install /mnt/other-product.raucb", SHELL);
    assert_ne!(rc, 0, "{msg}");
    assert!(
        msg.contains("a bundle for 'toaster-arm64', this box is 'vigil-x86_64'"),
        "{msg}"
    );
    let st = b.sh_ok("vigilctl --json image status", SHELL);
    let st: serde_json::Value = serde_json::from_str(st.lines().last().unwrap()).unwrap();
    let slot_b = st["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["bootname"] == "B")
        .unwrap()
        .clone();
    assert!(slot_b["installed"].is_null(), "slot B was written: {st}");
    assert!(
        st["last_install"]["result"]
            .as_str()
            .unwrap()
            .contains("refused")
    );

    // 3. The update.
    let started = Instant::now();
    let msg = b.sh_ok("vigilctl image install /mnt/vigil-0.2.0-test.raucb", BOOT);
    let install_time = started.elapsed();
    assert!(
        msg.contains("installed Vigil 0.2.0-test into slot B"),
        "{msg}"
    );
    let st = b.sh_ok("vigilctl image status", SHELL);
    assert!(st.contains("next boot: slot B"), "{st}");
    let started = Instant::now();
    b.phase("3. reboot into v2 (slot B)");
    b.sh_ok("systemctl --no-block reboot", SHELL);
    let line = b.console_until("VIGIL-HEALTH:", BOOT);
    let update_boot = started.elapsed();
    assert!(
        line.contains("slot=B good version=0.2.0-test"),
        "{line}\n{}",
        b.tail()
    );
    assert!(
        line.replace(' ', "").contains("\"mode\":\"tpm-sealed\""),
        "the key did not unseal under v2: {line}"
    );
    let body = https_get(&b, "/after-update", 20);
    assert!(body.trim_end().ends_with("200"), "{body}");

    // 4. A bundle that cannot serve: two failed attempts, then back to v2.
    b.shell_ready(SHELL);
    b.sh_ok("mount -o ro /dev/vdb /mnt", SHELL);
    let msg = b.sh_ok("vigilctl image install /mnt/vigil-0.3.0-broken.raucb", BOOT);
    assert!(msg.contains("into slot A"), "{msg}");
    let started = Instant::now();
    b.phase("4. reboot into the broken v3 (slot A), attempt 1");
    b.sh_ok("systemctl --no-block reboot", SHELL);
    for attempt in 1..=2 {
        b.phase(&format!("4. the broken v3 (slot A), attempt {attempt}"));
        let line = b.console_until("VIGIL-HEALTH:", BOOT);
        assert!(
            line.contains("slot=A bad version=0.3.0-broken"),
            "attempt {attempt}: {line}\n{}",
            b.tail()
        );
        assert!(line.contains("vigild failed"), "{line}");
    }
    b.phase("4. back to v2 (slot B) after the broken one's attempts");
    let line = b.console_until("VIGIL-HEALTH:", BOOT);
    let rollback = started.elapsed();
    assert!(
        line.contains("slot=B good version=0.2.0-test"),
        "{line}\n{}",
        b.tail()
    );
    b.shell_ready(SHELL);
    let st = b.sh_ok("vigilctl image status", SHELL);
    assert!(
        st.contains("ROLLED BACK: slot A (version 0.3.0-broken)"),
        "{st}"
    );
    assert!(st.contains("after 2 boot attempt(s)"), "{st}");
    assert!(st.contains("booted from slot B"), "{st}");
    // Every reset of the box is one the test asked for or the health check made: the reboot
    // into v2, the reboot into v3 and v3's two failed attempts. One more would be the hardware
    // watchdog resetting a box that was working.
    assert_eq!(
        b.power_ons,
        4,
        "the box reset {} times, not 4 (phases 3 and 4 reboot it 4 times):\n{}",
        b.power_ons,
        b.tail()
    );

    // 5. A modified boot: grub.cfg (measured into PCR 9) edited on the ESP, here to switch the
    // health check off as an intruder would.
    b.power_off();
    let cfg = dir.join("grub.cfg");
    let esp = format!("{}@@1048576", disk.display());
    run_ok(
        Command::new("mcopy")
            .args(["-n", "-i", &esp, "::/EFI/BOOT/grub.cfg"])
            .arg(&cfg),
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("panic=10"));
    std::fs::write(
        &cfg,
        text.replace("panic=10", "panic=10 systemd.mask=vigil-health.service"),
    )
    .unwrap();
    run_ok(
        Command::new("mcopy")
            .args(["-o", "-i", &esp])
            .arg(&cfg)
            .arg("::/EFI/BOOT/grub.cfg"),
    );
    let mut b = VmBox::boot(dir, &disk, None);
    b.phase("5. boot with a modified grub.cfg");
    b.shell_ready(BOOT);
    let deadline = Instant::now() + BOOT;
    loop {
        let (_, state) = b.sh("systemctl is-failed vigild.service", SHELL);
        if state.trim() == "failed" {
            break;
        }
        assert!(Instant::now() < deadline, "vigild did not fail: {state}");
        std::thread::sleep(Duration::from_secs(5));
    }
    let journal = b.sh_ok(
        "journalctl -u vigild.service -o cat --no-pager | tail -n 40",
        SHELL,
    );
    assert!(journal.contains("PCR 9"), "{journal}");
    assert!(journal.contains("XDP stays attached"), "{journal}");
    let body = https_get(&b, "/after-tampering", 20);
    assert!(!body.trim_end().ends_with("200"), "HTTPS answered: {body}");
    let link = b.sh_ok("ip -d link show eth0", SHELL);
    assert!(link.contains("xdp"), "XDP detached: {link}");
    // Block the host (QEMU's user network shows it as 10.0.2.2) through the pinned maps and
    // watch its packets being dropped with vigild down.
    b.sh_ok("vigilctl block add 10.0.2.2/32 --reason test", SHELL);
    let before = b.sh_ok("vigilctl --json stats 2>/dev/null", SHELL);
    for _ in 0..3 {
        https_get(&b, "/dropped", 5);
    }
    let after = b.sh_ok("vigilctl --json stats 2>/dev/null", SHELL);
    let dropped = |s: &str| -> u64 {
        let v: serde_json::Value =
            serde_json::from_str(s).unwrap_or_else(|e| panic!("vigilctl --json stats: {e}: {s}"));
        v["dropped_packets"]
            .as_u64()
            .unwrap_or_else(|| panic!("no dropped_packets in {v}"))
    };
    assert!(
        dropped(&after) > dropped(&before),
        "no drops while vigild is down:\n{before}\n{after}"
    );
    b.power_off();
    eprintln!(
        "image: first boot to slot marked good {first_boot:?}, install {install_time:?}, \
         update boot {update_boot:?}, roll back (2 failed attempts + good boot) {rollback:?}"
    );
}
