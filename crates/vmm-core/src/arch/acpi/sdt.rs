//! A byte writer for ACPI tables: the common 36-byte system description header, little-
//! endian fields, Generic Address Structures and the checksum rule (all bytes sum to 0).

/// OEM ID in every header (6 bytes).
pub const OEM_ID: &[u8; 6] = b"KVMBUS";
/// OEM table ID in every header (8 bytes).
pub const OEM_TABLE_ID: &[u8; 8] = b"KVMBUSVM";
/// Creator ID (4 bytes).
const CREATOR_ID: &[u8; 4] = b"KVMB";
/// Length of the system description table header.
pub const HEADER_LEN: usize = 36;

/// The byte that makes `b` sum to zero (mod 256).
pub fn checksum(b: &[u8]) -> u8 {
    0u8.wrapping_sub(b.iter().fold(0u8, |a, x| a.wrapping_add(*x)))
}

/// An address space of a Generic Address Structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressSpace {
    /// System I/O (ports).
    Io = 1,
}

/// One table being built: the header first, fields appended, then [`Sdt::finish`].
pub struct Sdt {
    bytes: Vec<u8>,
}

impl Sdt {
    /// Starts a table with `signature` and `revision`; length and checksum come at finish.
    pub fn new(signature: &[u8; 4], revision: u8) -> Sdt {
        let mut bytes = Vec::with_capacity(256);
        bytes.extend_from_slice(signature);
        bytes.extend_from_slice(&[0; 4]); // length
        bytes.push(revision);
        bytes.push(0); // checksum
        bytes.extend_from_slice(OEM_ID);
        bytes.extend_from_slice(OEM_TABLE_ID);
        bytes.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
        bytes.extend_from_slice(CREATOR_ID);
        bytes.extend_from_slice(&1u32.to_le_bytes()); // creator revision
        debug_assert_eq!(bytes.len(), HEADER_LEN);
        Sdt { bytes }
    }

    /// Appends a byte.
    pub fn u8(&mut self, v: u8) -> &mut Sdt {
        self.bytes.push(v);
        self
    }
    /// Appends a little-endian u16.
    pub fn u16(&mut self, v: u16) -> &mut Sdt {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a little-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Sdt {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a little-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Sdt {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Sdt {
        self.bytes.extend_from_slice(b);
        self
    }
    /// Appends a 12-byte Generic Address Structure.
    pub fn gas(&mut self, space: AddressSpace, bits: u8, access: u8, address: u64) -> &mut Sdt {
        self.u8(space as u8).u8(bits).u8(0).u8(access).u64(address)
    }
    /// The offset of the next field (the length so far).
    pub fn offset(&self) -> usize {
        self.bytes.len()
    }

    /// Fills in the length and checksum and returns the table's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let len = self.bytes.len() as u32;
        self.bytes[4..8].copy_from_slice(&len.to_le_bytes());
        self.bytes[9] = checksum(&self.bytes);
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_sets_length_and_checksum() {
        let mut t = Sdt::new(b"TEST", 3);
        t.u32(0xdead_beef).gas(AddressSpace::Io, 32, 3, 0x608);
        assert_eq!(t.offset(), HEADER_LEN + 4 + 12);
        let b = t.finish();
        assert_eq!(&b[..4], b"TEST");
        assert_eq!(u32::from_le_bytes(b[4..8].try_into().unwrap()), 52);
        assert_eq!(b[8], 3);
        assert_eq!(b.iter().fold(0u8, |a, x| a.wrapping_add(*x)), 0);
        assert_eq!(&b[40..44], &[1, 32, 0, 3]);
        assert_eq!(u64::from_le_bytes(b[44..52].try_into().unwrap()), 0x608);
    }
}
