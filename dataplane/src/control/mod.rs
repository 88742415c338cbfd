//! The control socket: a Unix socket, root only, speaking `vigil_control::wire` to whatever
//! implements `vigil_control::Handler` (the daemon).

mod convert;
mod server;
mod status;

pub(crate) use convert::{hw_level, to_control};
pub use server::serve;
pub(crate) use status::gateway_details;
