//! Rate-limit buckets kept outside this process, so several boxes share one limit. The gateway
//! asks a [`SharedBuckets`] store (vigild's Redis store in fleet mode) for one token per
//! decision; when the store cannot answer, the rule falls back to a conservative local bucket.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

/// What the store decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedTake {
    /// Whether a token was taken (the request may go on).
    pub allowed: bool,
    /// Whole tokens left in the bucket after this decision.
    pub remaining: u64,
    /// Milliseconds until the next token is back (0 when one is there now).
    pub retry_after_ms: u64,
}

/// The store could not answer in time (down, slow, or refused the call). The gateway then
/// decides locally; the store says why in its own status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreUnavailable;

/// The future a store returns.
pub type TakeFuture<'a> =
    Pin<Box<dyn Future<Output = Result<SharedTake, StoreUnavailable>> + Send + 'a>>;

/// A store of token buckets shared between boxes.
///
/// `take` must answer within a bounded time (the caller does not add its own timeout beyond a
/// safety net) and must fail fast, without a network round trip, while the store knows it is
/// unreachable: the request path never waits on a dead store.
pub trait SharedBuckets: Send + Sync + Debug {
    /// Takes one token from bucket `key` (already namespaced by rule) refilled at `rate`
    /// tokens per second up to `burst`.
    fn take<'a>(&'a self, key: &'a str, rate: u32, burst: u32) -> TakeFuture<'a>;
}
