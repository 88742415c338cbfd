//! Attaching the program to an interface, adopting one a previous daemon left pinned, and
//! detaching it. The link is pinned, so the drops outlive the process that attached them.

use std::{
    fs,
    path::{Path, PathBuf},
};

use aya::{
    EbpfLoader,
    programs::{Xdp, XdpMode, links::FdLink},
};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::{
    OBJECT, XdpError, abi,
    maps::{self, RateLimit, VigilMaps},
    syn::SynGuard,
    sys,
};

pub const PROGRAM: &str = "vigil_xdp";
const LINK_PIN: &str = "link";
const PROG_PIN: &str = "prog";

/// What the operator asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModePolicy {
    /// Driver mode or fail: generic mode costs an skb per packet, so it is never silent.
    #[default]
    Native,
    Generic,
    /// Driver mode, falling back to generic with a warning.
    Auto,
}

/// What the kernel gave us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachedMode {
    Native,
    Generic,
    Unknown,
}

impl AttachedMode {
    fn from_abi(v: u32) -> Self {
        match v {
            abi::MODE_NATIVE => AttachedMode::Native,
            abi::MODE_GENERIC => AttachedMode::Generic,
            _ => AttachedMode::Unknown,
        }
    }

    fn to_abi(self) -> u32 {
        match self {
            AttachedMode::Native => abi::MODE_NATIVE,
            AttachedMode::Generic => abi::MODE_GENERIC,
            AttachedMode::Unknown => 0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct AttachOptions {
    pub iface: String,
    pub pin_root: PathBuf,
    pub mode: ModePolicy,
    pub rate: Option<RateLimit>,
    /// Buckets per row of the per-CPU rate sketch (rounded up to a power of two); only used
    /// when the maps are created.
    pub rate_table_size: u32,
    /// Listening ports answered with SYN cookies under a SYN flood; `None` turns it off.
    pub syn_guard: Option<SynGuard>,
    /// Load the program built with the SYN guard ([`crate::OBJECT_SYN_GUARD`]) rather than the
    /// one without its code. Only when the maps are created; an adopted program stays as it is.
    pub load_syn_guard: bool,
}

/// The program attached to an interface, with its maps.
#[derive(Debug)]
pub struct Attachment {
    pub iface: String,
    pub ifindex: u32,
    pub mode: AttachedMode,
    /// True when a pinned program from an earlier run was adopted rather than loaded.
    pub adopted: bool,
    pub maps: VigilMaps,
}

/// The pin directory of one interface.
pub fn pin_dir(pin_root: &Path, iface: &str) -> PathBuf {
    pin_root.join(iface)
}

/// Attaches Vigil's program to `opts.iface`, or adopts the one already pinned there.
pub fn attach(opts: &AttachOptions) -> Result<Attachment, XdpError> {
    let ifindex = sys::ifindex(&opts.iface).ok_or_else(|| XdpError::UnknownInterface {
        iface: opts.iface.clone(),
    })?;
    ensure_bpffs(&opts.pin_root)?;
    let dir = pin_dir(&opts.pin_root, &opts.iface);
    // What this attempt creates, a failure removes: stale pins of a start that never attached
    // would make later commands look for a program that is not there.
    let fresh = !dir.exists();
    fs::create_dir_all(&dir).map_err(XdpError::io("creating the pin directory", &dir))?;
    let attached = adopt(opts, ifindex, &dir).and_then(|adopted| match adopted {
        Some(a) => Ok(a),
        None => attach_new(opts, ifindex, &dir),
    });
    if attached.is_err() && fresh {
        if let Err(e) = detach(&opts.pin_root, &opts.iface) {
            warn!(iface = %opts.iface, error = %e, "removing the pins of a failed attach failed");
        }
    }
    attached
}

/// Loads, attaches and pins the program anew (maps already pinned in `dir` are reused).
fn attach_new(opts: &AttachOptions, ifindex: u32, dir: &Path) -> Result<Attachment, XdpError> {
    check_existing_pins(dir)?;
    let mut ebpf = load(opts, dir)?;
    let prog: &mut Xdp = ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| XdpError::Load {
            source: Box::new(aya::EbpfError::NoBTF),
        })?
        .try_into()
        .map_err(|e| XdpError::Program {
            what: "the object's program is not XDP".into(),
            source: e,
        })?;
    prog.load().map_err(|e| XdpError::Program {
        what: "verifying the XDP program".into(),
        source: e,
    })?;
    let (link_id, mode) = attach_in_mode(prog, opts)?;
    pin(prog, link_id, dir)?;
    let mut maps = VigilMaps::open(dir)?;
    maps.set_config(opts.rate, mode.to_abi())?;
    maps.set_syn_capable(opts.load_syn_guard)?;
    maps.set_syn_guard(opts.syn_guard.as_ref())?;
    // Maps left pinned by an earlier run keep their rules: the tables are built from them.
    let rules = maps.resync()?;
    info!(iface = %opts.iface, ?mode, rules, pins = %dir.display(), "attached the XDP program");
    Ok(Attachment {
        iface: opts.iface.clone(),
        ifindex,
        mode,
        adopted: false,
        maps,
    })
}

/// The program a previous run left pinned and attached to this interface, taken over with its
/// maps (rules, counters) intact; `None` when there is none (a defunct link pin is removed).
fn adopt(opts: &AttachOptions, ifindex: u32, dir: &Path) -> Result<Option<Attachment>, XdpError> {
    let link_path = dir.join(LINK_PIN);
    if !link_path.exists() {
        return Ok(None);
    }
    match sys::pinned_xdp_link_ifindex(&link_path) {
        Ok(Some(idx)) if idx == ifindex => {
            let mut maps = VigilMaps::open(dir)?;
            let mode = AttachedMode::from_abi(maps.config()?.attach_mode);
            maps.set_config(opts.rate, mode.to_abi())?;
            maps.set_syn_guard(opts.syn_guard.as_ref())?;
            // The tables are rebuilt from the rule store, so a change cut short by a crash
            // leaves nothing behind.
            let rules = maps.resync()?;
            info!(iface = %opts.iface, ?mode, rules, "adopted the pinned XDP program and maps");
            Ok(Some(Attachment {
                iface: opts.iface.clone(),
                ifindex,
                mode,
                adopted: true,
                maps,
            }))
        }
        Ok(_) => {
            warn!(iface = %opts.iface, "pinned XDP link is defunct (interface recreated?); attaching anew");
            fs::remove_file(&link_path)
                .map_err(XdpError::io("removing a defunct link pin", &link_path))?;
            Ok(None)
        }
        Err(e) => Err(XdpError::io("reading the pinned XDP link", &link_path)(e)),
    }
}

/// Loads the embedded object with its maps pinned in `dir`.
fn load(opts: &AttachOptions, dir: &Path) -> Result<aya::Ebpf, XdpError> {
    EbpfLoader::new()
        .default_map_pin_directory(dir)
        .map_max_entries(
            maps::RATE,
            abi::RATE_ROWS
                * opts
                    .rate_table_size
                    .clamp(1024, 1 << 24)
                    .next_power_of_two(),
        )
        .load(if opts.load_syn_guard {
            crate::OBJECT_SYN_GUARD
        } else {
            OBJECT
        })
        .map_err(|e| match &e {
            aya::EbpfError::MapError(m) if is_eperm(m) => XdpError::PermissionDenied {
                what: "loading the XDP program".into(),
            },
            _ => XdpError::Load {
                source: Box::new(e),
            },
        })
}

/// Attaches in the mode the options ask for (native, generic, or native falling back).
fn attach_in_mode(
    prog: &mut Xdp,
    opts: &AttachOptions,
) -> Result<(aya::programs::xdp::XdpLinkId, AttachedMode), XdpError> {
    match opts.mode {
        ModePolicy::Native => match prog.attach(&opts.iface, XdpMode::Driver) {
            Ok(id) => Ok((id, AttachedMode::Native)),
            Err(e) if held_by_another(&e) => Err(another_program(&opts.iface, e)),
            Err(e) => Err(XdpError::NativeUnsupported {
                iface: opts.iface.clone(),
                source: e,
            }),
        },
        ModePolicy::Generic => Ok((attach_generic(prog, &opts.iface)?, AttachedMode::Generic)),
        ModePolicy::Auto => match prog.attach(&opts.iface, XdpMode::Driver) {
            Ok(id) => Ok((id, AttachedMode::Native)),
            Err(e) if held_by_another(&e) => Err(another_program(&opts.iface, e)),
            Err(e) => {
                warn!(iface = %opts.iface, error = %e,
                    "native XDP unavailable; falling back to generic mode (xdp.mode = \"auto\")");
                Ok((attach_generic(prog, &opts.iface)?, AttachedMode::Generic))
            }
        },
    }
}

/// Pins the program and its link: once pinned, dropping our handles leaves the program
/// attached, which is the point (drops go on while vigild is down).
fn pin(prog: &mut Xdp, link_id: aya::programs::xdp::XdpLinkId, dir: &Path) -> Result<(), XdpError> {
    let link = prog.take_link(link_id).map_err(|e| XdpError::Program {
        what: "taking the XDP link".into(),
        source: e,
    })?;
    let fd_link = FdLink::try_from(link).map_err(|e| XdpError::Link {
        what: "the kernel gave a non-bpf_link attachment".into(),
        source: e,
    })?;
    let prog_pin = dir.join(PROG_PIN);
    if prog_pin.exists() {
        fs::remove_file(&prog_pin).map_err(XdpError::io("replacing the program pin", &prog_pin))?;
    }
    prog.pin(&prog_pin).map_err(|e| XdpError::Pin {
        what: "pinning the program".into(),
        source: e,
    })?;
    fd_link.pin(dir.join(LINK_PIN)).map_err(|e| XdpError::Pin {
        what: "pinning the XDP link".into(),
        source: e,
    })?;
    Ok(())
}

fn attach_generic(prog: &mut Xdp, iface: &str) -> Result<aya::programs::xdp::XdpLinkId, XdpError> {
    prog.attach(iface, XdpMode::Skb).map_err(|e| {
        if held_by_another(&e) {
            return another_program(iface, e);
        }
        XdpError::Program {
            what: format!("attaching to {iface} in generic mode"),
            source: e,
        }
    })
}

/// The kernel refuses a second XDP program on an interface: EBUSY for one in the same mode,
/// EEXIST for one in the other mode. Neither is a driver that lacks native XDP.
fn held_by_another(e: &aya::programs::ProgramError) -> bool {
    let io = match e {
        aya::programs::ProgramError::SyscallError(s) => &s.io_error,
        _ => return false,
    };
    matches!(io.raw_os_error(), Some(libc::EBUSY) | Some(libc::EEXIST))
}

fn another_program(iface: &str, source: aya::programs::ProgramError) -> XdpError {
    XdpError::Program {
        what: format!(
            "another XDP program is already attached to {iface} (`ip link show {iface}` shows \
             it, `bpftool net show dev {iface}` names it); remove it first (`ip link set dev \
             {iface} xdp off`, or stop what loaded it): generic mode would not help"
        ),
        source,
    }
}

fn is_eperm(e: &aya::maps::MapError) -> bool {
    match e {
        aya::maps::MapError::CreateError { io_error, .. } => {
            matches!(io_error.raw_os_error(), Some(libc::EPERM))
        }
        aya::maps::MapError::SyscallError(s) => {
            matches!(s.io_error.raw_os_error(), Some(libc::EPERM))
        }
        _ => false,
    }
}

/// Refuses pinned maps of an incompatible layout before the loader silently reuses them.
fn check_existing_pins(dir: &Path) -> Result<(), XdpError> {
    if dir.join(maps::CONFIG).exists() {
        maps::check_abi(dir)?;
    }
    let present = maps::ALL_MAPS
        .iter()
        .filter(|m| dir.join(m).exists())
        .count();
    if present == maps::ALL_MAPS.len() {
        VigilMaps::open(dir)?;
    }
    Ok(())
}

/// Detaches the program from `iface` and removes every pin. `Ok(false)` if nothing was there.
pub fn detach(pin_root: &Path, iface: &str) -> Result<bool, XdpError> {
    let dir = pin_dir(pin_root, iface);
    if !dir.exists() {
        return Ok(false);
    }
    // Unpinning the link drops the last reference to it (vigild holds none), which detaches.
    for name in [LINK_PIN, PROG_PIN].iter().chain(maps::ALL_MAPS.iter()) {
        let p = dir.join(name);
        if p.exists() {
            fs::remove_file(&p).map_err(XdpError::io("removing a pin", &p))?;
        }
    }
    fs::remove_dir(&dir).map_err(XdpError::io("removing the pin directory", &dir))?;
    Ok(true)
}

/// Whether a live program is pinned for `iface`, and in which mode.
pub fn attached_mode(pin_root: &Path, iface: &str) -> Option<AttachedMode> {
    let dir = pin_dir(pin_root, iface);
    let idx = sys::ifindex(iface)?;
    match sys::pinned_xdp_link_ifindex(&dir.join(LINK_PIN)) {
        Ok(Some(i)) if i == idx => {}
        _ => return None,
    }
    let maps = VigilMaps::open(&dir).ok()?;
    Some(AttachedMode::from_abi(maps.config().ok()?.attach_mode))
}

fn ensure_bpffs(pin_root: &Path) -> Result<(), XdpError> {
    let mut probe = pin_root;
    while !probe.exists() {
        match probe.parent() {
            Some(p) => probe = p,
            None => break,
        }
    }
    if sys::is_bpffs(probe) {
        return Ok(());
    }
    let default = Path::new("/sys/fs/bpf");
    if pin_root.starts_with(default) {
        sys::mount_bpffs(default).map_err(|source| XdpError::BpffsUnavailable {
            path: default.to_owned(),
            source,
        })?;
        info!("mounted bpffs at /sys/fs/bpf");
        return Ok(());
    }
    Err(XdpError::BpffsUnavailable {
        path: pin_root.to_owned(),
        source: std::io::Error::other("not a bpf filesystem; mount one or use /sys/fs/bpf"),
    })
}
