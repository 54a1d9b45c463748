//! The raw register file of a 256-byte configuration space, crosvm style: every dword
//! has its value, the bits a guest may write, and the bits a guest clears by writing 1
//! (RW1C). A guest write is `(old & !writable) | (value & writable)`, then RW1C.

/// Bytes of conventional configuration space.
pub(crate) const CONFIG_SIZE: usize = 256;
const DWORDS: usize = CONFIG_SIZE / 4;

/// True if `len` is 1, 2 or 4 and `offset` is aligned to it.
pub(crate) fn valid_access(offset: usize, len: usize) -> bool {
    matches!(len, 1 | 2 | 4) && offset % len == 0
}

/// Dword index, bit shift and bit mask of a field of `len` bytes at `offset`.
fn field(offset: usize, len: usize) -> (usize, u32, u32) {
    let shift = ((offset % 4) * 8) as u32;
    let mask = if len >= 4 {
        u32::MAX
    } else {
        ((1u32 << (len * 8)) - 1) << shift
    };
    (offset / 4, shift, mask)
}

/// Values and write masks of a conventional configuration space.
#[derive(Clone, Debug)]
pub(crate) struct Regs {
    values: [u32; DWORDS],
    writable: [u32; DWORDS],
    rw1c: [u32; DWORDS],
}

impl Regs {
    /// An all-zero, all-read-only space.
    pub(crate) fn new() -> Self {
        Regs {
            values: [0; DWORDS],
            writable: [0; DWORDS],
            rw1c: [0; DWORDS],
        }
    }

    /// The dword at index `idx` (0 beyond the end).
    pub(crate) fn dword(&self, idx: usize) -> u32 {
        self.values.get(idx).copied().unwrap_or(0)
    }

    /// Reads a naturally aligned field of 1, 2 or 4 bytes (0 beyond the end).
    pub(crate) fn get(&self, offset: usize, len: usize) -> u32 {
        let (idx, shift, mask) = field(offset, len);
        (self.dword(idx) & mask) >> shift
    }

    /// Device-side store of a field, ignoring write masks.
    pub(crate) fn set(&mut self, offset: usize, len: usize, value: u32) {
        let (idx, shift, mask) = field(offset, len);
        if let Some(v) = self.values.get_mut(idx) {
            *v = (*v & !mask) | ((value << shift) & mask);
        }
    }

    /// Sets which bits of a field the guest may write.
    pub(crate) fn set_writable(&mut self, offset: usize, len: usize, bits: u32) {
        let (idx, shift, mask) = field(offset, len);
        if let Some(w) = self.writable.get_mut(idx) {
            *w = (*w & !mask) | ((bits << shift) & mask);
        }
    }

    /// Sets which bits of a field the guest clears by writing 1.
    pub(crate) fn set_rw1c(&mut self, offset: usize, len: usize, bits: u32) {
        let (idx, shift, mask) = field(offset, len);
        if let Some(c) = self.rw1c.get_mut(idx) {
            *c = (*c & !mask) | ((bits << shift) & mask);
        }
    }

    /// A guest write of `data` (1, 2 or 4 bytes, aligned) at `offset`. Anything else
    /// is dropped.
    pub(crate) fn guest_write(&mut self, offset: usize, data: &[u8]) {
        let len = data.len();
        if !valid_access(offset, len) || offset >= CONFIG_SIZE || CONFIG_SIZE - offset < len {
            return;
        }
        let (idx, shift, mask) = field(offset, len);
        let mut raw = [0u8; 4];
        raw[..len].copy_from_slice(data);
        let value = u32::from_le_bytes(raw) << shift;
        let writable = self.writable[idx] & mask;
        let clear = self.rw1c[idx] & mask & value;
        let old = self.values[idx];
        self.values[idx] = ((old & !writable) | (value & writable)) & !clear;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_write_keeps_read_only_bits() {
        let mut r = Regs::new();
        r.set(0x10, 4, 0x1234_5678);
        r.set_writable(0x10, 4, 0x0000_FF00);
        r.guest_write(0x10, &0xFFFF_FFFFu32.to_le_bytes());
        assert_eq!(r.get(0x10, 4), 0x1234_FF78);
        r.guest_write(0x11, &[0x00]);
        assert_eq!(r.get(0x10, 4), 0x1234_0078);
        // Byte write outside the writable byte changes nothing.
        r.guest_write(0x12, &[0xAA]);
        assert_eq!(r.get(0x10, 4), 0x1234_0078);
    }

    #[test]
    fn rw1c_clears_only_written_ones() {
        let mut r = Regs::new();
        r.set(0x06, 2, 0xF900);
        r.set_rw1c(0x06, 2, 0xF900);
        r.guest_write(0x06, &0x0100u16.to_le_bytes());
        assert_eq!(r.get(0x06, 2), 0xF800);
        r.guest_write(0x04, &0xF800_0000u32.to_le_bytes());
        assert_eq!(r.get(0x06, 2), 0x0000);
    }

    #[test]
    fn bad_accesses_are_dropped() {
        let mut r = Regs::new();
        r.set_writable(0, 4, u32::MAX);
        r.guest_write(1, &[1, 2]);
        r.guest_write(0, &[1, 2, 3]);
        r.guest_write(0, &[1; 8]);
        r.guest_write(CONFIG_SIZE, &[1]);
        r.guest_write(usize::MAX - 1, &[1, 2]);
        assert_eq!(r.get(0, 4), 0);
    }
}
