//! BAR0: the register file of ABI version 1.

use std::sync::atomic::Ordering;

use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemory, Permissions};

use super::GatewayFunction;
use crate::abi::{reg, ABI_VERSION, NO_VECTOR};
use crate::queue::{Ctl, QueueSetup};

/// One queue's registers.
#[derive(Clone, Copy, Debug)]
pub(super) struct QueueRegs {
    size: u32,
    desc: u32,
    avail: u32,
    used: u32,
    addr_hi: u32,
    vector: u32,
    enabled: bool,
}

impl QueueRegs {
    /// Reset state: size = max, addresses 0, no vector, disabled.
    pub(super) fn new(max: u16) -> QueueRegs {
        QueueRegs {
            size: u32::from(max),
            desc: 0,
            avail: 0,
            used: 0,
            addr_hi: 0,
            vector: u32::from(NO_VECTOR),
            enabled: false,
        }
    }

    fn addr(&self, lo: u32) -> u64 {
        u64::from(self.addr_hi) << 32 | u64::from(lo)
    }
}

impl GatewayFunction {
    fn selected(&mut self) -> Option<(usize, &mut QueueRegs)> {
        let i = self.queue_sel as usize;
        self.queues.get_mut(i).map(|q| (i, q))
    }

    pub(super) fn reg_read(&mut self, off: u64) -> u32 {
        let sel = self.queues.get(self.queue_sel as usize).copied();
        let q = |f: fn(&QueueRegs) -> u32| sel.as_ref().map_or(0, f);
        match off {
            reg::VERSION => ABI_VERSION,
            reg::FEATURES => self.features,
            reg::QUEUE_SEL => self.queue_sel,
            reg::QUEUE_SIZE => q(|r| r.size),
            reg::QUEUE_DESC => q(|r| r.desc),
            reg::QUEUE_AVAIL => q(|r| r.avail),
            reg::QUEUE_USED => q(|r| r.used),
            reg::QUEUE_ADDR_HI => q(|r| r.addr_hi),
            reg::QUEUE_VECTOR => sel.map_or(u32::from(NO_VECTOR), |r| r.vector),
            reg::QUEUE_ENABLE => q(|r| u32::from(r.enabled)),
            reg::ISR => u32::from(self.isr.swap(0, Ordering::SeqCst)),
            _ => 0,
        }
    }

    pub(super) fn reg_write(&mut self, off: u64, v: u32) {
        match off {
            // CALL_LO and CALL_HI never get here: `SyncPath` serves them unlocked.
            reg::QUEUE_SEL => self.queue_sel = v,
            reg::QUEUE_NOTIFY => {
                // Normally an ioeventfd; this is the fallback when it is not registered.
                if let Some(p) = self.ports.get(v as usize) {
                    let _ = p.doorbell.write(1);
                }
            }
            reg::QUEUE_ENABLE => self.set_enable(v),
            reg::QUEUE_VECTOR => {
                let vectors = u32::from(self.vectors);
                if let Some((_, q)) = self.selected().filter(|(_, q)| !q.enabled) {
                    let v = v & 0xFFFF;
                    q.vector = if v < vectors { v } else { u32::from(NO_VECTOR) };
                }
            }
            reg::QUEUE_SIZE
            | reg::QUEUE_DESC
            | reg::QUEUE_AVAIL
            | reg::QUEUE_USED
            | reg::QUEUE_ADDR_HI => {
                let max = u32::from(self.max_queue_size);
                let Some((_, q)) = self.selected().filter(|(_, q)| !q.enabled) else {
                    return;
                };
                match off {
                    reg::QUEUE_SIZE if v.is_power_of_two() && v <= max => q.size = v,
                    reg::QUEUE_DESC => q.desc = v,
                    reg::QUEUE_AVAIL => q.avail = v,
                    reg::QUEUE_USED => q.used = v,
                    reg::QUEUE_ADDR_HI => q.addr_hi = v,
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn set_enable(&mut self, v: u32) {
        let max = self.max_queue_size;
        let Some((i, q)) = self.selected() else {
            return;
        };
        match (v & 1 == 1, q.enabled) {
            (true, false) => {
                let setup = QueueSetup {
                    size: q.size as u16,
                    desc: q.addr(q.desc),
                    avail: q.addr(q.avail),
                    used: q.addr(q.used),
                    vector: q.vector as u16,
                };
                if !self.ring_valid(max, &setup) {
                    guard::guest_log!(log::Level::Warn, "hypercall-gw: queue {i}: rings invalid or outside guest memory; not enabled");
                    return;
                }
                if let Some((_, q)) = self.selected() {
                    q.enabled = true;
                }
                self.ports[i].send(Ctl::Enable(setup));
            }
            (false, true) => {
                q.enabled = false;
                self.ports[i].send(Ctl::Disable);
            }
            _ => {}
        }
    }

    /// Size, alignment (16/2/4) and every ring byte inside guest memory.
    fn ring_valid(&self, max: u16, s: &QueueSetup) -> bool {
        let Ok(mut q) = Queue::new(max) else {
            return false;
        };
        if q.try_set_size(s.size).is_err() {
            return false;
        }
        for (addr, set) in [
            (
                s.desc,
                Queue::try_set_desc_table_address as fn(&mut Queue, _) -> _,
            ),
            (s.avail, Queue::try_set_avail_ring_address),
            (s.used, Queue::try_set_used_ring_address),
        ] {
            if set(&mut q, GuestAddress(addr)).is_err() {
                return false;
            }
        }
        // `Queue::is_valid` would answer the same but logs an error line per refusal,
        // which a guest could repeat without limit: the ranges are checked here, quietly
        // (the caller's one line is rate-limited).
        let n = u64::from(s.size);
        [
            (s.desc, 16 * n, Permissions::Read),
            (s.avail, 6 + 2 * n, Permissions::Read),
            (s.used, 6 + 8 * n, Permissions::Write),
        ]
        .into_iter()
        .all(|(at, len, p)| self.mem.check_range(GuestAddress(at), len as usize, p))
    }
}
