//! Adding a vfio-user device to a built VM before it runs.
//!
//! Until the device registry (`[[device]] kind = "vfio-user"`) lands this is how a VM
//! gets one: it builds the client with the VM's wiring (irq-router vectors, the guest
//! memory memfd, KVM memory slots, a resampling irqfd on an IOAPIC pin) and redoes the
//! firmware BAR assignment, which places every function exactly as if the device had
//! been configured from the start, and rewrites the MP table with the INTx wiring.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pci_emu::{Bdf, PciFunction};

use super::client::{
    ClientOptions, DmaMemory, KvmGuestMapper, KvmIntxRoute, VfioUserDevice, Wiring,
};
use crate::vm::Vm;
use crate::{arch, pci};
use crate::{Error, Result};

/// The IOAPIC input of a slot's INTx pin (1-4): the usual swizzle over inputs 16-19.
pub fn intx_gsi(bdf: Bdf, pin: u8) -> u32 {
    16 + ((u32::from(bdf.device) + u32::from(pin.max(1)) - 1) % 4)
}

/// Connects to the server at `socket` and puts the device at `bdf` (or the next free
/// slot) on `vm`'s PCI bus. `reply_timeout` bounds each exchange with the server.
pub fn attach(
    vm: &Vm,
    socket: &Path,
    bdf: Option<Bdf>,
    connect_timeout: Duration,
    reply_timeout: Duration,
) -> Result<Bdf> {
    let platform = &vm.pci;
    let bdf = match bdf {
        Some(b) => b,
        None => platform.free_slot(&[]).ok_or_else(|| Error::Device {
            device: "vfio-user".into(),
            detail: "no free PCI slot on bus 0".into(),
        })?,
    };
    let router = platform.router().clone();
    let mut vectors = |n: u16| {
        router
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add_device(bdf, "vfio-user", n)
            .map_err(|e| Error::Device {
                device: format!("vfio-user {bdf}"),
                detail: e.to_string(),
            })
    };
    let dev = VfioUserDevice::connect(
        &ClientOptions {
            vm: vm.config.name.clone(),
            bdf,
            socket: socket.to_path_buf(),
            connect_timeout,
            reply_timeout,
        },
        Wiring {
            vectors: &mut vectors,
            dma: Some(DmaMemory {
                memory: vm.ram.memory.clone(),
                memfd: vm.ram.memfd.clone(),
                size: vm.ram.size,
            }),
            mapper: Some(Arc::new(KvmGuestMapper::new(vm.vm_fd.clone()))),
            intx: Some((Arc::new(KvmIntxRoute(vm.vm_fd.clone())), intx_gsi(bdf, 1))),
        },
    )?;
    let f: Arc<Mutex<dyn PciFunction>> = Arc::new(Mutex::new(dev));
    platform.add_function(bdf, f)?;
    pci::assign_resources(platform, vm.config.ecam_base)?;
    platform.publish_info();
    write_pci_mptable(vm)?;
    Ok(bdf)
}

/// Rewrites the MP table with an entry for every function on bus 0 whose INTx pin is
/// wired to an I/O APIC PCI input (interrupt line 16-23).
fn write_pci_mptable(vm: &Vm) -> Result<()> {
    let mut pins = Vec::new();
    let bus = vm.pci.bus();
    for b in bus.bdfs() {
        let Some(f) = bus.function(b) else { continue };
        let mut r = [0u8; 2];
        f.lock()
            .unwrap_or_else(|e| e.into_inner())
            .config_read(0x3c, &mut r);
        let (line, pin) = (r[0], r[1]);
        if b.bus == 0 && (1..=4).contains(&pin) && (16..24).contains(&line) {
            pins.push(arch::PciIntx {
                device: b.device,
                pin,
                gsi: line,
            });
        }
    }
    drop(bus);
    arch::write_mptable_with_pci(&vm.ram.memory, vm.config.vcpus, &pins)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intx_pins_swizzle_over_four_ioapic_inputs() {
        let b = |d| Bdf::new(0, d, 0).unwrap();
        assert_eq!(intx_gsi(b(0), 1), 16);
        assert_eq!(intx_gsi(b(3), 1), 19);
        assert_eq!(intx_gsi(b(4), 1), 16);
        assert_eq!(intx_gsi(b(4), 2), 17);
    }
}
