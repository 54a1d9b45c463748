//! The Root System Description Pointer (ACPI 6.x §5.2.5), revision 2.

use super::sdt::{checksum, OEM_ID};

/// Size of a revision-2 RSDP.
pub const RSDP_LEN: usize = 36;

/// The RSDP naming the RSDT and the XSDT. Bytes 0-19 (the ACPI 1.0 part) sum to zero,
/// and so do all 36.
pub fn rsdp(rsdt: u32, xsdt: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(RSDP_LEN);
    b.extend_from_slice(b"RSD PTR ");
    b.push(0); // checksum of the first 20 bytes
    b.extend_from_slice(OEM_ID);
    b.push(2); // revision: ACPI 2.0+
    b.extend_from_slice(&rsdt.to_le_bytes());
    b.extend_from_slice(&(RSDP_LEN as u32).to_le_bytes());
    b.extend_from_slice(&xsdt.to_le_bytes());
    b.push(0); // extended checksum
    b.extend_from_slice(&[0; 3]);
    b[8] = checksum(&b[..20]);
    b[32] = checksum(&b);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_checksums_hold() {
        let b = rsdp(0xe_1000, 0xe_2000);
        assert_eq!(b.len(), RSDP_LEN);
        assert_eq!(checksum(&b[..20]), 0);
        assert_eq!(checksum(&b), 0);
        assert_eq!(u32::from_le_bytes(b[16..20].try_into().unwrap()), 0xe_1000);
        assert_eq!(u64::from_le_bytes(b[24..32].try_into().unwrap()), 0xe_2000);
    }
}
