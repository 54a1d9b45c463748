//! The configuration space of one type-0 function with standard behaviour: read-only
//! IDs, write masks per register, RW1C status bits, BARs with the sizing protocol, and a
//! capability list (MSI, MSI-X, PCI Express, vendor-specific).
//!
//! A device model builds a [`PciConfig`] once, then forwards the guest's config
//! accesses (and accesses to the BARs holding an MSI-X table) to it:
//!
//! ```
//! use pci_emu::{BarKind, PciConfig, PciIds};
//! let mut cfg = PciConfig::new(PciIds {
//!     vendor_id: 0x1234, device_id: 0x4843, class_code: 0x08_80_00,
//!     revision: 1, subsystem_vendor_id: 0x1234, subsystem_id: 1,
//! });
//! cfg.add_bar(0, BarKind::Io, 64).unwrap();
//! cfg.write(0x10, &0xFFFF_FFFFu32.to_le_bytes());
//! let mut v = [0u8; 4];
//! cfg.read(0x10, &mut v);
//! assert_eq!(u32::from_le_bytes(v), 0xFFFF_FFC1); // size mask | I/O type bit
//! ```

mod access;

use std::fmt;
use std::sync::Arc;

use crate::bar::{Bar, BarInfo, CMD_BUS_MASTER, CMD_IO, CMD_MEM};
use crate::caps::{self, CapInfo, CapList, CAP_MSI, CAP_MSIX, CAP_PCIE, CAP_VENDOR};
use crate::error::{Error, Result};
use crate::msi::Msi;
use crate::msix::{self, Msix, MSIX_CAP_LEN, MSIX_MAX_VECTORS};
use crate::regs::Regs;
use crate::types::{BarKind, IrqSource, VectorChange};

/// Offset of the COMMAND register.
pub(crate) const COMMAND: usize = 0x04;
/// Offset of the STATUS register.
pub(crate) const STATUS: usize = 0x06;
/// Offset of BAR 0.
pub(crate) const BAR0: usize = 0x10;
const HEADER_TYPE: usize = 0x0E;
const MULTIFUNCTION: u32 = 0x80;
/// COMMAND bits a guest may write: I/O, memory, bus master, parity error response,
/// SERR# enable, interrupt disable.
const COMMAND_WRITABLE: u32 = 0x0547;
/// STATUS bits that are RW1C: master data parity error, signaled/received target abort,
/// received master abort, signaled system error, detected parity error.
const STATUS_RW1C: u32 = 0xF900;

/// The identity of a function, all read-only to the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PciIds {
    /// Vendor ID.
    pub vendor_id: u16,
    /// Device ID.
    pub device_id: u16,
    /// 24-bit class code: `class << 16 | subclass << 8 | prog-if`.
    pub class_code: u32,
    /// Revision ID.
    pub revision: u8,
    /// Subsystem vendor ID.
    pub subsystem_vendor_id: u16,
    /// Subsystem ID.
    pub subsystem_id: u16,
}

/// Where the MSI pending register and the MSI-X PBA get their bits (typically the
/// interrupt router, which knows which masked vectors fired).
pub trait PendingBits: Send + Sync {
    /// True if `vector` of `source` has a pending message.
    fn pending(&self, source: IrqSource, vector: u16) -> bool;
}

/// The configuration space of one type-0 function.
pub struct PciConfig {
    regs: Regs,
    bars: [Option<Bar>; 6],
    caps: CapList,
    msi: Option<Msi>,
    msix: Option<Msix>,
    pending: Option<Arc<dyn PendingBits>>,
}

impl fmt::Debug for PciConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PciConfig")
            .field("ids", &self.ids())
            .field("bars", &self.bars())
            .field("capabilities", &self.capabilities())
            .finish_non_exhaustive()
    }
}

