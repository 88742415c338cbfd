//! `vigilctl image status|info|install|mark-good|rollback`: the firmware's A/B root slots on a
//! box built by images/build.sh. RAUC does the work (bundle verification, slot writes, the
//! GRUB environment) through its CLI, which talks to the RAUC service over D-Bus; this module
//! checks what an operator would otherwise get wrong before RAUC touches a slot, shows
//! progress, and keeps what RAUC does not: the result of the last install and the health
//! checks of the last boots (written by vigil-health on the data partition).

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, anyhow};
use clap::Subcommand;
use serde_json::{Value, json};

use vigil_hw::facts::cmdline_value;

use crate::exit::usage;

/// RAUC's system configuration on the box.
const SYSTEM_CONF: &str = "/etc/rauc/system.conf";
/// The running image's version (written by images/build.sh).
const VERSION_FILE: &str = "/etc/vigil/version";
/// Where the install result and the boot health history are kept (the data partition).
const STATE_DIR: &str = "/var/lib/vigil/image";
/// Health checks kept in the history.
const HISTORY_KEEP: usize = 20;

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Slots, versions, which one booted, which boots next, which are good, boot attempts,
    /// the last install and the last health checks.
    Status,
    /// What a bundle holds, after checking its signature against this box's keyring.
    Info {
        bundle: PathBuf,
        /// Verify against this CA instead of the box's (/etc/rauc/ca.pem).
        #[arg(long)]
        keyring: Option<PathBuf>,
    },
    /// Verify a bundle, write it to the slot not running, and make that slot boot next. It
    /// must then pass its health check within the boot attempts, or the box goes back.
    Install {
        bundle: PathBuf,
        /// Reboot into the new slot once it is installed.
        #[arg(long)]
        reboot: bool,
    },
    /// Mark the running slot good (vigil-health does this after every healthy boot).
    MarkGood,
    /// Boot the other slot from now on (it must hold an image).
    Rollback {
        /// Reboot into it now.
        #[arg(long)]
        reboot: bool,
        /// Also when the other slot's image was never installed by RAUC or is marked bad.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(cmd: &ImageCmd, json: bool) -> anyhow::Result<String> {
    let rauc = Rauc::from_env();
    match cmd {
        ImageCmd::Status => {
            let status = collect_status(&rauc)?;
            Ok(if json {
                status.to_string() + "\n"
            } else {
                render_status(&status)
            })
        }
        ImageCmd::Info { bundle, keyring } => {
            let info = rauc.info(bundle, keyring.as_deref())?;
            Ok(if json {
                info.to_string() + "\n"
            } else {
                render_info(bundle, &info)
            })
        }
        ImageCmd::Install { bundle, reboot } => install(&rauc, bundle, *reboot, json),
        ImageCmd::MarkGood => {
            rauc.run(&["status", "mark-good", "booted"])?;
            let slot = booted_slot().unwrap_or_else(|| "booted".into());
            Ok(if json {
                json!({"marked_good": slot}).to_string() + "\n"
            } else {
                format!("slot {slot} marked good\n")
            })
        }
        ImageCmd::Rollback { reboot, force } => rollback(&rauc, *reboot, *force, json),
    }
}

/// How RAUC is invoked: `rauc` on PATH, or $VIGIL_RAUC.
struct Rauc {
    bin: PathBuf,
}

