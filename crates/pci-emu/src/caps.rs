//! The capability list: placing capabilities in configuration space from 0x40 up,
//! linking them from the capabilities pointer (0x34) in the order they were added, and
//! the simple capabilities that need no state of their own (PCI Express, vendor).
//!
//! Capability IDs and next pointers are read-only; the list is terminated by a next
//! pointer of 0, and STATUS bit 4 is set as soon as one capability exists.

use crate::error::{Error, Result};
use crate::regs::{Regs, CONFIG_SIZE};

/// Capability ID: MSI.
pub(crate) const CAP_MSI: u8 = 0x05;
/// Capability ID: vendor specific.
pub(crate) const CAP_VENDOR: u8 = 0x09;
/// Capability ID: PCI Express.
pub(crate) const CAP_PCIE: u8 = 0x10;
/// Capability ID: MSI-X.
pub(crate) const CAP_MSIX: u8 = 0x11;

/// Offset of the capabilities pointer.
pub(crate) const CAP_POINTER: usize = 0x34;
/// STATUS bit: capabilities list present.
pub(crate) const STATUS_CAP_LIST: u32 = 1 << 4;
const FIRST_CAP: usize = 0x40;

/// Length of the PCI Express capability (version 2, endpoint).
pub(crate) const PCIE_CAP_LEN: usize = 0x3C;

/// One capability in a function's list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapInfo {
    /// Capability ID (0x05 MSI, 0x09 vendor, 0x10 PCI Express, 0x11 MSI-X).
    pub id: u8,
    /// Offset in configuration space.
    pub offset: u8,
    /// Human-readable name.
    pub name: &'static str,
}

/// The capabilities placed so far.
#[derive(Clone, Debug, Default)]
pub(crate) struct CapList {
    caps: Vec<(CapInfo, usize)>,
}

impl CapList {
    /// All capabilities in list order.
    pub(crate) fn infos(&self) -> Vec<CapInfo> {
        self.caps.iter().map(|(c, _)| *c).collect()
    }

    /// True if a capability with that ID exists.
    pub(crate) fn has(&self, id: u8) -> bool {
        self.caps.iter().any(|(c, _)| c.id == id)
    }

    /// Reserves `len` bytes for capability `id`, writes its header (ID, next = 0) and
    /// links it at the end of the list. Returns its offset.
    pub(crate) fn allocate(
        &mut self,
        regs: &mut Regs,
        id: u8,
        len: usize,
        name: &'static str,
    ) -> Result<usize> {
        let offset = self
            .caps
            .last()
            .map_or(FIRST_CAP, |(c, l)| (usize::from(c.offset) + l + 3) & !3);
        if offset + len > CONFIG_SIZE {
            return Err(Error::NoSpace(name));
        }
        regs.set(offset, 1, u32::from(id));
        regs.set(offset + 1, 1, 0);
        match self.caps.last() {
            Some((prev, _)) => regs.set(usize::from(prev.offset) + 1, 1, offset as u32),
            None => {
                regs.set(CAP_POINTER, 1, offset as u32);
                regs.set(0x06, 2, regs.get(0x06, 2) | STATUS_CAP_LIST);
            }
        }
        self.caps.push((
            CapInfo {
                id,
                offset: offset as u8,
                name,
            },
            len,
        ));
        Ok(offset)
    }
}

/// Fills a vendor-specific capability at `offset`: length byte, then `payload`.
pub(crate) fn init_vendor(regs: &mut Regs, offset: usize, payload: &[u8]) {
    regs.set(offset + 2, 1, (3 + payload.len()) as u32);
    for (i, b) in payload.iter().enumerate() {
        regs.set(offset + 3 + i, 1, u32::from(*b));
    }
}

/// Fills a PCI Express capability (version 2, endpoint, x1 link at 2.5 GT/s) at
/// `offset` with the standard control-register write masks and RW1C status bits.
pub(crate) fn init_pcie(regs: &mut Regs, offset: usize) {
    // PCI Express Capabilities: version 2, device/port type 0 (endpoint).
    regs.set(offset + 0x02, 2, 0x0002);
    // Device Capabilities: 128-byte max payload, role-based error reporting.
    regs.set(offset + 0x04, 4, 1 << 15);
    // Device Control: error reporting enables, relaxed ordering, max payload, extended
    // tag, phantom, aux power, no snoop, max read request. Default 512-byte reads,
    // relaxed ordering and no snoop enabled.
    regs.set(offset + 0x08, 2, 0x2810);
    regs.set_writable(offset + 0x08, 2, 0x7FFF);
    // Device Status: error-detected bits are RW1C.
    regs.set_rw1c(offset + 0x0A, 2, 0x000F);
    // Link Capabilities: 2.5 GT/s, x1.
    regs.set(offset + 0x0C, 4, 0x0000_0011);
    // Link Control: ASPM, RCB, common clock, extended sync.
    regs.set_writable(offset + 0x10, 2, 0x00CB);
    // Link Status: 2.5 GT/s, x1, slot clock.
    regs.set(offset + 0x12, 2, 0x1011);
    // Link Capabilities 2: supported speeds 2.5 GT/s.
    regs.set(offset + 0x2C, 4, 0x0000_0002);
    // Link Control 2: target link speed 2.5 GT/s.
    regs.set(offset + 0x30, 2, 0x0001);
    regs.set_writable(offset + 0x30, 2, 0x000F);
}
