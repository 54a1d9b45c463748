//! PCI in userspace.
//!
//! The kernel knows nothing of PCI in kvmbus: this crate is all of it. It owns the
//! configuration space of every function (type-0 headers, BARs, capabilities), the
//! access mechanisms (CAM at 0xCF8/0xCFC and ECAM) and the events that a guest's
//! configuration writes cause. It has no KVM dependency; `vmm-core` maps BARs onto its
//! PIO/MMIO buses and applies the events this crate returns.
//!
//! # The contract with the caller
//! Every write entry point ([`PciFunction::config_write`], [`PciFunction::bar_write`],
//! the bus's CAM/ECAM writes) *returns* the events the write caused. The caller applies
//! them (moves BAR regions, updates interrupt routes) **before** it lets the guest's
//! access complete, so a guest never sees an interrupt routed by a stale table.
#![deny(missing_docs)]

mod bar;
mod bus;
mod caps;
mod config;
mod error;
mod host_bridge;
mod msi;
mod msix;
mod regs;
#[cfg(any(test, feature = "test-utils"))]
pub mod test_utils;
mod types;

pub use bar::BarInfo;
pub use bus::{ConfigAccess, PciBus};
pub use caps::CapInfo;
pub use config::{PciConfig, PciIds, PendingBits};
pub use error::{Error, Result};
pub use host_bridge::HostBridge;
pub use msix::MsixLayout;
pub use types::{
    BarChange, BarKind, Bdf, BdfParseError, FunctionEvent, IoEventSpec, IrqSource, MsiMessage,
    PciEvent, PciFunction, UnlockedBar, VectorChange,
};
