//! Talking to vigild, or to the pinned maps directly when it is down.

use std::{
    io::{BufRead, BufReader, ErrorKind, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use vigil_dataplane::control::{
    ops,
    proto::{Reply, Request},
};
use vigil_xdp::VigilMaps;

/// Sends one request; `Ok(None)` when no daemon listens on `socket`.
pub fn ask_daemon(socket: &Path, req: &Request) -> anyhow::Result<Option<Value>> {
    let stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            return Ok(None);
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            bail!(
                "permission denied on {}: vigilctl needs root",
                socket.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("connecting to {}", socket.display())),
    };
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut w = stream.try_clone()?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    w.write_all(&line)?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .context("reading vigild's reply")?;
    let reply: Reply = serde_json::from_str(&reply).context("vigild sent a malformed reply")?;
    if !reply.ok {
        bail!(
            "{}",
            reply
                .error
                .unwrap_or_else(|| "vigild refused the request".into())
        );
    }
    Ok(Some(reply.data))
}

/// vigild answers `thermal clear` before its governor thread has applied the clear, so its
/// reply may still show the override. Re-read the status briefly until it is gone, so the
/// operator does not see "cleared" above a table that says otherwise.
pub fn settle_thermal_clear(socket: &Path, mut data: Value) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_millis(500);
    while !data["status"]["override_level"].is_null() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        if let Some(v) = ask_daemon(socket, &Request::Thermal)? {
            data = v;
        }
    }
    Ok(data)
}

/// Picks the interface whose pins to open: `--iface`, else the only one pinned.
pub fn pinned_iface(pin_root: &Path, iface: Option<&str>) -> anyhow::Result<String> {
    if let Some(i) = iface {
        return Ok(i.to_owned());
    }
    let entries = std::fs::read_dir(pin_root).map_err(|e| match e.kind() {
        ErrorKind::NotFound => anyhow!(
            "vigild is not running and nothing is pinned under {}: start vigild",
            pin_root.display()
        ),
        ErrorKind::PermissionDenied => anyhow!(
            "permission denied on {}: vigilctl needs root",
            pin_root.display()
        ),
        _ => anyhow!("reading {}: {e}", pin_root.display()),
    })?;
    let dirs: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    match dirs.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!(
            "vigild is not running and nothing is pinned under {}",
            pin_root.display()
        ),
        many => bail!(
            "vigild is not running and several interfaces are pinned ({}); pick one with --iface",
            many.join(", ")
        ),
    }
}

/// The command's name when only vigild can answer `req` (no pinned-map fallback).
pub fn needs_daemon(req: &Request) -> Option<&'static str> {
    match req {
        Request::Reload => Some("reload"),
        Request::KeysRotate => Some("keys rotate"),
        Request::Thermal | Request::ThermalOverride { .. } | Request::ThermalClear => {
            Some("thermal")
        }
        Request::ShadowList => Some("shadow list"),
        _ => None,
    }
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective uid).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Runs a request against the pinned maps, the way the daemon would.
pub fn run_offline(pin_root: &Path, iface: Option<&str>, req: &Request) -> anyhow::Result<Value> {
    if !is_root() {
        bail!("vigild is not reachable and the pinned maps need privileges: vigilctl needs root");
    }
    if let Some(what) = needs_daemon(req) {
        bail!("vigild is not running: `{what}` needs it (start it with vigild --config FILE)");
    }
    let iface = pinned_iface(pin_root, iface)?;
    let dir: PathBuf = vigil_xdp::pin_dir(pin_root, &iface);
    if matches!(req, Request::XdpDetach) {
        if !vigil_xdp::detach(pin_root, &iface)? {
            bail!("nothing is pinned for {iface} under {}", pin_root.display());
        }
        return Ok(json!({ "detached": iface }));
    }
    let mut maps = VigilMaps::open(&dir)?;
    let v = match req {
        Request::RuleAdd {
            list,
            cidr,
            ttl_secs,
            reason,
        } => ops::rule_add(&mut maps, *list, cidr, *ttl_secs, reason.as_deref(), 0)?,
        Request::RuleDel { list, cidr } => ops::rule_del(&mut maps, *list, cidr)?,
        Request::RuleList { list } => ops::rule_list(&maps, *list)?,
        Request::Stats => ops::stats(&maps)?,
        Request::Status => {
            let mode = vigil_xdp::attached_mode(pin_root, &iface);
            let xdp = match mode {
                Some(m) => ops::xdp_status(&maps, &iface, m)?,
                None => {
                    json!({ "error": format!("maps are pinned for {iface} but no program is attached") })
                }
            };
            json!({ "daemon": { "running": false }, "xdp": xdp })
        }
        other => bail!("vigild is not running: {other:?} needs it"),
    };
    Ok(v)
}
