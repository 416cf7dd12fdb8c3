//! The router's log: `tracing` events as lines, `2026-11-30T13:17:11.123456Z  INFO message
//! key=value`, the layout `tracing_subscriber::fmt` gives (without colours), filtered by
//! `RUST_LOG` or the `debug` level through `tracing_subscriber::filter::Targets`
//! (`startup::log_filter`).
//!
//! Why not `tracing_subscriber::fmt`: it always sits on `tracing_subscriber`'s span registry,
//! whose slab writes 32 KiB of shard pointers (on 64-bit machines) when it starts, about a
//! tenth of an idle router's private memory, for spans that the daemon never opens. This
//! subscriber keeps no spans: every span gets the same id and nothing is stored for it, so
//! an event is written with its own fields only (as `fmt` writes it when there is no span).

use std::fmt::Write as _;
use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Writes every event it is given as one line on `W`; what is given is decided by the filter
/// layered on it.
pub struct Lines<W> {
    out: Mutex<W>,
}

impl<W: Write + Send + 'static> Lines<W> {
    /// Lines written to `out`.
    pub fn new(out: W) -> Self {
        Lines {
            out: Mutex::new(out),
        }
    }
}

impl<W: Write + Send + 'static> Subscriber for Lines<W> {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        // No span is stored: they all share one id.
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = String::with_capacity(128);
        timestamp(&mut line, SystemTime::now());
        let _ = write!(line, " {:>5} ", event.metadata().level());
        event.record(&mut Fields {
            line: &mut line,
            first: true,
        });
        line.push('\n');
        // A log that cannot be written loses the line; the router goes on.
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(line.as_bytes());
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// An event's fields as `fmt` writes them: the message, then ` name=value` (values by
/// `Debug`, so strings are quoted); the `log.*` fields of records from the `log` crate left out.
struct Fields<'a> {
    line: &'a mut String,
    first: bool,
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        if !self.first {
            self.line.push(' ');
        }
        self.first = false;
        let _ = if name == "message" {
            write!(self.line, "{value:?}")
        } else {
            write!(self.line, "{name}={value:?}")
        };
    }
}

/// `t` as RFC 3339 in UTC with microseconds (`2026-11-30T13:17:11.123456Z`).
fn timestamp(line: &mut String, t: SystemTime) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, day_secs) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        line,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        day_secs / 3600,
        day_secs / 60 % 60,
        day_secs % 60,
        since.subsec_micros()
    );
}

/// The proleptic Gregorian date of `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`
/// for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let mut s = String::new();
        timestamp(&mut s, UNIX_EPOCH);
        assert_eq!(s, "1970-01-01T00:00:00.000000Z");
        let mut s = String::new();
        // 2024-02-29 (a leap day) 23:59:59.000001 UTC.
        timestamp(&mut s, UNIX_EPOCH + Duration::new(1_709_251_199, 1_000));
        assert_eq!(s, "2024-02-29T23:59:59.000001Z");
        let mut s = String::new();
        timestamp(&mut s, UNIX_EPOCH + Duration::from_secs(4_133_980_800));
        assert_eq!(s, "2101-01-01T00:00:00.000000Z");
    }

    /// Lines carry the level, the message and the fields, and the filter drops what is
    /// below its level.
    #[test]
    fn events_are_lines_filtered_by_level() {
        // The log file a `log-file` statement names: one line per event, appended.
        let path = std::env::temp_dir().join(format!("babeld-rs-log-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let sub = Lines::new(file).with(
            tracing_subscriber::filter::Targets::new()
                .with_default(tracing_subscriber::filter::LevelFilter::INFO),
        );
        tracing::subscriber::with_default(sub, || {
            tracing::info!(error = %"no route", n = 3, "kernel check: {} routes", 2);
            tracing::debug!("not written");
            let span = tracing::info_span!("unused", x = 1);
            let _in = span.enter();
            tracing::warn!("inside a span");
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with("Z  INFO kernel check: 2 routes error=no route n=3"),
            "{text}"
        );
        assert!(lines[1].ends_with("Z  WARN inside a span"), "{text}");
    }
}
