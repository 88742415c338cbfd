//! `vigilctl patch`: virtual patches. `add`, `list`, `show` and `del` go to vigild; `test` is
//! offline: it says whether a request, written out as an HTTP file, would match a patch.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use vigil_control::reply::{PatchInfo, Patches};
use vigil_patch::{
    Patch, PatchSet,
    http_file::FileRequest,
    rule::{format_time, unix_now},
};

use crate::exit::usage;

#[derive(Debug, Subcommand)]
pub enum PatchCmd {
    /// Add a patch from a TOML or JSON file (`-` reads standard input); kept across restarts.
    Add { file: PathBuf },
    /// Every patch: action, expiry, hits, where it comes from, why.
    List,
    /// One patch in full.
    Show { id: String },
    /// Remove a patch added at run time.
    Del { id: String },
    /// Offline: would REQUEST_FILE (HTTP/1.1 text: request line, headers, blank line, body)
    /// match the patch in RULE (a patch file, or the id of a patch vigild has)?
    Test {
        rule: String,
        request_file: PathBuf,
        /// The OpenAPI route the request matches (`GET /orders/{id}`), for `route` conditions.
        #[arg(long)]
        route: Option<String>,
    },
}

fn read(path: &Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading standard input")?;
        return Ok(s);
    }
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > vigil_patch::http_file::MAX_FILE as u64 {
        return Err(usage(format!("{}: larger than 4 MiB", path.display())));
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// A patch file: one patch as TOML (the keys of a `[[patch]]` table) or JSON.
pub fn parse_patch(path: &Path) -> anyhow::Result<Patch> {
    let text = read(path)?;
    let shown = if path.as_os_str() == "-" {
        "standard input".to_owned()
    } else {
        path.display().to_string()
    };
    let parsed = if text.trim_start().starts_with('{') {
        serde_json::from_str::<Patch>(&text).map_err(|e| e.to_string())
    } else {
        toml::from_str::<Patch>(&text).map_err(|e| e.message().to_owned())
    };
    let patch = parsed.map_err(|e| usage(format!("{shown}: {e}")))?;
    patch
        .check(Some(unix_now()))
        .map_err(|e| usage(format!("{shown}: {e}")))?;
    Ok(patch)
}

/// `patch test`: the verdict, and exit status 1 when the patch does not match.
pub fn test(
    patch: &Patch,
    request_file: &Path,
    route: Option<&str>,
) -> anyhow::Result<(String, bool)> {
    let bytes = if request_file.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
        b
    } else {
        std::fs::read(request_file)
            .with_context(|| format!("reading {}", request_file.display()))?
    };
    let mut req = FileRequest::parse(&bytes)
        .map_err(|e| usage(format!("{}: {e}", request_file.display())))?;
    req.route = route.map(str::to_owned);
    // Tested as if it were new: an expired patch still says what it would have matched.
    let mut p = patch.clone();
    p.expires = format_time(unix_now() + 3600);
    let checked = p.check(None).map_err(|e| usage(e.to_string()))?;
    let set = PatchSet::compile(vec![checked], None).map_err(|e| usage(e.to_string()))?;
    let hit = !set.evaluate(&req, true).is_empty();
    let text = if hit {
        format!(
            "MATCH: patch {} would {} this request ({} {})\n",
            patch.id,
            match patch.action {
                vigil_patch::Action::Block => "refuse (403 virtual_patch)",
                vigil_patch::Action::Ban => "refuse and ban the source of",
                vigil_patch::Action::Log => "log",
            },
            req.method,
            req.path
        )
    } else {
        format!("no match: patch {} lets this request through\n", patch.id)
    };
    Ok((text, hit))
}

fn ago(unix: u64, now: u64) -> String {
    let d = now.saturating_sub(unix);
    match d {
        0..60 => format!("{d}s ago"),
        60..3600 => format!("{}m ago", d / 60),
        3600..86400 => format!("{}h ago", d / 3600),
        _ => format!("{}d ago", d / 86400),
    }
}

fn expiry(p: &PatchInfo, now: u64) -> String {
    if p.expired {
        return format!("EXPIRED {}", ago(p.expires_unix, now));
    }
    let left = p.expires_unix.saturating_sub(now);
    match left {
        0..3600 => format!("in {}m", left.div_ceil(60)),
        3600..86400 => format!("in {}h", left / 3600),
        _ => format!("in {}d", left / 86400),
    }
}

pub fn render_list(p: &Patches) -> String {
    if p.patches.is_empty() {
        return "no virtual patches\n".to_owned();
    }
    let now = unix_now();
    let mut out = format!(
        "{:<24} {:<6} {:<20} {:>8} {:<10} {:<8} NOTE\n",
        "ID", "ACTION", "EXPIRES", "HITS", "LAST HIT", "SOURCE"
    );
    let mut expired = 0;
    for i in &p.patches {
        expired += usize::from(i.expired);
        out.push_str(&format!(
            "{:<24} {:<6} {:<20} {:>8} {:<10} {:<8} {}\n",
            i.patch.id,
            i.patch.action.as_str(),
            expiry(i, now),
            i.hits,
            i.last_hit_unix.map_or("-".to_owned(), |t| ago(t, now)),
            i.source,
            i.patch.note
        ));
    }
    if expired > 0 {
        out.push_str(&format!(
            "{expired} expired patch{} match nothing: remove {} (`vigilctl patch del ID`, or \
             from the config) or renew {} with a new expiry\n",
            if expired == 1 { "" } else { "es" },
            if expired == 1 { "it" } else { "them" },
            if expired == 1 { "it" } else { "them" },
        ));
    }
    out
}

pub fn render_show(p: &Patches) -> String {
    let now = unix_now();
    let mut out = String::new();
    for i in &p.patches {
        let created = if i.patch.created > 0 {
            format!(
                "{} ({})",
                format_time(i.patch.created),
                ago(i.patch.created, now)
            )
        } else {
            "-".to_owned()
        };
        out.push_str(&format!(
            "id:       {}\nnote:     {}\naction:   {}{}\nexpires:  {} ({})\nadded:    {created}\nsource:   {}\nhits:     {}{}\nmatch:    {}\n",
            i.patch.id,
            i.patch.note,
            i.patch.action.as_str(),
            i.patch
                .ban_ttl
                .as_ref()
                .map_or(String::new(), |t| format!(" for {t}")),
            i.patch.expires,
            expiry(i, now),
            i.source,
            i.hits,
            i.last_hit_unix
                .map_or(String::new(), |t| format!(", last {}", ago(t, now))),
            match i.patch.combine {
                vigil_patch::Combine::All => "all of",
                vigil_patch::Combine::Any => "any of",
            },
        ));
        for c in &i.patch.when {
            let test = serde_json::to_value(c)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .map(|o| {
                    o.into_iter()
                        .filter(|(k, _)| k != "field")
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            out.push_str(&format!("  {} {test}\n", c.field));
        }
    }
    out
}
