//! Clocks for timer devices (PM timer, RTC): the host's monotonic clock, and a manual one
//! that tests set by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A monotonic nanosecond clock and the wall-clock time it started at.
pub trait Clock: Send + Sync {
    /// Nanoseconds since an arbitrary fixed origin; never goes back.
    fn now_ns(&self) -> u64;
    /// The wall-clock time (UTC, nanoseconds since the Unix epoch) at `now_ns() == 0`.
    fn epoch_ns(&self) -> u64;
}

/// CLOCK_MONOTONIC, with its origin at construction.
pub struct HostClock {
    start: std::time::Instant,
    epoch_ns: u64,
}

impl Default for HostClock {
    fn default() -> Self {
        HostClock {
            start: std::time::Instant::now(),
            epoch_ns: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
        }
    }
}

impl Clock for HostClock {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    fn epoch_ns(&self) -> u64 {
        self.epoch_ns
    }
}

/// A clock that moves only when told (tests).
pub struct ManualClock {
    now: AtomicU64,
    epoch_ns: u64,
}

impl ManualClock {
    /// Starts at 0, which is `epoch_ns` in wall-clock time.
    pub fn new(epoch_ns: u64) -> ManualClock {
        ManualClock {
            now: AtomicU64::new(0),
            epoch_ns,
        }
    }
    /// Sets the time.
    pub fn set(&self, ns: u64) {
        self.now.store(ns, Ordering::SeqCst);
    }
    /// Moves the time forward by `ns`.
    pub fn advance(&self, ns: u64) {
        self.now.fetch_add(ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
    fn epoch_ns(&self) -> u64 {
        self.epoch_ns
    }
}
