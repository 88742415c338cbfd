//! One kit for Vigil's tests and benchmarks, so each piece exists once:
//!
//! - [`ports`]: a free loopback port, two side by side, waiting for a listener;
//! - [`swtpm`]: a private software TPM that can be stopped, restarted and have PCRs extended;
//! - [`vigild`]: vigild as a process with its own directory, config, socket and pins, and
//!   vigilctl against it;
//! - [`config`]: vigild's (and the gateway's) configuration, built section by section;
//! - [`pki`]: CAs, server and client certificates, self-signed certificates, keys;
//! - [`jwt`]: signing keys of every JWS algorithm, tokens, JWKS documents and an HTTPS JWKS
//!   endpoint;
//! - [`procs`]: child processes stopped by PID on drop, nginx as upstream or TLS proxy, CPU
//!   pinning and the CPU time a child used, a
//!   child that announces its ports;
//! - [`redis`]: a private redis-server, optionally with an ACL user and TLS;
//! - [`fleet`]: Ed25519 signing keys of fleet boxes;
//! - [`machine`]: facts about the machine for benchmark reports;
//! - [`plot`]: the SVG plot of a benchmark run (panels of bars with whiskers);
//! - [`load`]: h2load and wrk output, percentiles and medians.
//!
//! Everything fallible returns `anyhow::Result` with a message that says what to install or
//! what went wrong; everything started is stopped, and everything written removed, on drop.

pub mod config;
pub mod fleet;
pub mod jwt;
pub mod load;
pub mod machine;
pub mod pki;
pub mod plot;
pub mod ports;
pub mod procs;
pub mod redis;
pub mod swtpm;
pub mod vigild;
