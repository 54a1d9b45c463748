//! The MSI capability (ID 0x05): layout, write masks and the effective state of each
//! vector. The registers live in the function's config space; this module knows where.
//!
//! Vector `i` is enabled while MSI Enable is set and `i < 2^MME`; its message data is the
//! programmed data with the low MME bits replaced by `i` (PCI 3.0 §6.8.1.6). A write of
//! MME larger than MMC is clamped to MMC. The pending register is read-only and comes
//! from the function's [`PendingBits`](crate::PendingBits) source.

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
        let masked = vector < self.vectors
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