impl PciConfig {
    /// A function with these IDs, no BARs and no capabilities.
    pub fn new(ids: PciIds) -> Self {
        let mut regs = Regs::new();
        regs.set(0x00, 2, u32::from(ids.vendor_id));
        regs.set(0x02, 2, u32::from(ids.device_id));
        regs.set(COMMAND, 2, 0);
        regs.set_writable(COMMAND, 2, COMMAND_WRITABLE);
        regs.set_rw1c(STATUS, 2, STATUS_RW1C);
        regs.set(
            0x08,
            4,
            (ids.class_code & 0xFF_FFFF) << 8 | u32::from(ids.revision),
        );
        // Cache line size and latency timer are plain read/write registers.
        regs.set_writable(0x0C, 2, 0xFFFF);
        regs.set(0x2C, 2, u32::from(ids.subsystem_vendor_id));
        regs.set(0x2E, 2, u32::from(ids.subsystem_id));
        // Interrupt line is scratch for the guest.
        regs.set_writable(0x3C, 1, 0xFF);
        PciConfig {
            regs,
            bars: [None; 6],
            caps: CapList::default(),
            msi: None,
            msix: None,
            pending: None,
        }
    }

    /// Adds BAR `index` (and `index + 1` for a 64-bit BAR). `size` is a power of two,
    /// at least 4 bytes for I/O and 16 for memory.
    pub fn add_bar(&mut self, index: u8, kind: BarKind, size: u64) -> Result<()> {
        let bar = Bar::new(index, kind, size)?;
        let i = usize::from(index);
        let slots = if matches!(kind, BarKind::Mem64 { .. }) {
            2
        } else {
            1
        };
        for s in i..i + slots {
            if self.slot_used(s) {
                return Err(Error::BarInUse(s as u8));
            }
        }
        let off = BAR0 + 4 * i;
        self.regs.set(off, 4, bar.type_bits());
        self.regs.set_writable(off, 4, bar.low_writable());
        if slots == 2 {
            self.regs.set(off + 4, 4, 0);
            self.regs.set_writable(off + 4, 4, bar.high_writable());
        }
        self.bars[i] = Some(bar);
        Ok(())
    }

    fn slot_used(&self, slot: usize) -> bool {
        self.bars[slot].is_some()
            || (slot > 0
                && matches!(
                    self.bars[slot - 1],
                    Some(Bar {
                        kind: BarKind::Mem64 { .. },
                        ..
                    })
                ))
    }

    /// Adds an MSI capability with `vectors` (1..=32, a power of two) vectors, 32- or
    /// 64-bit addresses, and optionally per-vector masking (with a pending register).
    pub fn add_msi(&mut self, vectors: u16, addr64: bool, per_vector_mask: bool) -> Result<()> {
        if !Msi::valid_vectors(vectors) {
            return Err(Error::VectorCount {
                cap: "MSI",
                count: vectors,
            });
        }
        if self.msi.is_some() {
            return Err(Error::CapabilityExists("MSI"));
        }
        let len = Msi::len(addr64, per_vector_mask);
        let off = self.caps.allocate(&mut self.regs, CAP_MSI, len, "MSI")?;
        self.msi = Some(Msi::init(
            &mut self.regs,
            off,
            vectors,
            addr64,
            per_vector_mask,
        ));
        Ok(())
    }

