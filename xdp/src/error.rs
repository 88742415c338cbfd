use std::{io, path::PathBuf};

/// Errors of the XDP layer. Messages say what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("invalid CIDR {input:?}: {why}")]
    InvalidCidr { input: String, why: String },

    #[error("reason text is {len} bytes; at most {max} fit in a rule")]
    ReasonTooLong { len: usize, max: usize },

    #[error("the XDP lookup tables have no room for {what}: they hold at most {max}")]
    TablesFull { what: String, max: String },

    #[error("{what}")]
    Invalid { what: String },

    #[error("interface {iface:?} does not exist (check `ip link`)")]
    UnknownInterface { iface: String },

    #[error("{what} needs root (CAP_BPF and CAP_NET_ADMIN); run as root")]
    PermissionDenied { what: String },

    #[error("bpffs is not mounted at {path} and mounting it failed: {source}")]
    BpffsUnavailable { path: PathBuf, source: io::Error },

    #[error(
        "no Vigil XDP state is pinned under {path}: is vigild attached to this interface? \
         (start vigild, or check xdp.interface and xdp.pin_root)"
    )]
    NotAttached { path: PathBuf },

    #[error(
        "pinned map {path} has an incompatible layout ({detail}); it was made by another \
         Vigil build: run `vigilctl xdp detach` and start vigild again"
    )]
    IncompatiblePin { path: PathBuf, detail: String },

    #[error(
        "native (driver) XDP is not available on {iface}: {source}; set xdp.mode = \"generic\" \
         or \"auto\" to use generic mode explicitly"
    )]
    NativeUnsupported {
        iface: String,
        source: aya::programs::ProgramError,
    },

    #[error("loading the XDP program failed: {source}")]
    Load {
        #[source]
        source: Box<aya::EbpfError>,
    },

    #[error("{what}: {source}")]
    Program {
        what: String,
        source: aya::programs::ProgramError,
    },

    #[error("{what}: {source}")]
    Map {
        what: String,
        source: aya::maps::MapError,
    },

    #[error("{what} ({path}): {source}")]
    Io {
        what: String,
        path: PathBuf,
        source: io::Error,
    },

    #[error("{what}: {source}")]
    Pin {
        what: String,
        source: aya::pin::PinError,
    },

    #[error("{what}: {source}")]
    Link {
        what: String,
        source: aya::programs::links::LinkError,
    },
}

impl XdpError {
    pub(crate) fn map(what: impl Into<String>) -> impl FnOnce(aya::maps::MapError) -> Self {
        let what = what.into();
        move |source| {
            if is_eperm_map(&source) {
                return XdpError::PermissionDenied { what };
            }
            XdpError::Map { what, source }
        }
    }

    pub(crate) fn io(what: &str, path: &std::path::Path) -> impl FnOnce(io::Error) -> Self {
        let (what, path) = (what.to_owned(), path.to_owned());
        move |source| {
            if source.kind() == io::ErrorKind::PermissionDenied {
                return XdpError::PermissionDenied { what };
            }
            XdpError::Io { what, path, source }
        }
    }
}

fn is_eperm_map(e: &aya::maps::MapError) -> bool {
    match e {
        aya::maps::MapError::SyscallError(s) => {
            matches!(
                s.io_error.raw_os_error(),
                Some(libc::EPERM) | Some(libc::EACCES)
            )
        }
        _ => false,
    }
}
