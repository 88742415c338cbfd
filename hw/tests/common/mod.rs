//! Test helpers: rustls client and server over loopback (the private swtpm is the test kit's).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod tls;
