//! Checking one descriptor chain: shape (EINVAL) and addresses (EFAULT).
//!
//! The chain is walked here rather than with `virtio_queue::DescriptorChain`'s
//! iterator, because that iterator stops early (at a descriptor that makes the chain
//! longer than 4 GiB) and the ABI needs the whole chain: a bad chain's status goes to
//! its *last* writable buffer of at least 16 bytes. The walk follows virtio 1.x: a
//! chain visits at most `queue size` descriptors (a loop ends it), an indirect table
//! (length a non-zero multiple of 16, at most 65535 entries, not nested) replaces the
//! rest of the chain. A chain of more than [`MAX_CHAIN`] descriptors in all is broken
//! there, as QEMU refuses one (`VIRTQUEUE_MAX_SIZE`): without that bound every entry
//! of the available ring could ask for a walk of 65535 indirect descriptors. Only the
//! first two descriptors and the last usable writable one are kept, so a chain costs
//! O(1) memory and at most [`MAX_CHAIN`] + 1 descriptor reads.

use vm_memory::{Bytes, GuestAddress, GuestMemory, Permissions};

use crate::abi::{Request, Status, REQUEST_SIZE, RESPONSE_SIZE};

/// What a chain holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// A well-formed call; the response goes to `resp_addr`.
    Call {
        /// The request read from the readable buffer.
        req: Request,
        /// Guest address of the writable buffer.
        resp_addr: u64,
    },
    /// A bad chain: answer `status` at `resp_addr` if there is a usable writable buffer.
    Bad {
        /// EINVAL or EFAULT.
        status: Status,
        /// Where the status can be written, if anywhere.
        resp_addr: Option<u64>,
    },
}

/// Most descriptors a chain may have, direct and indirect together (QEMU's
/// `VIRTQUEUE_MAX_SIZE`); a longer chain is malformed.
pub(crate) const MAX_CHAIN: usize = 1024;

const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const F_INDIRECT: u16 = 4;

/// One descriptor as the guest wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Desc {
    pub addr: u64,
    pub len: u32,
    pub flags: u16,
    pub next: u16,
}

impl Desc {
    fn writable(&self) -> bool {
        self.flags & F_WRITE != 0
    }
}

/// What a walk found.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    /// The first two descriptors.
    pub first: [Option<Desc>; 2],
    /// Descriptors in the chain (indirect table descriptors not counted).
    pub count: usize,
    /// The last writable descriptor of at least 16 bytes whose first 16 bytes are in
    /// guest memory.
    pub last_writable: Option<u64>,
    /// False if the chain was broken: a loop, an index out of its table, an unreadable
    /// descriptor, a bad or nested indirect table, more than [`MAX_CHAIN`] descriptors.
    pub complete: bool,
}

fn read_desc<M: GuestMemory>(mem: &M, table: u64, index: u16) -> Option<Desc> {
    let at = table.checked_add(16 * u64::from(index))?;
    let mut b = [0u8; 16];
    mem.read_slice(&mut b, GuestAddress(at)).ok()?;
    Some(Desc {
        addr: u64::from_le_bytes(b[0..8].try_into().ok()?),
        len: u32::from_le_bytes(b[8..12].try_into().ok()?),
        flags: u16::from_le_bytes(b[12..14].try_into().ok()?),
        next: u16::from_le_bytes(b[14..16].try_into().ok()?),
    })
}

/// Walks the chain at `head` of the descriptor table at `table` (`size` entries).
pub(crate) fn walk<M: GuestMemory>(mem: &M, table: u64, size: u16, head: u16) -> Walk {
    let mut w = Walk::default();
    let (mut table, mut size, mut index) = (table, size, head);
    let mut ttl = size;
    let mut indirect = false;
    loop {
        if index >= size || ttl == 0 || w.count >= MAX_CHAIN {
            return w;
        }
        let Some(d) = read_desc(mem, table, index) else {
            return w;
        };
        if d.flags & F_INDIRECT != 0 {
            if indirect || d.len == 0 || d.len % 16 != 0 || d.len / 16 > u32::from(u16::MAX) {
                return w;
            }
            (table, size, index, indirect) = (d.addr, (d.len / 16) as u16, 0, true);
            ttl = size;
            continue;
        }
        if w.count < 2 {
            w.first[w.count] = Some(d);
        }
        w.count += 1;
        if d.writable()
            && d.len as usize >= RESPONSE_SIZE
            && mem.check_range(GuestAddress(d.addr), RESPONSE_SIZE, Permissions::Write)
        {
            w.last_writable = Some(d.addr);
        }
        if d.flags & F_NEXT == 0 {
            w.complete = true;
            return w;
        }
        index = d.next;
        ttl -= 1;
    }
}

