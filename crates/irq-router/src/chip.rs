//! The narrow seam to KVM's interrupt controller: routing table, irqfds, direct MSIs.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use kvm_bindings::{
    kvm_irq_routing_entry, kvm_msi, KvmIrqRouting, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI,
};
use kvm_ioctls::VmFd;
use pci_emu::MsiMessage;
use vmm_sys_util::eventfd::EventFd;

use crate::{Error, Result};

/// One entry of the GSI routing table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GsiRoute {
    /// GSI to a pin of an in-kernel irqchip (0/1 = PIC master/slave, 2 = IOAPIC).
    Irqchip {
        /// The GSI.
        gsi: u32,
        /// Which chip.
        chip: u32,
        /// Which pin.
        pin: u32,
    },
    /// GSI to an MSI message.
    Msi {
        /// The GSI.
        gsi: u32,
        /// The message.
        message: MsiMessage,
    },
}

impl GsiRoute {
    /// The GSI this route is for.
    pub fn gsi(&self) -> u32 {
        match *self {
            GsiRoute::Irqchip { gsi, .. } | GsiRoute::Msi { gsi, .. } => gsi,
        }
    }
}

/// What the router needs from KVM, and nothing more.
pub trait IrqChip: Send + Sync {
    /// Replaces the whole GSI routing table (KVM_SET_GSI_ROUTING).
    fn set_gsi_routing(&self, routes: &[GsiRoute]) -> Result<()>;
    /// Binds `fd` to `gsi` (KVM_IRQFD assign). A trigger already waiting in `fd` is
    /// injected once, through the route `gsi` has now.
    fn register_irqfd(&self, fd: &EventFd, gsi: u32) -> Result<()>;
    /// Unbinds `fd` from `gsi` (KVM_IRQFD deassign).
    fn unregister_irqfd(&self, fd: &EventFd, gsi: u32) -> Result<()>;
    /// Injects one MSI directly (KVM_SIGNAL_MSI).
    fn signal_msi(&self, message: MsiMessage) -> Result<()>;
    /// Drives a legacy interrupt line (KVM_IRQ_LINE).
    fn set_irq_line(&self, irq: u32, level: bool) -> Result<()>;
}

/// The real [`IrqChip`]: a KVM VM with an in-kernel irqchip.
pub struct KvmIrqChip {
    vm: Arc<VmFd>,
}

impl KvmIrqChip {
    /// Wraps a VM that already has its in-kernel irqchip (KVM_CREATE_IRQCHIP).
    pub fn new(vm: Arc<VmFd>) -> Self {
        KvmIrqChip { vm }
    }
}

fn kvm_err(op: &'static str) -> impl Fn(kvm_ioctls::Error) -> Error {
    move |e| Error::Kvm {
        op,
        source: std::io::Error::from_raw_os_error(e.errno()),
    }
}

impl IrqChip for KvmIrqChip {
    fn set_gsi_routing(&self, routes: &[GsiRoute]) -> Result<()> {
        let entries: Vec<kvm_irq_routing_entry> = routes.iter().map(to_kvm_entry).collect();
        let table = KvmIrqRouting::from_entries(&entries).map_err(|_| Error::Kvm {
            op: "KVM_SET_GSI_ROUTING",
            source: std::io::Error::from_raw_os_error(libc::E2BIG),
        })?;
        self.vm
            .set_gsi_routing(&table)
            .map_err(kvm_err("KVM_SET_GSI_ROUTING"))
    }

    fn register_irqfd(&self, fd: &EventFd, gsi: u32) -> Result<()> {
        self.vm
            .register_irqfd(fd, gsi)
            .map_err(kvm_err("KVM_IRQFD"))?;
        // On assign KVM polls the eventfd and, if a trigger is pending, injects it once
        // but leaves the count in place; every later trigger is consumed by KVM's wakeup.
        // So any count left now is one KVM already delivered: consume it, so that
        // `IrqHandle::is_pending` (the pending bit) reads clear while the vector is live.
        // Only for non-blocking eventfds (the router's): a read must never block here.
        if is_nonblocking(fd) {
            match fd.read() {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => guard::guest_log!(
                    log::Level::Warn,
                    "cannot clear a delivered irqfd trigger: {e}"
                ),
            }
        }
        Ok(())
    }

    fn unregister_irqfd(&self, fd: &EventFd, gsi: u32) -> Result<()> {
        self.vm
            .unregister_irqfd(fd, gsi)
            .map_err(kvm_err("KVM_IRQFD(deassign)"))
    }

    fn signal_msi(&self, message: MsiMessage) -> Result<()> {
        let msi = kvm_msi {
            address_lo: message.address as u32,
            address_hi: (message.address >> 32) as u32,
            data: message.data,
            ..Default::default()
        };
        self.vm
            .signal_msi(msi)
            .map(|_| ())
            .map_err(kvm_err("KVM_SIGNAL_MSI"))
    }

