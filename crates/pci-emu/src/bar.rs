//! Base address registers: their validation, register encoding (type bits and the
//! sizing mask) and where a BAR decodes given its registers and the COMMAND register.
//!
//! Sizing falls out of the write masks: the address bits below the size are read-only
//! zero, so writing all-ones and reading back gives `!(size - 1)` with the type bits.

use crate::error::{Error, Result};
use crate::types::BarKind;

/// COMMAND bit: I/O space decoding.
pub(crate) const CMD_IO: u16 = 1 << 0;
/// COMMAND bit: memory space decoding.
pub(crate) const CMD_MEM: u16 = 1 << 1;
/// COMMAND bit: bus master.
pub(crate) const CMD_BUS_MASTER: u16 = 1 << 2;

/// Largest I/O BAR (the x86 port space).
const IO_MAX: u64 = 1 << 16;

/// A BAR as seen from outside: what it is and where it is programmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarInfo {
    /// BAR index (the low slot of a 64-bit BAR).
    pub index: u8,
    /// Kind.
    pub kind: BarKind,
    /// Size in bytes.
    pub size: u64,
    /// The address programmed in the register(s), whether or not it decodes.
    pub address: u64,
    /// True if the BAR decodes now (decode bit on and an address assigned).
    pub decoding: bool,
}

/// One implemented BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bar {
    pub(crate) kind: BarKind,
    pub(crate) size: u64,
}

impl Bar {
    /// Checks index and size for `kind` (the slots' availability is the caller's).
    pub(crate) fn new(index: u8, kind: BarKind, size: u64) -> Result<Bar> {
        let last = if matches!(kind, BarKind::Mem64 { .. }) {
            4
        } else {
            5
        };
        if index > last {
            return Err(Error::BarIndex(index));
        }
        let (min, max) = match kind {
            BarKind::Io => (4, IO_MAX),
            BarKind::Mem32 { .. } => (16, 1 << 31),
            BarKind::Mem64 { .. } => (16, 1 << 63),
        };
        if !size.is_power_of_two() || size < min || size > max {
            return Err(Error::BarSize { kind, size });
        }
        Ok(Bar { kind, size })
    }

    /// The read-only low bits of the (low) register.
    pub(crate) fn type_bits(&self) -> u32 {
        match self.kind {
            BarKind::Io => 0x1,
            BarKind::Mem32 { prefetchable } => u32::from(prefetchable) << 3,
            BarKind::Mem64 { prefetchable } => 0x4 | u32::from(prefetchable) << 3,
        }
    }

    fn addr_mask(&self) -> u64 {
        !(self.size - 1)
    }

    /// Writable bits of the low register.
    pub(crate) fn low_writable(&self) -> u32 {
        let type_mask = if self.kind == BarKind::Io { 0x3 } else { 0xF };
        (self.addr_mask() as u32) & !type_mask
    }

    /// Writable bits of the high register of a 64-bit BAR (0 for others).
    pub(crate) fn high_writable(&self) -> u32 {
        match self.kind {
            BarKind::Mem64 { .. } => (self.addr_mask() >> 32) as u32,
            _ => 0,
        }
    }

    /// The programmed address from the register values.
    pub(crate) fn address(&self, low: u32, high: u32) -> u64 {
        let low = u64::from(low & self.low_writable());
        match self.kind {
            BarKind::Mem64 { .. } => low | u64::from(high & self.high_writable()) << 32,
            _ => low,
        }
    }

    /// Where the BAR decodes: `None` if its COMMAND decode bit is clear or it is
    /// unassigned: address 0, a register still holding the sizing value (all writable
    /// bits set), or an I/O range past 0xFFFF.
    pub(crate) fn decode(&self, low: u32, high: u32, command: u16) -> Option<u64> {
        let bit = if self.kind == BarKind::Io {
            CMD_IO
        } else {
            CMD_MEM
        };
        if command & bit == 0 {
            return None;
        }
        let lw = self.low_writable();
        let hw = self.high_writable();
        if (lw != 0 && low & lw == lw) || (hw != 0 && high & hw == hw) {
            return None;
        }
        let addr = self.address(low, high);
        if addr == 0 || (self.kind == BarKind::Io && addr + self.size > IO_MAX) {
            return None;
        }
        Some(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(Bar::new(0, BarKind::Io, 4).is_ok());
        assert!(Bar::new(0, BarKind::Io, 2).is_err());
        assert!(Bar::new(0, BarKind::Io, 1 << 17).is_err());
        assert!(Bar::new(
            5,
            BarKind::Mem32 {
                prefetchable: false
            },
            16
        )
        .is_ok());
        assert!(Bar::new(
            6,
            BarKind::Mem32 {
                prefetchable: false
            },
            16
        )
        .is_err());
        assert!(Bar::new(
            0,
            BarKind::Mem32 {
                prefetchable: false
            },
            8
        )
        .is_err());
        assert!(Bar::new(
            0,
            BarKind::Mem32 {
                prefetchable: false
            },
            24
        )
        .is_err());
        assert!(Bar::new(
            0,
            BarKind::Mem32 {
                prefetchable: false
            },
            1 << 32
        )
        .is_err());
        assert!(Bar::new(4, BarKind::Mem64 { prefetchable: true }, 1 << 40).is_ok());
        assert_eq!(
            Bar::new(5, BarKind::Mem64 { prefetchable: true }, 16),
            Err(Error::BarIndex(5))
        );
    }

    #[test]
    fn masks_and_decode() {
        let io = Bar::new(0, BarKind::Io, 0x40).unwrap();
        assert_eq!(io.low_writable(), 0xFFFF_FFC0);
        assert_eq!(io.decode(0xC000, 0, CMD_IO), Some(0xC000));
        assert_eq!(io.decode(0xC000, 0, CMD_MEM), None);
        assert_eq!(io.decode(0xFFFF_FFC0, 0, CMD_IO), None);
        assert_eq!(io.decode(0x1_0000, 0, CMD_IO), None);
        let m64 = Bar::new(0, BarKind::Mem64 { prefetchable: true }, 1 << 33).unwrap();
        assert_eq!(m64.low_writable(), 0);
        assert_eq!(m64.high_writable(), 0xFFFF_FFFE);
        assert_eq!(m64.type_bits(), 0xC);
        assert_eq!(m64.decode(0, 2, CMD_MEM), Some(2 << 32));
        assert_eq!(m64.decode(0, 0, CMD_MEM), None);
    }
}