fn whole_buffer<M: GuestMemory>(mem: &M, d: &Desc, p: Permissions) -> bool {
    mem.check_range(GuestAddress(d.addr), d.len as usize, p)
}

/// Reads and checks the chain at `head`. Never touches memory outside the guest.
///
/// A chain of the right shape whose readable buffer is not wholly in guest memory gets
/// EFAULT in its response buffer; one whose writable buffer is not wholly inside gets
/// EFAULT there if its first 16 bytes are (else nothing can be written). Any other
/// shape gets EINVAL in its last writable buffer of at least 16 bytes, if any.
pub(crate) fn parse_chain<M: GuestMemory>(mem: &M, table: u64, size: u16, head: u16) -> Parsed {
    let w = walk(mem, table, size, head);
    let shaped = match (w.complete, w.count, w.first) {
        (true, 2, [Some(rd), Some(wr)])
            if !rd.writable()
                && rd.len as usize >= REQUEST_SIZE
                && wr.writable()
                && wr.len as usize >= RESPONSE_SIZE =>
        {
            Some((rd, wr))
        }
        _ => None,
    };
    let Some((rd, wr)) = shaped else {
        return Parsed::Bad {
            status: Status::Einval,
            resp_addr: w.last_writable,
        };
    };
    let Some(resp_addr) = w.last_writable.filter(|a| *a == wr.addr) else {
        return Parsed::Bad {
            status: Status::Efault,
            resp_addr: None,
        };
    };
    let mut buf = [0u8; REQUEST_SIZE];
    if !whole_buffer(mem, &wr, Permissions::Write)
        || !whole_buffer(mem, &rd, Permissions::Read)
        || mem.read_slice(&mut buf, GuestAddress(rd.addr)).is_err()
    {
        return Parsed::Bad {
            status: Status::Efault,
            resp_addr: Some(resp_addr),
        };
    }
    Parsed::Call {
        req: Request::from_bytes(&buf),
        resp_addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    const MEM: u64 = 1 << 20;
    const TABLE: u64 = 0x1000;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM as usize)]).unwrap()
    }

    fn put(m: &GuestMemoryMmap, table: u64, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..16].copy_from_slice(&next.to_le_bytes());
        m.write_slice(&d, GuestAddress(table + 16 * u64::from(i)))
            .unwrap();
    }

    #[test]
    fn a_readable_buffer_of_4_gib_gets_efault_in_the_response() {
        let m = mem();
        put(&m, TABLE, 0, 0x8000, u32::MAX, F_NEXT, 1);
        put(&m, TABLE, 1, 0x9000, 16, F_WRITE, 0);
        assert_eq!(
            parse_chain(&m, TABLE, 16, 0),
            Parsed::Bad {
                status: Status::Efault,
                resp_addr: Some(0x9000)
            }
        );
    }

    #[test]
    fn a_32_descriptor_indirect_chain_gets_einval_in_its_last_writable_buffer() {
        let m = mem();
        let ind = 0x4000;
        for i in 0..31 {
            put(&m, ind, i, 0x8000, 56, F_NEXT, i + 1);
        }
        put(&m, ind, 31, 0x9000, 16, F_WRITE, 0);
        put(&m, TABLE, 0, ind, 32 * 16, F_INDIRECT, 0);
        assert_eq!(
            parse_chain(&m, TABLE, 16, 0),
            Parsed::Bad {
                status: Status::Einval,
                resp_addr: Some(0x9000)
            }
        );
    }

    #[test]
    fn an_indirect_pair_is_a_call() {
        let m = mem();
        put(&m, 0x4000, 0, 0x8000, 56, F_NEXT, 1);
        put(&m, 0x4000, 1, 0x9000, 16, F_WRITE, 0);
        put(&m, TABLE, 3, 0x4000, 32, F_INDIRECT, 0);
        assert!(matches!(
            parse_chain(&m, TABLE, 16, 3),
            Parsed::Call {
                resp_addr: 0x9000,
                ..
            }
        ));
    }

    #[test]
    fn loops_nesting_and_bad_tables_end_the_walk() {
        let m = mem();
        // A loop: 0 -> 1 -> 0 ...
        put(&m, TABLE, 0, 0x8000, 56, F_NEXT, 1);
        put(&m, TABLE, 1, 0x9000, 16, F_WRITE | F_NEXT, 0);
        let w = walk(&m, TABLE, 16, 0);
        assert!(!w.complete);
        assert_eq!(w.count, 16);
        assert_eq!(
            parse_chain(&m, TABLE, 16, 0),
            Parsed::Bad {
                status: Status::Einval,
                resp_addr: Some(0x9000)
            }
        );
        // Nested indirect, and a table length not a multiple of 16.
        put(&m, 0x4000, 0, 0x5000, 32, F_INDIRECT, 0);
        put(&m, TABLE, 2, 0x4000, 16, F_INDIRECT, 0);
        put(&m, TABLE, 3, 0x4000, 17, F_INDIRECT, 0);
        put(&m, TABLE, 4, 0x4000, 0, F_INDIRECT, 0);
        for h in [2, 3, 4, 16, u16::MAX] {
            assert_eq!(
                parse_chain(&m, TABLE, 16, h),
                Parsed::Bad {
                    status: Status::Einval,
                    resp_addr: None
                },
                "head {h}"
            );
        }
        // A table outside memory.
        assert_eq!(walk(&m, MEM - 8, 16, 0).count, 0);
    }

    #[test]
    fn a_chain_ends_at_max_chain_descriptors() {
        let m = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 2 << 20)]).unwrap();
        // A full indirect table of 65535 entries, each chained to the next.
        let ind = 0x10_0000;
        let mut table = vec![0u8; 65535 * 16];
        for (i, d) in table.chunks_mut(16).enumerate() {
            d[0..8].copy_from_slice(&0x8000u64.to_le_bytes());
            d[8..12].copy_from_slice(&56u32.to_le_bytes());
            d[12..14].copy_from_slice(&F_NEXT.to_le_bytes());
            d[14..16].copy_from_slice(&(i as u16 + 1).to_le_bytes());
        }
        m.write_slice(&table, GuestAddress(ind)).unwrap();
        put(&m, TABLE, 0, ind, 65535 * 16, F_INDIRECT, 0);
        let w = walk(&m, TABLE, 16, 0);
        assert!(!w.complete);
        assert_eq!(w.count, MAX_CHAIN);
        // A chain of exactly MAX_CHAIN descriptors is still whole (and malformed).
        put(&m, ind, MAX_CHAIN as u16 - 1, 0x9000, 16, F_WRITE, 0);
        let w = walk(&m, TABLE, 16, 0);
        assert!(w.complete);
        assert_eq!((w.count, w.last_writable), (MAX_CHAIN, Some(0x9000)));
    }

    /// The fuzz input kept from `hypercall_ring` (fuzz/): 256 available entries whose
    /// chains each walked a 28672-entry indirect table, 10 s per ring pass under ASan.
    /// Replayed as the fuzz target does (64 KiB of memory, then one ring pass), with
    /// every chain bounded.
    #[test]
    fn fuzz_regression_long_indirect_chains() {
        let input = include_bytes!("../../tests/fuzz-regressions/ring-long-indirect-chains.bin");
        let u16_at = |i: usize| u64::from(u16::from_le_bytes([input[i], input[i + 1]]));
        let size = 1u16 << (input[0] % 9);
        let (desc, avail, used) = (u16_at(1) & !15, u16_at(3) & !1, u16_at(5) & !3);
        let m = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 64 << 10)]).unwrap();
        m.write_slice(&input[7..], GuestAddress(0)).unwrap();
        let longest = (0..size)
            .map(|h| walk(&m, desc, size, h).count)
            .max()
            .unwrap();
        assert!(longest <= MAX_CHAIN, "a chain of {longest} descriptors");
        let done = super::super::test_driver::ring_pass(&m, size, desc, avail, used);
        assert!(done.is_ok(), "{done:?}");
    }
}
