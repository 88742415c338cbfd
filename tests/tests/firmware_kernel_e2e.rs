//! Both builds of the XDP program (with and without the SYN guard) on the kernel the firmware
//! image ships, not only on this machine's: that kernel's verifier is older and refuses what a
//! newer one accepts. The kernel (Debian's linux-image-amd64, as images/build.sh installs it)
//! and a static busybox come from xdp/fetch-firmware-kernel.sh (scripts/test.sh runs it); the
//! test boots the kernel under QEMU with an initramfs holding bpftool and the two objects, and
//! every object must load there. Takes about a minute (TCG).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{os::unix::fs::symlink, path::Path, process::Command};

use vigil_e2e::{run_ok, workspace_root};

/// What runs as PID 1: mount what bpftool needs, load each object, say how it went, power off.
const INIT: &str = r#"#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t bpf bpf /sys/fs/bpf
echo "=== kernel $(cat /proc/sys/kernel/osrelease)"
for o in /obj/*.o; do
  if bpftool -d prog load "$o" "/sys/fs/bpf/p_$(basename "$o" .o)" type xdp > /tmp/log 2>&1; then
    echo "=== LOADED $o: $(grep '^processed' /tmp/log | tail -n 1)"
  else
    echo "=== REFUSED $o"
    grep -v '^[0-9]*: ' /tmp/log | grep -v '^regs=\|^last_idx\|^libbpf: unpinned' | tail -n 40
  fi
done
echo "=== done"
poweroff -f
"#;

/// Copies `bin` and the shared libraries `ldd` names for it into `root`, at the same paths.
fn copy_with_libs(bin: &Path, root: &Path) {
    let mut files = vec![bin.to_path_buf()];
    let ldd = run_ok(Command::new("ldd").arg(bin));
    files.extend(
        ldd.split_whitespace()
            .filter(|w| w.starts_with('/'))
            .map(std::path::PathBuf::from),
    );
    for f in files {
        let to = root.join(f.strip_prefix("/").unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&f, &to).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

#[test]
fn both_builds_of_the_program_load_on_the_firmware_images_kernel() {
    let data = workspace_root().join("target/test-data/firmware-kernel");
    assert!(
        data.join("vmlinuz").exists() && data.join("busybox").exists(),
        "{} is missing the firmware's kernel: run xdp/fetch-firmware-kernel.sh (scripts/test.sh \
         does)",
        data.display()
    );
    let version = std::fs::read_to_string(data.join("version")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for d in ["bin", "proc", "sys", "dev", "tmp", "obj"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(data.join("busybox"), root.join("bin/busybox")).unwrap();
    for applet in ["sh", "mount", "cat", "grep", "tail", "basename", "poweroff"] {
        symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let bpftool = run_ok(Command::new("sh").args(["-c", "command -v bpftool"]));
    copy_with_libs(Path::new(bpftool.trim()), &root);
    std::fs::create_dir_all(root.join("sbin")).unwrap();
    if !root.join("sbin/bpftool").exists() {
        symlink(bpftool.trim(), root.join("sbin/bpftool")).unwrap();
    }
    std::fs::write(root.join("obj/vigil.o"), vigil_xdp::OBJECT).unwrap();
    std::fs::write(root.join("obj/vigil_syn.o"), vigil_xdp::OBJECT_SYN_GUARD).unwrap();
    std::fs::write(root.join("init"), INIT).unwrap();
    run_ok(Command::new("chmod").arg("755").arg(root.join("init")));
    let initrd = dir.path().join("initrd.cpio");
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg("find . | cpio -o -H newc --quiet > \"$0\"")
            .arg(&initrd)
            .current_dir(&root),
    );

    let mut qemu = Command::new("timeout");
    // A test binary killed while QEMU runs must not leave it behind: `timeout` (in a process
    // group of its own, out of reach of a signal to the test's group) gets SIGTERM when this
    // thread ends and passes it on.
    vigil_testkit::procs::stop_with_this_thread(&mut qemu);
    let out = qemu
        .args(["600", "qemu-system-x86_64"])
        .args(["-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "1"])
        .args(["-nographic", "-no-reboot", "-kernel"])
        .arg(data.join("vmlinuz"))
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 rdinit=/init quiet panic=-1"])
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let report = console.find("=== kernel").map_or("", |at| &console[at..]);
    println!("{}{report}", version);
    assert!(
        report.contains("=== done"),
        "the kernel did not run the loader to the end (QEMU {}):\n{console}",
        out.status
    );
    for obj in ["vigil.o", "vigil_syn.o"] {
        assert!(
            report.contains(&format!("=== LOADED /obj/{obj}")),
            "{obj} refused by {version}{report}"
        );
    }
}
