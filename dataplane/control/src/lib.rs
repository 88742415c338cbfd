//! The contract between `vigilctl` and `vigild`: the requests of the control socket, a typed
//! reply per command, the error both sides agree on, the rule operations on the pinned XDP
//! maps (vigilctl runs them itself when vigild is down), the one parsed CIDR, and the one
//! duration grammar of the config file and the command line.
//!
//! The wire format is JSON, one object per line ([`wire`]); `socat` can speak it too.
//! Without the default `protocol` feature only [`duration`] is built: the gateway's config
//! uses the grammar without pulling in the maps.

pub mod duration;
#[cfg(feature = "fleet-key")]
pub mod fleet_key;

#[cfg(feature = "protocol")]
mod cidr;
#[cfg(feature = "protocol")]
mod error;
#[cfg(feature = "protocol")]
pub mod feed;
#[cfg(feature = "protocol")]
pub mod ops;
#[cfg(feature = "protocol")]
pub mod reply;
#[cfg(feature = "protocol")]
mod request;
#[cfg(feature = "protocol")]
pub mod wire;

#[cfg(feature = "protocol")]
pub use cidr::Cidr;
#[cfg(feature = "protocol")]
pub use error::{ControlError, ErrorCode};
#[cfg(feature = "protocol")]
pub use reply::{
    Detached, KeysRotated, Reloaded, Reply, ReplyKind, RuleAdded, RuleRemoved, Rules, RulesFlushed,
    RulesImported, Shadow, Stats, Status, Thermal, XdpAttached,
};
#[cfg(feature = "protocol")]
pub use request::{Level, OverrideSecs, RangeError, Request, Ttl};
#[cfg(feature = "protocol")]
pub use vigil_xdp::List;

/// Where vigild serves the control socket unless `control.socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/vigil/vigild.sock";

/// What answers control requests: vigild's daemon, or a stand-in in tests. Called on a
/// blocking thread (map operations are syscalls).
#[cfg(feature = "protocol")]
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: Request) -> Result<Reply, ControlError>;
}

#[cfg(feature = "protocol")]
impl<F> Handler for F
where
    F: Fn(Request) -> Result<Reply, ControlError> + Send + Sync + 'static,
{
    fn handle(&self, req: Request) -> Result<Reply, ControlError> {
        self(req)
    }
}
