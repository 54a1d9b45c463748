//! The MSI capability (ID 0x05): layout, write masks and the effective state of each
//! vector. The registers live in the function's config space; this module knows where.
//!
//! Vector `i` is enabled while MSI Enable is set and `i < 2^MME`; its message data is the
//! programmed data with the low MME bits replaced by `i` (PCI 3.0 §6.8.1.6). A write of
//! MME larger than MMC is clamped to MMC. The pending register is read-only and comes
//! from the function's [`PendingBits`](crate::PendingBits) source.
//!
//! A vector that is not enabled reports `masked: false` whatever its mask bit says:
//! its state is just "disabled", so mask writes to it cause no event.

use crate::regs::Regs;
use crate::types::{IrqSource, MsiMessage, VectorChange};
use crate::PendingBits;

const CTRL_ENABLE: u32 = 1 << 0;
const CTRL_MME_SHIFT: u32 = 4;
const CTRL_MME_MASK: u32 = 0x7 << CTRL_MME_SHIFT;
const CTRL_64BIT: u32 = 1 << 7;
const CTRL_PVM: u32 = 1 << 8;

/// The placement and shape of a function's MSI capability.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Msi {
    /// Offset of the capability.
    pub(crate) offset: usize,
    /// Vectors the function can use (2^MMC).
    pub(crate) vectors: u16,
    addr64: bool,
    pvm: bool,
}

impl Msi {
    /// True if `vectors` is a valid multiple-message-capable count.
    pub(crate) fn valid_vectors(vectors: u16) -> bool {
        vectors.is_power_of_two() && vectors <= 32
    }

    /// Bytes the capability takes.
    pub(crate) fn len(addr64: bool, pvm: bool) -> usize {
        match (addr64, pvm) {
            (false, false) => 0x0A,
            (true, false) => 0x0E,
            (false, true) => 0x14,
            (true, true) => 0x18,
        }
    }

    /// Sets up the registers of a capability placed at `offset`.
    pub(crate) fn init(
        regs: &mut Regs,
        offset: usize,
        vectors: u16,
        addr64: bool,
        pvm: bool,
    ) -> Msi {
        let msi = Msi {
            offset,
            vectors,
            addr64,
            pvm,
        };
        let mmc = vectors.trailing_zeros();
        let mut ctrl = mmc << 1;
        if addr64 {
            ctrl |= CTRL_64BIT;
        }
        if pvm {
            ctrl |= CTRL_PVM;
        }
        regs.set(msi.ctrl_off(), 2, ctrl);
        regs.set_writable(msi.ctrl_off(), 2, CTRL_ENABLE | CTRL_MME_MASK);
        regs.set_writable(offset + 4, 4, 0xFFFF_FFFC);
        if addr64 {
            regs.set_writable(offset + 8, 4, 0xFFFF_FFFF);
        }
        regs.set_writable(msi.data_off(), 2, 0xFFFF);
        if let Some(mask) = msi.mask_off() {
            regs.set_writable(mask, 4, msi.all_vectors_bits());
        }
        msi
    }

    /// Bytes the capability takes.
    pub(crate) fn size(&self) -> usize {
        Self::len(self.addr64, self.pvm)
    }

    fn ctrl_off(&self) -> usize {
        self.offset + 2
    }

    fn data_off(&self) -> usize {
        self.offset + if self.addr64 { 0x0C } else { 0x08 }
    }

    fn mask_off(&self) -> Option<usize> {
        self.pvm.then(|| self.data_off() + 4)
    }

    /// Offset of the pending-bits register, if the capability has one.
    pub(crate) fn pending_off(&self) -> Option<usize> {
        self.pvm.then(|| self.data_off() + 8)
    }

    fn all_vectors_bits(&self) -> u32 {
        if self.vectors >= 32 {
            u32::MAX
        } else {
            (1u32 << self.vectors) - 1
        }
    }

    /// Number of vectors enabled now (0 when MSI is disabled).
    pub(crate) fn enabled_vectors(&self, regs: &Regs) -> u16 {
        let ctrl = regs.get(self.ctrl_off(), 2);
        if ctrl & CTRL_ENABLE == 0 {
            0
        } else {
            1 << ((ctrl & CTRL_MME_MASK) >> CTRL_MME_SHIFT)
        }
    }

    /// Clamps MME to MMC after a guest write.
    pub(crate) fn fixup(&self, regs: &mut Regs) {
        let ctrl = regs.get(self.ctrl_off(), 2);
        let mmc = self.vectors.trailing_zeros();
        if (ctrl & CTRL_MME_MASK) >> CTRL_MME_SHIFT > mmc {
            regs.set(
                self.ctrl_off(),
                2,
                (ctrl & !CTRL_MME_MASK) | (mmc << CTRL_MME_SHIFT),
            );
        }
    }

