//! The crate's error type.

use std::io;

/// Errors of the hypercall gateway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is inconsistent.
    #[error("invalid gateway configuration: {0}")]
    Config(String),
    /// A PCI configuration-space setup call failed.
    #[error("cannot build the gateway's PCI configuration space")]
    Pci(#[source] pci_emu::Error),
    /// An eventfd could not be created or used.
    #[error("eventfd operation failed")]
    EventFd(#[source] io::Error),
    /// A thread could not be spawned.
    #[error("cannot spawn thread {0}")]
    Spawn(String, #[source] io::Error),
    /// A Unix socket operation failed.
    #[error("socket {0} failed")]
    Socket(String, #[source] io::Error),
    /// The backend socket could not be bound safely.
    #[error("cannot listen for backends")]
    Bind(#[source] guard::Error),
    /// The peer broke the external-backend protocol.
    #[error("external backend protocol error: {0}")]
    Protocol(String),
    /// Guest memory could not be mapped.
    #[error("cannot map guest memory: {0}")]
    Memory(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
