//! The GSI routing table as KVM holds it, and the allocator of MSI GSIs.
//!
//! KVM_SET_GSI_ROUTING replaces the *whole* table, so every push carries KVM's default
//! legacy routes ([`default_routes`]) followed by the MSI routes of the live vectors.

use std::collections::{BTreeMap, BTreeSet};

use kvm_bindings::{KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE};
use pci_emu::MsiMessage;

use crate::{Error, GsiRoute, Result};

/// GSIs below this are the legacy lines (ISA IRQs and IOAPIC pins); MSI GSIs start here.
pub(crate) const FIRST_MSI_GSI: u32 = 24;

/// KVM's default x86 table (`default_routing` in arch/x86/kvm/irq_comm.c): GSI 0-15 go
/// to IOAPIC pin n *and* to PIC pin n % 8 (master for 0-7, slave for 8-15); GSI 16-23
/// go to IOAPIC pins 16-23. Setting a table without them would disconnect the PIT, the
/// serial port and every INTx line, so they stay in every push.
pub(crate) fn default_routes() -> Vec<GsiRoute> {
    let mut routes = Vec::with_capacity(40);
    for gsi in 0..FIRST_MSI_GSI {
        routes.push(GsiRoute::Irqchip {
            gsi,
            chip: KVM_IRQCHIP_IOAPIC,
            pin: gsi,
        });
        if gsi < 16 {
            let chip = if gsi < 8 {
                KVM_IRQCHIP_PIC_MASTER
            } else {
                KVM_IRQCHIP_PIC_SLAVE
            };
            routes.push(GsiRoute::Irqchip {
                gsi,
                chip,
                pin: gsi % 8,
            });
        }
    }
    routes
}

/// The routing table mirrored from what KVM was last given.
pub(crate) struct RouteTable {
    defaults: Vec<GsiRoute>,
    msi: BTreeMap<u32, MsiMessage>,
}

impl RouteTable {
    pub(crate) fn new() -> Self {
        RouteTable {
            defaults: default_routes(),
            msi: BTreeMap::new(),
        }
    }

    /// Number of default entries (they count against KVM's entry limit).
    pub(crate) fn default_len(&self) -> usize {
        self.defaults.len()
    }

    /// Routes `gsi` to `message`; returns the previous message.
    pub(crate) fn insert(&mut self, gsi: u32, message: MsiMessage) -> Option<MsiMessage> {
        self.msi.insert(gsi, message)
    }

    /// Drops the route of `gsi`.
    pub(crate) fn remove(&mut self, gsi: u32) -> Option<MsiMessage> {
        self.msi.remove(&gsi)
    }

    /// The full table to hand to KVM_SET_GSI_ROUTING.
    pub(crate) fn entries(&self) -> Vec<GsiRoute> {
        let mut all = Vec::with_capacity(self.defaults.len() + self.msi.len());
        all.extend_from_slice(&self.defaults);
        all.extend(
            self.msi
                .iter()
                .map(|(&gsi, &message)| GsiRoute::Msi { gsi, message }),
        );
        all
    }
}

/// Hands out MSI GSIs, lowest free first, from [`FIRST_MSI_GSI`] up.
///
/// KVM bounds both the GSI number (`gsi < max_routes`) and the number of table entries
/// (`entries <= max_routes`). The default routes take 40 entries for 24 GSIs, so at most
/// `max_routes - 40` MSI GSIs can be live at once; that is the capacity here, and it
/// keeps every GSI below `max_routes` as well.
pub(crate) struct GsiAllocator {
    limit: u32,
    capacity: usize,
    next: u32,
    freed: BTreeSet<u32>,
    in_use: usize,
}

impl GsiAllocator {
    pub(crate) fn new(max_routes: u32, default_entries: usize) -> Self {
        let by_number = max_routes.saturating_sub(FIRST_MSI_GSI) as usize;
        let by_entries = (max_routes as usize).saturating_sub(default_entries);
        GsiAllocator {
            limit: max_routes,
            capacity: by_number.min(by_entries),
            next: FIRST_MSI_GSI,
            freed: BTreeSet::new(),
            in_use: 0,
        }
    }

    /// A free GSI, or [`Error::GsiExhausted`].
    pub(crate) fn alloc(&mut self) -> Result<u32> {
        if self.in_use >= self.capacity {
            return Err(Error::GsiExhausted { limit: self.limit });
        }
        let gsi = match self.freed.pop_first() {
            Some(gsi) => gsi,
            None => {
                let gsi = self.next;
                self.next += 1;
                gsi
            }
        };
        self.in_use += 1;
        Ok(gsi)
    }

    /// Returns `gsi` to the pool.
    pub(crate) fn free(&mut self, gsi: u32) {
        debug_assert!((FIRST_MSI_GSI..self.next).contains(&gsi));
        if self.freed.insert(gsi) {
            self.in_use -= 1;
        }
        // Keep the free set small: fold freed GSIs at the top back into `next`.
        while self.next > FIRST_MSI_GSI && self.freed.remove(&(self.next - 1)) {
            self.next -= 1;
        }
    }

    /// GSIs currently handed out.
    pub(crate) fn in_use(&self) -> usize {
        self.in_use
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_routes_match_kvm() {
        let routes = default_routes();
        assert_eq!(routes.len(), 40);
        assert!(routes.contains(&GsiRoute::Irqchip {
            gsi: 0,
            chip: KVM_IRQCHIP_PIC_MASTER,
            pin: 0
        }));
        assert!(routes.contains(&GsiRoute::Irqchip {
            gsi: 10,
            chip: KVM_IRQCHIP_PIC_SLAVE,
            pin: 2
        }));
        assert!(routes.contains(&GsiRoute::Irqchip {
            gsi: 23,
            chip: KVM_IRQCHIP_IOAPIC,
            pin: 23
        }));
        assert!(routes.iter().all(|r| r.gsi() < FIRST_MSI_GSI));
    }

    #[test]
    fn allocator_lowest_first_and_bounded() {
        // 44 entries: 40 defaults leave room for 4 MSI routes.
        let mut a = GsiAllocator::new(44, 40);
        let got: Vec<u32> = (0..4).map(|_| a.alloc().unwrap()).collect();
        assert_eq!(got, vec![24, 25, 26, 27]);
        assert!(matches!(a.alloc(), Err(Error::GsiExhausted { limit: 44 })));
        a.free(25);
        assert_eq!(a.in_use(), 3);
        assert_eq!(a.alloc().unwrap(), 25);
        a.free(27);
        a.free(26);
        assert_eq!(a.alloc().unwrap(), 26);
    }

    #[test]
    fn allocator_gsi_number_bound() {
        // Hypothetical chip with a larger entry limit than GSI limit.
        let mut a = GsiAllocator::new(26, 0);
        assert_eq!(a.alloc().unwrap(), 24);
        assert_eq!(a.alloc().unwrap(), 25);
        assert!(a.alloc().is_err());
    }
}
