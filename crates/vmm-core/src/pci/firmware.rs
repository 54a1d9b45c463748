//! What firmware would do before the guest runs: size every BAR, give it an address
//! (I/O from 0xC000 up, memory in a 32-bit window below the ECAM window), and enable
//! I/O, memory and bus-master decoding. All through ordinary config writes, so the
//! resulting events map the BARs like any guest write would.

use pci_emu::Bdf;

use super::PciPlatform;
use crate::{Error, Result};

/// I/O BARs are assigned from here up.
pub const IO_WINDOW: std::ops::Range<u64> = 0xc000..0x1_0000;
/// Memory BARs are assigned from here up to the ECAM window.
pub const MEM_WINDOW_START: u64 = 0x8000_0000;

fn ecam_offset(bdf: Bdf, reg: u16) -> u64 {
    ((bdf.bus as u64) << 20)
        | ((bdf.device as u64) << 15)
        | ((bdf.function as u64) << 12)
        | reg as u64
}

fn read32(p: &PciPlatform, bdf: Bdf, reg: u16) -> u32 {
    let mut b = [0u8; 4];
    p.bus().ecam_read(ecam_offset(bdf, reg), &mut b);
    u32::from_le_bytes(b)
}

/// A config write of `data` (2 or 4 bytes) whose events are applied like a guest's.
fn write(p: &PciPlatform, bdf: Bdf, reg: u16, data: &[u8]) {
    let events = p.bus().ecam_write(ecam_offset(bdf, reg), data);
    p.apply(&events);
}

fn write32(p: &PciPlatform, bdf: Bdf, reg: u16, v: u32) {
    write(p, bdf, reg, &v.to_le_bytes());
}

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// Assigns every BAR of every function and enables decoding; `mem_end` is the end of
/// the memory window (the ECAM base).
pub fn assign_resources(p: &PciPlatform, mem_end: u64) -> Result<()> {
    let (mut io, mut mem) = (IO_WINDOW.start, MEM_WINDOW_START);
    let bdfs = p.bus().bdfs();
    for bdf in bdfs {
        if (read32(p, bdf, 0x0c) >> 16) & 0x7f != 0 {
            continue; // not a type-0 header
        }
        let mut bar = 0u16;
        while bar < 6 {
            let reg = 0x10 + 4 * bar;
            write32(p, bdf, reg, 0xffff_ffff);
            let mask = read32(p, bdf, reg);
            if mask == 0 {
                bar += 1;
                continue;
            }
            if mask & 1 == 1 {
                let size = (!(mask & !3) as u64 + 1) & 0xffff;
                let base = align_up(io, size.max(4));
                if size == 0 || base + size > IO_WINDOW.end {
                    return Err(exhausted(bdf, bar, "I/O"));
                }
                write32(p, bdf, reg, base as u32);
                io = base + size;
                bar += 1;
            } else {
                let is64 = (mask >> 1) & 3 == 2;
                let mut size_mask = (mask & !0xf) as u64;
                if is64 {
                    write32(p, bdf, reg + 4, 0xffff_ffff);
                    size_mask |= (read32(p, bdf, reg + 4) as u64) << 32;
                } else {
                    size_mask |= 0xffff_ffff_0000_0000;
                }
                let size = (!size_mask).wrapping_add(1);
                let base = align_up(mem, size.max(0x1000));
                if size == 0 || base + size > mem_end {
                    return Err(exhausted(bdf, bar, "memory"));
                }
                write32(p, bdf, reg, base as u32);
                if is64 {
                    write32(p, bdf, reg + 4, (base >> 32) as u32);
                }
                mem = base + size;
                bar += if is64 { 2 } else { 1 };
            }
        }
        // COMMAND: I/O space, memory space, bus master.
        let cmd = read32(p, bdf, 0x04) as u16;
        write(p, bdf, 0x04, &(cmd | 0x7).to_le_bytes());
    }
    Ok(())
}

fn exhausted(bdf: Bdf, bar: u16, what: &str) -> Error {
    Error::Device {
        device: bdf.to_string(),
        detail: format!("BAR{bar} does not fit in the {what} window"),
    }
}
