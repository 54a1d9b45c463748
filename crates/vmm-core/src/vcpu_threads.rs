//! Creating the vCPUs, running each on its own thread, and stopping them.

use std::os::unix::thread::JoinHandleExt;
use std::sync::Arc;
use std::thread::JoinHandle;

use kvm_ioctls::{Kvm, VcpuFd, VmFd};

use crate::arch;
use crate::config::Config;
use crate::error::kvm_err;
use crate::loader;
use crate::vcpu::{self, ExitMetrics, VcpuContext};
use crate::{Error, Result};

/// Creates `config.vcpus` vCPUs with KVM's supported CPUID; vCPU 0 starts at `entry`
/// as a multiboot kernel, the others wait for INIT-SIPI-SIPI.
pub fn create(kvm: &Kvm, vm_fd: &VmFd, config: &Config, entry: u64) -> Result<Vec<VcpuFd>> {
    let base_cpuid = kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .map_err(kvm_err("KVM_GET_SUPPORTED_CPUID"))?;
    let mut vcpus = Vec::new();
    for id in 0..config.vcpus {
        let vcpu = vm_fd
            .create_vcpu(id as u64)
            .map_err(kvm_err("KVM_CREATE_VCPU"))?;
        let tsc_khz = vcpu.get_tsc_khz().unwrap_or(0);
        arch::setup_cpuid(&vcpu, &base_cpuid, id, config.vcpus, tsc_khz)?;
        if id == 0 {
            arch::setup_boot_regs(
                &vcpu,
                entry,
                loader::MB_BOOTLOADER_MAGIC,
                loader::MBI_ADDR as u32,
            )?;
        }
        // Application processors stay in KVM's wait-for-SIPI state (the in-kernel
        // local APIC makes every vCPU but 0 start uninitialized).
        vcpus.push(vcpu);
    }
    Ok(vcpus)
}

/// Running vCPU threads.
pub struct VcpuThreads(Vec<JoinHandle<()>>);

impl VcpuThreads {
    /// Starts one thread per vCPU.
    pub fn spawn(
        vcpus: Vec<VcpuFd>,
        context: impl Fn(u32) -> VcpuContext,
        vm: &str,
        timed: bool,
    ) -> Result<VcpuThreads> {
        crate::signals::install_kick_handler().map_err(|e| Error::Io {
            what: "installing the vCPU kick handler".into(),
            source: e,
        })?;
        let mut threads = Vec::new();
        for (id, vcpu) in vcpus.into_iter().enumerate() {
            let cx = context(id as u32);
            let m = ExitMetrics::new(vm, id as u32, timed);
            let t = std::thread::Builder::new()
                .name(format!("vcpu{id}"))
                .spawn(move || {
                    if id == 0 {
                        crate::startup::mark("first KVM_RUN");
                    }
                    vcpu::run_loop(vcpu, cx, m)
                })
                .map_err(|e| Error::Io {
                    what: "spawning a vCPU thread".into(),
                    source: e,
                })?;
            threads.push(t);
        }
        Ok(VcpuThreads(threads))
    }

    /// The threads' handles (index = vCPU id), for the userspace injection path.
    pub fn handles(&self) -> &[JoinHandle<()>] {
        &self.0
    }

    /// Kicks every vCPU out of KVM_RUN once and joins it. The VM must already be
    /// stopping (the loops check that after every exit).
    pub fn stop(self) {
        for t in &self.0 {
            if !t.is_finished() {
                crate::signals::kick(t.as_pthread_t());
            }
        }
        for t in self.0 {
            let _ = t.join();
        }
    }
}

/// A VM's shared pieces each vCPU thread gets.
pub fn context(
    id: u32,
    pio: &Arc<crate::bus::Bus>,
    mmio: &Arc<crate::bus::Bus>,
    control: &Arc<crate::control::VmControl>,
    injector: &Arc<crate::inject::ExitInjector>,
) -> VcpuContext {
    VcpuContext {
        id,
        pio: pio.clone(),
        mmio: mmio.clone(),
        control: control.clone(),
        injector: injector.clone(),
    }
}
