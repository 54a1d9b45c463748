//! Errors of the interrupt router.

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
}

/// Result of the router's operations.
pub type Result<T> = std::result::Result<T, Error>;
