//! Rate-limited logging for lines a guest can cause.
//!
//! A guest that repeats a bad access can otherwise write megabytes of warnings per
//! second. Every such line goes through [`guest_log!`](crate::guest_log): per call site,
//! [`BURST`] lines per [`WINDOW_MS`] pass; the rest are counted in
//! [`LOG_SUPPRESSED`] (label `site`) and announced by one summary line when the site
//! next logs, or by [`log_summary`] (called when the VM stops).
//!
//! ```
//! use guard::guest_log;
//! for gpa in 0..1000u64 {
//!     // At most a few of these reach the log per second.
//!     guest_log!(log::Level::Warn, "call block {gpa:#x} outside guest memory");
//! }
//! ```

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// Counter of guest-triggered log lines held back, by `site` (monitor::names has it too).
pub const LOG_SUPPRESSED: &str = "kvmbus_log_suppressed_total";
/// Lines one site may log per window.
pub const BURST: u32 = 5;
/// The window, in milliseconds.
pub const WINDOW_MS: u64 = 1000;

/// Sites that held lines back, for [`log_summary`].
static SITES: Mutex<Vec<&'static RateLimit>> = Mutex::new(Vec::new());

fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What [`RateLimit::admit_at`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Log the line; `held_back` lines were suppressed since this site last logged.
    Log {
        /// Lines suppressed since the last one logged.
        held_back: u64,
    },
    /// Suppress the line (it was counted).
    Suppress,
}

/// The state of one call site.
#[derive(Debug)]
pub struct RateLimit {
    site: &'static str,
    window_start: AtomicU64,
    in_window: AtomicU32,
    held_back: AtomicU64,
    total: AtomicU64,
    registered: AtomicBool,
}

impl RateLimit {
    /// A limiter for the call site named `site` (module and line).
    pub const fn new(site: &'static str) -> RateLimit {
        RateLimit {
            site,
            window_start: AtomicU64::new(0),
            in_window: AtomicU32::new(0),
            held_back: AtomicU64::new(0),
            total: AtomicU64::new(0),
            registered: AtomicBool::new(false),
        }
    }

    /// Decides about one line now.
    pub fn admit(&'static self) -> Admit {
        let a = self.admit_at(now_ms());
        if a == Admit::Suppress && !self.registered.swap(true, Ordering::Relaxed) {
            SITES.lock().unwrap_or_else(|e| e.into_inner()).push(self);
        }
        a
    }

    /// Decides about one line at `now` (milliseconds on any monotonic clock).
    pub fn admit_at(&self, now: u64) -> Admit {
        let start = self.window_start.load(Ordering::Relaxed);
        if now.saturating_sub(start) >= WINDOW_MS
            && self
                .window_start
                .compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.in_window.store(0, Ordering::Relaxed);
        }
        if self.in_window.fetch_add(1, Ordering::Relaxed) < BURST {
            Admit::Log {
                held_back: self.held_back.swap(0, Ordering::Relaxed),
            }
        } else {
            self.in_window.store(BURST, Ordering::Relaxed);
            self.held_back.fetch_add(1, Ordering::Relaxed);
            self.total.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(LOG_SUPPRESSED, "site" => self.site).increment(1);
            Admit::Suppress
        }
    }

    /// Lines this site suppressed so far.
    pub fn suppressed_total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// The site's name.
    pub fn site(&self) -> &'static str {
        self.site
    }

    /// Takes the count held back since the last line logged.
    fn take_held_back(&self) -> u64 {
        self.held_back.swap(0, Ordering::Relaxed)
    }
}

/// Logs one summary line per site that held lines back and has not announced them yet.
/// Returns the number of lines announced.
pub fn log_summary() -> u64 {
    let sites = SITES.lock().unwrap_or_else(|e| e.into_inner());
    let mut all = 0;
    for s in sites.iter() {
        let n = s.take_held_back();
        if n > 0 {
            log::warn!(
                "{}: {n} more guest-triggered log lines suppressed ({} in all)",
                s.site,
                s.suppressed_total()
            );
            all += n;
        }
    }
    all
}

/// Logs at `level` a line a guest can cause, rate-limited per call site.
#[macro_export]
macro_rules! guest_log {
    ($level:expr, $($arg:tt)+) => {{
        static RATE: $crate::RateLimit =
            $crate::RateLimit::new(concat!(module_path!(), ":", line!()));
        if let $crate::ratelog::Admit::Log { held_back } = RATE.admit() {
            if held_back > 0 {
                $crate::__log::log!(
                    $level,
                    "{}: {} similar guest-triggered lines suppressed",
                    RATE.site(),
                    held_back
                );
            }
            $crate::__log::log!($level, $($arg)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_lines_are_counted_until_the_window_ends() {
        let r = RateLimit::new("test:1");
        for _ in 0..BURST {
            assert_eq!(r.admit_at(10), Admit::Log { held_back: 0 });
        }
        for _ in 0..1000 {
            assert_eq!(r.admit_at(500), Admit::Suppress);
        }
        assert_eq!(r.suppressed_total(), 1000);
        // Next window: the first line carries the summary count.
        assert_eq!(r.admit_at(1010), Admit::Log { held_back: 1000 });
        assert_eq!(r.admit_at(1011), Admit::Log { held_back: 0 });
    }

    #[test]
    fn a_flood_logs_a_bounded_number_of_lines() {
        let r = RateLimit::new("test:2");
        let logged = (0..200_000u64)
            .filter(|i| matches!(r.admit_at(i / 50), Admit::Log { .. }))
            .count();
        // 200,000 lines over 4 s of clock: 4 windows (+1 boundary) of BURST lines.
        assert!(logged <= (BURST as usize) * 5, "{logged} lines logged");
        assert_eq!(r.suppressed_total() as usize, 200_000 - logged);
    }

    #[test]
    fn the_summary_announces_what_was_held_back() {
        static R: RateLimit = RateLimit::new("test:3");
        for _ in 0..(BURST + 7) {
            let _ = R.admit();
        }
        assert!(log_summary() >= 7);
        assert_eq!(R.take_held_back(), 0);
    }
}
