//! Interrupts are file descriptors.
//!
//! The router turns the MSI/MSI-X programming that the guest writes into PCI config
//! space (delivered as [`pci_emu::PciEvent`]s) into KVM GSI routes, and gives every
//! device vector an [`IrqHandle`]: an eventfd that raises that interrupt when written,
//! through KVM_IRQFD, with no VMM thread involved. Anything that holds the fd, a device
//! thread here or another process that was passed the fd, can raise the interrupt.
//!
//! KVM sits behind the narrow [`IrqChip`] trait: [`KvmIrqChip`] is the real one, and a
//! recording implementation (feature `test-utils`) lets the logic be tested without
//! /dev/kvm.
#![deny(missing_docs)]

mod chip;
mod error;
mod handle;

pub use chip::{GsiRoute, IrqChip, KvmIrqChip};
pub use error::{Error, Result};
pub use handle::IrqHandle;
