//! `vigilctl completion SHELL` and `vigilctl man`: shell completions and man pages made from
//! the same clap definitions the parser uses, so they never drift from the binary. A package
//! build runs the binary it just built to produce them (no separate generator).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Command, CommandFactory};

use crate::cli::{Cli, Shell};

/// The completion script for `shell`.
pub fn completion(shell: Shell) -> String {
    let mut cmd = Cli::command();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "vigilctl", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes `vigilctl.1` and `vigilctl-<sub>[-<subsub>].1` for every subcommand into `dir`;
/// returns the files written.
pub fn man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = Cli::command();
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, dir, &mut written)?;
    Ok(written)
}

fn write_pages(cmd: &Command, dir: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    // Once built, a subcommand's display name is the dashed one (`vigilctl-block-add`), which
    // is the page's title and file name, as `man vigilctl-block-add` finds it.
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut out)
        .with_context(|| format!("rendering the man page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

/// What `vigilctl man` prints: one line per page.
pub fn render_written(files: &[PathBuf]) -> String {
    let mut out = String::new();
    for f in files {
        out.push_str(&format!("wrote {}\n", f.display()));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn completions_know_the_subcommands() {
        let bash = completion(Shell::Bash);
        assert!(bash.contains("complete -F _vigilctl"), "{bash}");
        for word in ["block", "status", "completion", "detach"] {
            assert!(bash.contains(word), "{word} missing");
        }
        assert!(completion(Shell::Zsh).starts_with("#compdef vigilctl"));
        let fish = completion(Shell::Fish);
        assert!(fish.contains("complete -c vigilctl"), "{fish}");
        assert!(fish.contains("__fish_seen_subcommand_from block"), "{fish}");
    }

    #[test]
    fn one_man_page_per_command() {
        let dir = tempfile::tempdir().unwrap();
        let files = man_pages(dir.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for want in [
            "vigilctl.1",
            "vigilctl-block.1",
            "vigilctl-block-add.1",
            "vigilctl-xdp-attach.1",
            "vigilctl-shadow-export.1",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        let page = std::fs::read_to_string(dir.path().join("vigilctl-block-add.1")).unwrap();
        assert!(page.contains(".TH vigilctl-block-add 1"), "{page}");
        assert!(page.contains("\\-\\-force"), "{page}");
        let top = std::fs::read_to_string(dir.path().join("vigilctl.1")).unwrap();
        assert!(top.contains("Exit status"), "{top}");
    }
}
