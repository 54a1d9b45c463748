//! Doorbell ioeventfds kept registered at a BAR's previous addresses.
//!
//! Deassigning an ioeventfd makes KVM wait for an SRCU grace period
//! (`kvm_io_bus_unregister_dev` → `synchronize_srcu_expedited`); on the development
//! machines (nested KVM-PVM) the first deassign after the guest ran takes 5-10 ms, so an
//! I/O BAR with doorbells cost ~9 ms per move against ~0.1 ms for a BAR without (the
//! assigns take ~15 µs). So a BAR that moves or stops decoding leaves its doorbells
//! registered where they were: moving back finds them in place (no ioctl at all), and
//! a guest that moves BARs back and forth (or toggles decoding, as BAR sizing does)
//! pays nothing. A kept doorbell is deassigned only when another range is mapped over
//! it (before that range goes live, so it never swallows another device's writes) or
//! when more than [`MAX_KEPT`] are kept for one BAR. Until then a write to a kept
//! address only wakes the doorbell's server, which treats every wake as a hint.

use std::collections::VecDeque;

use kvm_ioctls::IoEventAddress;
use pci_emu::{Bdf, IoEventSpec};

/// Doorbells kept per BAR.
pub(crate) const MAX_KEPT: usize = 16;

/// One kept registration.
pub(crate) struct Kept {
    pub(crate) owner: (Bdf, u8),
    pub(crate) addr: IoEventAddress,
    pub(crate) spec: IoEventSpec,
}

fn same(a: IoEventAddress, b: IoEventAddress) -> bool {
    match (a, b) {
        (IoEventAddress::Pio(x), IoEventAddress::Pio(y)) => x == y,
        (IoEventAddress::Mmio(x), IoEventAddress::Mmio(y)) => x == y,
        _ => false,
    }
}

/// The kept registrations, oldest first.
#[derive(Default)]
pub(crate) struct KeptIoEvents(VecDeque<Kept>);

impl KeptIoEvents {
    /// Keeps `addr`/`spec` of `owner`; returns what must be deassigned now (the oldest
    /// of `owner` beyond [`MAX_KEPT`]).
    pub(crate) fn keep(
        &mut self,
        owner: (Bdf, u8),
        addr: IoEventAddress,
        spec: IoEventSpec,
    ) -> Vec<Kept> {
        self.0.push_back(Kept { owner, addr, spec });
        let mut out = Vec::new();
        while self.0.iter().filter(|k| k.owner == owner).count() > MAX_KEPT {
            let i = self.0.iter().position(|k| k.owner == owner).unwrap_or(0);
            out.extend(self.0.remove(i));
        }
        out
    }

    /// Takes back the registration of `spec` at `addr`, if it is kept.
    pub(crate) fn reuse(&mut self, addr: IoEventAddress, spec: &IoEventSpec) -> bool {
        let found = self.0.iter().position(|k| {
            same(k.addr, addr)
                && std::sync::Arc::ptr_eq(&k.spec.fd, &spec.fd)
                && k.spec.len == spec.len
                && k.spec.datamatch == spec.datamatch
        });
        found.and_then(|i| self.0.remove(i)).is_some()
    }

    /// Removes and returns every kept registration in `[base, base + size)` of the
    /// memory (`memory`) or I/O space.
    pub(crate) fn evict(&mut self, memory: bool, base: u64, size: u64) -> Vec<Kept> {
        let inside = |k: &Kept| {
            let (m, a) = match k.addr {
                IoEventAddress::Pio(a) => (false, a),
                IoEventAddress::Mmio(a) => (true, a),
            };
            m == memory
                && a.saturating_add(u64::from(k.spec.len)) > base
                && a < base.saturating_add(size)
        };
        let (out, keep): (VecDeque<Kept>, VecDeque<Kept>) = self.0.drain(..).partition(inside);
        self.0 = keep;
        out.into()
    }

    /// Registrations kept.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}
