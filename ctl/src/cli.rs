//! Command-line shape of `vigilctl`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "vigilctl", version, about = "Operate a Vigil gateway")]
pub struct Cli {
    /// vigild's control socket.
    #[arg(long, global = true, default_value = vigil_dataplane::config::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Where the XDP maps are pinned (used when vigild is not running).
    #[arg(long, global = true, default_value = vigil_xdp::DEFAULT_PIN_ROOT)]
    pub pin_root: PathBuf,
    /// Interface whose pinned maps to use when vigild is not running (default: the only one).
    #[arg(long, global = true)]
    pub iface: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sources dropped in XDP.
    #[command(subcommand)]
    Block(RuleCmd),
    /// Sources never dropped in XDP.
    #[command(subcommand)]
    Allow(RuleCmd),
    /// XDP counters per verdict.
    Stats,
    /// Daemon and XDP state.
    Status,
    /// Re-read vigild's configuration (an invalid file changes nothing).
    Reload,
    /// The XDP program itself.
    #[command(subcommand)]
    Xdp(XdpCmd),
}

#[derive(Debug, Subcommand)]
pub enum RuleCmd {
    /// Add a CIDR (or a single address).
    Add(AddArgs),
    /// Remove a CIDR.
    Del { cidr: String },
    /// List rules.
    List,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    pub cidr: String,
    /// Remove the rule after this long (30s, 10m, 1h30m, 2d). Default: permanent.
    #[arg(long)]
    pub ttl: Option<String>,
    /// Why, for whoever reads the list later (at most 47 bytes).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum XdpCmd {
    /// Detach the program and remove its pinned maps (drops stop).
    Detach,
}
