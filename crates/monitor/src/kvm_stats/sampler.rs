//! The thread that samples every [`KvmStats`] periodically.

use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::KvmStats;

/// Samples `stats` now and every `period` until `stop` fires or is dropped, and calls
/// `tick` at each sample (for gauges that follow the clock, such as the uptime).
/// A stat source that fails is logged once and left out from then on.
pub fn spawn_stats_sampler(
    mut stats: Vec<KvmStats>,
    period: Duration,
    stop: Receiver<()>,
    mut tick: impl FnMut() + Send + 'static,
) -> JoinHandle<()> {
    thread::Builder::new()
        .name("kvm-stats".into())
        .spawn(move || loop {
            tick();
            stats.retain_mut(|s| match s.sample() {
                Ok(()) => true,
                Err(e) => {
                    log::warn!("kvm stats {:?}: {e}; no longer sampled", s);
                    false
                }
            });
            match stop.recv_timeout(period) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            }
        })
        .expect("spawning the kvm-stats thread")
}
