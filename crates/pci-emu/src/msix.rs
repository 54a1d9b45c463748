//! The MSI-X capability (ID 0x11) and its table and PBA, which live inside memory BARs.
//!
//! The capability holds Message Control (Enable bit 15 and Function Mask bit 14 writable,
//! table size read-only) and the read-only table and PBA offset/BIR registers. Table
//! entries are 16 bytes (address low, address high, data, vector control); at reset
//! every entry is masked. The PBA is read-only and comes from the function's
//! [`PendingBits`](crate::PendingBits) source. Table and PBA accept naturally aligned
//! accesses of 1, 2, 4 or 8 bytes; other accesses read all-ones and are dropped.
//!
//! While MSI-X is disabled every vector reports `message: None, masked: false`, so table
//! writes then cause no events; enabling reports each entry's message and mask.

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

/// Where a function keeps its MSI-X table and PBA when both share one memory BAR: the
/// table at 0, the PBA after it on a 2 KiB boundary, the BAR a power of two of at least
/// 16 KiB. Devices use this one layout so that it is computed in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixLayout {
    /// Offset of the table in the BAR.
    pub table_offset: u32,
    /// Offset of the PBA in the BAR.
    pub pba_offset: u32,
    /// Size of the BAR.
    pub bar_size: u64,
}

impl MsixLayout {
    /// The layout for `vectors` (1..=2048) vectors.
    pub fn for_vectors(vectors: u16) -> MsixLayout {
        let pba_offset = table_size(vectors).next_multiple_of(0x800).max(0x800);
        let bar_size = (pba_offset + pba_size(vectors))
            .next_power_of_two()
            .max(16 << 10);
        MsixLayout {
            table_offset: 0,
            pba_offset: pba_offset as u32,
            bar_size,
        }
    }
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
            Some(e) if ctrl & CTRL_ENABLE != 0 => (
                Some(MsiMessage {
                    address: u64::from(e[1]) << 32 | u64::from(e[0]),
                    data: e[2],
                }),
                ctrl & CTRL_FUNCTION_MASK != 0 || e[3] & ENTRY_MASKED != 0,
            ),
            // Disabled (or no such entry): nothing effective, reported unmasked.
            _ => (None, false),
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::test_utils::{TestPendingBits, TEST_IDS};
    use crate::types::{BarKind, FunctionEvent, IrqSource, MsiMessage, VectorChange};
    use crate::PciConfig;

    const BAR: u8 = 1;
    const PBA: u64 = 0x800;

    /// 4 vectors, table at 0 and PBA at 0x800 of a 4 KiB BAR 1; returns the cap offset.
    fn setup() -> (PciConfig, u16) {
        let mut c = PciConfig::new(TEST_IDS);
        c.add_bar(
            BAR,
            BarKind::Mem32 {
                prefetchable: false,
            },
            0x1000,
        )
        .unwrap();
        c.add_msix(4, BAR, 0, BAR, PBA as u32).unwrap();
        let o = u16::from(c.capabilities()[0].offset);
        (c, o)
    }

    fn tw(c: &mut PciConfig, offset: u64, v: u32) -> Vec<FunctionEvent> {
        let mut ev = Vec::new();
        assert!(c.msix_bar_write(BAR, offset, &v.to_le_bytes(), &mut ev));
        ev
    }

    fn tr(c: &PciConfig, offset: u64) -> u32 {
        let mut d = [0u8; 4];
        assert!(c.msix_bar_read(BAR, offset, &mut d));
        u32::from_le_bytes(d)
    }

    fn ctrl(c: &mut PciConfig, o: u16, v: u16) -> Vec<FunctionEvent> {
        c.write(o + 2, &v.to_le_bytes())
    }

    fn program(c: &mut PciConfig, v: u64) {
        tw(c, v * 16, 0xFEE0_0000 | (v as u32) << 12);
        tw(c, v * 16 + 4, 0);
        tw(c, v * 16 + 8, 0x30 + v as u32);
    }

    fn ev(vector: u16, msg: Option<(u64, u32)>, masked: bool) -> FunctionEvent {
        FunctionEvent::Vector(VectorChange {
            source: IrqSource::Msix,
            vector,
            message: msg.map(|(address, data)| MsiMessage { address, data }),
            masked,
        })
    }

    #[test]
    fn capability_registers() {
        let (mut c, o) = setup();
        let mut d = [0u8; 4];
        c.read(o, &mut d);
        assert_eq!(u32::from_le_bytes(d), 0x0003_0011);
        c.write(o, &u32::MAX.to_le_bytes());
        c.read(o, &mut d);
        assert_eq!(u32::from_le_bytes(d), 0xC003_0011);
        c.write(o + 4, &u32::MAX.to_le_bytes());
        c.write(o + 8, &u32::MAX.to_le_bytes());
        c.read(o + 4, &mut d);
        assert_eq!(u32::from_le_bytes(d), BAR.into());
        c.read(o + 8, &mut d);
        assert_eq!(u32::from_le_bytes(d), PBA as u32 | u32::from(BAR));
    }

