//! Budgets shared by every connection, so that no single client or request can take what the
//! box needs for everyone else: the open connections, the share of the in-flight budget held by
//! one client address, and the memory held by buffered request bodies.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Notify;

use crate::metrics::Metrics;

/// Buckets of per-client in-flight counts. Addresses are hashed into them: two clients that
/// share a bucket share its limit, which errs on the side of refusing (never of letting a
/// client past its share), and costs one atomic add per request instead of a locked map.
const CLIENT_BUCKETS: usize = 4096;

/// In-flight requests per client address (IPv4 address or IPv6 /64).
#[derive(Debug)]
pub struct ClientShares {
    counts: Box<[AtomicU32]>,
    seed: u64,
}

impl Default for ClientShares {
    fn default() -> Self {
        Self {
            counts: (0..CLIENT_BUCKETS).map(|_| AtomicU32::new(0)).collect(),
            // Per process, so a client cannot pick addresses that collide with a victim's.
            seed: std::collections::hash_map::RandomState::new().hash_one(0u8),
        }
    }
}

impl ClientShares {
    fn bucket(&self, ip: IpAddr) -> usize {
        // An IPv6 client owns at least a /64: counting per address would let it take the
        // whole budget from one prefix.
        let key: u64 = match ip {
            IpAddr::V4(v4) => u64::from(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => u64::from(u32::from(v4)),
                None => (u128::from(v6) >> 64) as u64 ^ 0x9e37_79b9_7f4a_7c15,
            },
        };
        let h = (key ^ self.seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> 32) as usize % self.counts.len()
    }

    /// Takes one slot of `ip`'s share, if it has one left under `max`.
    pub fn try_enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let bucket = self.bucket(ip);
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        let counter = &self.counts[bucket];
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ClientSlot {
                shares: self.clone(),
                bucket,
            })
    }

    #[cfg(test)]
    fn held(&self, ip: IpAddr) -> u32 {
        self.counts[self.bucket(ip)].load(Ordering::Acquire)
    }
}

/// One in-flight request of a client; gives its slot back when dropped.
#[derive(Debug)]
pub struct ClientSlot {
    shares: Arc<ClientShares>,
    bucket: usize,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.shares.counts[self.bucket].fetch_sub(1, Ordering::AcqRel);
    }
}

/// Bytes of request bodies buffered for the stages that read them, over all requests.
#[derive(Debug, Default)]
pub struct BodyMemory {
    used: AtomicU64,
}

impl BodyMemory {
    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// An empty reservation, grown with [`BodyReservation::grow`].
    pub fn reservation(self: &Arc<Self>) -> BodyReservation {
        BodyReservation {
            memory: self.clone(),
            bytes: 0,
        }
    }
}

/// Bytes a request holds against [`BodyMemory`]; released when dropped.
#[derive(Debug)]
pub struct BodyReservation {
    memory: Arc<BodyMemory>,
    bytes: u64,
}

impl BodyReservation {
    /// Makes the reservation at least `total` bytes, if the budget `max` allows it.
    pub fn grow(&mut self, total: u64, max: u64) -> bool {
        if total <= self.bytes {
            return true;
        }
        let more = total - self.bytes;
        let ok = self
            .memory
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(more).filter(|n| *n <= max)
            })
            .is_ok();
        if ok {
            self.bytes = total;
        }
        ok
    }

    /// Gives back what is held past `total` bytes.
    pub fn shrink(&mut self, total: u64) {
        if total < self.bytes {
            self.memory
                .used
                .fetch_sub(self.bytes - total, Ordering::AcqRel);
            self.bytes = total;
        }
    }
}

/// The body-memory budget and its bound (`limits.max_body_memory`), for the parts that hold
/// bodies: a [`Share`] is taken only where one is held.
#[derive(Debug, Clone, Copy)]
pub struct Budget<'a> {
    pub memory: &'a Arc<BodyMemory>,
    pub max: u64,
}

impl Budget<'_> {
    /// An empty share of the budget.
    pub fn share(self) -> Share {
        Share {
            reservation: self.memory.reservation(),
            max: self.max,
        }
    }
}

/// What one body holds of the budget.
#[derive(Debug)]
pub struct Share {
    pub reservation: BodyReservation,
    pub max: u64,
}

impl Share {
    /// Whether `bytes` may be held in all.
    pub fn hold(&mut self, bytes: usize) -> bool {
        self.reservation.grow(bytes as u64, self.max)
    }
}

