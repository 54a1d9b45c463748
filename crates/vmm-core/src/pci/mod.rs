//! PCI on the machine: the glue between `pci-emu` (all of PCI, no KVM) and KVM.
//!
//! * CAM (0xCF8..0xCFF) and the ECAM window are bus devices that forward to the
//!   [`pci_emu::PciBus`].
//! * Every BAR that decodes is a range on the PIO or MMIO bus; its ioeventfds (doorbells)
//!   are registered with KVM at the BAR's address.
//! * Events a guest write causes are applied **before the write returns to the guest**:
//!   BAR moves remap the bus and move ioeventfds with them; MSI/MSI-X changes go to the
//!   interrupt router, which has pushed the KVM routing table and irqfds by the time
//!   `apply` returns. A guest never sees an interrupt routed by a stale table.

mod access;
mod build;
mod firmware;
mod intx;
mod ioevent;
mod kept;
mod platform;

pub use access::{BarRegion, CamPort, EcamWindow};
pub use build::{build, router, MsiCaps};
pub use firmware::{assign_resources, IO_WINDOW, MEM_WINDOW_START};
pub use intx::write_intx_mptable;
pub use ioevent::{IoEvents, KvmIoEvents};
pub use platform::PciPlatform;

/// CAM address port.
pub const CAM_PORT: u16 = 0xcf8;
/// Size of the ECAM window (256 buses of 1 MiB).
pub const ECAM_SIZE: u64 = 256 << 20;

#[cfg(test)]
mod tests;
