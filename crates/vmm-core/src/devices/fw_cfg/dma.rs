//! The fw_cfg DMA interface, as QEMU's `fw_cfg_dma_transfer`.
//!
//! The guest writes the guest-physical address of an `FWCfgDmaAccess` descriptor
//! (`be32 control; be32 length; be64 address`, 16 bytes) to the DMA port. The control
//! word selects (bit 3, key in the high 16 bits), then reads (bit 1), writes (bit 4) or
//! skips (bit 2) `length` bytes at the cursor; when done the device writes the control
//! word back as 0, or with the error bit (0) set. Reading past an item's end fills
//! zeros; every item is read-only, so a write sets the error bit. Memory that is not
//! RAM (descriptor or buffer) sets the error bit; nothing here panics or allocates
//! more than a page, whatever the guest asks.

use vm_memory::{Bytes, GuestAddress};

use super::items::{Cursor, FwCfgItems};

/// Control bit: the transfer failed.
pub const DMA_CTL_ERROR: u32 = 0x01;
/// Control bit: read from the item into guest memory.
pub const DMA_CTL_READ: u32 = 0x02;
/// Control bit: advance the cursor without copying.
pub const DMA_CTL_SKIP: u32 = 0x04;
/// Control bit: select the key in bits 16..32 first.
pub const DMA_CTL_SELECT: u32 = 0x08;
/// Control bit: write guest memory into the item.
pub const DMA_CTL_WRITE: u32 = 0x10;

/// Zeros are written in chunks this big (a read past the end may ask for 4 GiB).
const ZERO_CHUNK: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write,
    Skip,
}

fn write_control<M: Bytes<GuestAddress>>(mem: &M, desc: u64, control: u32) {
    // If the descriptor itself is not RAM there is nowhere to report; QEMU drops it too.
    let _ = mem.write_slice(&control.to_be_bytes(), GuestAddress(desc));
}

fn fill_zeros<M: Bytes<GuestAddress>>(mem: &M, mut addr: u64, mut len: u64) -> bool {
    let zeros = [0u8; ZERO_CHUNK];
    while len > 0 {
        let n = len.min(ZERO_CHUNK as u64) as usize;
        if mem.write_slice(&zeros[..n], GuestAddress(addr)).is_err() {
            return false;
        }
        addr = addr.wrapping_add(n as u64);
        len -= n as u64;
    }
    true
}

/// Performs the transfer the descriptor at `desc` describes.
pub fn transfer<M: Bytes<GuestAddress>>(
    mem: &M,
    items: &FwCfgItems,
    cursor: &mut Cursor,
    desc: u64,
) {
    let mut raw = [0u8; 16];
    if mem.read_slice(&mut raw, GuestAddress(desc)).is_err() {
        write_control(mem, desc, DMA_CTL_ERROR);
        return;
    }
    let control = u32::from_be_bytes(raw[0..4].try_into().unwrap());
    let mut length = u32::from_be_bytes(raw[4..8].try_into().unwrap());
    let mut address = u64::from_be_bytes(raw[8..16].try_into().unwrap());

    if control & DMA_CTL_SELECT != 0 {
        cursor.select((control >> 16) as u16);
    }
    let op = if control & DMA_CTL_READ != 0 {
        Op::Read
    } else if control & DMA_CTL_WRITE != 0 {
        Op::Write
    } else if control & DMA_CTL_SKIP != 0 {
        Op::Skip
    } else {
        length = 0;
        Op::Skip
    };

    let mut status = 0;
    while length > 0 && status & DMA_CTL_ERROR == 0 {
        let rest = cursor.remaining(items);
        let len;
        if rest.is_empty() {
            // Nothing (left) to read: zeros for a read, an error for a write.
            len = length;
            match op {
                Op::Read if !fill_zeros(mem, address, len as u64) => status |= DMA_CTL_ERROR,
                Op::Write => status |= DMA_CTL_ERROR,
                _ => {}
            }
        } else {
            len = length.min(rest.len() as u32);
            match op {
                Op::Read => {
                    if mem
                        .write_slice(&rest[..len as usize], GuestAddress(address))
                        .is_err()
                    {
                        status |= DMA_CTL_ERROR;
                    }
                }
                // No kvmbus item is writable (QEMU's user files are not either).
                Op::Write => status |= DMA_CTL_ERROR,
                Op::Skip => {}
            }
            cursor.offset += len;
        }
        address = address.wrapping_add(len as u64);
        length -= len;
    }
    write_control(mem, desc, status);
}

#[cfg(test)]
mod tests {
    use super::super::items::{MachineInfo, FW_CFG_FILE_DIR, FW_CFG_ID, FW_CFG_SIGNATURE};
    use super::*;
    use vm_memory::GuestMemoryMmap;

    const DESC: u64 = 0x1000;
    const BUF: u64 = 0x2000;

    fn setup() -> (GuestMemoryMmap, FwCfgItems) {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let mut items = FwCfgItems::new(MachineInfo {
            ram_size: 0x10000,
            boot_cpus: 1,
            max_cpus: 1,
        });
        items.add_file("opt/blob", b"0123456789".to_vec()).unwrap();
        (mem, items)
    }

