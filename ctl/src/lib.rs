//! `vigilctl`: the operator's CLI. It speaks to vigild over its control socket and, when the
//! daemon is down, reads and writes the pinned XDP maps directly so blocks can still be managed.

pub mod cli;
pub mod client;
pub mod config;
pub mod exit;
pub mod fleet;
pub mod generate;
pub mod image;
pub mod keys;
pub mod patch;
pub mod policy;
pub mod render;
pub mod shadow;

use anyhow::Context;
use cli::{Cli, ClientsCmd, Command, KeysCmd, RuleCmd, ShadowCmd, ThermalCmd, XdpCmd};
use exit::{Exit, unreachable, usage};
use vigil_control::{ErrorCode, List, Reply, Request, duration, ops::list_name, reply::XdpReport};

/// What a command prints and the status it exits with.
#[derive(Debug)]
pub struct Output {
    pub text: String,
    pub exit: Exit,
}

impl From<String> for Output {
    fn from(text: String) -> Output {
        Output {
            text,
            exit: Exit::Ok,
        }
    }
}

/// A feed read from standard input, staged in a file vigild can read (beside its control
/// socket, where a private /tmp of the service would not hide it); removed when dropped.
struct StagedFeed(std::path::PathBuf);

impl Drop for StagedFeed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The feed `import` names, checked here first: a bad line is reported with its number before
/// anything is sent or written.
fn import_request(
    cli: &Cli,
    list: List,
    file: &std::path::Path,
    reason: Option<&str>,
    staged: &mut Option<StagedFeed>,
) -> anyhow::Result<Request> {
    let path = if file.as_os_str() == "-" {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the feed from standard input")?;
        let dir = cli
            .socket
            .parent()
            .filter(|d| d.is_dir())
            .map_or_else(std::env::temp_dir, std::path::Path::to_path_buf);
        let path = dir.join(format!(".vigilctl-import-{}.feed", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("staging the feed in {}", path.display()))?;
        *staged = Some(StagedFeed(path.clone()));
        std::io::Write::write_all(&mut f, text.as_bytes())
            .with_context(|| format!("staging the feed in {}", path.display()))?;
        path
    } else {
        std::path::absolute(file).with_context(|| format!("resolving {}", file.display()))?
    };
    if let Err(e) = vigil_control::ops::read_feed(&path) {
        let shown = if staged.is_some() {
            "standard input".to_owned()
        } else {
            file.display().to_string()
        };
        return Err(match e {
            vigil_control::ops::OpError::Feed { source, .. } => {
                usage(format!("{} import {shown}: {source}", list_name(list)))
            }
            other => anyhow::Error::new(other),
        });
    }
    Ok(Request::RuleImport {
        list,
        path,
        reason: reason.map(str::to_owned),
    })
}

/// `flush` without `--yes`: how many rules would go, and how to confirm (exit 2).
fn flush_guard(cli: &Cli, list: List) -> anyhow::Error {
    let status = match client::ask_daemon(&cli.socket, &Request::Status, cli.timeout) {
        Ok(Some(r)) => Ok(r),
        Ok(None) => client::run_offline(&cli.pin_root, cli.iface.as_deref(), &Request::Status),
        Err(e) => Err(e),
    };
    let rules = match status {
        Ok(Reply::Status(s)) => match s.xdp {
            Some(XdpReport::Attached(x)) => Some(match list {
                List::Block => x.block_rules,
                List::Allow => x.allow_rules,
            }),
            _ => None,
        },
        Ok(_) => None,
        Err(e) => return e,
    };
    let name = list_name(list);
    match rules {
        Some(n) => usage(format!(
            "{name} flush would remove all {n} rule{} of the {name} list; confirm with \
             `vigilctl {name} flush --yes`",
            if n == 1 { "" } else { "s" }
        )),
        None => usage(format!(
            "XDP is not attached: there is no {name} list to flush (`vigilctl status`)"
        )),
    }
}

fn rule_request(
    cli: &Cli,
    list: List,
    cmd: &RuleCmd,
    staged: &mut Option<StagedFeed>,
) -> anyhow::Result<Request> {
    Ok(match cmd {
        RuleCmd::Add(a) => {
            if a.cidr.net().prefix_len() == 0 && !a.force {
                let family = if a.cidr.net().addr().is_ipv4() {
                    "IPv4"
                } else {
                    "IPv6"
                };
                let effect = match list {
                    List::Block => format!("drops all {family} traffic to this box, yours too"),
                    List::Allow => {
                        format!("exempts every {family} source from every block and rate limit")
                    }
                };
                return Err(usage(format!(
                    "{list} add {}: a rule for every {family} address {effect}; add --force \
                     if that is what you want",
                    a.cidr,
                    list = list_name(list),
                )));
            }
            Request::RuleAdd {
                list,
                cidr: a.cidr,
                ttl_secs: a.ttl,
                reason: a.reason.clone(),
            }
        }
        RuleCmd::Del { cidr } => Request::RuleDel { list, cidr: *cidr },
        RuleCmd::List => Request::RuleList { list },
        RuleCmd::Import { file, reason } => {
            import_request(cli, list, file, reason.as_deref(), staged)?
        }
        RuleCmd::Flush { yes: false } => return Err(flush_guard(cli, list)),
        RuleCmd::Flush { yes: true } => Request::RuleFlush { list },
    })
}

/// `patch test RULE REQUEST_FILE`: RULE is a patch file, or the id of a patch vigild has.
fn patch_test(
    cli: &Cli,
    rule: &str,
    request_file: &std::path::Path,
    route: Option<&str>,
) -> anyhow::Result<Output> {
    let path = std::path::Path::new(rule);
    let p = if path.exists() || rule == "-" {
        patch::parse_patch(path)?
    } else {
        let req = Request::PatchShow {
            id: rule.to_owned(),
        };
        match client::ask_daemon(&cli.socket, &req, cli.timeout)? {
            Some(Reply::Patches(p)) => p
                .patches
                .into_iter()
                .next()
                .map(|i| i.patch)
                .ok_or_else(|| usage(format!("no patch {rule}")))?,
            Some(_) => {
                return Err(anyhow::anyhow!(
                    "vigild answered patch_show with another reply"
                ));
            }
            None => {
                return Err(usage(format!(
                    "{rule} is not a file, and vigild is not running to look it up as a patch id"
                )));
            }
        }
    };
    let (text, hit) = patch::test(&p, request_file, route)?;
    Ok(Output {
        text,
        exit: if hit { Exit::Ok } else { Exit::Failed },
    })
}

/// `xdp detach` without `--yes` while vigild runs: what it would stop, and how to confirm.
fn detach_guard(cli: &Cli) -> anyhow::Result<()> {
    let Some(Reply::Status(s)) = client::ask_daemon(&cli.socket, &Request::Status, cli.timeout)?
    else {
        return Ok(());
    };
    let what = match &s.xdp {
        Some(XdpReport::Attached(x)) => format!(
            "detaching stops every XDP drop on {} and removes its {} block and {} allow rules \
             (`vigilctl xdp attach` puts back all but those learned from the fleet)",
            x.interface, x.block_rules, x.allow_rules
        ),
        _ => "detaching stops every XDP drop".to_owned(),
    };
    Err(usage(format!(
        "vigild is running: {what}; confirm with `vigilctl xdp detach --yes`"
    )))
}

/// Runs one command and returns what to print and the status to exit with.
pub fn run(cli: &Cli) -> anyhow::Result<Output> {
    // Lives until the reply is in: vigild reads the staged feed while it answers.
    let mut staged = None;
    let req = match &cli.command {
        Command::Block(c) => rule_request(cli, List::Block, c, &mut staged)?,
        Command::Allow(c) => rule_request(cli, List::Allow, c, &mut staged)?,
        Command::Stats => Request::Stats,
        Command::Status => Request::Status,
        Command::Reload => Request::Reload,
        Command::Xdp(XdpCmd::Detach { yes }) => {
            if !yes {
                detach_guard(cli)?;
            }
            Request::XdpDetach
        }
        Command::Xdp(XdpCmd::Attach) => Request::XdpAttach,
        Command::Keys(KeysCmd::Rotate) => Request::KeysRotate,
        Command::Keys(cmd) => return keys::run(cmd, cli.json).map(Output::from),
        Command::Policy(cmd) => return policy::run(cmd, cli.json).map(Output::from),
        Command::Config(cmd) => return config::run(cmd, cli).map(Output::from),
        Command::Fleet(cmd) => return fleet::run(cmd, cli.json).map(Output::from),
        Command::Image(cmd) => return image::run(cmd, cli.json).map(Output::from),
        Command::Completion { shell } => return Ok(generate::completion(*shell).into()),
        Command::Man { out } => {
            let files = generate::man_pages(out)?;
            return Ok(generate::render_written(&files).into());
        }
        Command::Shadow(ShadowCmd::List | ShadowCmd::Export { .. }) => Request::ShadowList,
        Command::Clients(ClientsCmd::Top { limit }) => Request::ClientsTop {
            limit: Some(*limit),
        },
        Command::Clients(ClientsCmd::Unban { ja4 }) => Request::ClientsUnban { ja4: ja4.clone() },
        Command::Patch(patch::PatchCmd::Add { file }) => Request::PatchAdd {
            patch: Box::new(patch::parse_patch(file)?),
        },
        Command::Patch(patch::PatchCmd::List) => Request::PatchList,
        Command::Patch(patch::PatchCmd::Show { id }) => Request::PatchShow { id: id.clone() },
        Command::Patch(patch::PatchCmd::Del { id }) => Request::PatchDel { id: id.clone() },
        Command::Patch(patch::PatchCmd::Test {
            rule,
            request_file,
            route,
        }) => return patch_test(cli, rule, request_file, route.as_deref()),
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
                return Err(unreachable(format!(
                    "vigild is not running (nothing listens on {}): `{what}` needs it; start \
                     it with vigild --config FILE, or point --socket at its control socket",
                    cli.socket.display()
                )));
            }
            client::run_offline(&cli.pin_root, cli.iface.as_deref(), &req).map_err(|e| {
                // "Nothing pinned" already says vigild is down; other failures need saying
                // where they happened.
                if exit::code_of(&e) == ErrorCode::Unreachable {
                    e
                } else {
                    e.context("vigild is not running; used the pinned maps")
                }
            })?
        }
    };
    let mut reply = match req {
        Request::ThermalClear => client::settle_thermal_clear(&cli.socket, cli.timeout, reply)?,
        _ => reply,
    };
    // The staged copy is an implementation detail: the operator gave standard input.
    if let (Some(_), Reply::RulesImported(i)) = (&staged, &mut reply) {
        i.file = std::path::PathBuf::from("-");
    }
    let exit = match &reply {
        Reply::Status(s) => render::status_exit(s),
        _ => Exit::Ok,
    };
    if let (Command::Shadow(ShadowCmd::Export { out }), Reply::Shadow(s)) = (&cli.command, &reply) {
        return shadow_export(s, out.as_deref(), cli.json).map(Output::from);
    }
    if cli.json {
        // Through a JSON value, whose keys are sorted: the same document vigild sent.
        let v = serde_json::to_value(&reply)?;
        let text = format!("{}\n", serde_json::to_string_pretty(&v)?);
        return Ok(Output { text, exit });
    }
    let text = match &reply {
        Reply::Rules(r) => render::rules(r),
        Reply::Stats(s) => render::stats(s),
        Reply::Status(s) => render::status(s),
        Reply::RuleAdded(a) => render::rule_added(a),
        Reply::RuleRemoved(r) => format!("removed {}\n", r.cidr),
        Reply::RulesImported(i) => render::imported(i),
        Reply::RulesFlushed(f) => format!(
            "removed {} rule{} from the {} list\n",
            f.removed,
            if f.removed == 1 { "" } else { "s" },
            list_name(f.list)
        ),
        Reply::Reloaded(_) => "reloaded\n".to_owned(),
        Reply::Detached(d) => format!(
            "detached XDP from {}: drops stopped; `vigilctl xdp attach` attaches it again\n",
            d.detached
        ),
        Reply::XdpAttached(a) if a.already => {
            format!(
                "XDP is already attached to {}; nothing changed\n",
                a.attached
            )
        }
        Reply::XdpAttached(a) => format!(
            "attached XDP to {} ({}); the config's rules are back and {} rule{} the detach \
             removed\n",
            a.attached,
            render::mode_name(a.mode),
            a.restored,
            if a.restored == 1 { "" } else { "s" }
        ),
        Reply::KeysRotated(k) => render::keys::rotated(k),
        Reply::Shadow(s) => shadow::render_list(s, shadow::now_unix()),
        Reply::Clients(c) => match &req {
            Request::ClientsUnban { ja4 } => format!(
                "lifted the ban of {ja4}; its count starts over. The addresses blocked with it \
                 stay blocked until their rules expire: `vigilctl block list` shows them \
                 (auto-ban), `vigilctl block del` lifts one\n"
            ),
            _ => render::clients(c),
        },
        Reply::Config(c) => config::render(c),
        Reply::Patches(p) => match &cli.command {
            Command::Patch(patch::PatchCmd::List) => patch::render_list(p),
            Command::Patch(patch::PatchCmd::Add { .. }) => {
                format!("added:\n{}", patch::render_show(p))
            }
            _ => patch::render_show(p),
        },
        Reply::PatchRemoved(r) => format!("removed patch {}\n", r.removed),
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
    };
    Ok(Output { text, exit })
}

/// `shadow export`: YAML (JSON with `--json`) on stdout, or written to `out`.
fn shadow_export(
    s: &vigil_control::Shadow,
    out: Option<&std::path::Path>,
    json: bool,
) -> anyhow::Result<String> {
    let doc = shadow::openapi_fragment(s, shadow::now_unix());
    let text = if json {
        format!("{}\n", serde_json::to_string_pretty(&doc)?)
    } else {
        serde_yaml_ng::to_string(&doc)?
    };
    let Some(path) = out else { return Ok(text) };
    std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    Ok(format!(
        "wrote {} operations to {}: review them, then merge them into the description\n",
        s.entries.len(),
        path.display()
    ))
}
