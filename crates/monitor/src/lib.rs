//! The kvmbus monitor: metric catalog, Prometheus exporter, KVM's binary statistics
//! and the live terminal dashboard.
//!
//! Every other crate records through the names in [`names`] (the catalog, documented in
//! `docs/metrics.md`) with the `metrics` facade; this crate installs the recorder and
//! reads what was recorded. It never calls into the VMM.
#![deny(missing_docs)]

pub mod names;
