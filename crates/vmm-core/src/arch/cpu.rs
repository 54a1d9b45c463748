//! Boot vCPU registers (Multiboot's 32-bit protected-mode entry state) and CPUID.

use kvm_bindings::{kvm_cpuid_entry2, kvm_msr_entry, kvm_segment, CpuId, Msrs};
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
/// The KVM paravirtual features QEMU 7.2 passes with `-cpu host` and the in-kernel
/// irqchip: clocksource (0, 3), no PIO delay (1), async PF (4, 14), steal time (5),
/// PV EOI (6), PV unhalt (7), PV TLB flush (9), PV IPI (11), poll control (12), PV sched
/// yield (13) and the stable-clock bit (24). It leaves out ASYNC_PF_VMEXIT (10), the
/// MSI extended destination ID (15, split irqchip only) and what it does not know.
const QEMU_KVM_FEATURES: u32 = 0x0100_7afb;
/// IA32_MISC_ENABLE and QEMU's reset value for it (fast strings).
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MISC_ENABLE_DEFAULT: u64 = 1;

/// Bits needed to number `n` things (QEMU's `apicid_bitwidth_for_count`).
fn bits_for(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

/// The processor brand string of the host (leaves 0x80000002..4), which QEMU's
/// `-cpu host` shows the guest as its model-id.
pub fn host_brand() -> [u32; 12] {
    let mut b = [0u32; 12];
    if std::arch::x86_64::__cpuid(0x8000_0000).eax >= 0x8000_0004 {
        for (i, leaf) in (0x8000_0002u32..=0x8000_0004).enumerate() {
            let r = std::arch::x86_64::__cpuid(leaf);
            b[i * 4..i * 4 + 4].copy_from_slice(&[r.eax, r.ebx, r.ecx, r.edx]);
        }
    }
    b
}

fn entry(function: u32, index: u32, regs: [u32; 4]) -> kvm_cpuid_entry2 {
    kvm_cpuid_entry2 {
        function,
        index,
        flags: if function == 0xb {
            kvm_bindings::KVM_CPUID_FLAG_SIGNIFCANT_INDEX
        } else {
            0
        },
        eax: regs[0],
        ebx: regs[1],
        ecx: regs[2],
        edx: regs[3],
        ..Default::default()
    }
}

/// The CPUID of vCPU `id` of `count` as QEMU 7.2 `-cpu host` builds it from KVM's
/// supported set (`base`): one socket of `count` cores, one thread each, APIC ID = `id`;
/// leaf 1's logical count and HTT only for more than one CPU; MONITOR leaf 5 as QEMU's
/// default; the x2APIC topology leaf 0xB synthesised; KVM features as QEMU passes
/// them; the host's brand string; no invariant-TSC or TOPOEXT bits and a zero EBX in
/// 0x80000001 (QEMU's defaults); 0x80000008 ECX from the topology; leaves 0x80000019,
/// 0x8000001a and 0x80000021 zero, as QEMU 7.2 shows them. kvmbus adds the
/// hypervisor timing leaf 0x40000010 (TSC kHz), which QEMU shows only with invtsc.
pub fn guest_cpuid(
    base: &[kvm_cpuid_entry2],
    id: u32,
    count: u32,
    tsc_khz: u32,
    brand: [u32; 12],
) -> Vec<kvm_cpuid_entry2> {
    let count = count.max(1);
    let pkg_bits = bits_for(count);
    let mut entries: Vec<kvm_cpuid_entry2> = base
        .iter()
        .filter(|e| !matches!(e.function, 0xb | HV_TIMING_LEAF))
        .copied()
        .collect();
    let max_basic = base.iter().find(|e| e.function == 0).map_or(0, |e| e.eax);
    for e in entries.iter_mut() {
        match e.function {
            1 => {
                e.ebx = (e.ebx & 0x0000_ffff) | (id << 24);
                e.edx &= !(1 << 28);
                if count > 1 {
                    e.ebx |= (count & 0xff) << 16;
                    e.edx |= 1 << 28; // HTT: the logical processor count field is valid
                }
            }
            5 => (e.eax, e.ebx, e.ecx, e.edx) = (0, 0, 3, 0),
            0x1f => e.edx = id,
            0x4000_0000 => e.eax = e.eax.max(HV_TIMING_LEAF),
            0x4000_0001 => e.eax &= QEMU_KVM_FEATURES,
            0x8000_0001 => {
                e.ebx = 0;
                e.ecx &= !(1 << 22); // TOPOEXT
            }
            0x8000_0002..=0x8000_0004 => {
                let i = (e.function - 0x8000_0002) as usize * 4;
                (e.eax, e.ebx, e.ecx, e.edx) = (brand[i], brand[i + 1], brand[i + 2], brand[i + 3]);
            }
            0x8000_0007 => e.edx &= !(1 << 8), // invariant TSC
            // Leaves QEMU 7.2 leaves zero (it fills none of them for -cpu host).
            0x8000_0019 | 0x8000_001a | 0x8000_0021 => (e.eax, e.ebx, e.ecx, e.edx) = (0, 0, 0, 0),
            0x8000_0008 => {
                e.ecx = if count > 1 {
                    (pkg_bits << 12) | (count - 1)
                } else {
                    0
                }
            }
            _ => {}
        }
    }
    if max_basic >= 0xb {
        // Level 0: SMT (one thread per core); level 1: core (`count` per package);
        // level 2: invalid, which ends the enumeration.
        entries.push(entry(0xb, 0, [0, 1, 0x100, id]));
        entries.push(entry(0xb, 1, [pkg_bits, count, 0x201, id]));
        entries.push(entry(0xb, 2, [0, 0, 2, id]));
    }
    entries.push(entry(HV_TIMING_LEAF, 0, [tsc_khz, APIC_BUS_KHZ, 0, 0]));
    entries
}

/// Sets vCPU `id`'s CPUID (see [`guest_cpuid`]) and QEMU's reset value of
/// IA32_MISC_ENABLE.
pub fn setup_cpuid(vcpu: &VcpuFd, base: &CpuId, id: u32, count: u32, tsc_khz: u32) -> Result<()> {
    let entries = guest_cpuid(base.as_slice(), id, count, tsc_khz, host_brand());
    let cpuid = CpuId::from_entries(&entries)
        .map_err(|_| crate::Error::KvmUnavailable("too many CPUID entries".into()))?;
    vcpu.set_cpuid2(&cpuid).map_err(kvm_err("KVM_SET_CPUID2"))?;
    let msrs = Msrs::from_entries(&[kvm_msr_entry {
        index: MSR_IA32_MISC_ENABLE,
        data: MISC_ENABLE_DEFAULT,
        ..Default::default()
    }])
    .map_err(|_| crate::Error::KvmUnavailable("cannot build the MSR list".into()))?;
    let set = vcpu.set_msrs(&msrs).map_err(kvm_err("KVM_SET_MSRS"))?;
    if set != 1 {
        log::warn!("KVM refused IA32_MISC_ENABLE; the guest sees KVM's reset value");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(v: &[kvm_cpuid_entry2], f: u32, i: u32) -> kvm_cpuid_entry2 {
        *v.iter()
            .find(|e| e.function == f && e.index == i)
            .unwrap_or_else(|| panic!("leaf {f:#x}.{i} missing"))
    }

    fn base() -> Vec<kvm_cpuid_entry2> {
        vec![
            entry(0, 0, [0x10, 1, 2, 3]),
            entry(1, 0, [0xa00f11, 0x0000_0800, 0xf7f8_3203, 0x178b_fbff]),
            entry(5, 0, [0x40, 0x40, 3, 0x11]),
            entry(0xb, 0, [0; 4]),
            entry(
                0x4000_0000,
                0,
                [0x4000_0001, 0x4b4d_564b, 0x564b_4d56, 0x4d],
            ),
            entry(0x4000_0001, 0, [0x0100_7efb, 0, 0, 0]),
            entry(
                0x8000_0001,
                0,
                [0xa00f11, 0x4000_0000, 0x0040_0393, 0x23d3_fbff],
            ),
            entry(0x8000_0002, 0, [0; 4]),
            entry(0x8000_0007, 0, [0, 0, 0, 0x100]),
            entry(0x8000_0008, 0, [0x3030, 0x110a_d205, 0x7001, 0]),
            entry(0x8000_0021, 0, [0x1800_0265, 0, 6, 0]),
        ]
    }

    #[test]
    fn two_cpus_look_like_qemus_one_socket_two_cores() {
        let brand: [u32; 12] = std::array::from_fn(|i| i as u32 + 1);
        let v = guest_cpuid(&base(), 1, 2, 2_400_000, brand);
        let l1 = find(&v, 1, 0);
        assert_eq!(l1.ebx, 0x0102_0800);
        assert_ne!(l1.edx & (1 << 28), 0);
        let l5 = find(&v, 5, 0);
        assert_eq!((l5.eax, l5.ebx, l5.ecx, l5.edx), (0, 0, 3, 0));
        let b: Vec<_> = (0..3)
            .map(|i| {
                let e = find(&v, 0xb, i);
                (e.eax, e.ebx, e.ecx, e.edx, e.flags)
            })
            .collect();
        let sig = kvm_bindings::KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
        assert_eq!(
            b,
            vec![
                (0, 1, 0x100, 1, sig),
                (1, 2, 0x201, 1, sig),
                (0, 0, 2, 1, sig)
            ]
        );
        assert_eq!(v.iter().filter(|e| e.function == 0xb).count(), 3);
        assert_eq!(find(&v, 0x4000_0001, 0).eax, 0x0100_7afb);
        assert_eq!(find(&v, 0x4000_0000, 0).eax, HV_TIMING_LEAF);
        let t = find(&v, HV_TIMING_LEAF, 0);
        assert_eq!((t.eax, t.ebx), (2_400_000, APIC_BUS_KHZ));
        let e1 = find(&v, 0x8000_0001, 0);
        assert_eq!((e1.ebx, e1.ecx), (0, 0x393));
        assert_eq!(find(&v, 0x8000_0002, 0).eax, 1);
        assert_eq!(find(&v, 0x8000_0002, 0).edx, 4);
        assert_eq!(find(&v, 0x8000_0007, 0).edx, 0);
        assert_eq!(find(&v, 0x8000_0008, 0).ecx, 0x1001);
        let z = find(&v, 0x8000_0021, 0);
        assert_eq!((z.eax, z.ebx, z.ecx, z.edx), (0, 0, 0, 0));
    }

    #[test]
    fn one_cpu_has_no_htt_and_topology_scales() {
        let v = guest_cpuid(&base(), 0, 1, 0, [0; 12]);
        let l1 = find(&v, 1, 0);
        assert_eq!(l1.ebx, 0x0000_0800);
        assert_eq!(l1.edx & (1 << 28), 0);
        assert_eq!(find(&v, 0x8000_0008, 0).ecx, 0);
        assert_eq!((find(&v, 0xb, 1).eax, find(&v, 0xb, 1).ebx), (0, 1));
        let v = guest_cpuid(&base(), 4, 5, 0, [0; 12]);
        assert_eq!((find(&v, 0xb, 1).eax, find(&v, 0xb, 1).ebx), (3, 5));
        assert_eq!(find(&v, 0x8000_0008, 0).ecx, 0x3004);
        assert_eq!(find(&v, 1, 0).ebx >> 24, 4);
        // No leaf 0xB when the maximum basic leaf is below it.
        let mut low = base();
        low[0].eax = 7;
        let v = guest_cpuid(&low, 0, 2, 0, [0; 12]);
        assert!(v.iter().all(|e| e.function != 0xb));
        assert_eq!(bits_for(1), 0);
        assert_eq!(bits_for(2), 1);
        assert_eq!(bits_for(4), 2);
        assert_eq!(bits_for(254), 8);
    }
}
