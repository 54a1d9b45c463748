//! Errors of vmm-core.

use crate::config::ConfigError;

/// What can go wrong while building or running a VM.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// /dev/kvm cannot be opened or lacks something kvmbus needs.
    #[error("KVM is unavailable: {0}")]
    KvmUnavailable(String),
    /// A KVM ioctl failed.
    #[error("{op} failed: {source}")]
    Kvm {
        /// The operation.
        op: &'static str,
        /// The error KVM returned.
        source: kvm_ioctls::Error,
    },
    /// Guest memory could not be set up.
    #[error("guest memory: {0}")]
    Memory(String),
    /// The guest image could not be loaded.
    #[error("{0}")]
    Loader(#[from] crate::loader::LoadError),
    /// A range could not be mapped on a bus.
    #[error("{space} range {base:#x}+{len:#x} is empty or wraps")]
    BusRange {
        /// pio or mmio.
        space: &'static str,
        /// Base.
        base: u64,
        /// Length.
        len: u64,
    },
    /// A range overlaps one already mapped.
    #[error("{space} range of {name} at {base:#x} overlaps {other} at {other_base:#x}")]
    BusOverlap {
        /// pio or mmio.
        space: &'static str,
        /// The new range's owner.
        name: String,
        /// The new range's base.
        base: u64,
        /// The existing owner.
        other: String,
        /// The existing base.
        other_base: u64,
    },
    /// A device could not be built.
    #[error("device {device}: {detail}")]
    Device {
        /// The device.
        device: String,
        /// What went wrong.
        detail: String,
    },
    /// The interrupt router refused (e.g. KVM's routing table is full).
    #[error("interrupt router: {0}")]
    Irq(#[from] irq_router::Error),
    /// An I/O error (serial output file, signals, threads).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Result of vmm-core operations.
pub type Result<T> = std::result::Result<T, Error>;

/// Wraps an I/O error with what was being done.
pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Wraps a kvm-ioctls error with the operation's name.
pub(crate) fn kvm_err(op: &'static str) -> impl Fn(kvm_ioctls::Error) -> Error {
    move |source| Error::Kvm { op, source }
}
