//! The launch benchmark's reference (`examples/bare_runner.rs` and the launch bench's
//! re-executed bare mode both run [`run`]): the least a KVM runner can do to boot a built-in
//! guest and see it exit. One process, one thread, anonymous memory, no devices beyond
//! the serial transmit register and the debug-exit port, no metrics, no config file.
//!
//! Exits `(v << 1) | 1` when the guest writes `v` to
//! port 0xF4, like `kvmbus run`. Honours `KVMBUS_T0_NS` (see `vmm_core::startup`).

#![allow(dead_code)]

use std::io::Write;

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuExit};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_core::startup::mark;
use vmm_core::{arch, builtin, loader};

const MEM: u64 = 64 << 20;

/// Boots built-in `guest` with `cmdline` and exits the process with the guest's code.
pub fn run(guest: &str, cmdline: &str) -> ! {
    mark("main");
    let image = builtin::image(guest).expect("a built-in guest name");

    let kvm = Kvm::new().expect("/dev/kvm");
    let vm = kvm.create_vm().expect("KVM_CREATE_VM");
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM as usize)])
        .expect("anonymous guest memory");
    let host = mem.get_host_address(GuestAddress(0)).unwrap();
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: MEM,
        userspace_addr: host as u64,
    };
    // SAFETY: `mem` maps MEM bytes at `host` and lives until the process exits, after
    // the VM fd is last used.
    unsafe { vm.set_user_memory_region(region) }.expect("KVM_SET_USER_MEMORY_REGION");
    // After the slot: a slot registered once the VM has an irqchip costs 5-10 ms here.
    vm.set_tss_address(0xfffb_d000).expect("KVM_SET_TSS_ADDR");
    vm.create_irq_chip().expect("KVM_CREATE_IRQCHIP");
    mark("vm and memory");

    let name = format!("builtin:{guest}");
    let fresh = loader::MemoryBefore::Fresh;
    let loaded = loader::load_multiboot_into(&name, image, &mem, MEM, fresh).expect("load");
    let info = loader::BootInfo {
        mem_size: MEM,
        cmdline,
    };
    loader::write_boot_info(&mem, &info).expect("boot info");
    arch::write_mptable(&mem, 1).expect("mp table");
    mark("image loaded");

    let vcpu = vm.create_vcpu(0).expect("KVM_CREATE_VCPU");
    let cpuid = kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .expect("KVM_GET_SUPPORTED_CPUID");
    let khz = vcpu.get_tsc_khz().unwrap_or(0);
    arch::setup_cpuid(&vcpu, &cpuid, 0, 1, khz).expect("cpuid");
    arch::setup_boot_regs(
        &vcpu,
        loaded.entry,
        loader::MB_BOOTLOADER_MAGIC,
        loader::MBI_ADDR as u32,
    )
    .expect("regs");
    mark("vcpu");

    let mut serial = Vec::new();
    let mut vcpu = vcpu;
    mark("first KVM_RUN");
    let code = loop {
        match vcpu.run().expect("KVM_RUN") {
            VcpuExit::IoOut(0x3f8, d) => serial.push(d[0]),
            VcpuExit::IoOut(0xf4, d) => break d[0],
            VcpuExit::IoIn(0x3fd, d) => d[0] = 0x60,
            VcpuExit::IoIn(_, d) => d.fill(0xff),
            VcpuExit::IoOut(..) | VcpuExit::MmioWrite(..) => {}
            VcpuExit::MmioRead(_, d) => d.fill(0xff),
            VcpuExit::Hlt => break 0xff,
            e => panic!("unexpected exit {e:?}"),
        }
    };
    mark("guest exited");
    std::io::stdout().write_all(&serial).unwrap();
    std::io::stdout().flush().unwrap();
    std::process::exit(((code as i32) << 1) | 1);
}
