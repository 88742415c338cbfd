//! Command-line shape of `vigilctl`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use vigil_control::{Cidr, Level, OverrideSecs, Ttl, duration};
use vigil_hw::keys::{KeyMode, PcrValue};

#[derive(Debug, Parser)]
#[command(
    name = "vigilctl",
    version,
    about = "Operate a Vigil gateway",
    after_help = "Exit status: 0 ok, 1 the operation failed, 2 usage (a bad argument, a missing \
                  --force or --yes), 3 vigild unreachable and nothing pinned, 4 permission \
                  denied, 5 status found the box degraded. With --json, errors are printed as \
                  {\"error\": ..., \"code\": ..., \"exit\": ...} on stdout."
)]
pub struct Cli {
    /// vigild's control socket.
    #[arg(long, global = true, default_value = vigil_control::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Where the XDP maps are pinned (used when vigild is not running).
    #[arg(long, global = true, default_value = vigil_xdp::DEFAULT_PIN_ROOT)]
    pub pin_root: PathBuf,
    /// Interface whose pinned maps to use when vigild is not running (default: the only one).
    #[arg(long, global = true)]
    pub iface: Option<String>,
    /// Print JSON instead of tables; errors too, as {"error", "code", "exit"}.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for vigild's reply (500ms, 10s, 2m; docs/config.md#durations).
    #[arg(long, global = true, default_value = "10s", value_parser = parse_timeout)]
    pub timeout: Duration,
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
    /// The gateway's TLS key: create, inspect, seal, rotate.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Temperature and inspection level; pin the level for a while (needs vigild).
    Thermal {
        #[command(subcommand)]
        cmd: Option<ThermalCmd>,
    },
    /// The API's OpenAPI description, as the gateway enforces it.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Shadow APIs: requests to paths and methods the OpenAPI description does not know.
    #[command(subcommand)]
    Shadow(ShadowCmd),
    /// Clients by TLS fingerprint (JA4).
    #[command(subcommand)]
    Clients(ClientsCmd),
    /// The configuration vigild applies.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Virtual patches: refuse a known exploit until the API is fixed.
    #[command(subcommand)]
    Patch(crate::patch::PatchCmd),
    /// This box's fleet signing key (offline).
    #[command(subcommand)]
    Fleet(FleetCmd),
    /// The firmware's A/B slots: status, install a bundle, mark good, roll back (RAUC).
    #[command(subcommand)]
    Image(crate::image::ImageCmd),
    /// Print a shell completion script (bash, zsh or fish) for vigilctl.
    #[command(after_help = "Install: vigilctl completion bash > \
                            /usr/share/bash-completion/completions/vigilctl\n         \
                            vigilctl completion zsh > /usr/share/zsh/vendor-completions/_vigilctl\n         \
                            vigilctl completion fish > \
                            /usr/share/fish/vendor_completions.d/vigilctl.fish")]
    Completion {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write man pages: vigilctl.1 and one page per subcommand (vigilctl-block-add.1, ...).
    Man {
        /// Directory to write them to (created if missing).
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

/// The shells `vigilctl completion` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Subcommand)]
pub enum FleetCmd {
    /// Create an Ed25519 signing key for box NAME (PKCS#8 PEM, mode 0600) and print the line
    /// every box of the fleet adds under [fleet.boxes].
    Keygen {
        /// The box's name (fleet.box_id): letters, digits, '.', '_', '-', at most 31.
        #[arg(long = "box")]
        box_id: String,
        /// Where to write the key (fleet.signing_key).
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing file (the box's old public key stops being valid).
        #[arg(long)]
        force: bool,
    },
    /// Print the [fleet.boxes] line of an existing signing key.
    Pubkey {
        /// The key file (fleet.signing_key).
        key: PathBuf,
        /// The box's name for the printed line.
        #[arg(long = "box")]
        box_id: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the configuration in force (defaults filled in, secrets redacted) as TOML, or
    /// JSON with --json (needs vigild).
    Show,
}

#[derive(Debug, Subcommand)]
pub enum ClientsCmd {
    /// The busiest client fingerprints: requests and rejections since vigild started.
    Top {
        /// How many rows (1 to 1000).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Lift an auto-ban of a client fingerprint now (its count starts over). The addresses
    /// blocked with it stay blocked: `vigilctl block list` shows them.
    Unban {
        /// The fingerprint, as `vigilctl clients top` lists it.
        #[arg(value_parser = parse_ja4)]
        ja4: String,
    },
}

/// A JA4 fingerprint: `a_b_c`, 10 then 12 then 12 characters, lowercase letters and digits.
fn parse_ja4(s: &str) -> Result<String, String> {
    let parts: Vec<&str> = s.split('_').collect();
    let shaped = matches!(parts.as_slice(), [a, b, c] if a.len() == 10 && b.len() == 12 && c.len() == 12)
        && s.bytes()
            .all(|b| b == b'_' || b.is_ascii_lowercase() || b.is_ascii_digit());
    if shaped {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a JA4 fingerprint (like t13d1516h2_8daaf6152771_e5627efa2ab1): \
             copy it from `vigilctl clients top`"
        ))
    }
}

#[derive(Debug, Subcommand)]
pub enum ShadowCmd {
    /// Method, normalised path, count, first and last seen, statuses and clients.
    List,
    /// The inventory as an OpenAPI `paths` fragment (YAML; JSON with --json) to review and merge
    /// into the description.
    Export {
        /// Write it to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Compile an OpenAPI 3.0/3.1 description offline and show what the gateway would enforce.
    Check {
        /// The description (YAML or JSON); sibling files it references are read too.
        file: std::path::PathBuf,
        /// Refuse query parameters the description does not list.
        #[arg(long)]
        strict_query: bool,
        /// Treat every object schema as closed unless it says `additionalProperties: true`.
        #[arg(long)]
        strict_objects: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RuleCmd {
    /// Add a CIDR (or a single address); an existing rule for it is replaced.
    Add(AddArgs),
    /// Remove a CIDR.
    Del {
        #[arg(value_parser = parse_cidr)]
        cidr: Cidr,
    },
    /// List rules.
    List,
    /// Add every network of a feed at once: a plain list of CIDRs, Spamhaus DROP
    /// (`1.2.3.0/24 ; SBL123`) or FireHOL .netset; `#` and `;` comments and blank lines are
    /// skipped. A bad line is reported with its number and nothing is applied.
    Import {
        /// The feed file, or `-` for standard input.
        file: PathBuf,
        /// Why, for whoever reads the list later (at most 47 bytes). Default: import.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Remove every rule of the list.
    Flush {
        /// Confirm; without it, says how many rules would go and changes nothing (exit 2).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// 198.18.0.0/24, 2001:db8::/48, or one address.
    #[arg(value_parser = parse_cidr)]
    pub cidr: Cidr,
    /// Remove the rule after this long (30s, 10m, 1h 30m, 2d; at most 365d). Default: permanent.
    #[arg(long, value_parser = parse_ttl)]
    pub ttl: Option<Ttl>,
    /// Why, for whoever reads the list later (at most 47 bytes).
    #[arg(long)]
    pub reason: Option<String>,
    /// Allow a rule for every address of a family (0.0.0.0/0, ::/0).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum XdpCmd {
    /// Detach the program and remove its pinned maps: drops stop until `xdp attach`.
    Detach {
        /// Confirm detaching from a running vigild.
        #[arg(long)]
        yes: bool,
    },
    /// Attach the program of vigild's [xdp] section again after a detach; the rules the detach
    /// removed come back.
    Attach,
}

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Create a new ECDSA P-256 key, its CSR and a self-signed certificate in DIR.
    Init(KeysInitArgs),
    /// What key DIR holds: mode, fingerprint, creation time, subject, PCRs.
    Show {
        /// Key directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Seal an existing PEM private key into DIR with the TPM (then install its chain as
    /// DIR/cert.pem).
    Seal(KeysSealArgs),
    /// Signed PCR policies, for keys sealed with --policy-key (offline; no TPM).
    #[command(subcommand)]
    Policy(KeysPolicyCmd),
    /// Have vigild reload its key and serve it to new handshakes (needs vigild).
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum KeysPolicyCmd {
    /// Sign the PCR values of a genuine boot with the policy key: keys sealed with
    /// --policy-key unseal while the PCRs hold these values.
    Sign(KeysPolicySignArgs),
    /// What a signed policy approves and which key signed it (its signature is checked).
    Show {
        /// The signed policy (JSON).
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct KeysPolicySignArgs {
    /// The policy key: ECC P-256 private key (PEM, PKCS#8 or SEC1). Keep it off the boxes.
    #[arg(long, value_name = "POLICY_KEY.pem")]
    pub key: PathBuf,
    /// A PCR and the SHA-256 bank value a genuine boot leaves in it, as N=<64 hex digits>;
    /// repeat for each PCR.
    #[arg(long = "pcr", value_name = "N=HEX", required = true)]
    pub pcrs: Vec<PcrValue>,
    /// Where to write the signed policy (JSON; replaced if it exists).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// How `keys init` keeps the private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Software key sealed by the TPM under a PCR policy (fast handshakes; the default).
    #[value(alias = "tpm-sealed")]
    Sealed,
    /// Non-exportable key inside the TPM (one TPM signature per handshake).
    #[value(alias = "tpm-resident")]
    Resident,
    /// PEM key file on disk (development, or boxes without a TPM).
    File,
}

impl From<ModeArg> for KeyMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Sealed => KeyMode::TpmSealed,
            ModeArg::Resident => KeyMode::TpmResident,
            ModeArg::File => KeyMode::File,
        }
    }
}

#[derive(Debug, Args)]
pub struct KeysInitArgs {
    #[arg(long, value_enum, default_value = "sealed")]
    pub mode: ModeArg,
    /// Key directory (created with mode 0700; must not hold a key yet).
    #[arg(long)]
    pub dir: PathBuf,
    #[command(flatten)]
    pub tpm: TctiArg,
    /// DNS name for the certificate's CN and SAN. Default: this host's name.
    #[arg(long, value_name = "CN")]
    pub subject: Option<String>,
    /// Seal to the PCR policies this ECC P-256 public key signs (`keys policy sign`) instead of
    /// the current value of PCR 7; sealed mode only.
    #[arg(long, value_name = "PUB.pem")]
    pub policy_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeysSealArgs {
    /// PEM private key to seal (PKCS#8, SEC1 or PKCS#1). Left in place: delete it afterwards.
    pub file: PathBuf,
    /// Key directory.
    #[arg(long)]
    pub dir: PathBuf,
    #[command(flatten)]
    pub tpm: TctiArg,
    /// PCRs (SHA-256 bank) the key is sealed to, e.g. 7,16. Default: 7.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u8).range(0..=23))]
    pub pcrs: Vec<u8>,
    /// Seal to the PCR policies this ECC P-256 public key signs (`keys policy sign`) instead of
    /// the current values of --pcrs.
    #[arg(long, value_name = "PUB.pem", conflicts_with = "pcrs")]
    pub policy_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TctiArg {
    /// TPM to use (tpm2-tss TCTI). Default: $VIGIL_TCTI, else device:/dev/tpmrm0.
    #[arg(long)]
    pub tcti: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ThermalCmd {
    /// Pin the inspection level; it returns to what the temperature says when DURATION ends.
    Override {
        /// full, reduced, minimal or shed.
        #[arg(value_parser = parse_level)]
        level: Level,
        /// How long (30s, 10m, 1h 30m; at most 7d).
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_override_secs)]
        for_secs: OverrideSecs,
    },
    /// End an override now.
    Clear,
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    s.parse().map_err(|e: vigil_xdp::XdpError| e.to_string())
}

/// `--ttl`: the shared duration grammar, whole seconds (at least one), at most 365 days.
fn parse_ttl(s: &str) -> Result<Ttl, String> {
    let d = duration::parse(s).map_err(|e| e.to_string())?;
    Ttl::from_duration(d).map_err(|e| format!("{s:?}: {e}"))
}

fn parse_level(s: &str) -> Result<Level, String> {
    s.parse()
        .map_err(|e: vigil_control::RangeError| e.to_string())
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = duration::parse(s).map_err(|e| e.to_string())?;
    if d.is_zero() || d > crate::client::MAX_TIMEOUT {
        return Err(format!("{s:?}: a timeout lasts between 1ms and 1d"));
    }
    Ok(d)
}

/// Whole seconds, rounded up (vigild counts overrides in seconds).
fn parse_override_secs(s: &str) -> Result<OverrideSecs, String> {
    let d = duration::parse(s).map_err(|e| e.to_string())?;
    OverrideSecs::from_duration(d).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn levels_parse_by_name_only() {
        assert_eq!(parse_level("minimal"), Ok(Level::Minimal));
        let err = parse_level("hot").unwrap_err();
        assert!(err.contains("full, reduced, minimal or shed"), "{err}");
        assert!(parse_level("Shed").is_err());
    }

    #[test]
    fn override_durations_round_up_and_are_bounded() {
        let secs = |s| parse_override_secs(s).map(OverrideSecs::as_secs);
        assert_eq!(secs("10m"), Ok(600));
        assert_eq!(secs("1h 30m"), Ok(5400));
        assert_eq!(secs("1500ms"), Ok(2));
        assert_eq!(
            secs("0s"),
            Err("\"0s\": an override lasts between 1s and 7d".to_owned())
        );
        assert!(secs("8d").is_err());
        assert!(
            secs("ten")
                .unwrap_err()
                .contains("\"ten\" is not a duration")
        );
    }

    #[test]
    fn timeouts_parse_as_durations_and_are_bounded() {
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_timeout("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("2d").is_err());
        assert!(parse_timeout("soon").is_err());
        let cli = Cli::try_parse_from(["vigilctl", "status"]).unwrap();
        assert_eq!(cli.timeout, Duration::from_secs(10));
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
