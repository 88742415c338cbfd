//! The firmware image, built and booted (needs root: mmdebstrap, and QEMU with swtpm as the
//! TPM): `images/build.sh` makes the disk image and the signed bundle; the image boots under
//! OVMF in QEMU (TCG: nested KVM cannot run OVMF on these machines), makes and seals its TLS key
//! in the TPM on first boot, attaches XDP natively on virtio_net, answers HTTPS through the
//! forwarded port with the host's upstream behind it, and marks its slot good. The bundle
//! verifies against the image's CA and not against another.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use vigil_e2e::{run_ok, upstream::Upstream, workspace_root};
use vigil_testkit::ports::free_port;

/// A child killed by PID and reaped on drop (QEMU, swtpm).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the console log holds `needle` (at most `limit`); the log.
fn console_until(log: &Path, needle: &str, limit: Duration, qemu: &mut Guard) -> String {
    let start = Instant::now();
    loop {
        let text = String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned();
        if text.contains(needle) {
            return text;
        }
        if let Ok(Some(status)) = qemu.0.try_wait() {
            panic!("QEMU exited ({status}) before {needle:?}:\n{}", tail(&text));
        }
        assert!(
            start.elapsed() < limit,
            "no {needle:?} on the console within {limit:?}:\n{}",
            tail(&text)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

#[test]
fn the_image_boots_serves_https_and_marks_its_slot_good() {
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::start().unwrap();
    let out = dir.path().join("image");
    let started = Instant::now();
    // QEMU's user network shows the host's loopback as 10.0.2.2.
    let build = run_ok(
        Command::new(workspace_root().join("images/build.sh")).args([
            "--profile",
            "debug",
            "--version",
            "0.1.0-test",
            "--out",
            out.to_str().unwrap(),
            "--upstream",
            &format!("http://10.0.2.2:{}", up.addr.port()),
        ]),
    );
    eprintln!("image build: {:?}\n{build}", started.elapsed());
    let img = out.join("vigil-0.1.0-test.img");
    let bundle = out.join("vigil-0.1.0-test.raucb");
    assert!(img.exists() && bundle.exists(), "{build}");
    let table = run_ok(Command::new("sgdisk").arg("-p").arg(&img));
    for label in ["esp", "rootfs-a", "rootfs-b", "vigil-data"] {
        assert!(table.contains(label), "no {label} partition:\n{table}");
    }

    // The bundle verifies with the image's CA, and not with another one.
    let ca = out.join("keys/dev-ca.pem");
    let info = run_ok(
        Command::new("rauc")
            .args(["info", "--output-format=shell", "--keyring"])
            .arg(&ca)
            .arg(&bundle),
    );
    assert!(info.contains("RAUC_MF_COMPATIBLE='vigil-x86_64'"), "{info}");
    assert!(info.contains("RAUC_MF_VERSION='0.1.0-test'"), "{info}");
    let other = dir.path().join("other-ca.pem");
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
                "/CN=another CA",
                "-keyout",
            ])
            .arg(dir.path().join("other-ca.key"))
            .arg("-out")
            .arg(&other),
    );
    let refused = Command::new("rauc")
        .args(["info", "--keyring"])
        .arg(&other)
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "a bundle verified against a foreign CA"
    );

    // Boot it: a copy of the image, OVMF's variables, swtpm as the TPM.
    let disk = dir.path().join("disk.img");
    run_ok(
        Command::new("cp")
            .arg("--sparse=always")
            .arg(&img)
            .arg(&disk),
    );
    let vars = dir.path().join("vars.fd");
    std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars).unwrap();
    let tpm_dir = dir.path().join("tpm");
    std::fs::create_dir(&tpm_dir).unwrap();
    let tpm_sock = dir.path().join("swtpm.sock");
    let _swtpm = Guard(
        Command::new("swtpm")
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", tpm_dir.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", tpm_sock.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("swtpm is installed by scripts/setup.sh"),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !tpm_sock.exists() {
        assert!(Instant::now() < deadline, "swtpm did not create its socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let https = free_port().unwrap();
    let console = dir.path().join("console.log");
    eprintln!("booting under QEMU with TCG (OVMF does not run under nested KVM here)");
    let boot = Instant::now();
    let mut qemu = Guard(
        Command::new("qemu-system-x86_64")
            .args([
                "-machine", "q35", "-accel", "tcg", "-m", "1024", "-smp", "2", "-cpu", "max",
            ])
            .args([
                "-drive",
                "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
            ])
            .arg("-drive")
            .arg(format!("if=pflash,format=raw,file={}", vars.display()))
            .arg("-drive")
            .arg(format!("if=virtio,format=raw,file={}", disk.display()))
            .arg("-netdev")
            .arg(format!("user,id=n0,hostfwd=tcp:127.0.0.1:{https}-:443"))
            .args(["-device", "virtio-net-pci,netdev=n0"])
            .arg("-chardev")
            .arg(format!("socket,id=chrtpm,path={}", tpm_sock.display()))
            .args([
                "-tpmdev",
                "emulator,id=tpm0,chardev=chrtpm",
                "-device",
                "tpm-tis,tpmdev=tpm0",
            ])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .args(["-display", "none", "-no-reboot"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu-system-x86 is installed by scripts/setup.sh"),
    );
    let text = console_until(
        &console,
        "VIGIL-HEALTH:",
        Duration::from_secs(600),
        &mut qemu,
    );
    let ready_after = boot.elapsed();
    let from = text.find("VIGIL-HEALTH:").unwrap();
    let line = text[from..].lines().next().unwrap_or("").to_owned();
    assert!(line.contains("slot=A good"), "{line}\n{}", tail(&text));
    assert!(line.contains("version=0.1.0-test"), "{line}");
    // The status JSON vigilctl printed after it, spaces removed.
    let status: String = text[from..]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert!(
        status.contains("\"interface\":\"eth0\",\"mode\":\"native\""),
        "XDP not native on eth0: {}",
        &text[from..]
    );
    // The key first boot made is sealed to the (software) TPM, on the data partition.
    assert!(
        status.contains("\"mode\":\"tpm-sealed\",\"source\":\"/var/lib/vigil/keys\""),
        "key not sealed: {}",
        &text[from..]
    );

    // HTTPS through the forwarded port reaches the host's upstream.
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "20", "-w", "\n%{http_code}"])
        .arg(format!("https://127.0.0.1:{https}/from-the-host"))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.trim_end().ends_with("200"), "{body}");
    assert!(body.contains("/from-the-host"), "{body}");
    eprintln!(
        "image: build {:?}, boot to ready and slot marked good {ready_after:?}",
        started.elapsed() - ready_after
    );
}
