//! vmm-core: the kvmbus virtual machine monitor's core.
//!
//! It owns the KVM VM and its vCPU threads, guest memory (vm-memory over a memfd), the
//! PIO/MMIO buses, the loaders and the TOML configuration. The `kvmbus` binary is built
//! on it. See `../shared/DESIGN.md` for the architecture.
#![deny(missing_docs)]

pub mod arch;
pub mod builtin;
pub mod bus;
pub mod config;
pub mod control;
pub mod devices;
mod error;
pub mod inject;
pub mod loader;
pub mod logger;
pub mod memory;
pub mod pci;
pub mod signals;
pub mod vcpu;
pub mod vm;

pub use error::{Error, Result};
