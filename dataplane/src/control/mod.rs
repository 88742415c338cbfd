//! The control socket: a Unix socket, root only, speaking `proto`.

pub mod ops;
pub mod proto;
mod server;

pub use server::serve;