    #[test]
    fn table_reset_and_masks() {
        let (mut c, _) = setup();
        for v in 0..4 {
            assert_eq!(tr(&c, v * 16 + 12), 1, "entries start masked");
        }
        tw(&mut c, 0, u32::MAX);
        assert_eq!(tr(&c, 0), 0xFFFF_FFFC);
        tw(&mut c, 12, u32::MAX);
        assert_eq!(tr(&c, 12), 1);
        // Outside the table and PBA: not handled.
        let mut d = [0u8; 4];
        assert!(!c.msix_bar_read(BAR, 0x40, &mut d));
        assert!(!c.msix_bar_read(0, 0, &mut d));
        assert!(!c.msix_bar_write(BAR, 0x808, &d, &mut Vec::new()));
        // Bad size inside: handled, all-ones, dropped.
        let mut three = [0u8; 3];
        assert!(c.msix_bar_read(BAR, 0, &mut three));
        assert_eq!(three, [0xFF; 3]);
        assert!(c.msix_bar_read(BAR, 2, &mut d));
        assert_eq!(d, [0xFF; 4]);
        assert!(c.msix_bar_write(BAR, 2, &[0; 4], &mut Vec::new()));
        assert_eq!(tr(&c, 0), 0xFFFF_FFFC);
    }

    #[test]
    fn events_from_table_and_control() {
        let (mut c, o) = setup();
        // Disabled: table writes change nothing effective.
        for v in 0..4 {
            program(&mut c, v);
        }
        assert!(tw(&mut c, 12, 0).is_empty());
        assert_eq!(c.vector_state(IrqSource::Msix, 0).message, None);

        // Enable: every vector gets its message; vector 0 is unmasked.
        let e = ctrl(&mut c, o, 0x8000);
        assert_eq!(e.len(), 4);
        assert_eq!(e[0], ev(0, Some((0xFEE0_0000, 0x30)), false));
        assert_eq!(e[3], ev(3, Some((0xFEE0_3000, 0x33)), true));

        // Per-vector unmask and data change through the table.
        assert_eq!(
            tw(&mut c, 16 + 12, 0),
            vec![ev(1, Some((0xFEE0_1000, 0x31)), false)]
        );
        assert_eq!(
            tw(&mut c, 16 + 8, 0x99),
            vec![ev(1, Some((0xFEE0_1000, 0x99)), false)]
        );
        // Same value again: nothing.
        assert!(tw(&mut c, 16 + 8, 0x99).is_empty());
        // Reserved vector-control bits: nothing.
        assert!(tw(&mut c, 16 + 12, 0xFFFE).is_empty());

        // Function mask: only the unmasked vectors (0 and 1) change.
        let e = ctrl(&mut c, o, 0xC000);
        assert_eq!(
            e,
            vec![
                ev(0, Some((0xFEE0_0000, 0x30)), true),
                ev(1, Some((0xFEE0_1000, 0x99)), true)
            ]
        );
        // Unmasking an entry under the function mask changes nothing effective.
        assert!(tw(&mut c, 32 + 12, 0).is_empty());
        let e = ctrl(&mut c, o, 0x8000);
        assert_eq!(e.len(), 3);
        assert_eq!(e[2], ev(2, Some((0xFEE0_2000, 0x32)), false));

        // 64-bit access covering address low and high.
        let mut out = Vec::new();
        let q = 0x0000_0001_FEE0_5000u64.to_le_bytes();
        assert!(c.msix_bar_write(BAR, 0, &q, &mut out));
        assert_eq!(out, vec![ev(0, Some((0x1_FEE0_5000, 0x30)), false)]);
        let mut d = [0u8; 8];
        assert!(c.msix_bar_read(BAR, 0, &mut d));
        assert_eq!(u64::from_le_bytes(d), 0x1_FEE0_5000);

        // Disable: all vectors lose their message.
        assert_eq!(ctrl(&mut c, o, 0).len(), 4);
    }

    #[test]
    fn pba_reads_pending_bits_and_ignores_writes() {
        let (mut c, _) = setup();
        let mut d = [0u8; 8];
        assert!(c.msix_bar_read(BAR, PBA, &mut d));
        assert_eq!(d, [0; 8]);
        let p = Arc::new(TestPendingBits::default());
        c.set_pending_bits(p.clone());
        p.set(IrqSource::Msix, 0, true);
        p.set(IrqSource::Msix, 3, true);
        p.set(IrqSource::Msix, 9, true); // beyond the table: never shown
        assert!(c.msix_bar_read(BAR, PBA, &mut d));
        assert_eq!(u64::from_le_bytes(d), 0b1001);
        let mut ev = Vec::new();
        assert!(c.msix_bar_write(BAR, PBA, &[0; 8], &mut ev));
        assert!(ev.is_empty());
        let mut b = [0u8; 1];
        assert!(c.msix_bar_read(BAR, PBA, &mut b));
        assert_eq!(b[0], 0b1001);
        assert!(c.msix_bar_read(BAR, PBA + 4, &mut b));
        assert_eq!(b[0], 0);
    }

    #[test]
    fn large_table() {
        let mut c = PciConfig::new(TEST_IDS);
        c.add_bar(
            0,
            BarKind::Mem64 {
                prefetchable: false,
            },
            0x10000,
        )
        .unwrap();
        c.add_msix(2048, 0, 0, 0, 0x8000).unwrap();
        assert_eq!(c.vector_count(IrqSource::Msix), 2048);
        let o = u16::from(c.capabilities()[0].offset);
        let mut d = [0u8; 2];
        c.read(o + 2, &mut d);
        assert_eq!(u16::from_le_bytes(d), 0x07FF);
        let mut q = [0u8; 8];
        assert!(c.msix_bar_read(0, 0x8000 + 31 * 8, &mut q));
        assert!(!c.msix_bar_read(0, 0x8000 + 32 * 8, &mut q));
        assert_eq!(c.write(o + 2, &0x8000u16.to_le_bytes()).len(), 2048);
    }
}
