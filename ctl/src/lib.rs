//! `vigilctl`: the operator's CLI. It speaks to vigild over its control socket and, when the
//! daemon is down, reads and writes the pinned XDP maps directly so blocks can still be managed.

pub mod cli;
pub mod client;
pub mod keys;
pub mod policy;
pub mod render;

use anyhow::Context;
use cli::{Cli, Command, KeysCmd, RuleCmd, ThermalCmd, XdpCmd};
use serde_json::Value;
use vigil_dataplane::control::proto::Request;
use vigil_xdp::List;

fn rule_request(list: List, cmd: &RuleCmd) -> anyhow::Result<Request> {
    Ok(match cmd {
        RuleCmd::Add(a) => {
            vigil_xdp::parse_cidr(&a.cidr)?;
            let ttl_secs = a
                .ttl
                .as_deref()
                .map(|t| {
                    vigil_dataplane::duration::parse_duration(t)
                        .map_err(|e| anyhow::anyhow!("invalid --ttl: {e}"))
                        .map(|d| d.as_secs().max(1))
                })
                .transpose()?;
            Request::RuleAdd {
                list,
                cidr: a.cidr.clone(),
                ttl_secs,
                reason: a.reason.clone(),
            }
        }
        RuleCmd::Del { cidr } => {
            vigil_xdp::parse_cidr(cidr)?;
            Request::RuleDel {
                list,
                cidr: cidr.clone(),
            }
        }
        RuleCmd::List => Request::RuleList { list },
    })
}

/// Runs one command and returns what to print.
pub fn run(cli: &Cli) -> anyhow::Result<String> {
    let req = match &cli.command {
        Command::Block(c) => rule_request(List::Block, c)?,
        Command::Allow(c) => rule_request(List::Allow, c)?,
        Command::Stats => Request::Stats,
        Command::Status => Request::Status,
        Command::Reload => Request::Reload,
        Command::Xdp(XdpCmd::Detach) => Request::XdpDetach,
        Command::Keys(KeysCmd::Rotate) => Request::KeysRotate,
        Command::Keys(cmd) => return keys::run(cmd, cli.json),
        Command::Policy(cmd) => return policy::run(cmd, cli.json),
        Command::Shadow(cli::ShadowCmd::List) => Request::ShadowList,
        Command::Thermal { cmd: None } => Request::Thermal,
        Command::Thermal {
            cmd: Some(ThermalCmd::Override { level, for_secs }),
        } => Request::ThermalOverride {
            level: level.as_str().to_owned(),
            for_secs: *for_secs,
        },
        Command::Thermal {
            cmd: Some(ThermalCmd::Clear),
        } => Request::ThermalClear,
    };
    let data = match client::ask_daemon(&cli.socket, &req, cli.timeout)? {
        Some(v) => v,
        None => {
            if let Some(what) = client::needs_daemon(&req) {
                anyhow::bail!(
                    "vigild is not running (nothing listens on {}): `{what}` needs it; start \
                     it with vigild --config FILE, or point --socket at its control socket",
                    cli.socket.display()
                );
            }
            client::run_offline(&cli.pin_root, cli.iface.as_deref(), &req)
                .context("vigild is not running; used the pinned maps")?
        }
    };
    let data = match req {
        Request::ThermalClear => client::settle_thermal_clear(&cli.socket, cli.timeout, data)?,
        _ => data,
    };
    if cli.json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&data)?));
    }
    Ok(match (&cli.command, &req) {
        (_, Request::RuleList { .. }) => render::rules(&data),
        (_, Request::Stats) => render::stats(&data),
        (_, Request::Status) => render::status(&data),
        (_, Request::RuleAdd { .. }) => format!("added {}\n", text(&data["cidr"])),
        (_, Request::RuleDel { .. }) => format!("removed {}\n", text(&data["cidr"])),
        (_, Request::Reload) => "reloaded\n".to_owned(),
        (_, Request::XdpDetach) => format!("detached XDP from {}\n", text(&data["detached"])),
        (_, Request::KeysRotate) => render::keys::rotated(&data),
        (_, Request::ShadowList) => policy::render_shadow(&data),
        (_, Request::Thermal) => render::thermal::status(&data, None)?,
        (_, Request::ThermalOverride { level, for_secs }) => render::thermal::status(
            &data,
            Some(&format!(
                "pinned the inspection level at {level} for {}",
                vigil_dataplane::duration::format_secs(*for_secs)
            )),
        )?,
        (_, Request::ThermalClear) => {
            render::thermal::status(&data, Some("override cleared; the temperature decides"))?
        }
    })
}

fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| v.to_string())
}
