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
//!
//! ```
//! # #[cfg(feature = "test-utils")] {
//! use std::sync::Arc;
//! use irq_router::{IrqRouter, RecordingIrqChip, RouterConfig, DeliveryMode};
//! use pci_emu::{Bdf, FunctionEvent, IrqSource, MsiMessage, PciEvent, VectorChange};
//!
//! let chip = Arc::new(RecordingIrqChip::new());
//! let config = RouterConfig { vm: "doc".into(), max_routes: 4096, mode: DeliveryMode::Irqfd };
//! let mut router = IrqRouter::new(chip.clone(), config).unwrap();
//! let bdf = Bdf::new(0, 3, 0).unwrap();
//! let handles = router.add_device(bdf, "gateway", 2).unwrap();
//! // The guest enables MSI-X and unmasks entry 0: it gets GSI 24 and an irqfd.
//! let message = Some(MsiMessage { address: 0xfee0_0000, data: 0x41 });
//! let change = VectorChange { source: IrqSource::Msix, vector: 0, message, masked: false };
//! router.apply(&PciEvent { bdf, event: FunctionEvent::Vector(change) }).unwrap();
//! assert_eq!(router.routes()[0].gsi, Some(24));
//! handles[0].trigger().unwrap();
//! # }
//! ```
#![deny(missing_docs)]

mod chip;
mod error;
mod handle;
#[cfg(any(test, feature = "test-utils"))]
mod recording;
mod router;
mod signal;
mod table;

pub use chip::{GsiRoute, IrqChip, KvmIrqChip};
pub use error::{Error, Result};
pub use handle::{HandlesPending, IrqHandle};

/// The metric names this crate records. They are the monitor's catalog's
/// (`monitor::names`; this crate does not depend on it, and a vmm-core test ties the two).
pub mod names {
    /// Interrupts raised, by device and vector.
    pub const IRQ_TRIGGERS: &str = "kvmbus_irq_triggers_total";
    /// MSI/MSI-X route changes pushed to KVM.
    pub const MSI_ROUTE_UPDATES: &str = "kvmbus_msi_route_updates_total";
    /// The GSI a vector is routed through.
    pub const IRQ_ROUTE_GSI: &str = "kvmbus_irq_route_gsi";
    /// The destination APIC ID a vector's message names.
    pub const IRQ_ROUTE_DEST: &str = "kvmbus_irq_route_dest";
    /// Whether a vector is masked.
    pub const IRQ_ROUTE_MASKED: &str = "kvmbus_irq_route_masked";
    /// Vectors that found KVM's routing table full and are delivered by KVM_SIGNAL_MSI.
    pub const IRQ_ROUTE_SPILLS: &str = "kvmbus_irq_route_spills_total";
}
#[cfg(any(test, feature = "test-utils"))]
pub use recording::{ChipCall, ChipOp, RecordingIrqChip};
pub use router::{DeliveryMode, IrqRouter, RouterConfig, VectorRoute};