impl Rauc {
    fn from_env() -> Rauc {
        Rauc {
            bin: std::env::var_os("VIGIL_RAUC").map_or_else(|| "rauc".into(), PathBuf::from),
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.stdin(Stdio::null());
        c
    }

    /// Runs RAUC; its stdout, or an error carrying what it said.
    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.command().args(args).output().map_err(|e| {
            anyhow!(
                "cannot run {} ({e}); this command works on a Vigil firmware image, where RAUC \
                 is installed",
                self.bin.display()
            )
        })?;
        if !out.status.success() {
            return Err(anyhow!(
                "rauc {} failed: {}",
                args.join(" "),
                rauc_error(&String::from_utf8_lossy(&out.stderr))
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `rauc info` as JSON: verifies the bundle's signature (against `keyring`, else the
    /// system's keyring) before saying anything about it.
    fn info(&self, bundle: &Path, keyring: Option<&Path>) -> anyhow::Result<Value> {
        check_bundle_path(bundle)?;
        let mut args = vec!["info".to_owned(), "--output-format=json".to_owned()];
        if let Some(k) = keyring {
            args.push(format!("--keyring={}", k.display()));
        }
        args.push(bundle.display().to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self
            .run(&args)
            .map_err(|e| anyhow!("{}: not a bundle this box trusts: {e}", bundle.display()))?;
        serde_json::from_str(&out).context("rauc info printed something that is not JSON")
    }
}

fn check_bundle_path(bundle: &Path) -> anyhow::Result<()> {
    let meta =
        std::fs::metadata(bundle).map_err(|e| usage(format!("{}: {e}", bundle.display())))?;
    if !meta.is_file() {
        return Err(usage(format!("{}: not a regular file", bundle.display())));
    }
    if bundle.extension().and_then(|e| e.to_str()) != Some("raucb") {
        return Err(usage(format!(
            "{}: a bundle's name ends in .raucb (RAUC refuses others)",
            bundle.display()
        )));
    }
    Ok(())
}

/// The useful part of RAUC's stderr: its messages without GLib's prefixes
/// ("rauc-Message: 09:31:08.115: ", "(rauc:12): rauc-WARNING **: 09:31:08.2: ").
fn rauc_error(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(|l| strip_glib_prefix(l.trim()))
        .filter(|l| !l.is_empty() && !l.starts_with("Using central status file"))
        .collect();
    if lines.is_empty() {
        "no message".into()
    } else {
        lines.join("; ")
    }
}

fn strip_glib_prefix(line: &str) -> &str {
    if !(line.starts_with("rauc-") || line.starts_with("(rauc")) {
        return line;
    }
    for (i, _) in line.match_indices(": ") {
        let token = line[..i].rsplit(' ').next().unwrap_or("");
        if token.contains(':')
            && token
                .chars()
                .all(|c| c.is_ascii_digit() || c == ':' || c == '.')
        {
            return &line[i + 2..];
        }
    }
    line
}

/// The `[system]` values of RAUC's config this module needs.
#[derive(Debug, Default, PartialEq, Eq)]
struct SystemConf {
    compatible: Option<String>,
    grubenv: Option<PathBuf>,
}

fn parse_system_conf(text: &str) -> SystemConf {
    let mut conf = SystemConf::default();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_owned();
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match (section.as_str(), k.trim()) {
            ("system", "compatible") => conf.compatible = Some(v.trim().to_owned()),
            ("system", "grubenv") => conf.grubenv = Some(v.trim().into()),
            _ => {}
        }
    }
    conf
}

fn system_conf() -> anyhow::Result<SystemConf> {
    let text = std::fs::read_to_string(SYSTEM_CONF).map_err(|e| {
        anyhow!("{SYSTEM_CONF}: {e}; `vigilctl image` works on a Vigil firmware image")
    })?;
    Ok(parse_system_conf(&text))
}

/// A GRUB environment block: `KEY=VALUE` lines padded with '#'.
fn parse_grubenv(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `key=` of the running kernel's command line.
fn cmdline(key: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/cmdline").ok()?;
    cmdline_value(&text, key).map(str::to_owned)
}

/// The slot the kernel was booted from (`rauc.slot=` on its command line).
fn booted_slot() -> Option<String> {
    cmdline("rauc.slot")
}

/// One root slot as `image status` reports it.
fn slot_view(name: &str, slot: &Value, grubenv: &[(String, String)]) -> Value {
    let bootname = slot["bootname"].as_str().unwrap_or("");
    let env = |suffix: &str| {
        grubenv
            .iter()
            .find(|(k, _)| *k == format!("{bootname}_{suffix}"))
            .map(|(_, v)| v.clone())
    };
    let status = &slot["slot_status"];
    json!({
        "name": name,
        "bootname": bootname,
        "device": slot["device"],
        "state": slot["state"],
        "boot_status": slot["boot_status"],
        "version": status["bundle"]["version"],
        "installed": status["installed"]["timestamp"],
        "activated": status["activated"]["timestamp"],
        "sha256": status["checksum"]["sha256"],
        "bootable": env("OK").map(|v| v == "1"),
        "boot_attempts": env("TRY").and_then(|v| v.parse::<u32>().ok()),
    })
}

fn read_json_lines(path: &Path, keep: usize) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let all: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    all[all.len().saturating_sub(keep)..].to_vec()
}

fn collect_status(rauc: &Rauc) -> anyhow::Result<Value> {
    let conf = system_conf()?;
    let raw: Value =
        serde_json::from_str(&rauc.run(&["status", "--detailed", "--output-format=json"])?)
            .context("rauc status printed something that is not JSON")?;
    let grubenv = conf
        .grubenv
        .as_deref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| parse_grubenv(&t))
        .unwrap_or_default();
    let state = Path::new(STATE_DIR);
    Ok(build_status(
        &raw,
        &grubenv,
        booted_slot(),
        std::fs::read_to_string(VERSION_FILE)
            .ok()
            .map(|v| v.trim().to_owned()),
        read_json_lines(&state.join("install.log"), 1).pop(),
        read_json_lines(&state.join("health.log"), 5),
        attempts_limit(),
    ))
}

/// The boot attempts GRUB gives a slot (`vigil.attempts=` on the command line).
fn attempts_limit() -> Option<u32> {
    cmdline("vigil.attempts")?.parse().ok()
}

fn build_status(
    raw: &Value,
    grubenv: &[(String, String)],
    booted: Option<String>,
    running_version: Option<String>,
    last_install: Option<Value>,
    health: Vec<Value>,
    attempts: Option<u32>,
) -> Value {
    let mut slots = Vec::new();
    for entry in raw["slots"].as_array().into_iter().flatten() {
        let Some(map) = entry.as_object() else {
            continue;
        };
        for (name, slot) in map {
            if slot["class"] == "rootfs" {
                slots.push(slot_view(name, slot, grubenv));
            }
        }
    }
    let booted = booted.or_else(|| {
        slots
            .iter()
            .find(|s| s["state"] == "booted")
            .and_then(|s| s["bootname"].as_str())
            .map(str::to_owned)
    });
    // A slot GRUB will not boot again: not OK, or out of attempts.
    let exhausted = |s: &Value| {
        s["bootable"] == false
            || match (s["boot_attempts"].as_u64(), attempts) {
                (Some(t), Some(max)) => t >= u64::from(max),
                _ => false,
            }
    };
    // What GRUB boots next (grub.cfg's rule: the first slot of ORDER that is OK and has
    // attempts left); RAUC's primary when the environment cannot be read.
    let order = grubenv
        .iter()
        .find(|(k, _)| k == "ORDER")
        .map(|(_, v)| v.clone());
    let next = match order {
        Some(order) => order
            .split_whitespace()
            .find(|b| {
                slots
                    .iter()
                    .any(|s| s["bootname"] == *b && s["bootable"] == true && !exhausted(s))
            })
            .map(str::to_owned),
        None => raw["boot_primary"].as_str().and_then(|primary| {
            slots
                .iter()
                .find(|s| s["name"] == primary)
                .and_then(|s| s["bootname"].as_str())
                .map(str::to_owned)
        }),
    };
    // After a failed update the slot RAUC activated last is out of attempts and GRUB booted
    // the other one.
    let activated_last = slots
        .iter()
        .filter(|s| s["activated"].is_string())
        .max_by(|a, b| a["activated"].as_str().cmp(&b["activated"].as_str()));
    let rolled_back = match (activated_last, &booted) {
        (Some(failed), Some(b)) if failed["bootname"] != b.as_str() && exhausted(failed) => {
            let from = failed["bootname"].as_str().unwrap_or("");
            Some(json!({
                "from": from,
                "to": b,
                "version": failed["version"],
                "boot_attempts": failed["boot_attempts"],
                "last_health": health.iter().rev().find(|h| h["slot"] == from),
            }))
        }
        _ => None,
    };
    json!({
        "compatible": raw["compatible"],
        "version": running_version,
        "booted": booted,
        "next_boot": next,
        "boot_attempts_per_slot": attempts,
        "slots": slots,
        "rolled_back": rolled_back,
        "last_install": last_install,
        "health": health,
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn render_status(s: &Value) -> String {
    let mut out = format!(
        "firmware   {} ({}), booted from slot {}, next boot: slot {}\n",
        text(&s["version"]),
        text(&s["compatible"]),
        text(&s["booted"]),
        text(&s["next_boot"]),
    );
    if let Some(rb) = s["rolled_back"].as_object() {
        out.push_str(&format!(
            "ROLLED BACK: slot {} (version {}) did not pass its health check after {} boot \
             attempt(s); the box returned to slot {}\n",
            text(&rb["from"]),
            text(&rb["version"]),
            text(&rb["boot_attempts"]),
            text(&rb["to"]),
        ));
        if let Some(h) = rb.get("last_health").filter(|h| h.is_object()) {
            out.push_str(&format!(
                "           its last check: {}\n",
                text(&h["detail"])
            ));
        }
    }
    out.push_str("slot  state     boot    version         attempts  installed\n");
    for slot in s["slots"].as_array().into_iter().flatten() {
        let attempts = match (
            slot["boot_attempts"].as_u64(),
            s["boot_attempts_per_slot"].as_u64(),
        ) {
            (Some(t), Some(max)) => format!("{t}/{max}"),
            (Some(t), None) => t.to_string(),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{:<5} {:<9} {:<7} {:<15} {:<9} {}\n",
            text(&slot["bootname"]),
            text(&slot["state"]),
            text(&slot["boot_status"]),
            text(&slot["version"]),
            attempts,
            text(&slot["installed"]),
        ));
    }
    match s["last_install"].as_object() {
        Some(i) => out.push_str(&format!(
            "last install  {} {} {}: {}\n",
            text(&i["time"]),
            text(&i["bundle"]),
            text(&i["version"]),
            text(&i["result"]),
        )),
        None => out.push_str("last install  none since the image was flashed\n"),
    }
    for h in s["health"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "health        {} slot {} {} {}: {}\n",
            text(&h["time"]),
            text(&h["slot"]),
            text(&h["version"]),
            text(&h["result"]),
            text(&h["detail"]),
        ));
    }
    out
}

fn render_info(bundle: &Path, info: &Value) -> String {
    let mut out = format!(
        "bundle      {}\ncompatible  {}\nversion     {}\ndescription {}\nformat      {}\nsigned by   {}\n",
        bundle.display(),
        text(&info["compatible"]),
        text(&info["version"]),
        text(&info["description"]),
        text(&info["format"]),
        text(&signer(info)),
    );
    for image in info["images"].as_array().into_iter().flatten() {
        for (class, img) in image.as_object().into_iter().flatten() {
            out.push_str(&format!(
                "image       {class}: {} ({} bytes, sha256 {})\n",
                text(&img["filename"]),
                text(&img["size"]),
                text(&img["checksum"]),
            ));
        }
    }
    out
}

/// The subject of the certificate that signed the bundle (first of RAUC's chain).
fn signer(info: &Value) -> Value {
    info["chains"][0]["certificates"][0]["subject"].clone()
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Appends one JSON line to a state log, keeping the last HISTORY_KEEP.
fn append_state(file: &str, entry: &Value) -> anyhow::Result<()> {
    let dir = Path::new(STATE_DIR);
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let path = dir.join(file);
    let mut lines = read_json_lines(&path, HISTORY_KEEP - 1);
    lines.push(entry.clone());
    let body: String = lines.iter().map(|l| l.to_string() + "\n").collect();
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, body).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("write {}", path.display()))
}

fn install(rauc: &Rauc, bundle: &Path, reboot: bool, json: bool) -> anyhow::Result<String> {
    let conf = system_conf()?;
    // Verified before anything is written: signature (rauc info checks it against the
    // keyring), then the product it is for.
    let record = |version: &Value, result: &str| {
        append_state(
            "install.log",
            &json!({
                "time": now_rfc3339(),
                "bundle": bundle.display().to_string(),
                "version": version,
                "result": result,
            }),
        )
    };
    let info = match rauc.info(bundle, None) {
        Ok(info) => info,
        Err(e) => {
            record(&Value::Null, &format!("refused, no slot was written: {e}"))?;
            return Err(e);
        }
    };
    let version = text(&info["version"]);
    let theirs = info["compatible"].as_str().unwrap_or("");
    let ours = conf.compatible.as_deref().unwrap_or("");
    let record = |result: &str| record(&info["version"], result);
    if theirs != ours {
        let msg = format!(
            "{} is a bundle for '{theirs}', this box is '{ours}': refused, no slot was written",
            bundle.display()
        );
        record(&msg)?;
        return Err(anyhow!(msg));
    }
    let tty = std::io::stderr().is_terminal() && !json;
    let mut child = rauc
        .command()
        .arg("install")
        .arg(bundle)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {} install", rauc.bin.display()))?;
    let stderr = child.stderr.take();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    });
    let mut last_step = String::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some((pct, step)) = progress_line(&line) {
                if !json {
                    show_progress(pct, step, tty);
                }
                last_step = step.to_owned();
            }
        }
    }
    let status = child.wait().context("wait for rauc install")?;
    let stderr = err_reader.join().unwrap_or_default();
    if tty {
        eprintln!();
    }
    if !status.success() {
        let msg = format!(
            "installing {} failed at '{last_step}': {}",
            bundle.display(),
            rauc_error(&stderr)
        );
        record(&msg)?;
        return Err(anyhow!(msg));
    }
    let next = collect_status(rauc)
        .ok()
        .and_then(|s| s["next_boot"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "-".into());
    record(&format!("installed into slot {next}"))?;
    let out = if json {
        json!({"installed": version, "slot": next, "reboot": reboot}).to_string() + "\n"
    } else {
        format!(
            "installed Vigil {version} into slot {next}; it boots next and must pass its health \
             check there, or the box returns to this slot{}\n",
            if reboot {
                ": rebooting now"
            } else {
                " (reboot to start it: `systemctl reboot`)"
            }
        )
    };
    if reboot {
        exit_print_then_reboot(&out)?;
    }
    Ok(out)
}

