//! The Debian package (images/deb.sh): its control fields and declared library dependencies,
//! its files (binaries, unit, conffiles, man pages, completions), that apt can resolve it on
//! this Debian, and that the packaged binaries run. Built from the debug binaries, so the
//! test checks the package's shape, not a release build. No root needed (apt only simulates).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use vigil_e2e::{run_ok, workspace_root};

#[test]
fn the_package_declares_its_libraries_holds_its_files_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let log = run_ok(Command::new(workspace_root().join("images/deb.sh")).args([
        "--profile",
        "debug",
        "--version",
        "0.1.0~test1",
        "--out",
        out.to_str().unwrap(),
    ]));
    let deb = out.join("vigil_0.1.0~test1_amd64.deb");
    assert!(deb.exists(), "{log}");
    assert!(log.contains("sha256:"), "{log}");

    let field = |f: &str| {
        run_ok(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(f))
            .trim()
            .to_owned()
    };
    assert_eq!(field("Package"), "vigil");
    assert_eq!(field("Version"), "0.1.0~test1");
    assert_eq!(field("Architecture"), "amd64");
    let depends = field("Depends");
    for lib in ["libc6", "libtss2-esys", "libtss2-tctildr0"] {
        assert!(depends.contains(lib), "{lib} not declared: {depends}");
    }

    let listing = run_ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for (path, mode) in [
        ("./usr/bin/vigild", "-rwxr-xr-x"),
        ("./usr/bin/vigilctl", "-rwxr-xr-x"),
        ("./lib/systemd/system/vigild.service", "-rw-r--r--"),
        ("./etc/vigil/vigild.toml", "-rw-r-----"),
        ("./etc/vigil/bots.txt", "-rw-r--r--"),
        ("./etc/logrotate.d/vigild", "-rw-r--r--"),
        ("./usr/share/man/man1/vigilctl.1.gz", "-rw-r--r--"),
        (
            "./usr/share/bash-completion/completions/vigilctl",
            "-rw-r--r--",
        ),
        ("./usr/share/zsh/vendor-completions/_vigilctl", "-rw-r--r--"),
        (
            "./usr/share/fish/vendor_completions.d/vigilctl.fish",
            "-rw-r--r--",
        ),
        ("./usr/share/doc/vigil/copyright", "-rw-r--r--"),
    ] {
        let line = listing
            .lines()
            .find(|l| l.ends_with(path))
            .unwrap_or_else(|| panic!("{path} not in the package:\n{listing}"));
        assert!(line.starts_with(mode), "{path}: {line}");
        assert!(
            line.contains("root/root"),
            "{path} not owned by root: {line}"
        );
    }
    let x = dir.path().join("x");
    run_ok(Command::new("dpkg-deb").arg("-R").arg(&deb).arg(&x));
    let conffiles = std::fs::read_to_string(x.join("DEBIAN/conffiles")).unwrap();
    assert_eq!(
        conffiles,
        "/etc/vigil/vigild.toml\n/etc/vigil/bots.txt\n/etc/logrotate.d/vigild\n"
    );
    for script in ["postinst", "prerm", "postrm"] {
        run_ok(
            Command::new("sh")
                .arg("-n")
                .arg(x.join("DEBIAN").join(script)),
        );
    }
    // The unit in the package is the one the service tests check.
    assert_eq!(
        std::fs::read(x.join("lib/systemd/system/vigild.service")).unwrap(),
        std::fs::read(workspace_root().join("images/rootfs/etc/systemd/system/vigild.service"))
            .unwrap()
    );
    // The packaged binaries run.
    let v = run_ok(Command::new(x.join("usr/bin/vigild")).arg("--version"));
    assert!(v.starts_with("vigild "), "{v}");
    let bash =
        std::fs::read_to_string(x.join("usr/share/bash-completion/completions/vigilctl")).unwrap();
    assert!(bash.contains("vigilctl"), "{bash}");
    // apt resolves the dependencies on this Debian (simulated: nothing is installed).
    let sim = run_ok(
        Command::new("apt-get")
            .args(["install", "-s", "--no-install-recommends"])
            .arg(&deb),
    );
    assert!(sim.contains("Inst vigil "), "{sim}");
}
