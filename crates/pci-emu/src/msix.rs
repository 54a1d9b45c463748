//! The MSI-X capability (ID 0x11) and its table and PBA, which live inside memory BARs.
//!
//! The capability holds Message Control (Enable bit 15 and Function Mask bit 14 writable,
//! table size read-only) and the read-only table and PBA offset/BIR registers. Table
//! entries are 16 bytes (address low, address high, data, vector control); at reset
//! every entry is masked. The PBA is read-only and comes from the function's
//! [`PendingBits`](crate::PendingBits) source. Table and PBA accept naturally aligned
//! accesses of 1, 2, 4 or 8 bytes; other accesses read all-ones and are dropped.

use crate::regs::Regs;
use crate::types::{FunctionEvent, IrqSource, MsiMessage, VectorChange};
use crate::PendingBits;

/// Bytes of the capability.
pub(crate) const MSIX_CAP_LEN: usize = 12;
/// Most vectors an MSI-X capability can have.
pub(crate) const MSIX_MAX_VECTORS: u16 = 2048;
const ENTRY_SIZE: u64 = 16;
const CTRL_ENABLE: u32 = 1 << 15;
const CTRL_FUNCTION_MASK: u32 = 1 << 14;
const ENTRY_MASKED: u32 = 1;
/// Writable bits of the four dwords of a table entry.
const ENTRY_WRITABLE: [u32; 4] = [0xFFFF_FFFC, 0xFFFF_FFFF, 0xFFFF_FFFF, ENTRY_MASKED];

/// A function's MSI-X capability and table.
#[derive(Clone, Debug)]
pub(crate) struct Msix {
    /// Offset of the capability.
    pub(crate) offset: usize,
    table_bar: u8,
    table_offset: u64,
    pba_bar: u8,
    pba_offset: u64,
    table: Vec<[u32; 4]>,
}

/// Bytes of the PBA for `vectors` vectors (whole qwords).
pub(crate) fn pba_size(vectors: u16) -> u64 {
    u64::from(vectors).div_ceil(64) * 8
}

/// Bytes of the table for `vectors` vectors.
pub(crate) fn table_size(vectors: u16) -> u64 {
    u64::from(vectors) * ENTRY_SIZE
}

fn valid_len(offset: u64, len: usize) -> bool {
    matches!(len, 1 | 2 | 4 | 8) && offset % len as u64 == 0
}

impl Msix {
    /// Sets up the capability at `offset` (placement already validated).
    pub(crate) fn init(
        regs: &mut Regs,
        offset: usize,
        vectors: u16,
        table_bar: u8,
        table_offset: u32,
        pba_bar: u8,
        pba_offset: u32,
    ) -> Msix {
        regs.set(offset + 2, 2, u32::from(vectors - 1));
        regs.set_writable(offset + 2, 2, CTRL_ENABLE | CTRL_FUNCTION_MASK);
        regs.set(offset + 4, 4, table_offset | u32::from(table_bar));
        regs.set(offset + 8, 4, pba_offset | u32::from(pba_bar));
        Msix {
            offset,
            table_bar,
            table_offset: u64::from(table_offset),
            pba_bar,
            pba_offset: u64::from(pba_offset),
            table: vec![[0, 0, 0, ENTRY_MASKED]; usize::from(vectors)],
        }
    }

    /// Number of table entries.
    pub(crate) fn vectors(&self) -> u16 {
        self.table.len() as u16
    }

    fn ctrl(&self, regs: &Regs) -> u32 {
        regs.get(self.offset + 2, 2)
    }

