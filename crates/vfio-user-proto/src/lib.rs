//! The vfio-user protocol (QEMU `docs/interop/vfio-user.rst`): a PCI device served by
//! another process over a Unix stream socket.
//!
//! * [`Header`] and [`Command`]: the 16-byte header every message starts with;
//! * the payloads, one type per message ([`Version`], [`DmaMap`], [`RegionInfo`],
//!   [`SetIrqs`], [`RegionAccess`], ...), each with `encode` and a `decode` that
//!   rejects malformed input with an [`Error`], never a panic;
//! * [`Channel`]: sends a message with file descriptors (SCM_RIGHTS) and receives one
//!   within bounds (message size, fd count) and, for replies, a deadline.
//!
//! ```
//! use vfio_user_proto::{Command, RegionAccess};
//! let req = RegionAccess { offset: 0x10, region: 7, count: 4, data: vec![] };
//! let bytes = req.encode();
//! assert_eq!(RegionAccess::decode(&bytes).unwrap(), req);
//! assert_eq!(Command::from_u16(9), Some(Command::RegionRead));
//! ```

#![deny(missing_docs)]

mod channel;
mod error;
mod header;
mod msg;
mod rx;
mod version;

pub use channel::{Channel, Limits, Message};
pub use error::{Error, Result};
pub use header::{
    Command, Header, FLAG_ERROR, FLAG_NO_REPLY, HEADER_SIZE, TYPE_COMMAND, TYPE_REPLY,
};
pub use msg::{
    DeviceInfo, DmaAccess, DmaMap, DmaUnmap, IrqInfo, RegionAccess, RegionInfo, SetIrqs, SparseArea,
};
pub use version::{Capabilities, Version, MAJOR, MINOR};

/// Region index of BAR 0 (BARs are 0..=5).
pub const REGION_BAR0: u32 = 0;
/// Region index of the expansion ROM.
pub const REGION_ROM: u32 = 6;
/// Region index of PCI configuration space.
pub const REGION_CONFIG: u32 = 7;
/// Region index of VGA.
pub const REGION_VGA: u32 = 8;

/// Device info flag: DEVICE_RESET is supported (`VFIO_DEVICE_FLAGS_RESET`).
pub const DEVICE_FLAGS_RESET: u32 = 1 << 0;
/// Device info flag: a PCI device (`VFIO_DEVICE_FLAGS_PCI`).
pub const DEVICE_FLAGS_PCI: u32 = 1 << 1;

/// Region flag: readable.
pub const REGION_READ: u32 = 1 << 0;
/// Region flag: writable.
pub const REGION_WRITE: u32 = 1 << 1;
/// Region flag: the reply carries an fd that may be mmap-ed.
pub const REGION_MMAP: u32 = 1 << 2;
/// Region flag: capabilities follow the region info.
pub const REGION_CAPS: u32 = 1 << 3;

/// IRQ index of INTx.
pub const IRQ_INTX: u32 = 0;
/// IRQ index of MSI.
pub const IRQ_MSI: u32 = 1;
/// IRQ index of MSI-X.
pub const IRQ_MSIX: u32 = 2;
/// IRQ index of error reporting.
pub const IRQ_ERR: u32 = 3;
/// IRQ index of device requests.
pub const IRQ_REQ: u32 = 4;

/// IRQ info flag: interrupts are signalled through eventfds.
pub const IRQ_INFO_EVENTFD: u32 = 1 << 0;
/// IRQ info flag: maskable.
pub const IRQ_INFO_MASKABLE: u32 = 1 << 1;
/// IRQ info flag: automasked (INTx: masked on trigger until UNMASK).
pub const IRQ_INFO_AUTOMASKED: u32 = 1 << 2;
/// IRQ info flag: the count cannot be resized.
pub const IRQ_INFO_NORESIZE: u32 = 1 << 3;

/// SET_IRQS flag: no data.
pub const IRQ_SET_DATA_NONE: u32 = 1 << 0;
/// SET_IRQS flag: data is one bool byte per IRQ.
pub const IRQ_SET_DATA_BOOL: u32 = 1 << 1;
/// SET_IRQS flag: data is one fd per IRQ, sent by SCM_RIGHTS.
pub const IRQ_SET_DATA_EVENTFD: u32 = 1 << 2;
/// SET_IRQS action: mask.
pub const IRQ_SET_ACTION_MASK: u32 = 1 << 3;
/// SET_IRQS action: unmask.
pub const IRQ_SET_ACTION_UNMASK: u32 = 1 << 4;
/// SET_IRQS action: trigger (with eventfds: set the trigger fds).
pub const IRQ_SET_ACTION_TRIGGER: u32 = 1 << 5;

/// DMA_MAP flag: the server may read.
pub const DMA_READ: u32 = 1 << 0;
/// DMA_MAP flag: the server may write.
pub const DMA_WRITE: u32 = 1 << 1;
/// DMA_UNMAP flag: unmap everything (address and size 0).
pub const DMA_UNMAP_ALL: u32 = 1 << 2;

/// Sparse mmap capability ID.
pub const CAP_SPARSE_MMAP: u16 = 1;
