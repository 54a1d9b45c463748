//! The crate's error type: what can go wrong while building a function's config space
//! or populating the bus. Guest accesses never fail; they get PCI semantics instead.

use crate::types::{BarKind, Bdf};

/// Errors from building configuration spaces and the bus.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The BAR index is not 0..6 (0..5 for a 64-bit BAR).
    #[error("BAR index {0} is out of range")]
    BarIndex(u8),
    /// The BAR slot (or the upper slot of a 64-bit BAR) is taken.
    #[error("BAR {0} is already in use")]
    BarInUse(u8),
    /// The size is not a power of two in the range the BAR kind allows.
    #[error("BAR size {size:#x} is not valid for a {kind:?} BAR")]
    BarSize {
        /// Requested kind.
        kind: BarKind,
        /// Requested size.
        size: u64,
    },
    /// The vector count is not allowed for the capability.
    #[error("{count} vectors is not valid for {cap}")]
    VectorCount {
        /// Capability name.
        cap: &'static str,
        /// Requested count.
        count: u16,
    },
    /// The capability can be present only once.
    #[error("the {0} capability is already present")]
    CapabilityExists(&'static str),
    /// An operation needs a capability the function does not have.
    #[error("the function has no {0} capability")]
    NoCapability(&'static str),
    /// Not enough room left in the 256-byte configuration space.
    #[error("no room left in configuration space for the {0} capability")]
    NoSpace(&'static str),
    /// A vendor capability payload longer than its 8-bit length field allows.
    #[error("vendor capability payload of {0} bytes is too long")]
    VendorPayload(usize),
    /// The MSI-X table or PBA names a BAR that is not an added memory BAR.
    #[error("BAR {0} is not an added memory BAR")]
    MsixBar(u8),
    /// The MSI-X table or PBA offset is not 8-byte aligned or does not fit its BAR.
    #[error("the MSI-X {what} at offset {offset:#x} does not fit BAR {bar}")]
    MsixPlacement {
        /// "table" or "PBA".
        what: &'static str,
        /// The BAR.
        bar: u8,
        /// The offset inside the BAR.
        offset: u32,
    },
    /// The MSI-X table and PBA overlap.
    #[error("the MSI-X table and PBA overlap")]
    MsixOverlap,
    /// A function is already installed at that address.
    #[error("a function is already installed at {0}")]
    Duplicate(Bdf),
    /// Every device slot on bus 0 is taken.
    #[error("bus 0 has no free device slot")]
    BusFull,
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
