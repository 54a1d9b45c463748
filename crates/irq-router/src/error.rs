//! Errors of the interrupt router.

use pci_emu::Bdf;

/// What can go wrong while routing interrupts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A KVM ioctl failed.
    #[error("{op} failed")]
    Kvm {
        /// The operation, e.g. "KVM_SET_GSI_ROUTING".
        op: &'static str,
        /// The errno KVM returned.
        #[source]
        source: std::io::Error,
    },
    /// Creating or using an eventfd failed.
    #[error("eventfd operation failed")]
    EventFd(#[source] std::io::Error),
    /// Every GSI the routing table allows is in use.
    #[error("no free GSI: all {limit} routing table entries are in use")]
    GsiExhausted {
        /// KVM's routing table size.
        limit: u32,
    },
    /// `add_device` was called twice for one function.
    #[error("device {bdf} already has interrupt vectors")]
    DeviceExists {
        /// The function.
        bdf: Bdf,
    },
    /// `intx` was called twice for one function.
    #[error("device {bdf} already has an INTx line")]
    IntxExists {
        /// The function.
        bdf: Bdf,
    },
    /// The function has no vectors and no INTx line.
    #[error("no interrupts registered for device {bdf}")]
    UnknownDevice {
        /// The function.
        bdf: Bdf,
    },
    /// An INTx line must be one of the IOAPIC's 24 pins.
    #[error("GSI {gsi} is not an IOAPIC pin (0-23)")]
    NotIoapicPin {
        /// The GSI asked for.
        gsi: u32,
    },
    /// Starting or feeding the SignalMsi delivery thread failed.
    #[error("interrupt delivery thread setup failed")]
    Delivery(#[source] std::io::Error),
}

/// Result of the router's operations.
pub type Result<T> = std::result::Result<T, Error>;
