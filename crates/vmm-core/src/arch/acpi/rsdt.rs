//! The RSDT (32-bit entries) and XSDT (64-bit entries) listing the other tables.

use super::sdt::Sdt;

/// The RSDT: one 32-bit physical address per table.
pub fn rsdt(tables: &[u32]) -> Vec<u8> {
    let mut t = Sdt::new(b"RSDT", 1);
    for a in tables {
        t.u32(*a);
    }
    t.finish()
}

/// The XSDT: one 64-bit physical address per table.
pub fn xsdt(tables: &[u64]) -> Vec<u8> {
    let mut t = Sdt::new(b"XSDT", 1);
    for a in tables {
        t.u64(*a);
    }
    t.finish()
}
