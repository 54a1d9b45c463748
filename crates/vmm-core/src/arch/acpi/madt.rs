//! The Multiple APIC Description Table (ACPI 6.x §5.2.12): one local APIC per vCPU
//! (APIC IDs 0..n-1), the I/O APIC, the interrupt source overrides and the LINT1 NMI.
//! It describes the same wiring as the MP table (`arch/mptable.rs`): I/O APIC ID = the
//! vCPU count, ISA IRQ 0 on GSI 2, the SCI (IRQ 9) level-triggered active-high.

use super::sdt::Sdt;
use crate::arch::mptable::{IOAPIC_ADDR, ISA_IRQ_FLAGS, LAPIC_ADDR};

const PCAT_COMPAT: u32 = 1;
const LAPIC: u8 = 0;
const IOAPIC: u8 = 1;
const SOURCE_OVERRIDE: u8 = 2;
const LAPIC_NMI: u8 = 4;

/// The MADT for `vcpus` processors.
pub fn madt(vcpus: u32) -> Vec<u8> {
    let mut t = Sdt::new(b"APIC", 3);
    t.u32(LAPIC_ADDR).u32(PCAT_COMPAT);
    for id in 0..vcpus {
        // Processor UID, APIC ID, flags (enabled).
        t.u8(LAPIC).u8(8).u8(id as u8).u8(id as u8).u32(1);
    }
    // I/O APIC ID, reserved, address, GSI base.
    t.u8(IOAPIC)
        .u8(12)
        .u8(vcpus as u8)
        .u8(0)
        .u32(IOAPIC_ADDR)
        .u32(0);
    for &(irq, gsi, flags) in ISA_IRQ_FLAGS {
        if irq as u32 == gsi && flags == 0 {
            continue; // identity-mapped and conforming: no override needed
        }
        // Bus 0 (ISA), source IRQ, GSI, MPS INTI flags.
        t.u8(SOURCE_OVERRIDE)
            .u8(10)
            .u8(0)
            .u8(irq)
            .u32(gsi)
            .u16(flags);
    }
    // NMI on LINT1 of every processor (UID 0xff), flags conforming.
    t.u8(LAPIC_NMI).u8(6).u8(0xff).u16(0).u8(1);
    t.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lapic_per_vcpu_and_the_overrides() {
        let b = madt(3);
        assert_eq!(super::super::sdt::checksum(&b), 0);
        let mut off = 44;
        let (mut lapics, mut isos) = (Vec::new(), Vec::new());
        let mut ioapic = None;
        while off < b.len() {
            let (kind, len) = (b[off], b[off + 1] as usize);
            match kind {
                LAPIC => lapics.push(b[off + 3]),
                IOAPIC => ioapic = Some(b[off + 2]),
                SOURCE_OVERRIDE => isos.push((
                    b[off + 3],
                    u32::from_le_bytes(b[off + 4..off + 8].try_into().unwrap()),
                    u16::from_le_bytes([b[off + 8], b[off + 9]]),
                )),
                _ => {}
            }
            off += len;
        }
        assert_eq!(off, b.len());
        assert_eq!(lapics, [0, 1, 2]);
        assert_eq!(ioapic, Some(3));
        assert_eq!(isos, [(0, 2, 0), (9, 9, 0xd)]);
    }
}
