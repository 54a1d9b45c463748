//! A guest-side split-ring driver for tests and benchmarks (feature `test-utils`):
//! lays out a queue in guest memory, posts requests, reads used entries.
//!
//! Layout from `base`: descriptor table (16 × size), available ring (6 + 2 × size),
//! used ring (4-aligned, 6 + 8 × size), then one 128-byte slot per request pair:
//! request (56 bytes) at +0, response (16 bytes) at +64. Slot `i` uses descriptors
//! `2i` and `2i + 1`, so `size / 2` requests can be in flight.

use std::sync::atomic::Ordering;

use vm_memory::{Bytes, GuestAddress, GuestMemory};

use crate::abi::{Request, Response, RESPONSE_SIZE};

/// Descriptor flag: another descriptor follows.
pub const F_NEXT: u16 = 1;
/// Descriptor flag: device-writable.
pub const F_WRITE: u16 = 2;
/// Descriptor flag: indirect table.
pub const F_INDIRECT: u16 = 4;
const SLOT: u64 = 128;

/// One ring as a guest driver sees it.
#[derive(Debug, Clone)]
pub struct RingDriver {
    /// Queue size.
    pub size: u16,
    /// Descriptor table address.
    pub desc: u64,
    /// Available ring address.
    pub avail: u64,
    /// Used ring address.
    pub used: u64,
    /// Request/response slots.
    pub data: u64,
    avail_idx: u16,
    used_seen: u16,
    free: Vec<u16>,
}

impl RingDriver {
    /// Bytes of guest memory a ring of `size` needs.
    pub fn footprint(size: u16) -> u64 {
        let s = u64::from(size);
        let used = (16 * s + 6 + 2 * s + 3) & !3;
        used + 6 + 8 * s + 8 + SLOT * s / 2
    }

    /// A ring at `base` (16-byte aligned). Memory must be zeroed.
    pub fn new(base: u64, size: u16) -> RingDriver {
        let s = u64::from(size);
        let desc = base;
        let avail = desc + 16 * s;
        let used = (avail + 6 + 2 * s + 3) & !3;
        let data = (used + 6 + 8 * s + 15) & !15;
        RingDriver {
            size,
            desc,
            avail,
            used,
            data,
            avail_idx: 0,
            used_seen: 0,
            free: (0..size / 2).rev().collect(),
        }
    }

    /// Address of slot `slot`'s request buffer.
    pub fn req_addr(&self, slot: u16) -> u64 {
        self.data + SLOT * u64::from(slot)
    }

    /// Address of slot `slot`'s response buffer.
    pub fn resp_addr(&self, slot: u16) -> u64 {
        self.req_addr(slot) + 64
    }

