//! The narrow seam to KVM's interrupt controller: routing table, irqfds, direct MSIs.

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
    /// Binds `fd` to `gsi` (KVM_IRQFD assign).
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
            .map_err(kvm_err("KVM_IRQFD"))
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