    /// Adds an MSI-X capability with `vectors` (1..=2048) table entries. The table and
    /// PBA sit at 8-byte aligned offsets in memory BARs that were already added and are
    /// large enough; they may share a BAR but not overlap.
    pub fn add_msix(
        &mut self,
        vectors: u16,
        table_bar: u8,
        table_offset: u32,
        pba_bar: u8,
        pba_offset: u32,
    ) -> Result<()> {
        if vectors == 0 || vectors > MSIX_MAX_VECTORS {
            return Err(Error::VectorCount {
                cap: "MSI-X",
                count: vectors,
            });
        }
        if self.msix.is_some() {
            return Err(Error::CapabilityExists("MSI-X"));
        }
        let table = (u64::from(table_offset), msix::table_size(vectors));
        let pba = (u64::from(pba_offset), msix::pba_size(vectors));
        for (what, bar, (offset, len)) in [("table", table_bar, table), ("PBA", pba_bar, pba)] {
            let size = match self.bars.get(usize::from(bar)).copied().flatten() {
                Some(b) if b.kind.is_memory() => b.size,
                _ => return Err(Error::MsixBar(bar)),
            };
            if offset % 8 != 0 || offset + len > size {
                return Err(Error::MsixPlacement {
                    what,
                    bar,
                    offset: offset as u32,
                });
            }
        }
        if table_bar == pba_bar && table.0 < pba.0 + pba.1 && pba.0 < table.0 + table.1 {
            return Err(Error::MsixOverlap);
        }
        let off = self
            .caps
            .allocate(&mut self.regs, CAP_MSIX, MSIX_CAP_LEN, "MSI-X")?;
        self.msix = Some(Msix::init(
            &mut self.regs,
            off,
            vectors,
            table_bar,
            table_offset,
            pba_bar,
            pba_offset,
        ));
        Ok(())
    }

    /// Adds a PCI Express capability (ID 0x10, version 2, endpoint).
    pub fn add_pcie_cap(&mut self) -> Result<()> {
        if self.caps.has(CAP_PCIE) {
            return Err(Error::CapabilityExists("PCI Express"));
        }
        let off =
            self.caps
                .allocate(&mut self.regs, CAP_PCIE, caps::PCIE_CAP_LEN, "PCI Express")?;
        caps::init_pcie(&mut self.regs, off);
        Ok(())
    }

    /// Advertises Function Level Reset in the PCI Express capability's Device
    /// Capabilities (bit 28). The function itself must act on an Initiate FLR write
    /// (Device Control bit 15, which always reads 0). Without the capability: an error.
    pub fn set_pcie_flr(&mut self) -> Result<()> {
        let off = self
            .caps
            .infos()
            .into_iter()
            .find(|c| c.id == CAP_PCIE)
            .map(|c| usize::from(c.offset))
            .ok_or(Error::NoCapability("PCI Express"))?;
        let v = self.regs.get(off + 4, 4) | 1 << 28;
        self.regs.set(off + 4, 4, v);
        Ok(())
    }

    /// Adds a vendor-specific capability (ID 0x09) whose bytes after the 3-byte header
    /// (ID, next, length = 3 + payload length) are `payload`, read-only. Returns its
    /// offset.
    pub fn add_vendor_cap(&mut self, payload: &[u8]) -> Result<u8> {
        if payload.len() > usize::from(u8::MAX) - 3 {
            return Err(Error::VendorPayload(payload.len()));
        }
        let off = self.caps.allocate(
            &mut self.regs,
            CAP_VENDOR,
            3 + payload.len(),
            "Vendor Specific",
        )?;
        caps::init_vendor(&mut self.regs, off, payload);
        Ok(off as u8)
    }

    /// Sets where the MSI pending register and the MSI-X PBA read their bits from.
    /// Without a source they read as zero.
    pub fn set_pending_bits(&mut self, src: Arc<dyn PendingBits>) {
        self.pending = Some(src);
    }

    /// Sets or clears the multi-function bit (bit 7 of the header type).
    pub fn set_multifunction(&mut self, on: bool) {
        let v = self.regs.get(HEADER_TYPE, 1) & !MULTIFUNCTION;
        self.regs
            .set(HEADER_TYPE, 1, v | if on { MULTIFUNCTION } else { 0 });
    }

    /// Device-side: sets STATUS bits (e.g. a received master abort). The RW1C ones stay
    /// until the guest clears them.
    pub fn set_status_bits(&mut self, bits: u16) {
        let v = self.regs.get(STATUS, 2) | u32::from(bits);
        self.regs.set(STATUS, 2, v);
    }

    /// Sets the read-only interrupt pin (0 none, 1..=4 INTA#..INTD#).
    pub fn set_interrupt_pin(&mut self, pin: u8) {
        self.regs.set(0x3D, 1, u32::from(pin));
    }

