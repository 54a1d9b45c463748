//! ACPI tables, built by kvmbus in the BIOS area as firmware would: the RSDP in the
//! E-segment (found by the standard 16-byte scan of 0xE0000-0xFFFFF), then the FACS,
//! DSDT, FADT, MADT, RSDT and XSDT after it. The MP table keeps the F-segment.

mod dsdt;
mod facs;
mod fadt;
mod madt;
mod rsdp;
mod rsdt;
mod sdt;

#[cfg(test)]
mod iasl_tests;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::loader::LoadError;

pub use facs::{WAKING_VECTOR_OFFSET, X_WAKING_VECTOR_OFFSET};
pub use fadt::{CENTURY_INDEX, RESET_PORT, RESET_VALUE};
pub use sdt::checksum;

/// Where the RSDP goes (16-byte aligned, inside the scanned range).
pub const RSDP_ADDR: u64 = 0xE_0000;
/// The end of the area the tables may use (the MP table starts here).
const ACPI_END: u64 = 0xF_0000;

/// Where each table landed in guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcpiLayout {
    /// The RSDP.
    pub rsdp: u64,
    /// The FACS (holds the waking vector S3 resumes at).
    pub facs: u64,
    /// The DSDT.
    pub dsdt: u64,
    /// The FADT.
    pub fadt: u64,
    /// The MADT.
    pub madt: u64,
    /// The RSDT.
    pub rsdt: u64,
    /// The XSDT.
    pub xsdt: u64,
}

fn align(a: u64, to: u64) -> u64 {
    a.div_ceil(to) * to
}

/// Writes every table for a machine with `vcpus` processors; returns the layout.
pub fn write_acpi_tables(mem: &GuestMemoryMmap, vcpus: u32) -> Result<AcpiLayout, LoadError> {
    let facs_addr = align(RSDP_ADDR + rsdp::RSDP_LEN as u64, 64); // FACS: 64-byte aligned
    let dsdt_addr = align(facs_addr + facs::FACS_LEN as u64, 16);
    let dsdt = dsdt::dsdt();
    let fadt_addr = align(dsdt_addr + dsdt.len() as u64, 16);
    let fadt = fadt::fadt(facs_addr as u32, dsdt_addr as u32);
    let madt_addr = align(fadt_addr + fadt.len() as u64, 16);
    let madt = madt::madt(vcpus);
    let rsdt_addr = align(madt_addr + madt.len() as u64, 16);
    let rsdt = rsdt::rsdt(&[fadt_addr as u32, madt_addr as u32]);
    let xsdt_addr = align(rsdt_addr + rsdt.len() as u64, 16);
    let xsdt = rsdt::xsdt(&[fadt_addr, madt_addr]);
    let end = xsdt_addr + xsdt.len() as u64;
    if end > ACPI_END {
        return Err(LoadError::Invalid {
            image: "acpi tables".into(),
            what: format!("{vcpus} vCPUs do not fit in the BIOS area"),
        });
    }
    let rsdp = rsdp::rsdp(rsdt_addr as u32, xsdt_addr);
    let err = |e: vm_memory::GuestMemoryError| LoadError::Invalid {
        image: "acpi tables".into(),
        what: e.to_string(),
    };
    let zero = vec![0u8; (end - RSDP_ADDR) as usize];
    mem.write_slice(&zero, GuestAddress(RSDP_ADDR))
        .map_err(err)?;
    for (bytes, addr) in [
        (&rsdp, RSDP_ADDR),
        (&facs::facs(), facs_addr),
        (&dsdt, dsdt_addr),
        (&fadt, fadt_addr),
        (&madt, madt_addr),
        (&rsdt, rsdt_addr),
        (&xsdt, xsdt_addr),
    ] {
        mem.write_slice(bytes, GuestAddress(addr)).map_err(err)?;
    }
    Ok(AcpiLayout {
        rsdp: RSDP_ADDR,
        facs: facs_addr,
        dsdt: dsdt_addr,
        fadt: fadt_addr,
        madt: madt_addr,
        rsdt: rsdt_addr,
        xsdt: xsdt_addr,
    })
}

/// The real-mode start of a vCPU resuming at `vector` (ACPI §4.8.3.1: CS = vector >> 4,
/// IP = vector & 0xF): (CS selector, IP).
pub fn waking_cs_ip(vector: u32) -> (u16, u16) {
    ((vector >> 4) as u16, (vector & 0xf) as u16)
}

/// Reads the FACS waking vector the OS left (0 when none was set).
pub fn read_waking_vector(mem: &GuestMemoryMmap, layout: &AcpiLayout) -> u32 {
    mem.read_obj(GuestAddress(layout.facs + WAKING_VECTOR_OFFSET))
        .unwrap_or(0)
}