/// `rauc install` progress: "  20% Checking bundle".
fn progress_line(line: &str) -> Option<(u8, &str)> {
    let (pct, step) = line.trim().split_once("% ")?;
    Some((pct.trim().parse().ok()?, step.trim()))
}

fn show_progress(pct: u8, step: &str, tty: bool) {
    let mut err = std::io::stderr().lock();
    if tty {
        let filled = usize::from(pct.min(100)) * 30 / 100;
        let _ = write!(
            err,
            "\r[{}{}] {pct:>3}% {step:<50.50}",
            "#".repeat(filled),
            ".".repeat(30 - filled)
        );
        let _ = err.flush();
    } else {
        let _ = writeln!(err, "{pct:>3}% {step}");
    }
}

fn exit_print_then_reboot(out: &str) -> anyhow::Result<()> {
    crate::exit::print(out);
    let status = Command::new("systemctl")
        .arg("reboot")
        .status()
        .context("run systemctl reboot")?;
    if !status.success() {
        return Err(anyhow!("systemctl reboot failed ({status})"));
    }
    std::process::exit(0);
}

fn rollback(rauc: &Rauc, reboot: bool, force: bool, json: bool) -> anyhow::Result<String> {
    let status = collect_status(rauc)?;
    let booted = status["booted"].as_str().unwrap_or("");
    let other = status["slots"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["bootname"].as_str().is_some_and(|b| b != booted))
        .ok_or_else(|| anyhow!("no other root slot in {SYSTEM_CONF}"))?;
    let name = text(&other["bootname"]);
    if !force {
        if other["version"].is_null() {
            return Err(usage(format!(
                "slot {name} holds no image RAUC installed (a freshly flashed box has one \
                 image only); pass --force to boot it anyway"
            )));
        }
        if other["boot_status"] == "bad" && other["bootable"] != true {
            return Err(usage(format!(
                "slot {name} ({}) is marked bad; pass --force to boot it anyway",
                text(&other["version"])
            )));
        }
    }
    rauc.run(&["status", "mark-active", "other"])?;
    let out = if json {
        json!({"next_boot": name, "reboot": reboot}).to_string() + "\n"
    } else {
        format!(
            "slot {name} ({}) boots next{}\n",
            text(&other["version"]),
            if reboot {
                ": rebooting now"
            } else {
                "; reboot to start it (`systemctl reboot`)"
            }
        )
    };
    if reboot {
        exit_print_then_reboot(&out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// `rauc status --detailed --output-format=json` after a failed update: B was installed
    /// and activated, failed its attempts, GRUB went back to A.
    fn after_rollback() -> Value {
        json!({
            "compatible": "vigil-x86_64",
            "variant": "",
            "booted": "A",
            "boot_primary": "rootfs.0",
            "slots": [
                {"rootfs.0": {"class": "rootfs", "device": "/dev/disk/by-partlabel/rootfs-a",
                    "type": "raw", "bootname": "A", "state": "booted", "boot_status": "good",
                    "slot_status": {"bundle": {"compatible": "vigil-x86_64", "version": "0.2.0"},
                        "installed": {"timestamp": "2026-12-05T09:00:00Z", "count": 1},
                        "activated": {"timestamp": "2026-12-05T09:00:01Z", "count": 1}}}},
                {"rootfs.1": {"class": "rootfs", "device": "/dev/disk/by-partlabel/rootfs-b",
                    "type": "raw", "bootname": "B", "state": "inactive", "boot_status": "bad",
                    "slot_status": {"bundle": {"compatible": "vigil-x86_64", "version": "0.3.0"},
                        "installed": {"timestamp": "2026-12-05T10:00:00Z", "count": 1},
                        "activated": {"timestamp": "2026-12-05T10:00:01Z", "count": 1}}}}
            ]
        })
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_failed_update_is_reported_as_a_rollback_with_its_attempts_and_last_check() {
        let grubenv = env(&[
            ("ORDER", "B A"),
            ("A_OK", "1"),
            ("A_TRY", "0"),
            ("B_OK", "1"),
            ("B_TRY", "2"),
        ]);
        let health = vec![
            json!({"time": "t", "slot": "B", "version": "0.3.0", "result": "bad",
            "detail": "vigild failed"}),
        ];
        let s = build_status(
            &after_rollback(),
            &grubenv,
            Some("A".into()),
            Some("0.2.0".into()),
            None,
            health,
            Some(2),
        );
        assert_eq!(s["booted"], "A");
        assert_eq!(s["next_boot"], "A");
        assert_eq!(s["rolled_back"]["from"], "B");
        assert_eq!(s["rolled_back"]["version"], "0.3.0");
        assert_eq!(s["rolled_back"]["boot_attempts"], 2);
        let text = render_status(&s);
        assert!(
            text.contains("ROLLED BACK: slot B (version 0.3.0)"),
            "{text}"
        );
        assert!(text.contains("after 2 boot attempt(s)"), "{text}");
        assert!(text.contains("its last check: vigild failed"), "{text}");
        assert!(text.contains("2/2"), "{text}");
    }

    #[test]
    fn a_booted_update_is_not_a_rollback() {
        let mut raw = after_rollback();
        raw["booted"] = json!("B");
        raw["boot_primary"] = json!("rootfs.1");
        let s = build_status(
            &raw,
            &[],
            Some("B".into()),
            Some("0.3.0".into()),
            None,
            vec![],
            None,
        );
        assert!(s["rolled_back"].is_null(), "{s}");
        assert_eq!(s["next_boot"], "B");
        assert!(render_status(&s).contains("last install  none"));
    }

    #[test]
    fn an_installed_update_waiting_for_its_reboot_is_pending_not_rolled_back() {
        let grubenv = env(&[
            ("ORDER", "B A"),
            ("A_OK", "1"),
            ("A_TRY", "0"),
            ("B_OK", "1"),
            ("B_TRY", "0"),
        ]);
        let s = build_status(
            &after_rollback(),
            &grubenv,
            Some("A".into()),
            Some("0.2.0".into()),
            None,
            vec![],
            Some(3),
        );
        assert!(s["rolled_back"].is_null(), "{s}");
        assert_eq!(s["next_boot"], "B");
        assert!(render_status(&s).contains("next boot: slot B"));
    }

    #[test]
    fn system_conf_and_grubenv_are_read() {
        let conf = parse_system_conf(
            "[system]\ncompatible=vigil-x86_64\nbootloader=grub\ngrubenv=/boot/efi/EFI/BOOT/grubenv\n\
             # comment\n[keyring]\npath=/etc/rauc/ca.pem\n[slot.rootfs.0]\ndevice=/dev/x\n",
        );
        assert_eq!(conf.compatible.as_deref(), Some("vigil-x86_64"));
        assert_eq!(
            conf.grubenv,
            Some(PathBuf::from("/boot/efi/EFI/BOOT/grubenv"))
        );
        let env = parse_grubenv("# GRUB Environment Block\nORDER=B A\nB_TRY=1\n#######");
        assert_eq!(
            env,
            vec![("ORDER".into(), "B A".into()), ("B_TRY".into(), "1".into())]
        );
    }

    #[test]
    fn progress_lines_and_rauc_errors_are_parsed() {
        assert_eq!(
            progress_line("  20% Checking bundle"),
            Some((20, "Checking bundle"))
        );
        assert_eq!(
            progress_line("100% Installing done."),
            Some((100, "Installing done."))
        );
        assert_eq!(progress_line("idle"), None);
        assert_eq!(
            rauc_error(
                "rauc-Message: 09:31:08.115: Using central status file /x\n(rauc:12): rauc-WARNING **: 09:31:08.2: signature verification failed: bad\n"
            ),
            "signature verification failed: bad"
        );
    }

    #[test]
    fn a_bundle_path_must_be_a_raucb_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_bundle_path(&dir.path().join("missing.raucb")).unwrap_err();
        assert!(e.to_string().contains("missing.raucb"), "{e}");
        let other = dir.path().join("x.tar");
        std::fs::write(&other, b"x").unwrap();
        let e = check_bundle_path(&other).unwrap_err();
        assert!(e.to_string().contains(".raucb"), "{e}");
        assert!(check_bundle_path(dir.path()).is_err());
    }
}