/// `inner`, holding `share` until the body has gone to the client or is dropped: for a body
/// read whole before it was let through.
pub fn reserved(inner: crate::body::InnerBody, share: Share) -> crate::body::InnerBody {
    use http_body_util::BodyExt;
    inner
        .map_frame(move |frame| {
            let _held = &share;
            frame
        })
        .boxed_unsync()
}

impl Drop for BodyReservation {
    fn drop(&mut self) {
        self.memory.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Counts open connections for shedding, the gauge and the shutdown drain.
#[derive(Debug, Default)]
pub struct ConnCount {
    open: AtomicUsize,
    zero: Notify,
}

impl ConnCount {
    /// Registers a connection; returns the guard and how many are open including it.
    pub fn enter(self: &Arc<Self>, metrics: &Arc<Metrics>) -> (ConnGuard, usize) {
        let n = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        metrics.open_connections.fetch_add(1, Ordering::Relaxed);
        let guard = ConnGuard {
            count: self.clone(),
            metrics: metrics.clone(),
        };
        (guard, n)
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Waits until no connection is open.
    pub async fn wait_zero(&self) {
        loop {
            let notified = self.zero.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Decrements the count when the connection task ends.
#[derive(Debug)]
pub struct ConnGuard {
    count: Arc<ConnCount>,
    metrics: Arc<Metrics>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.metrics
            .open_connections
            .fetch_sub(1, Ordering::Relaxed);
        if self.count.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.count.zero.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_share_is_bounded_and_given_back() {
        let shares = Arc::new(ClientShares::default());
        let a: IpAddr = [198, 18, 0, 2].into();
        let slots: Vec<ClientSlot> = (0..3).filter_map(|_| shares.try_enter(a, 3)).collect();
        assert_eq!(slots.len(), 3);
        assert!(
            shares.try_enter(a, 3).is_none(),
            "a fourth slot over a share of 3"
        );
        drop(slots);
        assert_eq!(shares.held(a), 0);
        assert!(shares.try_enter(a, 3).is_some());
    }

    #[test]
    fn an_ipv6_client_is_counted_per_64() {
        let shares = Arc::new(ClientShares::default());
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap_or([0; 16].into());
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap_or([0; 16].into());
        let held = shares.try_enter(one, 1);
        assert!(held.is_some());
        assert!(shares.try_enter(other, 1).is_none(), "same /64, same share");
    }

    #[test]
    fn body_memory_refuses_past_the_budget_and_releases_on_drop() {
        let mem = Arc::new(BodyMemory::default());
        let mut a = mem.reservation();
        assert!(a.grow(60, 100));
        let mut b = mem.reservation();
        assert!(!b.grow(50, 100), "60 + 50 is over 100");
        assert!(b.grow(40, 100));
        assert_eq!(mem.used(), 100);
        // Shrinking gives the difference back, at once; growing again asks for it again.
        a.shrink(20);
        assert_eq!(mem.used(), 60);
        a.shrink(30);
        assert_eq!(mem.used(), 60, "shrinking never grows");
        assert!(b.grow(80, 100));
        assert!(!a.grow(30, 100));
        drop(a);
        assert_eq!(mem.used(), 80);
        drop(b);
        assert_eq!(mem.used(), 0);
    }

    #[tokio::test]
    async fn a_reserved_body_holds_its_share_until_it_is_read_or_dropped() {
        use http_body_util::BodyExt;
        let memory = Arc::new(BodyMemory::default());
        let budget = Budget {
            memory: &memory,
            max: 100,
        };
        let body = |text: &'static str| {
            http_body_util::Full::new(bytes::Bytes::from_static(text.as_bytes()))
                .map_err(|never| match never {})
                .boxed_unsync()
        };
        let hold = |n: usize| {
            let mut share = budget.share();
            assert!(share.hold(n));
            share
        };
        let read = reserved(body("twelve bytes"), hold(12));
        let dropped = reserved(body("six b."), hold(6));
        assert_eq!(memory.used(), 18);
        let got = read.collect().await.ok().map(|c| c.to_bytes());
        assert_eq!(got.as_deref(), Some(&b"twelve bytes"[..]));
        assert_eq!(memory.used(), 6, "read to its end: given back");
        drop(dropped);
        assert_eq!(memory.used(), 0);
    }
}
