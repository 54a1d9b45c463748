//! Start-up and shutdown trace for the launch benchmark. When the environment variable
//! `KVMBUS_T0_NS` holds a `CLOCK_MONOTONIC` time in nanoseconds (the launcher's clock
//! just before it spawned this process), [`mark`] prints `STARTUP <step> <µs since T0>`
//! to stderr at each step; otherwise it costs one initialised-once check.

use std::sync::OnceLock;

/// `CLOCK_MONOTONIC` now, in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn t0() -> Option<u64> {
    static T0: OnceLock<Option<u64>> = OnceLock::new();
    *T0.get_or_init(|| std::env::var("KVMBUS_T0_NS").ok()?.parse().ok())
}

/// Whether the trace is on.
pub fn tracing() -> bool {
    t0().is_some()
}

/// Records that start-up or shutdown reached `step` (no-op unless tracing is on).
pub fn mark(step: &str) {
    if let Some(t0) = t0() {
        let us = monotonic_ns().saturating_sub(t0) as f64 / 1000.0;
        eprintln!("STARTUP {step} {us:.1}");
    }
}
