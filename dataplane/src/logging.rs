//! vigild's log output: text (default) or one JSON object per line, on stderr, with the
//! syslog priority prefix (`<4>` for a warning) that journald reads when stderr is the journal,
//! so `journalctl -p warning` finds warnings and errors.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    registry::LookupSpan,
};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`).
    Json,
}

/// The sd-daemon priority of a level (syslog numbering).
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Whether stderr is connected to the journal: systemd sets `JOURNAL_STREAM` to the
/// `device:inode` of the stream it connected, which must be stderr's own (a child that
/// inherited the variable but writes elsewhere must not get prefixes).
pub fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat(2) on fd 2 writes a `stat` into the buffer passed; it is read only when
    // the call succeeded.
    let ok = unsafe { libc::fstat(2, st.as_mut_ptr()) } == 0;
    if !ok {
        return false;
    }
    // SAFETY: fstat succeeded, so the struct is initialised.
    let st = unsafe { st.assume_init() };
    dev.parse::<u64>().ok() == Some(st.st_dev) && ino.parse::<u64>().ok() == Some(st.st_ino)
}

/// Puts `<priority>` before each line the inner format writes.
#[derive(Debug)]
pub struct Prioritised<F> {
    inner: F,
    prefix: bool,
}

impl<S, N, F> FormatEvent<S, N> for Prioritised<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if self.prefix {
            write!(writer, "<{}>", priority(event.metadata().level()))?;
        }
        self.inner.format_event(ctx, writer, event)
    }
}

/// Installs the global subscriber: `VIGIL_LOG` filters (default `info`).
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let journal = stderr_is_journal();
    let ansi = !journal && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(ansi)
            .event_format(Prioritised {
                inner: tracing_subscriber::fmt::format().with_ansi(ansi),
                prefix: journal,
            })
            .init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .event_format(Prioritised {
                inner: tracing_subscriber::fmt::format().json(),
                prefix: journal,
            })
            .init(),
    }
}

/// Logs `message` at most once per `every` for each `key`, with the number of repeats held
/// back since the last line: a warning repeated while a peer is down stays one line a minute.
#[derive(Debug, Default)]
pub struct Throttle {
    last: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, u64)>>,
}

impl Throttle {
    /// `Some(repeats held back)` when the line should be written now, `None` to hold it back.
    pub fn allow(&self, key: &str, every: std::time::Duration) -> Option<u64> {
        let now = std::time::Instant::now();
        let mut map = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(key) {
            Some((at, held)) if now.duration_since(*at) < every => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                let n = std::mem::take(held);
                *at = now;
                Some(n)
            }
            None => {
                map.insert(key.to_owned(), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
    }

    #[test]
    fn a_throttle_lets_one_line_per_interval_through_with_the_count() {
        let t = Throttle::default();
        assert_eq!(t.allow("redis", Duration::from_millis(50)), Some(0));
        assert_eq!(t.allow("redis", Duration::from_millis(50)), None);
        assert_eq!(t.allow("redis", Duration::from_millis(50)), None);
        assert_eq!(t.allow("other", Duration::from_millis(50)), Some(0));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.allow("redis", Duration::from_millis(50)), Some(2));
    }
}
