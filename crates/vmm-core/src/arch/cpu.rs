//! Boot vCPU registers (Multiboot's 32-bit protected-mode entry state) and CPUID.

use kvm_bindings::{kvm_segment, CpuId};
use kvm_ioctls::VcpuFd;

use crate::error::kvm_err;
use crate::Result;

fn flat_segment(selector: u16, code: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: if code { 0xb } else { 0x3 },
        present: 1,
        dpl: 0,
        db: 1,
        s: 1,
        l: 0,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Puts the boot vCPU in the state the Multiboot spec promises: 32-bit protected mode,
/// paging off, flat CS/DS/ES/FS/GS/SS, interrupts off, EAX = magic, EBX = info address.
pub fn setup_boot_regs(vcpu: &VcpuFd, entry: u64, eax: u32, ebx: u32) -> Result<()> {
    let mut sregs = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
    sregs.cs = flat_segment(0x08, true);
    let data = flat_segment(0x10, false);
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    // A valid (busy 32-bit) TSS for VMX entry; the guest loads its own GDT/IDT.
    sregs.tr = kvm_segment {
        base: 0,
        limit: 0xffff,
        selector: 0,
        type_: 0xb,
        present: 1,
        s: 0,
        ..Default::default()
    };
    sregs.cr0 = 0x11; // PE | ET
    sregs.cr4 = 0;
    sregs.efer = 0;
    vcpu.set_sregs(&sregs).map_err(kvm_err("KVM_SET_SREGS"))?;

    let mut regs = vcpu.get_regs().map_err(kvm_err("KVM_GET_REGS"))?;
    regs.rip = entry;
    regs.rax = eax as u64;
    regs.rbx = ebx as u64;
    regs.rflags = 0x2;
    vcpu.set_regs(&regs).map_err(kvm_err("KVM_SET_REGS"))?;
    Ok(())
}

/// Hypervisor CPUID leaves: 0x40000000 (signature, max leaf) and 0x40000010 (timing:
/// EAX = TSC kHz, EBX = APIC bus kHz), the de-facto standard that Linux reads.
const HV_TIMING_LEAF: u32 = 0x4000_0010;
/// KVM's local APIC timer runs at 1 GHz.
const APIC_BUS_KHZ: u32 = 1_000_000;

/// CPUID for vCPU `id` of `count`: KVM's supported set with APIC IDs and topology
/// filled in, plus the hypervisor timing leaf.
pub fn setup_cpuid(vcpu: &VcpuFd, base: &CpuId, id: u32, count: u32, tsc_khz: u32) -> Result<()> {
    let mut entries: Vec<kvm_bindings::kvm_cpuid_entry2> = base.as_slice().to_vec();
    for e in entries.iter_mut() {
        match e.function {
            1 => {
                e.ebx = (e.ebx & 0x0000_ffff) | (id << 24) | ((count.max(1) & 0xff) << 16);
                e.edx |= 1 << 28; // HTT: the logical processor count field is valid
            }
            0xb | 0x1f => e.edx = id,
            0x4000_0000 => e.eax = e.eax.max(HV_TIMING_LEAF),
            _ => {}
        }
    }
    entries.retain(|e| e.function != HV_TIMING_LEAF);
    entries.push(kvm_bindings::kvm_cpuid_entry2 {
        function: HV_TIMING_LEAF,
        eax: tsc_khz,
        ebx: APIC_BUS_KHZ,
        ..Default::default()
    });
    let cpuid = CpuId::from_entries(&entries)
        .map_err(|_| crate::Error::KvmUnavailable("too many CPUID entries".into()))?;
    vcpu.set_cpuid2(&cpuid).map_err(kvm_err("KVM_SET_CPUID2"))
}
