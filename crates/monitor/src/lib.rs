//! The kvmbus monitor: metric catalog, Prometheus exporter, KVM's binary statistics
//! and the live terminal dashboard.
//!
//! Every other crate records through the names in [`names`] (the catalog, documented in
//! `docs/metrics.md`) with the `metrics` facade; this crate installs the recorder and
//! reads what was recorded. It never calls into the VMM.
//!
//! ```no_run
//! let exporter = monitor::Exporter::install(Some("127.0.0.1:9464".parse().unwrap()))?;
//! metrics::counter!(monitor::names::VCPU_EXITS, "vm" => "demo", "vcpu" => "0", "reason" => "io")
//!     .increment(1);
//! assert!(exporter.render().contains("kvmbus_vcpu_exits_total"));
//! # Ok::<(), monitor::Error>(())
//! ```
#![deny(missing_docs)]

mod catalog;
mod error;
mod exporter;
mod http_client;
mod http_server;
mod kvm_stats;
pub mod model;
pub mod names;
mod promql;
mod sd;
mod sd_serve;
mod signals;
mod source;
mod tui;

pub use catalog::{describe_catalog, Kind, CATALOG};
pub use error::{Error, Result};
pub use exporter::{exposure_warning, Exporter, DEFAULT_LISTEN, LATENCY_BUCKETS, RENDER_INTERVAL};
pub use kvm_stats::{get_stats_fd, spawn_stats_sampler, KvmStats, StatsScope};
pub use promql::PromQuery;
/// The regex type of [`LogOptions::fields`].
pub use regex::Regex;
pub use sd::{read_targets, sd_target, targets_json, SdRegistration, TargetGroup};
pub use sd_serve::{serve_sd, SD_DEFAULT_LISTEN};
pub use signals::{stop_on_signals, stop_signal, watch_stop_signals, SignalWatch};
pub use source::{Fetched, Source};
pub use tui::{
    run_log, run_tui, snapshot_text, snapshot_text_opts, snapshot_text_with, LogOptions, TuiOptions,
};
