//! `vigilctl config show`: the configuration the running vigild applies (the last one started
//! or reloaded, not the file on disk), every default filled in and secrets redacted. Like
//! `nginx -T`, it prints a file vigild would load; `--json` prints the same as JSON.

use anyhow::bail;
use vigil_control::{Reply, Request, reply::ConfigShown};

use crate::cli::{Cli, ConfigCmd};

pub fn run(cmd: &ConfigCmd, cli: &Cli) -> anyhow::Result<String> {
    let ConfigCmd::Show = cmd;
    let req = Request::ConfigShow;
    let Some(reply) = crate::client::ask_daemon(&cli.socket, &req, cli.timeout)? else {
        return Err(crate::exit::unreachable(format!(
            "vigild is not running (nothing listens on {}): `config show` asks it what it \
             applies; check a file without it with vigild --config FILE --check",
            cli.socket.display()
        )));
    };
    let Reply::Config(shown) = reply else {
        bail!(
            "vigild answered config show with something else; check that vigild and vigilctl come from the same release"
        );
    };
    if cli.json {
        let v = serde_json::json!({ "file": shown.file, "config": shown.config });
        return Ok(format!("{}\n", serde_json::to_string_pretty(&v)?));
    }
    Ok(render(&shown))
}

/// The TOML, under a comment naming the file it came from.
pub fn render(shown: &ConfigShown) -> String {
    format!(
        "# {} as vigild applies it (defaults filled in, secrets redacted)\n{}",
        shown.file.display(),
        shown.toml
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_toml_is_printed_under_the_file_it_came_from() {
        let shown = ConfigShown {
            file: "/etc/vigil/vigild.toml".into(),
            config: serde_json::json!({}),
            toml: "[hw]\nsysfs_root = \"/sys\"\n".into(),
        };
        assert_eq!(
            render(&shown),
            "# /etc/vigil/vigild.toml as vigild applies it (defaults filled in, secrets \
             redacted)\n[hw]\nsysfs_root = \"/sys\"\n"
        );
    }
}
