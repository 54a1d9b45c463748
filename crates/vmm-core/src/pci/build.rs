//! Building the PCI bus of a VM: the interrupt router, the platform with its CAM and
//! ECAM windows, every configured function (through its kind's spec), then what
//! firmware would do (BAR assignment, decoding on, the MP table's PCI interrupt entries).

use std::sync::{Arc, Mutex};

use irq_router::{DeliveryMode, IrqChip, IrqRouter, RouterConfig};
use kvm_ioctls::Cap;

use super::{
    assign_resources, write_intx_mptable, CamPort, EcamWindow, IoEvents, PciPlatform, CAM_PORT,
    ECAM_SIZE,
};
use crate::config::Config;
use crate::devices::wiring::Wiring;
use crate::{Error, Result};

/// What KVM offers for MSI delivery.
#[derive(Debug, Clone, Copy)]
pub struct MsiCaps {
    /// Entries of KVM's GSI routing table.
    pub max_routes: u32,
    /// KVM has GSI routing and irqfd.
    pub irqfd: bool,
}

impl MsiCaps {
    /// Reads the capabilities from `kvm`.
    pub fn of(kvm: &kvm_ioctls::Kvm) -> MsiCaps {
        MsiCaps {
            max_routes: kvm.check_extension_int(Cap::IrqRouting).max(0) as u32,
            irqfd: kvm.check_extension(Cap::IrqRouting) && kvm.check_extension(Cap::Irqfd),
        }
    }
}

/// The MSI/MSI-X router: irqfd on MSI routes where KVM has them; else (or when the
/// config asks) a router thread injects with KVM_SIGNAL_MSI.
pub fn router(
    config: &Config,
    caps: MsiCaps,
    chip: &Arc<dyn IrqChip>,
) -> Result<Arc<Mutex<IrqRouter>>> {
    let router = IrqRouter::new(
        chip.clone(),
        RouterConfig {
            vm: config.name.clone(),
            max_routes: caps.max_routes,
            mode: if config.msi_signal || !caps.irqfd {
                DeliveryMode::SignalMsi
            } else {
                DeliveryMode::Irqfd
            },
        },
    )?;
    Ok(Arc::new(Mutex::new(router)))
}

/// Builds the PCI platform and every configured function, and assigns their resources.
pub fn build(w: &mut Wiring<'_>, ioevents: Arc<dyn IoEvents>) -> Result<Arc<PciPlatform>> {
    let config = w.config;
    let platform = PciPlatform::new(
        &config.name,
        w.pio.clone(),
        w.mmio.clone(),
        w.ram.size,
        ioevents,
        w.router.clone(),
    );
    w.pio.insert(
        CAM_PORT as u64,
        8,
        "pci-cam",
        Arc::new(CamPort(Arc::downgrade(&platform))),
    )?;
    w.mmio.insert(
        config.ecam_base,
        ECAM_SIZE,
        "pci-ecam",
        Arc::new(EcamWindow(Arc::downgrade(&platform))),
    )?;
    for d in &config.devices {
        let function = d.spec.build(d.bdf, w).map_err(|e| match e {
            Error::Device { .. } => e,
            e => Error::Device {
                device: format!(
                    "{} at {} ({}:{})",
                    d.spec.kind(),
                    d.bdf,
                    config.path.display(),
                    d.line
                ),
                detail: e.to_string(),
            },
        })?;
        platform.add_function(d.bdf, function)?;
    }
    platform.set_vm_hooks(w.vm.clone());
    assign_resources(&platform, config.ecam_base)?;
    platform.publish_info();
    write_intx_mptable(&platform, &w.ram.memory, config.vcpus)?;
    Ok(platform)
}