    /// The function's IDs.
    pub fn ids(&self) -> PciIds {
        let class_rev = self.regs.get(0x08, 4);
        PciIds {
            vendor_id: self.regs.get(0x00, 2) as u16,
            device_id: self.regs.get(0x02, 2) as u16,
            class_code: class_rev >> 8,
            revision: class_rev as u8,
            subsystem_vendor_id: self.regs.get(0x2C, 2) as u16,
            subsystem_id: self.regs.get(0x2E, 2) as u16,
        }
    }

    /// The COMMAND register.
    pub fn command(&self) -> u16 {
        self.regs.get(COMMAND, 2) as u16
    }

    /// (I/O decode, memory decode, bus master) from COMMAND.
    pub(crate) fn command_bits(&self) -> (bool, bool, bool) {
        let c = self.command();
        (c & CMD_IO != 0, c & CMD_MEM != 0, c & CMD_BUS_MASTER != 0)
    }

    fn bar_regs(&self, index: usize) -> (u32, u32) {
        let off = BAR0 + 4 * index;
        (self.regs.get(off, 4), self.regs.get(off + 4, 4))
    }

    /// Where BAR `index` decodes now: `None` if it does not exist, its decode bit is
    /// off, or it is unassigned (address 0 or still holding the sizing value).
    pub fn bar_address(&self, index: u8) -> Option<u64> {
        let i = usize::from(index);
        let bar = self.bars.get(i).copied().flatten()?;
        let (lo, hi) = self.bar_regs(i);
        bar.decode(lo, hi, self.command())
    }

