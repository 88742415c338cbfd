//! The audit thread: one OS thread that drains the queue into the sink with plain blocking
//! writes, a batch per wake-up, and says in the daemon log (at most once per `REPORT_EVERY`)
//! how many lines were lost and why.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::AuditLine;
use super::sink::Sink;
use crate::config::AuditConfig;
use crate::metrics::Metrics;

/// Lines written per wake-up.
pub const BATCH: usize = 256;
/// Longest wait for a line before the thread looks at the stop flag and pending reports.
const TICK: Duration = Duration::from_secs(1);
/// After a batch that emptied the queue, the thread sleeps this long before it waits for the
/// next line. A thread blocked on an empty queue is woken (a futex wake, and on a busy core a
/// context switch that preempts the request path) for every line; one that sleeps is not, and
/// under load it wakes once per period to write everything that came meanwhile in one write.
/// The first line after a quiet spell is still written at once. Lines wait at most this long
/// more, and the queue (`queue_capacity`, 8192 by default) holds far more than a period's
/// worth, so nothing more is dropped and the loss bound of a crash is unchanged.
pub const COALESCE: Duration = Duration::from_millis(2);
/// At most one log message per kind of loss in this time; each carries the count since the last.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// What the queue carries: a line, or `None` to wake the thread (to stop).
pub type Msg = Option<AuditLine>;

/// What the writer thread starts with.
pub struct Setup {
    pub sink: Sink,
    /// The audit settings, to open the sink again on `reopen`.
    pub cfg: AuditConfig,
    pub what: String,
    pub capacity: usize,
    pub metrics: Arc<Metrics>,
    pub stop: Arc<AtomicBool>,
    pub reopen: Arc<AtomicBool>,
}

/// Starts the thread; `done` fires once it has written what was queued at the stop.
pub fn spawn(setup: Setup, rx: Receiver<Msg>, done: oneshot::Sender<()>) -> std::io::Result<()> {
    let Setup {
        sink,
        cfg,
        what,
        capacity,
        metrics,
        stop,
        reopen,
    } = setup;
    std::thread::Builder::new()
        .name("vigil-audit".into())
        .spawn(move || {
            let mut w = Writer {
                sink,
                cfg,
                reopen,
                what,
                capacity,
                metrics,
                write_losses: Reports::new(REPORT_EVERY),
                queue_drops: Reports::new(REPORT_EVERY),
                drops_seen: 0,
                last_error: String::new(),
            };
            w.run(&rx, &stop);
            let _ = done.send(());
        })
        .map(drop)
}

struct Writer {
    sink: Sink,
    cfg: AuditConfig,
    reopen: Arc<AtomicBool>,
    /// The sink as the operator configured it, for log messages.
    what: String,
    /// The queue's size.
    capacity: usize,
    metrics: Arc<Metrics>,
    write_losses: Reports,
    queue_drops: Reports,
    /// `audit_dropped` when last looked at.
    drops_seen: u64,
    last_error: String,
}

