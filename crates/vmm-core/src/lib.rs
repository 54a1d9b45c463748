//! vmm-core: the kvmbus virtual machine monitor's core.
//!
//! It owns the KVM VM and its vCPU threads, guest memory (vm-memory over a memfd), the
//! PIO/MMIO buses, the loaders and the TOML configuration. The `kvmbus` binary is built
//! on it. See `docs/architecture.md` for the architecture.
#![deny(missing_docs)]

pub mod arch;
pub mod boot;
pub mod builtin;
pub mod bus;
pub mod config;
pub mod control;
pub mod devices;
mod error;
pub mod inject;
pub mod loader;
pub mod logger;
pub mod machine;
pub mod memory;
#[cfg(test)]
mod metric_names;
pub mod pci;
pub mod reboot;
pub mod signals;
pub mod startup;
pub mod teardown;
pub mod vcpu;
pub mod vcpu_threads;
pub mod vm;

pub use error::{Error, Result};
