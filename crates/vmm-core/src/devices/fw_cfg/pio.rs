//! The x86 port interface of fw_cfg and how QEMU decodes every access width there.
//!
//! QEMU maps two regions: "fwcfg" (2 bytes at 0x510: a 16-bit write selects, a byte
//! read at either port reads data and advances, a byte write does nothing, anything
//! else is an invalid access that reads 0 and does nothing) and "fwcfg.dma" (8 bytes at
//! 0x514: reads return the bytes of "QEMU CFG", 32-bit big-endian writes at +0 and +4
//! set the descriptor address's high and low halves, the low one starting the
//! transfer). Ports 0x512 and 0x513 belong to nobody and read 0xff.
//!
//! QEMU's memory core cuts a port access into pieces without stopping at a region's
//! end: at each address the piece is as long as the rest of the access, at most the
//! region's maximum width (4 bytes, 8 for DMA) and at most the alignment of the offset
//! into the region (port number for the unclaimed ports), rounded down to a power of
//! two. So `inl 0x510` is one invalid 4-byte access (reads 0) and `outl 0x510` does
//! nothing, while `inw 0x511` reads one data byte and one 0xff and `inl 0x513` reads
//! 0xff and "QEM". This was measured on QEMU 7.2 with the `fwcfg-check` guest.

use vm_memory::{Bytes, GuestAddress};

use super::dma;
use super::items::{Cursor, FwCfgItems};

/// The selector port (a byte read there reads data too).
pub const FW_CFG_PORT_SEL: u16 = 0x510;
/// The data port.
pub const FW_CFG_PORT_DATA: u16 = 0x511;
/// The DMA address port (high half; the low half is at +4).
pub const FW_CFG_PORT_DMA: u16 = 0x514;
/// Ports covered from [`FW_CFG_PORT_SEL`]: 0x510..0x51c.
pub const FW_CFG_PORT_LEN: u64 = 12;
/// What the DMA port reads.
pub const DMA_SIGNATURE: &[u8; 8] = b"QEMU CFG";

const COMB_END: u64 = 2;
const DMA_START: u64 = 4;
const DMA_END: u64 = 12;

/// Port state: the cursor and the descriptor address being assembled.
#[derive(Debug, Default)]
pub struct PortState {
    /// The selected item and offset.
    pub cursor: Cursor,
    /// The DMA descriptor address (high half written, low half pending).
    pub dma_addr: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Region {
    Comb,
    Dma,
    Unclaimed,
}

/// The piece of an access at `offset` (from 0x510) with `rest` bytes left:
/// (region, offset into the region, piece length), as QEMU's `memory_access_size`.
fn piece(offset: u64, rest: usize) -> (Region, u64, usize) {
    let (region, off, max) = if offset < COMB_END {
        (Region::Comb, offset, 4)
    } else if (DMA_START..DMA_END).contains(&offset) {
        (Region::Dma, offset - DMA_START, 8)
    } else {
        // The unclaimed ports belong to the I/O space's root region, based at port 0.
        (Region::Unclaimed, FW_CFG_PORT_SEL as u64 + offset, 4)
    };
    let mut l = rest.min(max);
    if off != 0 {
        l = l.min(1 << off.trailing_zeros());
    }
    let l = 1 << l.ilog2();
    (region, off, l)
}

/// A port read of `data.len()` bytes at `offset` from 0x510.
pub fn read(items: &FwCfgItems, st: &mut PortState, offset: u64, data: &mut [u8]) {
    let mut i = 0;
    while i < data.len() {
        let (region, off, l) = piece(offset + i as u64, data.len() - i);
        let out = &mut data[i..i + l];
        match region {
            Region::Comb if l == 1 => out[0] = st.cursor.read_byte(items),
            // Only byte reads are valid there; QEMU answers others with 0.
            Region::Comb => out.fill(0),
            Region::Dma => {
                for (k, b) in out.iter_mut().enumerate() {
                    *b = DMA_SIGNATURE.get(off as usize + k).copied().unwrap_or(0xff);
                }
            }
            Region::Unclaimed => out.fill(0xff),
        }
        i += l;
    }
}

/// A port write of `data` at `offset` from 0x510; `mem` is where DMA goes.
pub fn write<M: Bytes<GuestAddress>>(
    items: &FwCfgItems,
    st: &mut PortState,
    mem: &M,
    offset: u64,
    data: &[u8],
) {
    let mut i = 0;
    while i < data.len() {
        let (region, off, l) = piece(offset + i as u64, data.len() - i);
        let d = &data[i..i + l];
        match region {
            Region::Comb if l == 2 => st.cursor.select(u16::from_le_bytes([d[0], d[1]])),
            Region::Dma if l == 4 && (off == 0 || off == 4) => {
                let half = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as u64;
                if off == 0 {
                    st.dma_addr = half << 32;
                } else {
                    // QEMU clears the address before the transfer, so the next one
                    // starts anew.
                    let desc = std::mem::take(&mut st.dma_addr) | half;
                    dma::transfer(mem, items, &mut st.cursor, desc);
                }
            }
            // Data writes are ignored since QEMU 2.4; other widths are invalid.
            _ => {}
        }
        i += l;
    }
}

#[cfg(test)]
mod tests {
    use super::super::items::{MachineInfo, FW_CFG_ID, FW_CFG_INVALID, FW_CFG_NB_CPUS};
    use super::*;
    use vm_memory::GuestMemoryMmap;

