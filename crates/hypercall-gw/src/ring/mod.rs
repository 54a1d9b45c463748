//! Split-virtqueue processing shared by the gateway's queue threads and by direct
//! external backends: popping chains with `virtio-queue`, checking their shape and
//! addresses, writing responses and used entries, and the interrupt-suppression rule.
//!
//! A request is a chain of exactly two descriptors: a device-readable buffer of at
//! least 56 bytes (nr, flags, args) followed by a device-writable buffer of at least 16
//! bytes (ret, status, reserved). Indirect descriptors are followed as in virtio 1.x.
//! Every popped chain gets exactly one used entry, with `len` 16 when the response was
//! written and 0 when no writable buffer could hold it.

pub(crate) mod parse;

use std::sync::atomic::Ordering;

use virtio_queue::{Queue, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemory};

use crate::abi::{Response, RESPONSE_SIZE};
pub(crate) use parse::{parse_chain, Parsed};

/// Avail-ring flag: the guest does not want an interrupt for used buffers.
pub const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;

/// A popped request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Popped {
    /// Head descriptor index: the used entry's id.
    pub head: u16,
    /// What the chain holds.
    pub parsed: Parsed,
}

/// Pops every chain the guest has made available into `out`. Returns true if more may
/// have arrived while notifications were suppressed (call again before sleeping).
/// While popping, the used ring's NO_NOTIFY flag tells the guest it may skip the
/// doorbell.
///
/// The available ring is read here rather than with `Queue::iter`, which refuses an
/// available ring at guest-physical address 0 (taking it for an unset address): every
/// ring address inside guest memory is served alike. An available index more than the
/// queue size ahead is an error (the queue stops until reset).
pub(crate) fn pop_available<M: GuestMemory>(
    q: &mut Queue,
    mem: &M,
    out: &mut Vec<Popped>,
) -> Result<bool, virtio_queue::Error> {
    q.disable_notification(mem)?;
    let avail = q.avail_idx(mem, Ordering::Acquire)?.0;
    let next = q.next_avail();
    let pending = avail.wrapping_sub(next);
    if pending > q.size() {
        return Err(virtio_queue::Error::InvalidAvailRingIndex);
    }
    let (table, size, ring) = (q.desc_table(), q.size(), q.avail_ring());
    for i in 0..pending {
        let slot = u64::from(next.wrapping_add(i) % size);
        let head: u16 = mem
            .read_obj::<u16>(GuestAddress(ring + 4 + 2 * slot))
            .map_err(virtio_queue::Error::GuestMemory)?;
        let head = u16::from_le(head);
        let parsed = parse_chain(mem, table, size, head);
        out.push(Popped { head, parsed });
    }
    q.set_next_avail(avail);
    q.enable_notification(mem)
}

/// Writes `resp` to `resp_addr` (if any) and adds the used entry `head` with len 16
/// (response written) or 0. Unlike `Queue::add_used` this accepts any head value, so
/// a chain with an out-of-range head still gets its used entry.
pub(crate) fn complete<M: GuestMemory>(
    q: &mut Queue,
    mem: &M,
    head: u16,
    resp_addr: Option<u64>,
    resp: Response,
) -> Result<(), vm_memory::GuestMemoryError> {
    let mut len = 0;
    if let Some(a) = resp_addr {
        mem.write_slice(&resp.to_bytes(), GuestAddress(a))?;
        len = RESPONSE_SIZE as u32;
    }
    push_used(q, mem, u32::from(head), len)
}

/// Appends one used element and publishes the new used index.
fn push_used<M: GuestMemory>(
    q: &mut Queue,
    mem: &M,
    id: u32,
    len: u32,
) -> Result<(), vm_memory::GuestMemoryError> {
    let next = q.next_used();
    let used = GuestAddress(q.used_ring());
    let slot = 4 + 8 * u64::from(next % q.size());
    let mut elem = [0u8; 8];
    elem[..4].copy_from_slice(&id.to_le_bytes());
    elem[4..].copy_from_slice(&len.to_le_bytes());
    mem.write_slice(&elem, used.unchecked_add(slot))?;
    let new = next.wrapping_add(1);
    q.set_next_used(new);
    mem.store(new.to_le(), used.unchecked_add(2), Ordering::Release)
}

/// True unless the guest set VIRTQ_AVAIL_F_NO_INTERRUPT in the available ring.
pub(crate) fn wants_interrupt<M: GuestMemory>(q: &Queue, mem: &M) -> bool {
    std::sync::atomic::fence(Ordering::SeqCst);
    mem.load::<u16>(GuestAddress(q.avail_ring()), Ordering::Acquire)
        .map(|f| u16::from_le(f) & VIRTQ_AVAIL_F_NO_INTERRUPT == 0)
        .unwrap_or(true)
}

/// The used index as the guest sees it.
pub(crate) fn used_idx<M: GuestMemory>(q: &Queue, mem: &M) -> Option<u16> {
    q.used_idx(mem, Ordering::Acquire).ok().map(|w| w.0)
}

/// The available index as the guest wrote it.
pub(crate) fn avail_idx<M: GuestMemory>(q: &Queue, mem: &M) -> Option<u16> {
    q.avail_idx(mem, Ordering::Acquire).ok().map(|w| w.0)
}

#[cfg(any(test, feature = "test-utils"))]
pub mod test_driver;