    /// The effective state of `vector`.
    pub(crate) fn vector_state(&self, regs: &Regs, vector: u16) -> VectorChange {
        let ctrl = self.ctrl(regs);
        let (message, masked) = match self.table.get(usize::from(vector)) {
            Some(e) => (
                (ctrl & CTRL_ENABLE != 0).then(|| MsiMessage {
                    address: u64::from(e[1]) << 32 | u64::from(e[0]),
                    data: e[2],
                }),
                ctrl & CTRL_FUNCTION_MASK != 0 || e[3] & ENTRY_MASKED != 0,
            ),
            None => (None, false),
        };
        VectorChange {
            source: IrqSource::Msix,
            vector,
            message,
            masked,
        }
    }

    /// The state of every vector.
    pub(crate) fn all_states(&self, regs: &Regs) -> Vec<VectorChange> {
        (0..self.vectors())
            .map(|v| self.vector_state(regs, v))
            .collect()
    }

    fn table_index(&self, bar: u8, offset: u64) -> Option<u64> {
        let rel = offset.checked_sub(self.table_offset)?;
        (bar == self.table_bar && rel < table_size(self.vectors())).then_some(rel)
    }

    fn pba_index(&self, bar: u8, offset: u64) -> Option<u64> {
        let rel = offset.checked_sub(self.pba_offset)?;
        (bar == self.pba_bar && rel < pba_size(self.vectors())).then_some(rel)
    }

    fn table_byte(&self, rel: u64) -> u8 {
        let entry = &self.table[(rel / ENTRY_SIZE) as usize];
        let dword = entry[((rel % ENTRY_SIZE) / 4) as usize];
        (dword >> ((rel % 4) * 8)) as u8
    }

    fn pba_byte(&self, rel: u64, pending: Option<&dyn PendingBits>) -> u8 {
        let Some(p) = pending else { return 0 };
        (0..8u16)
            .filter(|bit| {
                let v = rel * 8 + u64::from(*bit);
                v < u64::from(self.vectors()) && p.pending(IrqSource::Msix, v as u16)
            })
            .fold(0, |acc, bit| acc | 1 << bit)
    }

    /// A read inside a BAR; `false` if it is not in the table or PBA.
    pub(crate) fn bar_read(
        &self,
        pending: Option<&dyn PendingBits>,
        bar: u8,
        offset: u64,
        data: &mut [u8],
    ) -> bool {
        let valid = valid_len(offset, data.len());
        if let Some(rel) = self.table_index(bar, offset) {
            for (i, b) in data.iter_mut().enumerate() {
                *b = if valid {
                    self.table_byte(rel + i as u64)
                } else {
                    0xFF
                };
            }
            true
        } else if let Some(rel) = self.pba_index(bar, offset) {
            for (i, b) in data.iter_mut().enumerate() {
                *b = if valid {
                    self.pba_byte(rel + i as u64, pending)
                } else {
                    0xFF
                };
            }
            true
        } else {
            false
        }
    }

    /// A write inside a BAR; `false` if it is not in the table or PBA. Pushes a vector
    /// event if the entry's effective state changed.
    pub(crate) fn bar_write(
        &mut self,
        regs: &Regs,
        bar: u8,
        offset: u64,
        data: &[u8],
        events: &mut Vec<FunctionEvent>,
    ) -> bool {
        if let Some(rel) = self.table_index(bar, offset) {
            if !valid_len(offset, data.len()) {
                return true;
            }
            let vector = (rel / ENTRY_SIZE) as u16;
            let before = self.vector_state(regs, vector);
            let entry = &mut self.table[usize::from(vector)];
            for (i, b) in data.iter().enumerate() {
                let pos = (rel % ENTRY_SIZE) as usize + i;
                let shift = (pos % 4) * 8;
                let mask = (0xFFu32 << shift) & ENTRY_WRITABLE[pos / 4];
                let dword = &mut entry[pos / 4];
                *dword = (*dword & !mask) | ((u32::from(*b) << shift) & mask);
            }
            let after = self.vector_state(regs, vector);
            if before != after {
                events.push(FunctionEvent::Vector(after));
            }
            true
        } else {
            // The PBA is read-only.
            self.pba_index(bar, offset).is_some()
        }
    }
}