    fn setup() -> (FwCfgItems, PortState, GuestMemoryMmap) {
        let items = FwCfgItems::new(MachineInfo {
            ram_size: 0x10000,
            boot_cpus: 2,
            max_cpus: 2,
        });
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        (items, PortState::default(), mem)
    }

    fn rd(i: &FwCfgItems, s: &mut PortState, off: u64, n: usize) -> Vec<u8> {
        let mut d = vec![0xaa; n];
        read(i, s, off, &mut d);
        d
    }

    #[test]
    fn byte_reads_at_either_port_advance() {
        let (i, mut s, m) = setup();
        // Reset state: the signature is selected.
        assert_eq!(rd(&i, &mut s, 1, 1), b"Q");
        assert_eq!(rd(&i, &mut s, 0, 1), b"E");
        write(&i, &mut s, &m, 0, &FW_CFG_NB_CPUS.to_le_bytes());
        assert_eq!(rd(&i, &mut s, 1, 1), [2]);
        assert_eq!(rd(&i, &mut s, 1, 1), [0]);
        assert_eq!(rd(&i, &mut s, 1, 1), [0]);
    }

    #[test]
    fn wide_accesses_split_as_measured_on_qemu() {
        let (i, mut s, m) = setup();
        // (offset, width, bytes read, data bytes consumed): QEMU 7.2's answers with the
        // signature selected (the fwcfg-check guest and a probe measured them).
        let table: &[(u64, usize, &[u8], u32)] = &[
            (0, 4, &[0, 0, 0, 0], 0),
            (0, 2, &[0, 0], 0),
            (1, 2, &[b'Q', 0xff], 1),
            (1, 4, &[b'Q', 0xff, 0xff, b'Q'], 1),
            (2, 4, &[0xff, 0xff, b'Q', b'E'], 0),
            (2, 2, &[0xff, 0xff], 0),
            (3, 4, &[0xff, b'Q', b'E', b'M'], 0),
            (3, 2, &[0xff, b'Q'], 0),
            (4, 4, b"QEMU", 0),
            (5, 4, b"EMU ", 0),
            (8, 4, b" CFG", 0),
            (6, 2, b"MU", 0),
            (11, 1, b"G", 0),
        ];
        for &(off, n, want, used) in table {
            write(&i, &mut s, &m, 0, &0u16.to_le_bytes());
            assert_eq!(rd(&i, &mut s, off, n), want, "at {off} width {n}");
            assert_eq!(s.cursor.offset, used, "at {off} width {n}");
        }
        // outl 0x510 is one invalid access; byte writes and writes at 0x511 do nothing.
        write(&i, &mut s, &m, 0, &[FW_CFG_ID as u8, 0, 0, 0]);
        write(&i, &mut s, &m, 0, &[FW_CFG_ID as u8]);
        write(&i, &mut s, &m, 1, &[FW_CFG_ID as u8, 0]);
        assert_eq!(s.cursor.key, 0);
        write(&i, &mut s, &m, 0, &0xffffu16.to_le_bytes());
        assert_eq!(s.cursor.key, FW_CFG_INVALID);
        assert_eq!(rd(&i, &mut s, 1, 1), [0]);
    }

    #[test]
    fn dma_address_is_big_endian_high_then_low() {
        let (i, mut s, m) = setup();
        // Descriptor at 0x1000: select ID, read 4 bytes to 0x2000.
        let mut d = Vec::new();
        d.extend_from_slice(&(((FW_CFG_ID as u32) << 16) | 0x0a).to_be_bytes());
        d.extend_from_slice(&4u32.to_be_bytes());
        d.extend_from_slice(&0x2000u64.to_be_bytes());
        m.write_slice(&d, GuestAddress(0x1000)).unwrap();
        write(&i, &mut s, &m, 4, &0u32.to_be_bytes());
        // A 16-bit write or a misaligned one does nothing.
        write(&i, &mut s, &m, 8, &[0x10, 0x00]);
        write(&i, &mut s, &m, 6, &0x1000u32.to_be_bytes());
        let mut b = [0u8; 4];
        m.read_slice(&mut b, GuestAddress(0x2000)).unwrap();
        assert_eq!(b, [0; 4]);
        write(&i, &mut s, &m, 8, &0x1000u32.to_be_bytes());
        m.read_slice(&mut b, GuestAddress(0x2000)).unwrap();
        assert_eq!(b, [3, 0, 0, 0]);
        m.read_slice(&mut b, GuestAddress(0x1000)).unwrap();
        assert_eq!(b, [0; 4], "control cleared on success");
        assert_eq!(s.dma_addr, 0);
        // A high half left over from an earlier write counts: 0x1_0000_1000 is not RAM.
        write(&i, &mut s, &m, 4, &1u32.to_be_bytes());
        write(&i, &mut s, &m, 8, &0x1000u32.to_be_bytes());
        m.read_slice(&mut b, GuestAddress(0x1000)).unwrap();
        assert_eq!(b, [0; 4], "nothing written at the low address");
    }
}