    fn desc(mem: &GuestMemoryMmap, at: u64, control: u32, length: u32, address: u64) {
        let mut d = Vec::new();
        d.extend_from_slice(&control.to_be_bytes());
        d.extend_from_slice(&length.to_be_bytes());
        d.extend_from_slice(&address.to_be_bytes());
        mem.write_slice(&d, GuestAddress(at)).unwrap();
    }

    fn control(mem: &GuestMemoryMmap, at: u64) -> u32 {
        let mut b = [0u8; 4];
        mem.read_slice(&mut b, GuestAddress(at)).unwrap();
        u32::from_be_bytes(b)
    }

    fn buf(mem: &GuestMemoryMmap, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        mem.read_slice(&mut b, GuestAddress(BUF)).unwrap();
        b
    }

    #[test]
    fn select_and_read_then_continue_past_the_end_with_zeros() {
        let (mem, items) = setup();
        let mut c = Cursor::default();
        mem.write_slice(&[0xee; 16], GuestAddress(BUF)).unwrap();
        let key = items.file_key("opt/blob").unwrap() as u32;
        desc(
            &mem,
            DESC,
            (key << 16) | DMA_CTL_SELECT | DMA_CTL_READ,
            4,
            BUF,
        );
        transfer(&mem, &items, &mut c, DESC);
        assert_eq!(control(&mem, DESC), 0);
        assert_eq!(&buf(&mem, 5), b"0123\xee");
        // Skip 2, then read 8: 6 bytes of data and 2 zeros.
        desc(&mem, DESC, DMA_CTL_SKIP, 2, 0);
        transfer(&mem, &items, &mut c, DESC);
        desc(&mem, DESC, DMA_CTL_READ, 8, BUF);
        transfer(&mem, &items, &mut c, DESC);
        assert_eq!(control(&mem, DESC), 0);
        assert_eq!(&buf(&mem, 9), b"6789\0\0\0\0\xee");
        assert_eq!(c.offset, 10);
    }

    #[test]
    fn the_port_and_dma_share_the_cursor() {
        let (mem, items) = setup();
        let mut c = Cursor::default();
        c.select(FW_CFG_SIGNATURE);
        c.read_byte(&items);
        desc(&mem, DESC, DMA_CTL_READ, 3, BUF);
        transfer(&mem, &items, &mut c, DESC);
        assert_eq!(&buf(&mem, 3), b"EMU");
        // No operation bit: nothing moves, control is cleared.
        desc(
            &mem,
            DESC,
            (FW_CFG_ID as u32) << 16 | DMA_CTL_SELECT,
            4,
            BUF,
        );
        transfer(&mem, &items, &mut c, DESC);
        assert_eq!(control(&mem, DESC), 0);
        assert_eq!((c.key, c.offset), (FW_CFG_ID, 0));
    }

    #[test]
    fn writes_are_refused_with_the_error_bit() {
        let (mem, items) = setup();
        let mut c = Cursor::default();
        let before = items.data(FW_CFG_SIGNATURE).unwrap().to_vec();
        desc(&mem, DESC, DMA_CTL_WRITE, 2, BUF);
        transfer(&mem, &items, &mut c, DESC);
        assert_eq!(control(&mem, DESC), DMA_CTL_ERROR);
        assert_eq!(items.data(FW_CFG_SIGNATURE).unwrap(), &before[..]);
        // Also past the end / with nothing selected.
        desc(
            &mem,
            DESC,
            (0x7000 << 16) | DMA_CTL_SELECT | DMA_CTL_WRITE,
            2,
            BUF,
        );
        transfer(&mem, &items, &mut c, DESC);
        assert_eq!(control(&mem, DESC), DMA_CTL_ERROR);
    }

    #[test]
    fn memory_outside_ram_sets_the_error_bit() {
        let (mem, items) = setup();
        let mut c = Cursor::default();
        // Buffer beyond RAM.
        desc(
            &mem,
            DESC,
            (FW_CFG_FILE_DIR as u32) << 16 | DMA_CTL_SELECT | DMA_CTL_READ,
            64,
            0x1_0000_0000,
        );
        transfer(&mem, &items, &mut c, DESC);
        assert_eq!(control(&mem, DESC), DMA_CTL_ERROR);
        // A buffer straddling the end of RAM.
        desc(&mem, DESC, DMA_CTL_READ, 64, 0xfff0);
        transfer(&mem, &items, &mut c, DESC);
        assert_eq!(control(&mem, DESC), DMA_CTL_ERROR);
        // A 4 GiB read past the end: zero-filled until RAM ends, then the error bit.
        desc(
            &mem,
            DESC,
            (0x10 << 16) | DMA_CTL_SELECT | DMA_CTL_READ,
            u32::MAX,
            BUF,
        );
        transfer(&mem, &items, &mut c, DESC);
        assert_eq!(control(&mem, DESC), DMA_CTL_ERROR);
        // A descriptor outside RAM: nothing to write back, no panic.
        transfer(&mem, &items, &mut c, 0xffff_fff8);
        transfer(&mem, &items, &mut c, u64::MAX - 4);
        // A descriptor straddling the end: read fails, error written where possible.
        transfer(&mem, &items, &mut c, 0xfffc);
        assert_eq!(control(&mem, 0xfffc), DMA_CTL_ERROR);
    }
}
