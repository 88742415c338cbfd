//! `vigilctl`: the operator's CLI. It speaks to vigild over its control socket and, when the
//! daemon is down, reads and writes the pinned XDP maps directly so blocks can still be managed.

pub mod cli;
pub mod client;
pub mod config;
pub mod fleet;
pub mod keys;
pub mod policy;
pub mod render;

use anyhow::{Context, anyhow};
use cli::{Cli, Command, KeysCmd, RuleCmd, ThermalCmd, XdpCmd};
use vigil_control::{Cidr, List, Reply, Request, Ttl, duration};

/// `--ttl`: the shared duration grammar, whole seconds (at least one), at most 365 days.
fn parse_ttl(text: &str) -> anyhow::Result<Ttl> {
    let d = duration::parse(text).map_err(|e| anyhow!("invalid --ttl: {e}"))?;
    Ttl::from_duration(d).map_err(|e| anyhow!("invalid --ttl {text:?}: {e}"))
}

fn rule_request(list: List, cmd: &RuleCmd) -> anyhow::Result<Request> {
    Ok(match cmd {
        RuleCmd::Add(a) => {
            let cidr: Cidr = a.cidr.parse()?;
            Request::RuleAdd {
                list,
                cidr,
                ttl_secs: a.ttl.as_deref().map(parse_ttl).transpose()?,
                reason: a.reason.clone(),
            }
        }
        RuleCmd::Del { cidr } => Request::RuleDel {
            list,
            cidr: cidr.parse()?,
        },
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
        Command::Config(cmd) => return config::run(cmd, cli),
        Command::Fleet(cmd) => return fleet::run(cmd, cli.json),
        Command::Shadow(cli::ShadowCmd::List) => Request::ShadowList,
        Command::Thermal { cmd: None } => Request::Thermal,
        Command::Thermal {
            cmd: Some(ThermalCmd::Override { level, for_secs }),
        } => Request::ThermalOverride {
            level: *level,
            for_secs: *for_secs,
        },
        Command::Thermal {
            cmd: Some(ThermalCmd::Clear),
        } => Request::ThermalClear,
    };
    let reply = match client::ask_daemon(&cli.socket, &req, cli.timeout)? {
        Some(r) => r,
        None => {
            if let Some(what) = req.needs_daemon() {
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
    let reply = match req {
        Request::ThermalClear => client::settle_thermal_clear(&cli.socket, cli.timeout, reply)?,
        _ => reply,
    };
    if cli.json {
        // Through a JSON value, whose keys are sorted: the same document vigild sent.
        let v = serde_json::to_value(&reply)?;
        return Ok(format!("{}\n", serde_json::to_string_pretty(&v)?));
    }
    Ok(match &reply {
        Reply::Rules(r) => render::rules(r),
        Reply::Stats(s) => render::stats(s),
        Reply::Status(s) => render::status(s),
        Reply::RuleAdded(a) => format!("added {}\n", a.cidr),
        Reply::RuleRemoved(r) => format!("removed {}\n", r.cidr),
        Reply::Reloaded(_) => "reloaded\n".to_owned(),
        Reply::Detached(d) => format!("detached XDP from {}\n", d.detached),
        Reply::KeysRotated(k) => render::keys::rotated(k),
        Reply::Shadow(s) => policy::render_shadow(s),
        Reply::Config(c) => config::render(c),
        Reply::Thermal(t) => {
            let headline = match &req {
                Request::ThermalOverride { level, for_secs } => Some(format!(
                    "pinned the inspection level at {level} for {}",
                    duration::format_secs(for_secs.as_secs())
                )),
                Request::ThermalClear => {
                    Some("override cleared; the temperature decides".to_owned())
                }
                _ => None,
            };
            render::thermal::status(t, headline.as_deref())
        }
    })
}
