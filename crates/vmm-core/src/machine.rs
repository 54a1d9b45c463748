//! The KVM machine under the devices: /dev/kvm and its capabilities, the VM fd with its
//! in-kernel irqchip and PIT, guest RAM in slot 0, and the legacy interrupt lines.

use std::sync::Arc;

use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, Kvm, VmFd};
use vm_memory::{GuestAddress, GuestMemoryBackend};
use vmm_sys_util::eventfd::EventFd;

use crate::config::{Config, ConfigError};
use crate::devices::irq_line::{IrqLine, KvmIrqLine};
use crate::devices::wiring::IrqLines;
use crate::error::kvm_err;
use crate::memory::GuestRam;
use crate::startup::mark;
use crate::{Error, Result};

/// KVM's TSS and identity-map pages, just below the BIOS area at 4 GiB.
const KVM_TSS_ADDR: usize = 0xfffb_d000;
const KVM_IDENTITY_MAP_ADDR: u64 = 0xfffb_c000;

/// Opens /dev/kvm and checks what kvmbus needs.
pub fn open_kvm() -> Result<Kvm> {
    let kvm =
        Kvm::new().map_err(|e| Error::KvmUnavailable(format!("cannot open /dev/kvm: {e}")))?;
    // Without IRQ routing or irqfd, MSIs fall back to KVM_SIGNAL_MSI (see pci::build).
    for (cap, name) in [
        (Cap::Irqchip, "in-kernel irqchip"),
        (Cap::UserMemory, "user memory"),
        (Cap::Ioeventfd, "ioeventfd"),
        (Cap::SignalMsi, "KVM_SIGNAL_MSI"),
    ] {
        if !kvm.check_extension(cap) {
            return Err(Error::KvmUnavailable(format!("KVM lacks {name}")));
        }
    }
    Ok(kvm)
}

/// Checks `vcpus` against what this KVM allows.
pub fn check_vcpus(config: &Config, kvm: &Kvm) -> Result<()> {
    let max = kvm.get_max_vcpus() as u32;
    if config.vcpus > max {
        let (line, column) = config.places.vcpus;
        return Err(Error::Config(ConfigError {
            file: config.path.clone(),
            line,
            column,
            message: format!(
                "key 'vcpus' in [vm] is {}, but KVM allows at most {max}",
                config.vcpus
            ),
        }));
    }
    Ok(())
}

/// Creates the VM with `ram` as memory slot 0, then its TSS and identity map, in-kernel
/// irqchip and PIT.
///
/// The slot comes first: on these hosts KVM_SET_USER_MEMORY_REGION takes 5–10 ms once the
/// VM has an in-kernel irqchip, and about 0.2 ms before it (measured with the ioctls
/// alone, in either order); the irqchip and PIT cost the same either way.
pub fn create_vm(kvm: &Kvm, ram: &GuestRam) -> Result<Arc<VmFd>> {
    let vm_fd = kvm.create_vm().map_err(kvm_err("KVM_CREATE_VM"))?;
    mark("KVM_CREATE_VM");
    let host = ram
        .memory
        .get_host_address(GuestAddress(0))
        .map_err(|e| Error::Memory(e.to_string()))?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: ram.size,
        userspace_addr: host as u64,
    };
    // SAFETY: the region maps `ram`, which the Vm owns for as long as the VM fd exists
    // (the Vm drops its fds before its memory); host address and size come from that
    // mapping.
    unsafe { vm_fd.set_user_memory_region(region) }
        .map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;
    mark("memory slot 0");
    vm_fd
        .set_tss_address(KVM_TSS_ADDR)
        .map_err(kvm_err("KVM_SET_TSS_ADDR"))?;
    vm_fd
        .set_identity_map_address(KVM_IDENTITY_MAP_ADDR)
        .map_err(kvm_err("KVM_SET_IDENTITY_MAP_ADDR"))?;
    vm_fd
        .create_irq_chip()
        .map_err(kvm_err("KVM_CREATE_IRQCHIP"))?;
    mark("TSS, identity map, KVM_CREATE_IRQCHIP");
    vm_fd
        .create_pit2(kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        })
        .map_err(kvm_err("KVM_CREATE_PIT2"))?;
    mark("KVM_CREATE_PIT2");
    Ok(Arc::new(vm_fd))
}

/// The legacy interrupt lines of a KVM VM.
pub struct KvmLines {
    /// The VM.
    pub vm: Arc<VmFd>,
    /// Whether KVM has irqfd.
    pub irqfd: bool,
}

impl IrqLines for KvmLines {
    fn line(&self, gsi: u32) -> Arc<dyn IrqLine> {
        Arc::new(KvmIrqLine::new(self.vm.clone(), gsi))
    }

    fn irqfd(&self, gsi: u32) -> Result<Option<EventFd>> {
        if !self.irqfd {
            return Ok(None);
        }
        let fd = EventFd::new(libc::EFD_NONBLOCK).map_err(|e| Error::Io {
            what: "eventfd".into(),
            source: e,
        })?;
        self.vm
            .register_irqfd(&fd, gsi)
            .map_err(kvm_err("KVM_IRQFD"))?;
        Ok(Some(fd))
    }
}
