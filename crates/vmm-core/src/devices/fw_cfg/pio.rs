//! The x86 port interface of fw_cfg and how QEMU decodes every access width there.
//!
//! QEMU maps two regions: "fwcfg" (2 bytes at 0x510: a 16-bit write selects, a byte
//! read at either port reads data and advances, anything else is an invalid access
//! that reads 0 and does nothing) and "fwcfg.dma" (8 bytes at 0x514: reads return the
//! bytes of "QEMU CFG", 32-bit big-endian writes at +0 and +4 set the descriptor
//! address's high and low halves, the low one starting the transfer). Ports 0x512 and
//! 0x513 belong to nobody and read 0xff. An access spanning several of these is split
//! at the region boundaries, as QEMU's memory core does; so `inw 0x511` reads one data
//! byte and one 0xff, and `outl 0x510` selects with its low 16 bits.

use vm_memory::{Bytes, GuestAddress};

use super::dma;
use super::items::{Cursor, FwCfgItems};

/// The selector/data port.
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

/// Port state: the cursor and the descriptor address being assembled.
#[derive(Debug, Default)]
pub struct PortState {
    /// The selected item and offset.
    pub cursor: Cursor,
    /// The DMA descriptor address (high half written, low half pending).
    pub dma_addr: u64,
}

/// A port read of `data.len()` bytes at `offset` from 0x510.
pub fn read(items: &FwCfgItems, st: &mut PortState, offset: u64, data: &mut [u8]) {
    let mut i = 0;
    while i < data.len() {
        let o = offset + i as u64;
        if o < COMB_END {
            let l = (data.len() - i).min((COMB_END - o) as usize);
            if l == 1 {
                data[i] = st.cursor.read_byte(items);
            } else {
                // QEMU accepts only byte reads here; a wider one is invalid and reads 0.
                data[i..i + l].fill(0);
            }
            i += l;
        } else if (DMA_START..DMA_START + 8).contains(&o) {
            data[i] = DMA_SIGNATURE[(o - DMA_START) as usize];
            i += 1;
        } else {
            data[i] = 0xff;
            i += 1;
        }
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
    if data.len() == 4 && (offset == DMA_START || offset == DMA_START + 4) {
        let half = u32::from_be_bytes(data.try_into().unwrap()) as u64;
        if offset == DMA_START {
            st.dma_addr = half << 32;
        } else {
            // QEMU clears the address before the transfer, so the next one starts anew.
            let desc = std::mem::take(&mut st.dma_addr) | half;
            dma::transfer(mem, items, &mut st.cursor, desc);
        }
        return;
    }
    // Only a 16-bit write at 0x510 (possibly the low half of a 32-bit one) does
    // anything else: it selects. Data writes are ignored since QEMU 2.4; other DMA
    // widths are invalid.
    if offset == 0 && data.len() >= 2 {
        st.cursor.select(u16::from_le_bytes([data[0], data[1]]));
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
    fn wide_accesses_split_as_on_qemu() {
        let (i, mut s, m) = setup();
        // 16/32-bit reads at 0x510: invalid in the 2-byte region (0), then 0x512.. 0xff.
        assert_eq!(rd(&i, &mut s, 0, 2), [0, 0]);
        assert_eq!(rd(&i, &mut s, 0, 4), [0, 0, 0xff, 0xff]);
        assert_eq!(s.cursor.offset, 0);
        // At 0x511: one data byte, then unclaimed ports, then the DMA signature.
        assert_eq!(rd(&i, &mut s, 1, 2), [b'Q', 0xff]);
        assert_eq!(rd(&i, &mut s, 1, 4), [b'E', 0xff, 0xff, b'Q']);
        assert_eq!(s.cursor.offset, 2);
        // The DMA port reads "QEMU CFG" in memory order at any width.
        assert_eq!(rd(&i, &mut s, 4, 4), b"QEMU");
        assert_eq!(rd(&i, &mut s, 8, 4), b" CFG");
        assert_eq!(rd(&i, &mut s, 6, 2), b"MU");
        assert_eq!(rd(&i, &mut s, 11, 1), b"G");
        // A 32-bit write at 0x510 selects with its low half; byte writes do nothing.
        write(&i, &mut s, &m, 0, &[FW_CFG_ID as u8, 0, 0xff, 0xff]);
        assert_eq!(s.cursor.key, FW_CFG_ID);
        write(&i, &mut s, &m, 0, &[5]);
        write(&i, &mut s, &m, 1, &[5, 0]);
        assert_eq!(s.cursor.key, FW_CFG_ID);
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
