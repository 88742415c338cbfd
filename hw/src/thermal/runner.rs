//! The governor on its own thread, for the daemon.
//!
//! A plain thread rather than an async task: a sysfs read can block for milliseconds on a slow
//! hwmon driver (I2C), which must not stall the runtime that serves requests. The request path
//! reads the level with one atomic load.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use super::config::{ThermalConfig, ThermalConfigError};
use super::governor::{Governor, GovernorStatus};
use super::level::{Level, TransitionEvent};
use super::sysfs::SysfsRoot;

/// Why the governor thread could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ThermalError {
    /// The `[thermal]` section is invalid.
    #[error(transparent)]
    Config(#[from] ThermalConfigError),
    /// The OS refused a thread.
    #[error("cannot start the thermal governor thread: {source}; check the process limits")]
    Spawn {
        /// The OS error.
        source: std::io::Error,
    },
}

enum Command {
    Override(Level, Instant),
    Clear,
    Config(ThermalConfig),
    Stop,
}

/// A governor polling on its own thread. Dropping the handle stops the thread.
#[derive(Debug)]
pub struct GovernorHandle {
    tx: mpsc::Sender<Command>,
    level: Arc<AtomicU8>,
    status: Arc<Mutex<GovernorStatus>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

fn level_from_u8(v: u8) -> Level {
    Level::ALL
        .get(usize::from(v))
        .copied()
        .unwrap_or(Level::Full)
}

fn level_to_u8(l: Level) -> u8 {
    match l {
        Level::Full => 0,
        Level::Reduced => 1,
        Level::Minimal => 2,
        Level::Shed => 3,
    }
}

impl GovernorHandle {
    /// Validates `config`, polls once, then keeps polling every `poll_interval_ms` on a new
    /// thread. `on_event` runs on that thread for every transition (audit it, count it); keep it
    /// short and non-blocking (e.g. push into a channel).
    pub fn spawn<F>(
        root: SysfsRoot,
        config: ThermalConfig,
        on_event: F,
    ) -> Result<Self, ThermalError>
    where
        F: FnMut(TransitionEvent) + Send + 'static,
    {
        config.validate()?;
        let mut governor = Governor::new(config);
        let mut on_event = on_event;
        if let Some(ev) = governor.poll(&root, Instant::now()) {
            on_event(ev);
        }
        let level = Arc::new(AtomicU8::new(level_to_u8(governor.level())));
        let status = Arc::new(Mutex::new(governor.status()));
        let (tx, rx) = mpsc::channel();
        let (thread_level, thread_status) = (Arc::clone(&level), Arc::clone(&status));
        let thread = std::thread::Builder::new()
            .name("vigil-thermal".into())
            .spawn(move || {
                loop {
                    let ev = match rx.recv_timeout(governor.config().poll_interval()) {
                        Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                        Ok(Command::Override(l, until)) => governor.override_level(l, until),
                        Ok(Command::Clear) => governor.clear_override(),
                        Ok(Command::Config(c)) => {
                            governor = rebuilt(&governor, c);
                            governor.poll(&root, Instant::now())
                        }
                        Err(RecvTimeoutError::Timeout) => governor.poll(&root, Instant::now()),
                    };
                    thread_level.store(level_to_u8(governor.level()), Ordering::Release);
                    *thread_status.lock().unwrap_or_else(PoisonError::into_inner) =
                        governor.status();
                    if let Some(ev) = ev {
                        on_event(ev);
                    }
                }
            })
            .map_err(|source| ThermalError::Spawn { source })?;
        Ok(Self {
            tx,
            level,
            status,
            thread: Some(thread),
        })
    }

    /// The level in force; one atomic load, cheap enough for every request.
    pub fn level(&self) -> Level {
        level_from_u8(self.level.load(Ordering::Acquire))
    }

    /// The status as of the last poll or command.
    pub fn status(&self) -> GovernorStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forces `level` until `until` (applied by the governor thread within milliseconds).
    pub fn override_level(&self, level: Level, until: Instant) {
        // A send fails only when the thread is gone, in which case there is nothing to steer.
        let _ = self.tx.send(Command::Override(level, until));
    }

    /// Cancels an active override.
    pub fn clear_override(&self) {
        let _ = self.tx.send(Command::Clear);
    }

    /// Applies a new `[thermal]` section; an invalid one is refused and the old one kept.
    pub fn reload(&self, config: ThermalConfig) -> Result<(), ThermalConfigError> {
        config.validate()?;
        let _ = self.tx.send(Command::Config(config));
        Ok(())
    }
}

/// A governor with a new config that keeps the current thermal level and override, so a reload
/// does not drop a hot box back to full.
fn rebuilt(old: &Governor, config: ThermalConfig) -> Governor {
    let mut fresh = old.clone();
    fresh.set_config(config);
    fresh
}

impl Drop for GovernorHandle {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use super::*;
    use crate::test_support::put;

    /// Waits (bounded) until `cond` holds.
    fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn thread_follows_the_sensors_and_reports_events() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        put(r, "class/thermal/thermal_zone0/temp", "50000");
        let config = ThermalConfig {
            poll_interval_ms: 50,
            ..ThermalConfig::default()
        };
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let h = GovernorHandle::spawn(SysfsRoot::new(r), config, move |e| {
            sink.lock().unwrap().push((e.from, e.to));
        })
        .unwrap();
        assert_eq!(h.level(), Level::Full);
        put(r, "class/thermal/thermal_zone0/temp", "91000");
        assert!(wait_for(|| h.level() == Level::Minimal));
        h.override_level(Level::Shed, Instant::now() + Duration::from_millis(200));
        assert!(wait_for(|| h.level() == Level::Shed));
        assert!(
            wait_for(|| h.level() == Level::Minimal),
            "override did not expire"
        );
        let bad = ThermalConfig {
            shed_c: 10.0,
            ..ThermalConfig::default()
        };
        assert!(h.reload(bad).is_err());
        drop(h);
        let seen = events.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![
                (Level::Full, Level::Minimal),
                (Level::Minimal, Level::Shed),
                (Level::Shed, Level::Minimal)
            ]
        );
    }
}
