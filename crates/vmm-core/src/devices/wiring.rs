//! [`Wiring`]: what a device may reach while it is built, [`VmHooks`] (the narrow part
//! of the VM itself a device may change), and [`Services`], the device threads that
//! teardown stops.

use std::sync::{Arc, Mutex};

use irq_router::{IrqChip, IrqRouter};
use kvm_ioctls::VmFd;
use pci_emu::Bdf;
use vmm_sys_util::eventfd::EventFd;

use super::irq_line::IrqLine;
pub use super::vfio_user::client::{GuestMapper, IntxRoute};
use super::vfio_user::client::{HeldConnections, KvmGuestMapper, KvmIntxRoute};
use crate::bus::Bus;
use crate::config::Config;
use crate::control::VmControl;
use crate::inject::ExitInjector;
use crate::memory::GuestRam;
use crate::Result;

/// Legacy interrupt inputs (GSIs of the in-kernel IOAPIC/PIC).
pub trait IrqLines {
    /// A line driven by level (KVM_IRQ_LINE).
    fn line(&self, gsi: u32) -> Arc<dyn IrqLine>;
    /// An eventfd that raises `gsi` when written (KVM_IRQFD), or `None` where KVM has no
    /// irqfd.
    fn irqfd(&self, gsi: u32) -> Result<Option<EventFd>>;
}

/// What a device may change in the VM itself, and nothing more: memory slots for host
/// memory it maps into the guest (regions a device process hands over), and
/// level-triggered irqfds with a resample fd (INTx whose source is another process).
/// One per VM, so that every device's slots come from the same allocator.
pub struct VmHooks {
    /// Maps host memory at guest-physical addresses.
    pub mapper: Arc<dyn GuestMapper>,
    /// Binds INTx trigger/resample eventfds to an IOAPIC input.
    pub intx: Arc<dyn IntxRoute>,
}

impl VmHooks {
    /// The hooks of a KVM VM.
    pub fn kvm(vm: &Arc<VmFd>) -> Arc<VmHooks> {
        Arc::new(VmHooks {
            mapper: Arc::new(KvmGuestMapper::new(vm.clone())),
            intx: Arc::new(KvmIntxRoute(vm.clone())),
        })
    }
}

/// The IOAPIC input of a slot's INTx pin (1-4, 0 counts as A): the usual swizzle over
/// inputs 16-19, which the MP table's PCI interrupt entries then name.
pub fn intx_gsi(bdf: Bdf, pin: u8) -> u32 {
    16 + ((u32::from(bdf.device) + u32::from(pin.max(1)) - 1) % 4)
}

/// The machine as a device sees it while it is built.
pub struct Wiring<'a> {
    /// The whole configuration (read-only).
    pub config: &'a Config,
    /// Port I/O bus.
    pub pio: &'a Arc<Bus>,
    /// MMIO bus.
    pub mmio: &'a Arc<Bus>,
    /// Stop control (devices that end the VM).
    pub control: &'a Arc<VmControl>,
    /// Guest RAM (mapping and memfd).
    pub ram: &'a GuestRam,
    /// Legacy interrupt lines.
    pub lines: &'a dyn IrqLines,
    /// The MSI/MSI-X router (vectors as irqfds).
    pub router: &'a Arc<Mutex<IrqRouter>>,
    /// The interrupt controller (for KVM_SIGNAL_MSI comparisons).
    pub chip: &'a Arc<dyn IrqChip>,
    /// The userspace injection path (for comparisons with irqfd).
    pub injector: &'a Arc<ExitInjector>,
    /// Memory slots and INTx irqfds.
    pub vm: &'a Arc<VmHooks>,
    /// Device threads to stop at teardown.
    pub services: &'a mut Services,
    /// Server connections kept across machine resets (vfio-user devices); `None` when
    /// the VM will not be rebooted.
    pub held: Option<&'a HeldConnections>,
}

type Stop = Box<dyn FnOnce() + Send>;

/// The stoppable parts of the devices, and the order teardown follows:
/// 1. [`Services::stop_devices`] stops every device thread (producers: interrupt
///    firing, queue workers, service threads, sockets), last registered first;
/// 2. the caller joins the vCPU threads (consumers);
/// 3. [`Services::finish`] runs the final steps (e.g. flushing the serial output).
#[derive(Default)]
pub struct Services {
    devices: Vec<(String, Stop)>,
    finals: Vec<(String, Stop)>,
}

impl Services {
    /// Registers `stop`, run before the vCPU threads are joined; it must return only
    /// once the device's threads have ended (or can no longer touch the guest).
    pub fn on_stop(&mut self, name: impl Into<String>, stop: impl FnOnce() + Send + 'static) {
        self.devices.push((name.into(), Box::new(stop)));
    }

    /// Registers `step`, run after the vCPU threads are joined.
    pub fn on_finish(&mut self, name: impl Into<String>, step: impl FnOnce() + Send + 'static) {
        self.finals.push((name.into(), Box::new(step)));
    }

    /// Stops every device thread, last registered first.
    pub fn stop_devices(&mut self) {
        while let Some((name, stop)) = self.devices.pop() {
            log::debug!("stopping {name}");
            stop();
        }
    }

    /// Runs the final steps, in registration order.
    pub fn finish(&mut self) {
        for (name, step) in self.finals.drain(..) {
            log::debug!("finishing {name}");
            step();
        }
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.stop_devices();
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn intx_pins_swizzle_over_four_ioapic_inputs() {
        let b = |d| Bdf::new(0, d, 0).unwrap();
        assert_eq!(intx_gsi(b(0), 1), 16);
        assert_eq!(intx_gsi(b(3), 1), 19);
        assert_eq!(intx_gsi(b(4), 1), 16);
        assert_eq!(intx_gsi(b(4), 2), 17);
        assert_eq!(intx_gsi(b(5), 0), 17);
    }

    #[test]
    fn devices_stop_in_reverse_then_finals_in_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut s = Services::default();
        for n in ["a", "b"] {
            let l = log.clone();
            s.on_stop(n, move || l.lock().unwrap().push(n));
        }
        for n in ["x", "y"] {
            let l = log.clone();
            s.on_finish(n, move || l.lock().unwrap().push(n));
        }
        s.stop_devices();
        s.finish();
        drop(s);
        assert_eq!(*log.lock().unwrap(), ["b", "a", "x", "y"]);
    }
}
