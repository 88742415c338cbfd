//! A future that is polled only when it woke its task itself.
//!
//! A connection's task waits on its HTTP connection and, beside it, on the run level and a
//! timer tick that fire a few times a minute at most. Polled together in one `select!`, the
//! two quiet ones are polled again on every wake-up the traffic causes (each poll of a watch
//! receiver takes its waiters' lock, each poll of a timer checks its registration): two or
//! three times per request. [`Quiet`] hands its future a waker of its own that notes the wake
//! before it wakes the task, and skips the poll unless that happened.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

/// Polls `F` on its first poll, and after that only once `F` has woken the task.
pub struct Quiet<F> {
    inner: F,
    flag: Arc<Flag>,
    /// `flag` as a waker, made once.
    waker: Waker,
    /// The task's waker last stored in `flag`.
    task: Option<Waker>,
}

/// Whether the inner future woke, and the task to wake for it.
#[derive(Default)]
struct Flag {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = task.as_ref() {
            task.wake_by_ref();
        }
    }
}

impl<F> Quiet<F> {
    pub fn new(inner: F) -> Self {
        let flag = Arc::new(Flag::default());
        Self {
            inner,
            waker: Waker::from(flag.clone()),
            flag,
            task: None,
        }
    }
}

impl<F: Future + Unpin> Future for Quiet<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        if this.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
            if !this.flag.woken.swap(false, Ordering::AcqRel) {
                return Poll::Pending;
            }
        } else {
            // First poll, or polled from another task: wakes go there from now on.
            let mut task = this
                .flag
                .task
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *task = Some(cx.waker().clone());
            this.task = Some(cx.waker().clone());
            this.flag.woken.store(false, Ordering::Release);
        }
        Pin::new(&mut this.inner).poll(&mut Context::from_waker(&this.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Pending until `ready` is set; counts its polls and keeps the last waker.
    struct Probe {
        polls: Arc<AtomicUsize>,
        ready: Arc<AtomicBool>,
        waker: Arc<Mutex<Option<Waker>>>,
    }

    impl Future for Probe {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            *self.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
            if self.ready.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    #[test]
    fn the_inner_future_is_polled_first_and_then_only_after_it_woke() {
        let polls = Arc::new(AtomicUsize::new(0));
        let ready = Arc::new(AtomicBool::new(false));
        let inner_waker = Arc::new(Mutex::new(None::<Waker>));
        let mut quiet = Quiet::new(Probe {
            polls: polls.clone(),
            ready: ready.clone(),
            waker: inner_waker.clone(),
        });
        let task_woken = Arc::new(Counter::default());
        let task = Waker::from(task_woken.clone());
        let mut cx = Context::from_waker(&task);
        assert!(Pin::new(&mut quiet).poll(&mut cx).is_pending());
        // Woken by the traffic beside it: not polled.
        for _ in 0..3 {
            assert!(Pin::new(&mut quiet).poll(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        // It wakes itself: the task is woken, and the next poll reaches it.
        ready.store(true, Ordering::SeqCst);
        let waker = inner_waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        waker.into_iter().for_each(Waker::wake);
        assert_eq!(task_woken.0.load(Ordering::SeqCst), 1);
        assert!(Pin::new(&mut quiet).poll(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }

    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}
