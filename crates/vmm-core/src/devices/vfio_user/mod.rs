//! vfio-user: a whole PCI device in another process (QEMU `docs/interop/vfio-user.rst`).
//!
//! * [`server`]: serves a kvmbus device model (`kvmbus device-server`), with the same
//!   device code as in-process; its vectors write the client's eventfds directly
//!   ([`slots`]).
//! * [`client`]: a [`pci_emu::PciFunction`] backed by a server: kvmbus owns BAR
//!   placement, COMMAND decoding and the MSI/MSI-X capabilities (routed by the irq-router
//!   exactly as for in-process devices, whose irqfds SET_IRQS hands the server); BAR
//!   accesses are forwarded as REGION_READ/WRITE; a dead or stalled server reads
//!   all-ones until it reconnects.

pub mod attach;
pub mod client;
pub mod server;
pub mod slots;

use std::sync::Arc;

use irq_router::{GsiRoute, IrqChip};
use pci_emu::MsiMessage;
use vmm_sys_util::eventfd::EventFd;

use crate::devices::irq_test::IrqTest;
use crate::inject::ExitInjector;
use crate::Result;
use server::Served;
use slots::IrqSlots;

/// The irq chip of a device-server process: there is no VM; every operation fails
/// (device models deliver only through their vectors' eventfds there).
struct NoChip;

fn no_vm() -> irq_router::Error {
    irq_router::Error::Kvm {
        op: "irq chip (no VM in a device server)",
        source: std::io::Error::from_raw_os_error(libc::ENODEV),
    }
}

impl IrqChip for NoChip {
    fn set_gsi_routing(&self, _routes: &[GsiRoute]) -> irq_router::Result<()> {
        Err(no_vm())
    }
    fn register_irqfd(&self, _fd: &EventFd, _gsi: u32) -> irq_router::Result<()> {
        Err(no_vm())
    }
    fn unregister_irqfd(&self, _fd: &EventFd, _gsi: u32) -> irq_router::Result<()> {
        Err(no_vm())
    }
    fn signal_msi(&self, _message: MsiMessage) -> irq_router::Result<()> {
        Err(no_vm())
    }
    fn set_irq_line(&self, _irq: u32, _level: bool) -> irq_router::Result<()> {
        Err(no_vm())
    }
}

/// The irq-test device model ready to be served: the same [`IrqTest`] as in-process,
/// raising its vectors through [`IrqSlots`] and its INTx through a [`server::LevelIntx`]. In the server its MSI/MSI-X capabilities are
/// never enabled (the client emulates them), so every MODE fires through the slots.
/// With `shared_bar`, BAR4 is 4 KiB of shared memory offered as an mmap-able region
/// (the client maps it into the guest: accesses cost no exit).
pub fn served_irq_test(msix_vectors: u16, msi_vectors: u16, shared_bar: bool) -> Result<Served> {
    let slots = IrqSlots::new(usize::from(msix_vectors.max(msi_vectors)))?;
    let chip: Arc<dyn IrqChip> = Arc::new(NoChip);
    let injector = Arc::new(ExitInjector::new(chip.clone()));
    let intx = server::LevelIntx::new()?;
    let dev = IrqTest::new(msix_vectors, msi_vectors, slots.handles(), chip, injector)?
        .with_intx(intx.clone(), None)
        .with_flr()?;
    let reset = dev.resetter();
    Ok(Served {
        function: Box::new(dev),
        slots,
        msi: u32::from(msi_vectors),
        msix: u32::from(msix_vectors),
        intx: Some(intx),
        reset: Some(Box::new(reset)),
        shared_bars: if shared_bar {
            vec![(4, server::shared_memory(4096)?, 4096)]
        } else {
            Vec::new()
        },
    })
}
