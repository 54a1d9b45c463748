//! The Intel MultiProcessor Specification 1.4 table, as firmware writes it, so that
//! guests discover the vCPUs, the I/O APIC and the ISA interrupt wiring.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::loader::LoadError;

/// The local APIC base.
pub const LAPIC_ADDR: u32 = 0xFEE0_0000;
/// The I/O APIC base.
pub const IOAPIC_ADDR: u32 = 0xFEC0_0000;
/// Where the table goes: the BIOS F-segment (reserved in the memory map), which holds
/// the table for any vCPU count; 0x40E still points at the (empty) EBDA as on PCs.
const MPTABLE_ADDR: u64 = 0xF_0000;
/// The end of the F-segment.
const MPTABLE_END: u64 = 0x10_0000;

/// ISA IRQ wiring, shared with the ACPI MADT: (ISA IRQ, I/O APIC pin = GSI, MPS INTI
/// flags). IRQ 2 is the PIC cascade and absent; IRQ 0 goes to pin 2 as on PCs; the ACPI
/// SCI (IRQ 9) is level-triggered active-high (flags 0xd) as QEMU's tables say; the rest
/// conform to the ISA bus (edge, active-high).
pub(crate) const ISA_IRQ_FLAGS: &[(u8, u32, u16)] = &[
    (0, 2, 0),
    (1, 1, 0),
    (3, 3, 0),
    (4, 4, 0),
    (5, 5, 0),
    (6, 6, 0),
    (7, 7, 0),
    (8, 8, 0),
    (9, 9, 0xd),
    (10, 10, 0),
    (11, 11, 0),
    (12, 12, 0),
    (13, 13, 0),
    (14, 14, 0),
    (15, 15, 0),
];

fn checksum(b: &[u8]) -> u8 {
    0u8.wrapping_sub(b.iter().fold(0u8, |a, x| a.wrapping_add(*x)))
}

/// Writes the floating pointer, the configuration table (one processor entry per vCPU,
/// an ISA bus, the I/O APIC and ISA IRQ 0-15 routed to its pins) and the EBDA pointer.
pub fn write_mptable(mem: &GuestMemoryMmap, vcpus: u32) -> Result<(), LoadError> {
    let ioapic_id = vcpus as u8;
    let mut body = Vec::new();
    let mut entries = 0u16;
    for id in 0..vcpus {
        // Processor: type 0, APIC id, version, flags (enabled, BSP), signature, features.
        let flags = 1 | if id == 0 { 2 } else { 0 };
        body.extend_from_slice(&[0, id as u8, 0x14, flags]);
        body.extend_from_slice(&0x600u32.to_le_bytes());
        body.extend_from_slice(&0x201u32.to_le_bytes()); // FPU, APIC
        body.extend_from_slice(&[0; 8]);
        entries += 1;
    }
    body.extend_from_slice(&[1, 0, b'I', b'S', b'A', b' ', b' ', b' ']); // bus 0: ISA
    entries += 1;
    body.extend_from_slice(&[2, ioapic_id, 0x11, 1]);
    body.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    entries += 1;
    for &(irq, pin, flags) in ISA_IRQ_FLAGS {
        // I/O interrupt: type 3, INT, flags, bus 0, irq, apic, pin.
        body.extend_from_slice(&[3, 0]);
        body.extend_from_slice(&flags.to_le_bytes());
        body.extend_from_slice(&[0, irq, ioapic_id, pin as u8]);
        entries += 1;
    }
    // Local interrupts: ExtINT to LINT0, NMI to LINT1 of all local APICs.
    body.extend_from_slice(&[4, 3, 0, 0, 0, 0, 0xff, 0]);
    body.extend_from_slice(&[4, 1, 0, 0, 0, 0, 0xff, 1]);
    entries += 2;

    let table_addr = MPTABLE_ADDR + 16;
    let mut hdr = Vec::with_capacity(44);
    hdr.extend_from_slice(b"PCMP");
    hdr.extend_from_slice(&((44 + body.len()) as u16).to_le_bytes());
    hdr.push(4); // spec revision 1.4
    hdr.push(0); // checksum, below
    hdr.extend_from_slice(b"KVMBUS  ");
    hdr.extend_from_slice(b"VIRTUAL-PC  ");
    hdr.extend_from_slice(&0u32.to_le_bytes()); // OEM table
    hdr.extend_from_slice(&0u16.to_le_bytes());
    hdr.extend_from_slice(&entries.to_le_bytes());
    hdr.extend_from_slice(&LAPIC_ADDR.to_le_bytes());
    hdr.extend_from_slice(&[0; 4]); // extended length, checksum, reserved
    let mut table = hdr;
    table.extend_from_slice(&body);
    table[7] = checksum(&table);

    let mut fp = Vec::with_capacity(16);
    fp.extend_from_slice(b"_MP_");
    fp.extend_from_slice(&(table_addr as u32).to_le_bytes());
    fp.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 0]);
    fp[10] = checksum(&fp);

    let err = |e: vm_memory::GuestMemoryError| LoadError::Invalid {
        image: "mp table".into(),
        what: e.to_string(),
    };
    if table_addr + table.len() as u64 > MPTABLE_END {
        return Err(LoadError::Invalid {
            image: "mp table".into(),
            what: format!("{vcpus} vCPUs do not fit in the BIOS area"),
        });
    }
    mem.write_slice(&fp, GuestAddress(MPTABLE_ADDR))
        .map_err(err)?;
    mem.write_slice(&table, GuestAddress(table_addr))
        .map_err(err)?;
    mem.write_obj((crate::loader::EBDA_ADDR >> 4) as u16, GuestAddress(0x40E))
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_checksums_and_counts_processors() {
        let m = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        write_mptable(&m, 4).unwrap();
        let mut fp = [0u8; 16];
        m.read_slice(&mut fp, GuestAddress(MPTABLE_ADDR)).unwrap();
        assert_eq!(&fp[..4], b"_MP_");
        assert_eq!(fp.iter().fold(0u8, |a, x| a.wrapping_add(*x)), 0);
        let addr = u32::from_le_bytes(fp[4..8].try_into().unwrap()) as u64;
        let mut hdr = [0u8; 44];
        m.read_slice(&mut hdr, GuestAddress(addr)).unwrap();
        let len = u16::from_le_bytes([hdr[4], hdr[5]]) as usize;
        let mut table = vec![0u8; len];
        m.read_slice(&mut table, GuestAddress(addr)).unwrap();
        assert_eq!(table.iter().fold(0u8, |a, x| a.wrapping_add(*x)), 0);
        let n = u16::from_le_bytes([hdr[34], hdr[35]]);
        let (mut cpus, mut off) = (0, 44);
        for _ in 0..n {
            if table[off] == 0 {
                cpus += 1;
                off += 20;
            } else {
                off += 8;
            }
        }
        assert_eq!(cpus, 4);
        assert_eq!(off, len);
        let ebda: u16 = m.read_obj(GuestAddress(0x40E)).unwrap();
        assert_eq!((ebda as u64) << 4, crate::loader::EBDA_ADDR);
        // The largest configurable machine fits too.
        write_mptable(&m, 254).unwrap();
    }
}
