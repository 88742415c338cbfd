//! Compiles the XDP program with clang so the daemon embeds it: nothing at run time needs a
//! compiler. The object keeps BTF (`-g`): aya needs it for BTF-defined maps, and the ABI test
//! reads it back.

use std::{env, path::PathBuf, process::Command};

use anyhow::{Context, bail};

/// (object, source, extra clang flags). Vigil's program is built twice: without the SYN guard's
/// code (what runs unless `[xdp.syn_guard]` is configured) and with it.
const PROGRAMS: &[(&str, &str, &[&str])] = &[
    ("vigil", "vigil", &["-DVIGIL_NO_SYN_GUARD_CODE"]),
    ("vigil_syn", "vigil", &[]),
    ("bare_drop", "bare_drop", &[]),
    ("test_peer", "test_peer", &[]),
];

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(env::var("OUT_DIR").context("OUT_DIR is not set")?);
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let arch = env::var("CARGO_CFG_TARGET_ARCH").context("no target arch")?;
    let multiarch = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        other => bail!("no multiarch include path known for {other}"),
    };
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-env-changed=CLANG");
    for (name, source, flags) in PROGRAMS {
        let src = format!("bpf/{source}.c");
        let obj = out.join(format!("{name}.o"));
        let status = Command::new(&clang)
            .args([
                "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror",
            ])
            .arg(format!("-I/usr/include/{multiarch}"))
            .args(flags.iter())
            .args(["-c", &src, "-o"])
            .arg(&obj)
            .status()
            .with_context(|| {
                format!(
                    "running {clang}: install clang and libbpf-dev \
                     (scripts/setup.sh does) or set CLANG"
                )
            })?;
        if !status.success() {
            bail!("{clang} failed to compile {src} ({status})");
        }
    }
    Ok(())
}