    /// Writes descriptor `index`.
    pub fn write_desc<M: GuestMemory>(
        &self,
        mem: &M,
        index: u16,
        addr: u64,
        len: u32,
        flags: u16,
        next: u16,
    ) {
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..16].copy_from_slice(&next.to_le_bytes());
        let at = GuestAddress(self.desc + 16 * u64::from(index % self.size));
        mem.write_slice(&d, at).expect("descriptor in memory");
    }

    /// Puts head `head` in the available ring and publishes the new index.
    pub fn publish<M: GuestMemory>(&mut self, mem: &M, head: u16) {
        let slot = u64::from(self.avail_idx % self.size);
        mem.write_obj(head.to_le(), GuestAddress(self.avail + 4 + 2 * slot))
            .expect("avail ring in memory");
        self.avail_idx = self.avail_idx.wrapping_add(1);
        mem.store(
            self.avail_idx.to_le(),
            GuestAddress(self.avail + 2),
            Ordering::Release,
        )
        .expect("avail idx in memory");
    }

    /// Posts a request in a free slot; returns the slot (= head / 2), or `None` if all
    /// slots are in flight.
    pub fn post<M: GuestMemory>(&mut self, mem: &M, req: &Request) -> Option<u16> {
        let slot = self.free.pop()?;
        mem.write_slice(&req.to_bytes(), GuestAddress(self.req_addr(slot)))
            .expect("slot in memory");
        mem.write_slice(&[0xEE; RESPONSE_SIZE], GuestAddress(self.resp_addr(slot)))
            .expect("slot in memory");
        let (h, w) = (2 * slot, 2 * slot + 1);
        self.write_desc(mem, h, self.req_addr(slot), 56, F_NEXT, w);
        self.write_desc(mem, w, self.resp_addr(slot), 16, F_WRITE, 0);
        self.publish(mem, h);
        Some(slot)
    }

    /// Returns the slot of a completed request to the free list.
    pub fn release(&mut self, slot: u16) {
        self.free.push(slot);
    }

    /// New used entries `(id, len)` since the last call.
    pub fn take_used<M: GuestMemory>(&mut self, mem: &M) -> Vec<(u32, u32)> {
        let idx: u16 = mem
            .load(GuestAddress(self.used + 2), Ordering::Acquire)
            .expect("used ring in memory");
        let mut out = Vec::new();
        while self.used_seen != u16::from_le(idx) {
            let at = self.used + 4 + 8 * u64::from(self.used_seen % self.size);
            let mut e = [0u8; 8];
            mem.read_slice(&mut e, GuestAddress(at))
                .expect("used ring in memory");
            out.push((
                u32::from_le_bytes([e[0], e[1], e[2], e[3]]),
                u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
            ));
            self.used_seen = self.used_seen.wrapping_add(1);
        }
        out
    }

    /// The response in slot `slot`.
    pub fn response<M: GuestMemory>(&self, mem: &M, slot: u16) -> Response {
        let mut b = [0u8; RESPONSE_SIZE];
        mem.read_slice(&mut b, GuestAddress(self.resp_addr(slot)))
            .expect("slot in memory");
        Response::from_bytes(&b)
    }

    /// Sets or clears VIRTQ_AVAIL_F_NO_INTERRUPT.
    pub fn set_no_interrupt<M: GuestMemory>(&self, mem: &M, on: bool) {
        mem.write_obj(u16::from(on).to_le(), GuestAddress(self.avail))
            .expect("avail ring in memory");
    }

    /// The used ring's flags (bit 0: NO_NOTIFY).
    pub fn used_flags<M: GuestMemory>(&self, mem: &M) -> u16 {
        u16::from_le(
            mem.read_obj(GuestAddress(self.used))
                .expect("used ring in memory"),
        )
    }
}

/// One pass of the ring processor as a queue thread makes it on a doorbell, for fuzzing
/// and tests: a queue of `size` with the given ring addresses (refused, as by
/// QUEUE_ENABLE, if misaligned or not in guest memory) has every available chain popped
/// and completed (a call with `ret` 0, a bad chain with its status). Returns the
/// chains completed, or why the queue stopped.
pub fn ring_pass<M: GuestMemory>(
    mem: &M,
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
) -> Result<usize, String> {
    use virtio_queue::{Queue, QueueT};
    let mut q = Queue::new(size).map_err(|e| e.to_string())?;
    q.try_set_size(size).map_err(|e| e.to_string())?;
    q.try_set_desc_table_address(GuestAddress(desc))
        .map_err(|e| e.to_string())?;
    q.try_set_avail_ring_address(GuestAddress(avail))
        .map_err(|e| e.to_string())?;
    q.try_set_used_ring_address(GuestAddress(used))
        .map_err(|e| e.to_string())?;
    q.set_ready(true);
    if !q.is_valid(mem) {
        return Err("rings outside guest memory".into());
    }
    let mut popped = Vec::new();
    let mut done = 0;
    for _ in 0..4 {
        popped.clear();
        let more = super::pop_available(&mut q, mem, &mut popped).map_err(|e| e.to_string())?;
        for p in &popped {
            let (resp_addr, resp) = match p.parsed {
                super::Parsed::Call { resp_addr, .. } => (Some(resp_addr), Response::ok(0)),
                super::Parsed::Bad { status, resp_addr } => (resp_addr, Response::err(status)),
            };
            super::complete(&mut q, mem, p.head, resp_addr, resp).map_err(|e| e.to_string())?;
            done += 1;
        }
        if !more {
            break;
        }
    }
    Ok(done)
}