    fn set_irq_line(&self, irq: u32, level: bool) -> Result<()> {
        self.vm
            .set_irq_line(irq, level)
            .map_err(kvm_err("KVM_IRQ_LINE"))
    }
}

fn is_nonblocking(fd: &EventFd) -> bool {
    // SAFETY: F_GETFL on a descriptor we borrow for the duration of the call only reads
    // its status flags; an error (-1) is treated as "blocking".
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    flags >= 0 && flags & libc::O_NONBLOCK != 0
}

fn to_kvm_entry(route: &GsiRoute) -> kvm_irq_routing_entry {
    let mut entry = kvm_irq_routing_entry {
        gsi: route.gsi(),
        ..Default::default()
    };
    match *route {
        GsiRoute::Irqchip { chip, pin, .. } => {
            entry.type_ = KVM_IRQ_ROUTING_IRQCHIP;
            entry.u.irqchip.irqchip = chip;
            entry.u.irqchip.pin = pin;
        }
        GsiRoute::Msi { message, .. } => {
            entry.type_ = KVM_IRQ_ROUTING_MSI;
            entry.u.msi.address_lo = message.address as u32;
            entry.u.msi.address_hi = (message.address >> 32) as u32;
            entry.u.msi.data = message.data;
        }
    }
    entry
}

#[cfg(test)]
mod tests {
    use kvm_ioctls::{Cap, Kvm};
    use pci_emu::{Bdf, FunctionEvent, IrqSource, PciEvent, VectorChange};

    use super::*;
    use crate::{DeliveryMode, IrqRouter, RouterConfig};

    fn vector(bdf: Bdf, masked: bool) -> PciEvent {
        let message = MsiMessage {
            address: 0xfee0_0000,
            data: 0x40,
        };
        PciEvent {
            bdf,
            event: FunctionEvent::Vector(VectorChange {
                source: IrqSource::Msix,
                vector: 0,
                message: Some(message),
                masked,
            }),
        }
    }

    #[test]
    fn kvm_routes_and_irqfds() {
        let name = "kvm_routes_and_irqfds";
        let kvm = match Kvm::new() {
            Ok(kvm) => kvm,
            Err(e) => {
                println!("SKIP (no /dev/kvm): {name} ({e})");
                return;
            }
        };
        let vm = Arc::new(kvm.create_vm().expect("KVM_CREATE_VM"));
        vm.create_irq_chip().expect("KVM_CREATE_IRQCHIP");
        let max_routes = u32::try_from(kvm.check_extension_int(Cap::IrqRouting)).unwrap();
        assert!(max_routes > 40, "KVM_CAP_IRQ_ROUTING = {max_routes}");
        let chip = Arc::new(KvmIrqChip::new(vm));
        let config = RouterConfig {
            vm: "kvm-test".into(),
            max_routes,
            mode: DeliveryMode::Irqfd,
        };
        // Pushes the default table: KVM accepts it.
        let mut router = IrqRouter::new(chip.clone(), config).unwrap();
        let bdf = Bdf::new(0, 3, 0).unwrap();
        let h = router.add_device(bdf, "kvm-test", 1).unwrap();

        // Live: route pushed, irqfd assigned; KVM injects a trigger.
        router.apply(&vector(bdf, false)).unwrap();
        assert_eq!(router.routes()[0].gsi, Some(24));
        h[0].trigger().unwrap();
        // (Recent kernels consume it in the irqfd wakeup; older ones leave the count,
        // which deassign then clears, so this is not asserted.)
        // Masked: irqfd deassigned, route dropped; a trigger stays pending.
        router.apply(&vector(bdf, true)).unwrap();
        assert!(!h[0].is_pending(), "deassign leaves no stale count");
        h[0].trigger().unwrap();
        assert!(h[0].is_pending());
        // Unmasked: re-assigned; KVM injects the pending trigger and the bit clears.
        router.apply(&vector(bdf, false)).unwrap();
        assert!(!h[0].is_pending());
        // Assigning an eventfd twice is refused by KVM (EBUSY): it really is bound.
        assert!(chip.register_irqfd(h[0].eventfd(), 24).is_err());

        let line = router.intx(bdf, "kvm-test", 10).unwrap();
        line.trigger().unwrap();
        router.remove_device(bdf).unwrap();
        assert_eq!(router.gsis_in_use(), 0);
        // Both irqfds are gone: they can be assigned again.
        chip.register_irqfd(h[0].eventfd(), 24).unwrap();
        chip.register_irqfd(line.eventfd(), 10).unwrap();
        chip.unregister_irqfd(h[0].eventfd(), 24).unwrap();
        chip.unregister_irqfd(line.eventfd(), 10).unwrap();
    }
}