    /// Every implemented BAR.
    pub fn bars(&self) -> Vec<BarInfo> {
        self.bars
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let bar = (*b)?;
                let (lo, hi) = self.bar_regs(i);
                Some(BarInfo {
                    index: i as u8,
                    kind: bar.kind,
                    size: bar.size,
                    address: bar.address(lo, hi),
                    decoding: bar.decode(lo, hi, self.command()).is_some(),
                })
            })
            .collect()
    }

    /// The capability list in the order it is linked.
    pub fn capabilities(&self) -> Vec<CapInfo> {
        self.caps.infos()
    }

    /// The current effective state of a vector. A vector that is not enabled (or does
    /// not exist) reports `message: None, masked: false`.
    pub fn vector_state(&self, source: IrqSource, vector: u16) -> VectorChange {
        let state = match source {
            IrqSource::Msi => self.msi.map(|m| m.vector_state(&self.regs, vector)),
            IrqSource::Msix => self
                .msix
                .as_ref()
                .map(|m| m.vector_state(&self.regs, vector)),
        };
        state.unwrap_or(VectorChange {
            source,
            vector,
            message: None,
            masked: false,
        })
    }

    /// Number of vectors of a capability (0 if absent).
    pub fn vector_count(&self, source: IrqSource) -> u16 {
        match source {
            IrqSource::Msi => self.msi.map_or(0, |m| m.vectors),
            IrqSource::Msix => self.msix.as_ref().map_or(0, |m| m.vectors()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{BarChange, FunctionEvent};

    const IDS: PciIds = PciIds {
        vendor_id: 0x1af4,
        device_id: 0x1041,
        class_code: 0x02_00_00,
        revision: 7,
        subsystem_vendor_id: 0x1af4,
        subsystem_id: 0x1100,
    };
    const MEM32: BarKind = BarKind::Mem32 {
        prefetchable: false,
    };

    pub(crate) fn r32(c: &PciConfig, off: u16) -> u32 {
        let mut d = [0u8; 4];
        c.read(off, &mut d);
        u32::from_le_bytes(d)
    }

    pub(crate) fn r8(c: &PciConfig, off: u16) -> u8 {
        let mut d = [0u8; 1];
        c.read(off, &mut d);
        d[0]
    }

    pub(crate) fn w32(c: &mut PciConfig, off: u16, v: u32) -> Vec<FunctionEvent> {
        c.write(off, &v.to_le_bytes())
    }

    fn size_bar(c: &mut PciConfig, off: u16) -> u32 {
        let old = r32(c, off);
        w32(c, off, u32::MAX);
        let mask = r32(c, off);
        w32(c, off, old);
        mask
    }

    #[test]
    fn ids_are_read_only() {
        let mut c = PciConfig::new(IDS);
        for off in [0x00, 0x08, 0x2C, 0x34] {
            w32(&mut c, off, u32::MAX);
        }
        assert_eq!(r32(&c, 0x00), 0x1041_1af4);
        assert_eq!(r32(&c, 0x08), 0x0200_0007);
        assert_eq!(r32(&c, 0x2C), 0x1100_1af4);
        assert_eq!(r32(&c, 0x34), 0);
        assert_eq!(c.ids(), IDS);
        assert_eq!(r8(&c, 0x0E), 0);
        c.set_multifunction(true);
        assert_eq!(r8(&c, 0x0E), 0x80);
        c.write(0x0E, &[0]);
        assert_eq!(r8(&c, 0x0E), 0x80);
        c.set_multifunction(false);
        assert_eq!(r8(&c, 0x0E), 0);
    }

    #[test]
    fn bar_sizing_of_each_kind() {
        let mut c = PciConfig::new(IDS);
        c.add_bar(0, BarKind::Io, 64).unwrap();
        c.add_bar(1, MEM32, 0x1000).unwrap();
        c.add_bar(2, BarKind::Mem32 { prefetchable: true }, 0x10)
            .unwrap();
        c.add_bar(3, BarKind::Mem64 { prefetchable: true }, 0x4000)
            .unwrap();
        let mut big = PciConfig::new(IDS);
        big.add_bar(
            0,
            BarKind::Mem64 {
                prefetchable: false,
            },
            1 << 33,
        )
        .unwrap();

        assert_eq!(size_bar(&mut c, 0x10), 0xFFFF_FFC1);
        assert_eq!(size_bar(&mut c, 0x14), 0xFFFF_F000);
        assert_eq!(size_bar(&mut c, 0x18), 0xFFFF_FFF8);
        assert_eq!(size_bar(&mut c, 0x1C), 0xFFFF_C00C);
        assert_eq!(size_bar(&mut c, 0x20), 0xFFFF_FFFF);
        // BAR 5 is not implemented: reads 0 whatever is written.
        assert_eq!(size_bar(&mut c, 0x24), 0);
        assert_eq!(size_bar(&mut big, 0x10), 0x0000_0004);
        assert_eq!(size_bar(&mut big, 0x14), 0xFFFF_FFFE);
        // Restored after sizing, type bits intact.
        assert_eq!(r32(&c, 0x10), 0x1);
        assert_eq!(r32(&c, 0x1C), 0xC);
        // No expansion ROM.
        assert_eq!(size_bar(&mut c, 0x30), 0);

        let bars = c.bars();
        assert_eq!(bars.len(), 4);
        assert_eq!(bars[3].index, 3);
        assert_eq!(bars[3].size, 0x4000);
        assert!(bars.iter().all(|b| !b.decoding));
    }

    #[test]
    fn bar_errors() {
        let mut c = PciConfig::new(IDS);
        c.add_bar(
            1,
            BarKind::Mem64 {
                prefetchable: false,
            },
            0x100,
        )
        .unwrap();
        assert_eq!(c.add_bar(2, MEM32, 0x100), Err(Error::BarInUse(2)));
        assert_eq!(c.add_bar(1, MEM32, 0x100), Err(Error::BarInUse(1)));
        assert_eq!(
            c.add_bar(
                0,
                BarKind::Mem64 {
                    prefetchable: false
                },
                0x100
            ),
            Err(Error::BarInUse(1))
        );
        assert!(matches!(
            c.add_bar(3, BarKind::Io, 3),
            Err(Error::BarSize { .. })
        ));
        assert_eq!(c.add_bar(6, BarKind::Io, 4), Err(Error::BarIndex(6)));
        c.add_bar(0, BarKind::Io, 4).unwrap();
    }

    #[test]
    fn write_masks_of_header_registers() {
        let mut c = PciConfig::new(IDS);
        w32(&mut c, 0x04, 0xFFFF_FFFF);
        assert_eq!(c.command(), 0x0547);
        // Cache line size and latency timer RW, header type and BIST RO.
        w32(&mut c, 0x0C, 0xFFFF_FFFF);
        assert_eq!(r32(&c, 0x0C), 0x0000_FFFF);
        // Interrupt line RW, pin and the rest RO.
        c.set_interrupt_pin(1);
        w32(&mut c, 0x3C, 0xFFFF_FFFF);
        assert_eq!(r32(&c, 0x3C), 0x0000_01FF);
        // Word and byte writes at every aligned offset of COMMAND.
        c.write(0x04, &[0x00]);
        assert_eq!(c.command(), 0x0500);
        c.write(0x05, &[0x00]);
        assert_eq!(c.command(), 0);
        c.write(0x04, &0x0003u16.to_le_bytes());
        assert_eq!(c.command(), 0x0003);
    }

    #[test]
    fn status_bits_are_rw1c() {
        let mut c = PciConfig::new(IDS);
        c.add_msi(1, false, false).unwrap();
        c.set_status_bits(0xF900);
        assert_eq!(r32(&c, 0x04) >> 16, 0xF910);
        // Writing zeros clears nothing; COMMAND write in the same dword is harmless.
        w32(&mut c, 0x04, 0x0000_0002);
        assert_eq!(r32(&c, 0x04), 0xF910_0002);
        c.write(0x06, &0x0100u16.to_le_bytes());
        assert_eq!(r32(&c, 0x04) >> 16, 0xF810);
        c.write(0x07, &[0xF8]);
        // The capability-list bit is read-only.
        assert_eq!(r32(&c, 0x04) >> 16, 0x0010);
        w32(&mut c, 0x04, 0xFFFF_0000);
        assert_eq!(r32(&c, 0x04) >> 16, 0x0010);
    }

    fn bar_event(
        index: u8,
        kind: BarKind,
        size: u64,
        old: Option<u64>,
        new: Option<u64>,
    ) -> FunctionEvent {
        FunctionEvent::Bar(BarChange {
            index,
            kind,
            size,
            old,
            new,
        })
    }

    #[test]
    fn relocation_events() {
        let mut c = PciConfig::new(IDS);
        c.add_bar(0, BarKind::Io, 64).unwrap();
        c.add_bar(1, MEM32, 0x1000).unwrap();
        let m64 = BarKind::Mem64 { prefetchable: true };
        c.add_bar(2, m64, 0x4000).unwrap();

        // Decode off: programming addresses moves nothing.
        assert!(w32(&mut c, 0x10, 0xC000).is_empty());
        assert!(w32(&mut c, 0x14, 0xE000_0000).is_empty());
        assert!(w32(&mut c, 0x18, 0xE010_0000).is_empty());
        assert!(w32(&mut c, 0x1C, 0x1).is_empty());
        assert_eq!(c.bar_address(0), None);

        // Memory decode on: both memory BARs appear.
        let ev = w32(&mut c, 0x04, 0x2);
        assert_eq!(
            ev,
            vec![
                FunctionEvent::Command {
                    io: false,
                    memory: true,
                    bus_master: false
                },
                bar_event(1, MEM32, 0x1000, None, Some(0xE000_0000)),
                bar_event(2, m64, 0x4000, None, Some(0x1_E010_0000)),
            ]
        );
        // I/O decode on with a byte write.
        let ev = c.write(0x04, &[0x3]);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1], bar_event(0, BarKind::Io, 64, None, Some(0xC000)));
        assert_eq!(c.bar_address(0), Some(0xC000));

        // Moves while decoding.
        assert_eq!(
            w32(&mut c, 0x14, 0xE000_1000),
            vec![bar_event(
                1,
                MEM32,
                0x1000,
                Some(0xE000_0000),
                Some(0xE000_1000)
            )]
        );
        assert_eq!(
            w32(&mut c, 0x1C, 0),
            vec![bar_event(
                2,
                m64,
                0x4000,
                Some(0x1_E010_0000),
                Some(0xE010_0000)
            )]
        );
        // Same address again: nothing.
        assert!(w32(&mut c, 0x14, 0xE000_1000).is_empty());
        // Bits below the size are ignored.
        assert!(w32(&mut c, 0x14, 0xE000_1FF0).is_empty());

        // Sizing while decoding: the BAR disappears, then comes back.
        assert_eq!(
            w32(&mut c, 0x10, u32::MAX),
            vec![bar_event(0, BarKind::Io, 64, Some(0xC000), None)]
        );
        assert_eq!(
            w32(&mut c, 0x10, 0xC040),
            vec![bar_event(0, BarKind::Io, 64, None, Some(0xC040))]
        );

        // Bus master alone: a Command event, no BAR events.
        assert_eq!(
            w32(&mut c, 0x04, 0x7),
            vec![FunctionEvent::Command {
                io: true,
                memory: true,
                bus_master: true
            }]
        );
        // Interrupt disable only: nothing effective.
        assert!(w32(&mut c, 0x04, 0x407).is_empty());

        // Decode off: old address, new None.
        let ev = w32(&mut c, 0x04, 0x0);
        assert_eq!(ev.len(), 4);
        assert!(ev.contains(&bar_event(2, m64, 0x4000, Some(0xE010_0000), None)));
        let info = c.bars();
        assert_eq!(info[2].address, 0xE010_0000);
        assert!(!info[2].decoding);
    }

    #[test]
    fn capability_list_walks_from_0x34() {
        let mut c = PciConfig::new(IDS);
        assert_eq!(r32(&c, 0x04) >> 16 & 0x10, 0);
        assert_eq!(r8(&c, 0x34), 0);
        c.add_bar(2, MEM32, 0x1000).unwrap();
        c.add_msi(4, true, true).unwrap();
        c.add_msix(16, 2, 0, 2, 0x800).unwrap();
        c.add_pcie_cap().unwrap();
        let vendor = c.add_vendor_cap(&[0xAB, 0xCD, 0xEF]).unwrap();
        assert_eq!(r32(&c, 0x04) >> 16 & 0x10, 0x10);

        let mut walked = Vec::new();
        let mut ptr = r8(&c, 0x34);
        while ptr != 0 {
            assert_eq!(ptr % 4, 0);
            assert!(ptr >= 0x40);
            walked.push((r8(&c, u16::from(ptr)), ptr));
            ptr = r8(&c, u16::from(ptr) + 1);
            assert!(walked.len() < 48, "list must terminate");
        }
        let caps: Vec<_> = c.capabilities().iter().map(|c| (c.id, c.offset)).collect();
        assert_eq!(walked, caps);
        assert_eq!(
            walked.iter().map(|w| w.0).collect::<Vec<_>>(),
            [0x05, 0x11, 0x10, 0x09]
        );
        assert_eq!(c.capabilities()[1].name, "MSI-X");

        // Vendor capability: length and payload, read-only.
        let v = u16::from(vendor);
        assert_eq!(r8(&c, v + 2), 6);
        w32(&mut c, v, u32::MAX);
        assert_eq!(r32(&c, v) >> 16, 0xAB06);
        assert_eq!(r8(&c, v + 4), 0xCD);
        assert_eq!(r8(&c, v + 5), 0xEF);
        // PCI Express: version 2 endpoint.
        let p = u16::from(walked[2].1);
        assert_eq!(r32(&c, p) >> 16, 0x0002);

        // Duplicates and room.
        assert_eq!(
            c.add_pcie_cap(),
            Err(Error::CapabilityExists("PCI Express"))
        );
        assert_eq!(
            c.add_msi(1, false, false),
            Err(Error::CapabilityExists("MSI"))
        );
        assert_eq!(c.add_vendor_cap(&[0; 253]), Err(Error::VendorPayload(253)));
        assert!(matches!(
            c.add_vendor_cap(&[0; 200]),
            Err(Error::NoSpace(_))
        ));
        // A failed add leaves the list as it was.
        assert_eq!(c.capabilities().len(), 4);
        assert_eq!(r8(&c, v + 1), 0);
    }

    #[test]
    fn msix_placement_errors() {
        let mut c = PciConfig::new(IDS);
        c.add_bar(0, BarKind::Io, 0x100).unwrap();
        c.add_bar(1, MEM32, 0x1000).unwrap();
        assert_eq!(
            c.add_msix(0, 1, 0, 1, 0x800),
            Err(Error::VectorCount {
                cap: "MSI-X",
                count: 0
            })
        );
        assert!(c.add_msix(2049, 1, 0, 1, 0x800).is_err());
        assert_eq!(c.add_msix(4, 0, 0, 1, 0x800), Err(Error::MsixBar(0)));
        assert_eq!(c.add_msix(4, 1, 0, 3, 0x800), Err(Error::MsixBar(3)));
        assert!(matches!(
            c.add_msix(4, 1, 4, 1, 0x800),
            Err(Error::MsixPlacement { what: "table", .. })
        ));
        assert!(matches!(
            c.add_msix(4, 1, 0, 1, 0x1000),
            Err(Error::MsixPlacement { what: "PBA", .. })
        ));
        assert!(matches!(
            c.add_msix(256, 1, 0x100, 1, 0),
            Err(Error::MsixPlacement { what: "table", .. })
        ));
        assert_eq!(c.add_msix(4, 1, 0, 1, 0x38), Err(Error::MsixOverlap));
        c.add_msix(4, 1, 0, 1, 0x40).unwrap();
        assert_eq!(
            c.add_msix(4, 1, 0, 1, 0x40),
            Err(Error::CapabilityExists("MSI-X"))
        );
        assert!(c.add_msi(3, false, false).is_err());
        assert!(c.add_msi(64, false, false).is_err());
        c.add_msi(32, true, true).unwrap();
    }

    #[test]
    fn access_sizes_and_ranges() {
        let mut c = PciConfig::new(IDS);
        c.add_pcie_cap().unwrap();
        for off in (0..256u16).step_by(4) {
            let d = r32(&c, off).to_le_bytes();
            for i in 0..4 {
                assert_eq!(r8(&c, off + i), d[i as usize]);
            }
            for i in [0, 2] {
                let mut w = [0u8; 2];
                c.read(off + i, &mut w);
                assert_eq!(w, d[i as usize..i as usize + 2]);
            }
        }
        // Extended space reads zero, past it all-ones.
        assert_eq!(r32(&c, 0x100), 0);
        assert_eq!(r32(&c, 0xFFC), 0);
        assert_eq!(r32(&c, 0x1000), u32::MAX);
        assert_eq!(r32(&c, u16::MAX - 3), u32::MAX);
        // Misaligned or odd sizes read all-ones and writes are dropped.
        assert_eq!(r32(&c, 0x02), u32::MAX);
        let mut three = [0u8; 3];
        c.read(0, &mut three);
        assert_eq!(three, [0xFF; 3]);
        let mut eight = [0u8; 8];
        c.read(0, &mut eight);
        assert_eq!(eight, [0xFF; 8]);
        c.read(0, &mut []);
        assert!(c.write(0x05, &[0xFF, 0xFF]).is_empty());
        assert!(c.write(0x04, &[0xFF; 3]).is_empty());
        assert!(c.write(0x04, &[]).is_empty());
        assert!(c.write(0x104, &[0xFF; 4]).is_empty());
        assert_eq!(c.command(), 0);
        assert_eq!(r32(&c, 0x104), 0);
    }
}
