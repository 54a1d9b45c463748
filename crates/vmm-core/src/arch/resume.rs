//! The vCPU state after an S3 resume, as after a reset: the boot processor in real mode
//! at the FACS waking vector (where SeaBIOS's resume path jumps), the application
//! processors back in wait-for-SIPI (QEMU's kvm_arch_reset_vcpu with the in-kernel
//! local APIC: KVM_MP_STATE_UNINITIALIZED).

use kvm_bindings::{kvm_mp_state, kvm_segment, KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_UNINITIALIZED};
use kvm_ioctls::VcpuFd;

use super::acpi::waking_cs_ip;
use crate::error::kvm_err;
use crate::Result;

/// A real-mode segment as after reset: 64 KiB limit, base = selector << 4.
fn real_segment(selector: u16, type_: u8) -> kvm_segment {
    kvm_segment {
        base: (selector as u64) << 4,
        limit: 0xffff,
        selector,
        type_,
        present: 1,
        s: 1,
        ..Default::default()
    }
}

/// Puts the boot processor in real mode at `vector` (CS = vector >> 4, IP = vector &
/// 0xF, data segments 0, paging and protection off, CR0 = 0x60000010 as after reset,
/// interrupts off) and makes it runnable.
pub fn setup_resume_regs(vcpu: &VcpuFd, vector: u32) -> Result<()> {
    let (cs, ip) = waking_cs_ip(vector);
    let mut sregs = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
    sregs.cs = real_segment(cs, 0xb);
    let data = real_segment(0, 0x3);
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = kvm_segment {
        limit: 0xffff,
        type_: 0xb,
        present: 1,
        ..Default::default()
    };
    sregs.ldt = kvm_segment {
        limit: 0xffff,
        type_: 0x2,
        present: 1,
        ..Default::default()
    };
    sregs.gdt.base = 0;
    sregs.gdt.limit = 0xffff;
    sregs.idt.base = 0;
    sregs.idt.limit = 0xffff;
    sregs.cr0 = 0x6000_0010; // CD | NW | ET
    sregs.cr2 = 0;
    sregs.cr3 = 0;
    sregs.cr4 = 0;
    sregs.efer = 0;
    vcpu.set_sregs(&sregs).map_err(kvm_err("KVM_SET_SREGS"))?;
    let regs = kvm_bindings::kvm_regs {
        rip: ip as u64,
        rflags: 0x2,
        ..Default::default()
    };
    vcpu.set_regs(&regs).map_err(kvm_err("KVM_SET_REGS"))?;
    set_mp_state(vcpu, KVM_MP_STATE_RUNNABLE)
}

/// Sends an application processor back to wait-for-SIPI.
pub fn setup_wait_for_sipi(vcpu: &VcpuFd) -> Result<()> {
    set_mp_state(vcpu, KVM_MP_STATE_UNINITIALIZED)
}

fn set_mp_state(vcpu: &VcpuFd, mp_state: u32) -> Result<()> {
    vcpu.set_mp_state(kvm_mp_state { mp_state })
        .map_err(kvm_err("KVM_SET_MP_STATE"))
}