impl Writer {
    fn run(&mut self, rx: &Receiver<Msg>, stop: &AtomicBool) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let mut gone = false;
            match rx.recv_timeout(TICK) {
                Ok(Some(line)) => batch.push(line),
                Ok(None) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => gone = true,
            }
            gone |= fill(rx, &mut batch);
            let drained = batch.len() < BATCH;
            self.write(&mut batch);
            if self.reopen.swap(false, Ordering::AcqRel) {
                self.reopen_sink();
            }
            self.report(false);
            if gone || stop.load(Ordering::Acquire) {
                break;
            }
            if drained {
                std::thread::sleep(COALESCE);
            }
        }
        // Stopping: what is queued now is written (bounded by the queue's size, should lines
        // keep coming), then the receiver goes and later lines count as dropped.
        for _ in 0..=self.capacity.div_ceil(BATCH) {
            let gone = fill(rx, &mut batch);
            if batch.is_empty() {
                break;
            }
            self.write(&mut batch);
            if gone {
                break;
            }
        }
        self.report(true);
    }

    /// Opens the audit file again (the old one was moved away by a rotation); lines before
    /// this went to the old file, lines after go to the new one. On failure the old file is
    /// kept, so nothing is lost.
    fn reopen_sink(&mut self) {
        if !matches!(self.sink, Sink::File { .. }) {
            tracing::info!(sink = %self.what, "audit reopen: nothing to reopen for this sink");
            return;
        }
        match Sink::open(&self.cfg) {
            Ok(s) => {
                self.sink = s;
                tracing::info!(sink = %self.what, "audit log reopened");
            }
            Err(e) => tracing::warn!(
                sink = %self.what,
                error = %e,
                "audit log not reopened; still writing to the file open before"
            ),
        }
    }

    fn write(&mut self, batch: &mut Vec<AuditLine>) {
        if batch.is_empty() {
            return;
        }
        let loss = self.sink.write_batch(batch);
        batch.clear();
        if loss.lines > 0 {
            self.metrics
                .audit_write_errors
                .fetch_add(loss.lines, Ordering::Relaxed);
            if let Some(e) = loss.error {
                self.last_error = e.to_string();
            }
            self.write_losses.add(loss.lines);
        }
    }

    /// Logs losses that are due (all of them when `last`).
    fn report(&mut self, last: bool) {
        let now = Instant::now();
        let dropped = self.metrics.audit_dropped.load(Ordering::Relaxed);
        self.queue_drops
            .add(dropped.saturating_sub(self.drops_seen));
        self.drops_seen = dropped;
        if let Some(n) = self.write_losses.due(now, last) {
            tracing::warn!(
                lost = n,
                sink = %self.what,
                error = %self.last_error,
                "audit lines lost: the sink could not take them (full disk, collector down?); \
                 lines are written whole or not at all; see vigil_gateway_audit_write_errors_total"
            );
        }
        if let Some(n) = self.queue_drops.due(now, last) {
            tracing::warn!(
                dropped = n,
                sink = %self.what,
                "audit lines dropped: the queue was full (the sink is slower than the traffic; \
                 raise [audit] queue_capacity or speed up the sink); see \
                 vigil_gateway_audit_dropped_total"
            );
        }
    }
}

/// Moves queued lines into `batch` up to `BATCH`; true if every sender is gone.
fn fill(rx: &Receiver<Msg>, batch: &mut Vec<AuditLine>) -> bool {
    while batch.len() < BATCH {
        match rx.try_recv() {
            Ok(Some(line)) => batch.push(line),
            Ok(None) => {}
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => return true,
        }
    }
    false
}

/// A count of lost lines, reported at most once per `every`; each report carries what was
/// lost since the one before.
#[derive(Debug)]
struct Reports {
    every: Duration,
    last: Option<Instant>,
    pending: u64,
}

impl Reports {
    fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            pending: 0,
        }
    }

    fn add(&mut self, n: u64) {
        self.pending += n;
    }

    /// The count to report now, if any: the first loss at once, later ones once `every` has
    /// passed since the last report (or at once when `force`).
    fn due(&mut self, now: Instant, force: bool) -> Option<u64> {
        if self.pending == 0 {
            return None;
        }
        if !force
            && self
                .last
                .is_some_and(|t| now.duration_since(t) < self.every)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_first_loss_at_once_then_at_most_once_per_period() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut r = Reports::new(Duration::from_secs(10));
        assert_eq!(r.due(at(0), false), None);
        r.add(3);
        assert_eq!(r.due(at(0), false), Some(3));
        r.add(5);
        assert_eq!(r.due(at(1_000), false), None);
        r.add(2);
        assert_eq!(r.due(at(9_999), false), None);
        // The report after the period carries everything since the last one.
        assert_eq!(r.due(at(10_000), false), Some(7));
        assert_eq!(r.due(at(30_000), false), None);
        r.add(1);
        assert_eq!(r.due(at(30_001), false), Some(1));
        r.add(4);
        assert_eq!(r.due(at(30_002), true), Some(4));
    }
}