    /// The value of the pending register from `pending`.
    pub(crate) fn pending_value(&self, pending: Option<&dyn PendingBits>) -> u32 {
        let Some(p) = pending else { return 0 };
        (0..self.vectors)
            .filter(|&v| p.pending(IrqSource::Msi, v))
            .fold(0, |acc, v| acc | 1 << v)
    }

    /// The effective state of `vector`.
    pub(crate) fn vector_state(&self, regs: &Regs, vector: u16) -> VectorChange {
        let enabled = self.enabled_vectors(regs);
        let message = (vector < enabled).then(|| {
            let lo = u64::from(regs.get(self.offset + 4, 4));
            let hi = if self.addr64 {
                u64::from(regs.get(self.offset + 8, 4))
            } else {
                0
            };
            let data = regs.get(self.data_off(), 2);
            let low_bits = u32::from(enabled) - 1;
            MsiMessage {
                address: hi << 32 | lo,
                data: (data & !low_bits) | u32::from(vector),
            }
        });
        let masked = message.is_some()
            && self
                .mask_off()
                .is_some_and(|m| regs.get(m, 4) & (1 << vector) != 0);
        VectorChange {
            source: IrqSource::Msi,
            vector,
            message,
            masked,
        }
    }

    /// The state of every vector the capability can have.
    pub(crate) fn all_states(&self, regs: &Regs) -> Vec<VectorChange> {
        (0..self.vectors)
            .map(|v| self.vector_state(regs, v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::test_utils::{TestPendingBits, TEST_IDS};
    use crate::types::{FunctionEvent, IrqSource, MsiMessage, VectorChange};
    use crate::PciConfig;

    fn r32(c: &PciConfig, off: u16) -> u32 {
        let mut d = [0u8; 4];
        c.read(off, &mut d);
        u32::from_le_bytes(d)
    }

    fn w16(c: &mut PciConfig, off: u16, v: u16) -> Vec<FunctionEvent> {
        c.write(off, &v.to_le_bytes())
    }

    fn w32(c: &mut PciConfig, off: u16, v: u32) -> Vec<FunctionEvent> {
        c.write(off, &v.to_le_bytes())
    }

    fn vec_ev(vector: u16, msg: Option<(u64, u32)>, masked: bool) -> FunctionEvent {
        FunctionEvent::Vector(VectorChange {
            source: IrqSource::Msi,
            vector,
            message: msg.map(|(address, data)| MsiMessage { address, data }),
            masked,
        })
    }

    /// MSI with 8 vectors, 64-bit, per-vector mask; returns config and cap offset.
    fn msi64() -> (PciConfig, u16) {
        let mut c = PciConfig::new(TEST_IDS);
        c.add_msi(8, true, true).unwrap();
        let off = u16::from(c.capabilities()[0].offset);
        (c, off)
    }

    #[test]
    fn layout_and_read_only_bits() {
        let (mut c, o) = msi64();
        // ID 5, next 0, control: MMC=3 (8), 64-bit, per-vector mask.
        assert_eq!(r32(&c, o), 0x0186_0005);
        w32(&mut c, o, u32::MAX);
        // Only enable and MME are writable.
        assert_eq!(r32(&c, o), 0x01B7_0005, "MME clamped to MMC");
        w32(&mut c, o + 4, u32::MAX);
        assert_eq!(r32(&c, o + 4), 0xFFFF_FFFC);
        w32(&mut c, o + 0xC, u32::MAX);
        assert_eq!(r32(&c, o + 0xC), 0x0000_FFFF);
        w32(&mut c, o + 0x10, u32::MAX);
        assert_eq!(r32(&c, o + 0x10), 0xFF);

        let mut small = PciConfig::new(TEST_IDS);
        small.add_msi(1, false, false).unwrap();
        assert_eq!(r32(&small, 0x40), 0x0000_0005);
        // Data right after the 32-bit address; the next capability after 10 bytes.
        small.add_vendor_cap(&[]).unwrap();
        assert_eq!(small.capabilities()[1].offset, 0x4C);
        w32(&mut small, 0x48, u32::MAX);
        assert_eq!(r32(&small, 0x48), 0xFFFF);
    }

    #[test]
    fn enable_address_data_and_mask_events() {
        let (mut c, o) = msi64();
        // Programming while disabled changes nothing effective.
        assert!(w32(&mut c, o + 4, 0xFEE0_0000).is_empty());
        assert!(w32(&mut c, o + 8, 0).is_empty());
        assert!(w16(&mut c, o + 0xC, 0x40).is_empty());
        // Enable, one vector.
        assert_eq!(
            w16(&mut c, o + 2, 0x1),
            vec![vec_ev(0, Some((0xFEE0_0000, 0x40)), false)]
        );
        // Address and data updates while enabled.
        assert_eq!(
            w32(&mut c, o + 8, 1),
            vec![vec_ev(0, Some((0x1_FEE0_0000, 0x40)), false)]
        );
        assert_eq!(
            w16(&mut c, o + 0xC, 0x41),
            vec![vec_ev(0, Some((0x1_FEE0_0000, 0x41)), false)]
        );
        // Masking vector 0 and vector 5; 5 is not enabled, so only 0 changes.
        assert_eq!(
            w32(&mut c, o + 0x10, 0x21),
            vec![vec_ev(0, Some((0x1_FEE0_0000, 0x41)), true)]
        );
        assert!(!c.vector_state(IrqSource::Msi, 5).masked);
        assert!(w32(&mut c, o + 0x10, 0x21).is_empty());
        assert_eq!(
            c.vector_state(IrqSource::Msi, 0),
            VectorChange {
                source: IrqSource::Msi,
                vector: 0,
                message: Some(MsiMessage {
                    address: 0x1_FEE0_0000,
                    data: 0x41
                }),
                masked: true
            }
        );
        // Disable.
        assert_eq!(w16(&mut c, o + 2, 0), vec![vec_ev(0, None, false)]);
        // Enabling again brings the mask back with the message.
        assert_eq!(
            w16(&mut c, o + 2, 1),
            vec![vec_ev(0, Some((0x1_FEE0_0000, 0x41)), true)]
        );
    }

    #[test]
    fn multiple_message() {
        let (mut c, o) = msi64();
        w32(&mut c, o + 4, 0xFEE0_0000);
        w16(&mut c, o + 0xC, 0x40);
        // Enable with MME = 2 (4 vectors): data low 2 bits carry the vector.
        let ev = w16(&mut c, o + 2, 0x21);
        assert_eq!(
            ev,
            (0..4)
                .map(|v| vec_ev(v, Some((0xFEE0_0000, 0x40 | u32::from(v))), false))
                .collect::<Vec<_>>()
        );
        // Low bits of data are replaced, not OR-ed.
        let ev = w16(&mut c, o + 0xC, 0x43);
        assert_eq!(ev.len(), 0, "0x43 & !3 | v == 0x40 | v");
        let ev = w16(&mut c, o + 0xC, 0x50);
        assert_eq!(ev.len(), 4);
        assert_eq!(ev[3], vec_ev(3, Some((0xFEE0_0000, 0x53)), false));
        // MME 7 > MMC 3 is clamped to 3 (8 vectors).
        let ev = w16(&mut c, o + 2, 0x71);
        assert_eq!(r32(&c, o) >> 16 & 0x70, 0x30);
        // Vectors 0..4 keep their data (0x50 has bit 2 clear); 4..8 appear.
        assert_eq!(ev.len(), 4);
        assert_eq!(ev[0], vec_ev(4, Some((0xFEE0_0000, 0x54)), false));
        assert_eq!(ev[3], vec_ev(7, Some((0xFEE0_0000, 0x57)), false));
        // Back to one vector: 1..8 go away, 0 keeps its message.
        let ev = w16(&mut c, o + 2, 0x01);
        assert_eq!(ev.len(), 7);
        assert!(ev
            .iter()
            .all(|e| matches!(e, FunctionEvent::Vector(VectorChange { message: None, .. }))));
        assert_eq!(c.vector_state(IrqSource::Msi, 8).message, None);
    }

    #[test]
    fn pending_register_reads_from_source() {
        let (mut c, o) = msi64();
        assert_eq!(r32(&c, o + 0x14), 0);
        let p = Arc::new(TestPendingBits::default());
        c.set_pending_bits(p.clone());
        p.set(IrqSource::Msi, 1, true);
        p.set(IrqSource::Msi, 7, true);
        p.set(IrqSource::Msix, 0, true);
        assert_eq!(r32(&c, o + 0x14), 0x82);
        let mut b = [0u8; 1];
        c.read(o + 0x14, &mut b);
        assert_eq!(b[0], 0x82);
        // Read-only.
        assert!(w32(&mut c, o + 0x14, 0).is_empty());
        assert_eq!(r32(&c, o + 0x14), 0x82);
    }
}
