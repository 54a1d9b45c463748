//! `kvmbus top --log` / `--csv`: kvm_stat's logging mode. A header line of field names,
//! then one line per refresh with each field's increase over the interval; the header
//! repeats every 20 lines (and whenever the set of fields changes). `--csv` prints
//! comma-separated lines and its header only once per field set.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use regex::Regex;

use super::stats;
use crate::{Error, Result, Source};

/// Lines between repeated headers, as kvm_stat.
const HEADER_EVERY: usize = 20;

/// Options of the logging mode.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Time between lines.
    pub interval: Duration,
    /// Comma-separated values instead of aligned columns.
    pub csv: bool,
    /// Skip lines whose fields are all zero (kvm_stat's `-z`).
    pub skip_zero: bool,
    /// Only fields whose name matches (kvm_stat's `--fields`).
    pub fields: Option<Regex>,
    /// Stop after this many lines of values (`None`: until `stop`).
    pub lines: Option<usize>,
}

/// Prints log lines of `source` to `out` until `stop` receives or disconnects, `lines`
/// are printed, or `out` is closed (a closed pipe is a normal end). Fails only when the
/// first scrape fails.
pub fn run_log<T>(
    source: &Source,
    opts: &LogOptions,
    out: &mut dyn Write,
    stop: &Receiver<T>,
) -> Result<()> {
    let mut prev = source.fetch_all()?;
    let mut printed = 0usize;
    let mut since_header = 0usize;
    let mut header: Option<Vec<String>> = None;
    while opts.lines.is_none_or(|n| printed < n) {
        match stop.recv_timeout(opts.interval) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return Ok(()),
        }
        let fetched = source.fetch();
        for e in &fetched.errors {
            log::warn!("{e}");
        }
        if !fetched.errors.is_empty() && fetched.snapshot.samples.is_empty() {
            continue;
        }
        let cur = fetched.snapshot;
        let fields: Vec<(String, f64)> = stats::deltas(&prev, &cur)
            .into_iter()
            .filter(|(k, _)| opts.fields.as_ref().is_none_or(|re| re.is_match(k)))
            .collect();
        prev = cur;
        if opts.skip_zero && fields.iter().all(|(_, v)| *v == 0.0) {
            continue;
        }
        let names: Vec<String> = fields.iter().map(|(k, _)| k.clone()).collect();
        let changed = header.as_ref() != Some(&names);
        let text = format_lines(
            &fields,
            opts.csv,
            changed || (!opts.csv && since_header >= HEADER_EVERY),
        );
        if changed || since_header >= HEADER_EVERY {
            since_header = 0;
        }
        header = Some(names);
        if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            return match e.kind() {
                std::io::ErrorKind::BrokenPipe => Ok(()),
                _ => Err(Error::Terminal(e)),
            };
        }
        since_header += 1;
        printed += 1;
    }
    Ok(())
}

/// The header (if asked) and one line of values.
fn format_lines(fields: &[(String, f64)], csv: bool, with_header: bool) -> String {
    let time = timestamp(SystemTime::now());
    let mut s = String::new();
    if csv {
        if with_header {
            s.push_str("timestamp");
            for (k, _) in fields {
                s.push(',');
                s.push_str(k);
            }
            s.push('\n');
        }
        s.push_str(&time);
        for (_, v) in fields {
            s.push_str(&format!(",{}", v.round() as i64));
        }
    } else {
        let width = |k: &str| k.len().max(10);
        if with_header {
            s.push_str(&format!("{:<19}", "Time (UTC)"));
            for (k, _) in fields {
                s.push_str(&format!(" {k:>w$}", w = width(k)));
            }
            s.push('\n');
        }
        s.push_str(&format!("{time:<19}"));
        for (k, v) in fields {
            s.push_str(&format!(" {:>w$}", v.round() as i64, w = width(k)));
        }
    }
    s.push('\n');
    s
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
fn timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::fixture;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    fn source() -> Source {
        let step = Arc::new(AtomicU64::new(0));
        Source::in_process(move || fixture::text(step.fetch_add(1, Ordering::SeqCst).min(1)))
    }

    fn opts() -> LogOptions {
        LogOptions {
            interval: Duration::from_millis(1),
            csv: false,
            skip_zero: false,
            fields: None,
            lines: Some(25),
        }
    }

    fn run(source: &Source, o: &LogOptions) -> String {
        let mut out = Vec::new();
        run_log(source, o, &mut out, &crossbeam_channel::never::<()>()).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formats_dates() {
        let t = |s| timestamp(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(t(0), "1970-01-01 00:00:00");
        assert_eq!(t(951_782_400 + 3661), "2000-02-29 01:01:01");
        assert_eq!(t(1_798_675_200), "2026-12-31 00:00:00");
    }

    #[test]
    fn logs_deltas_with_a_header_every_20_lines() {
        let text = run(&source(), &opts());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 25 + 2, "two headers for 25 lines:\n{text}");
        assert!(lines[0].starts_with("Time (UTC)") && lines[0].contains("demo.exits_io"));
        assert_eq!(lines[21], lines[0], "the header repeats after 20 lines");
        let col = lines[0]
            .split_whitespace()
            .position(|w| w == "demo.exits_io");
        // "Time (UTC)" and the date are both two words, so columns line up.
        let col = col.unwrap();
        let value = |l: &str| l.split_whitespace().nth(col).unwrap().to_owned();
        assert_eq!(
            value(lines[1]),
            "1510",
            "first interval: the fixture's step"
        );
        assert_eq!(value(lines[2]), "0", "then nothing moves");
    }

    #[test]
    fn csv_fields_and_skip_zero() {
        let mut o = opts();
        o.csv = true;
        o.fields = Some(Regex::new(r"exits_(io|halt)$").unwrap());
        o.lines = Some(3);
        let text = run(&source(), &o);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "timestamp,demo.exits_io,demo.kvm_exits_halt,demo.kvm_exits_io"
        );
        assert!(lines[1].ends_with(",1510,60,7515"), "{text}");
        assert!(lines[2].ends_with(",0,0,0"), "{text}");
        assert_eq!(lines.len(), 4, "one CSV header only:\n{text}");
        // -z: after the first interval every line is zero and skipped; stop ends it.
        o.skip_zero = true;
        o.lines = Some(2);
        let (tx, rx) = crossbeam_channel::bounded(1);
        let src = source();
        let handle = std::thread::spawn(move || {
            let mut out = Vec::new();
            run_log(&src, &o, &mut out, &rx).unwrap();
            String::from_utf8(out).unwrap()
        });
        std::thread::sleep(Duration::from_millis(200));
        tx.send(()).unwrap();
        let text = handle.join().unwrap();
        assert_eq!(
            text.lines().count(),
            2,
            "header and the one non-zero line:\n{text}"
        );
    }
}
