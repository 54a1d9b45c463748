//! The Firmware ACPI Control Structure (ACPI 6.x §5.2.10): holds the waking vector the
//! OS sets before S3 and where the vCPUs resume. It has no checksum.

/// Size of the FACS.
pub const FACS_LEN: usize = 64;
/// Offset of the 32-bit firmware waking vector.
pub const WAKING_VECTOR_OFFSET: u64 = 12;
/// Offset of the 64-bit X firmware waking vector.
pub const X_WAKING_VECTOR_OFFSET: u64 = 24;

/// A FACS with zero waking vectors and no global lock owner.
pub fn facs() -> Vec<u8> {
    let mut b = vec![0u8; FACS_LEN];
    b[..4].copy_from_slice(b"FACS");
    b[4..8].copy_from_slice(&(FACS_LEN as u32).to_le_bytes());
    b[32] = 2; // version (ACPI 4.0+ layout)
    b
}
