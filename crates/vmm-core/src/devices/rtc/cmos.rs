//! What firmware leaves in CMOS RAM about the machine, as QEMU's `pc_cmos_init` writes
//! it: the memory sizes (base, extended, 16 MiB-4 GiB in 64 KiB units, above 4 GiB) and
//! the CPU count.

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// (CMOS index, value) pairs for a machine with `ram` bytes (all below 4 GiB, as kvmbus
/// lays it out) and `cpus` processors.
pub fn machine_bytes(ram: u64, cpus: u32) -> Vec<(u8, u8)> {
    let below_4g = ram.min(4 * 1024 * MIB);
    let above_4g = ram - below_4g;
    let base = (below_4g / KIB).min(640);
    let ext = (below_4g.saturating_sub(MIB) / KIB).min(65_535);
    let high = (below_4g.saturating_sub(16 * MIB) / (64 * KIB)).min(65_535);
    let above = above_4g / 65_536;
    vec![
        (0x15, base as u8),
        (0x16, (base >> 8) as u8),
        (0x17, ext as u8),
        (0x18, (ext >> 8) as u8),
        (0x30, ext as u8),
        (0x31, (ext >> 8) as u8),
        (0x34, high as u8),
        (0x35, (high >> 8) as u8),
        (0x5b, above as u8),
        (0x5c, (above >> 8) as u8),
        (0x5d, (above >> 16) as u8),
        (0x5f, cpus.saturating_sub(1) as u8),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(b: &[(u8, u8)], lo: u8, hi: u8) -> u16 {
        let f = |i| b.iter().find(|(k, _)| *k == i).unwrap().1 as u16;
        f(lo) | (f(hi) << 8)
    }

    #[test]
    fn memory_sizes_as_qemu_pc_writes_them() {
        let b = machine_bytes(32 * MIB, 2);
        assert_eq!(get(&b, 0x15, 0x16), 640);
        assert_eq!(get(&b, 0x17, 0x18), 31 * 1024);
        assert_eq!(get(&b, 0x30, 0x31), 31 * 1024);
        assert_eq!(get(&b, 0x34, 0x35), 256);
        assert_eq!(get(&b, 0x5b, 0x5c), 0);
        assert_eq!(b.last(), Some(&(0x5f, 1)));
        // Extended memory saturates at 65535 KiB; small machines have no high memory.
        let b = machine_bytes(2048 * MIB, 1);
        assert_eq!(get(&b, 0x17, 0x18), 65_535);
        assert_eq!(get(&b, 0x34, 0x35), (2032 * MIB / (64 * KIB)) as u16);
        let b = machine_bytes(2 * MIB, 1);
        assert_eq!(get(&b, 0x17, 0x18), 1024);
        assert_eq!(get(&b, 0x34, 0x35), 0);
    }
}
