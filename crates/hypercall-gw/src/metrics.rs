//! Hypercall metrics: `kvmbus_hypercalls_total{vm,nr,path,status}` and
//! `kvmbus_hypercall_seconds{vm,nr,path}` (names from `monitor::names`, which this crate
//! does not depend on).
//!
//! Each thread that completes calls owns a [`Recorder`], which registers a handle the
//! first time it sees a label set and reuses it afterwards, so the hot path is a hash
//! lookup and an atomic add. Numbers with no service are labelled `nr="other"` so that
//! a guest cannot grow the label space without bound.

use std::collections::HashMap;
use std::time::Duration;

use crate::abi::Status;

/// Counter name (monitor::names::HYPERCALLS).
pub const HYPERCALLS: &str = "kvmbus_hypercalls_total";
/// Histogram name (monitor::names::HYPERCALL_SECONDS).
pub const HYPERCALL_SECONDS: &str = "kvmbus_hypercall_seconds";

/// Where a call was served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// CALL_LO on the vCPU thread.
    Sync,
    /// A ring served by a gateway queue thread.
    Ring,
    /// Forwarded to an external backend over its socket.
    Relay,
    /// Served by an external backend that owns the queue.
    Direct,
}

impl Path {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Path::Sync => "sync",
            Path::Ring => "ring",
            Path::Relay => "relay",
            Path::Direct => "direct",
        }
    }
}

/// Label value for numbers that have no service.
const OTHER: u32 = u32::MAX;

/// A per-thread cache of metric handles.
#[derive(Debug)]
pub struct Recorder {
    vm: String,
    counters: HashMap<(u32, Path, Status), metrics::Counter>,
    histograms: HashMap<(u32, Path), metrics::Histogram>,
}

impl Recorder {
    /// A recorder labelling everything with `vm`.
    pub fn new(vm: &str) -> Recorder {
        Recorder {
            vm: vm.to_string(),
            counters: HashMap::new(),
            histograms: HashMap::new(),
        }
    }

    /// Records `count` completions of `nr` with a total service time of `total`.
    /// `known` is false for numbers without a service (labelled "other").
    pub fn record(
        &mut self,
        nr: u32,
        known: bool,
        path: Path,
        status: Status,
        count: u64,
        total: Duration,
    ) {
        let key = if known { nr } else { OTHER };
        let vm = &self.vm;
        let label = || {
            if key == OTHER {
                "other".to_string()
            } else {
                key.to_string()
            }
        };
        self.counters
            .entry((key, path, status))
            .or_insert_with(|| {
                metrics::counter!(HYPERCALLS, "vm" => vm.clone(), "nr" => label(),
                    "path" => path.label(), "status" => status.label())
            })
            .increment(count);
        let h = self.histograms.entry((key, path)).or_insert_with(|| {
            metrics::histogram!(HYPERCALL_SECONDS, "vm" => vm.clone(), "nr" => label(),
                "path" => path.label())
        });
        if count == 1 {
            h.record(total.as_secs_f64());
        } else if count > 1 {
            h.record_many(total.as_secs_f64() / count as f64, count as usize);
        }
    }
}
