//! Building a VM from a [`Config`] and running it to its end. This module only
//! orchestrates; the pieces live in [`crate::machine`] (KVM, memory, lines),
//! [`crate::boot`] (the guest image), the device [registry](crate::devices::registry),
//! [`crate::pci`] and [`crate::vcpu_threads`].
//!
//! Teardown order (see `docs/architecture.md`): the stop request is recorded; device
//! threads stop (producers); vCPU threads are kicked once and joined (consumers); the
//! statistics sampler stops; final steps run (serial flush); then shared state (PCI
//! platform, buses, VM fd, memory) is released when the `Vm` is dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use irq_router::{IrqChip, KvmIrqChip};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};

use crate::bus::{Bus, Space};
use crate::config::Config;
use crate::control::{StopReason, VmControl};
use crate::devices::vfio_user::client::HeldConnections;
use crate::devices::wiring::{Services, VmHooks, Wiring};
use crate::inject::ExitInjector;
use crate::machine::{self, KvmLines};
use crate::memory::GuestRam;
use crate::pci::{self, KvmIoEvents, MsiCaps, PciPlatform};
use crate::startup::{self, mark};
use crate::teardown;
use crate::vcpu_threads::{self, VcpuThreads};
use crate::Result;

pub use crate::boot::{image_bytes, load_guest};
pub use crate::machine::{check_vcpus, open_kvm};

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Record per-exit handling time histograms (metrics on).
    pub timed_exits: bool,
    /// Sample KVM's binary statistics (VM and every vCPU) and the uptime this often.
    pub kvm_stats_period: Option<Duration>,
    /// Leave the kernel's VM teardown to a child process (see [`crate::teardown`]), for
    /// callers that exit right after [`Vm::run`].
    pub async_teardown: bool,
}

/// A VM ready to run. Field order is drop order: devices and their threads first,
/// the VM fd before the memory it maps.
pub struct Vm {
    /// Its configuration.
    pub config: Config,
    services: Services,
    /// The PCI bus and its glue.
    pub pci: Arc<PciPlatform>,
    /// Port I/O bus.
    pub pio: Arc<Bus>,
    /// MMIO bus.
    pub mmio: Arc<Bus>,
    /// Stop state.
    pub control: Arc<VmControl>,
    /// The userspace interrupt path (for comparison with irqfd).
    pub injector: Arc<ExitInjector>,
    vcpus: Vec<VcpuFd>,
    /// The KVM VM.
    pub vm_fd: Arc<VmFd>,
    /// Guest RAM.
    pub ram: GuestRam,
    _kvm: Kvm,
}

impl Vm {
    /// Builds the VM: KVM, memory, the guest image, platform and PCI devices, vCPUs.
    pub fn new(config: Config) -> Result<Vm> {
        Vm::build(config, None)
    }

    /// [`Vm::new`] for one boot of a machine that reboots ([`crate::reboot`]): device
    /// connections are taken from and parked in `held`.
    pub fn build(config: Config, held: Option<&HeldConnections>) -> Result<Vm> {
        let kvm = open_kvm()?;
        check_vcpus(&config, &kvm)?;
        mark("kvm opened");
        let ram = GuestRam::new(config.memory_mib << 20)?;
        mark("memfd mapped");
        let vm_fd = machine::create_vm(&kvm, &ram)?;
        let loaded = load_guest(&config, &ram.memory)?;
        mark("image, boot info, mp table");

        let control = Arc::new(VmControl::default());
        // A stop signal while the devices are built (a vfio-user device may wait for
        // its server) stops this VM at once: the waits end and the build fails.
        let _signals = {
            let c = control.clone();
            monitor::watch_stop_signals(move |sig| c.request_stop(StopReason::Signal(sig)))
        };
        let pio = Arc::new(Bus::new(Space::Pio, &config.name));
        let mmio = Arc::new(Bus::new(Space::Mmio, &config.name));
        let chip: Arc<dyn IrqChip> = Arc::new(KvmIrqChip::new(vm_fd.clone()));
        let injector = Arc::new(ExitInjector::new(chip.clone()));
        let router = pci::router(&config, MsiCaps::of(&kvm), &chip)?;
        mark("interrupt router");
        let lines = KvmLines {
            vm: vm_fd.clone(),
            irqfd: kvm.check_extension(Cap::Irqfd),
        };
        let mut services = Services::default();
        let hooks = VmHooks::kvm(&vm_fd);
        let mut w = Wiring {
            config: &config,
            pio: &pio,
            mmio: &mmio,
            control: &control,
            ram: &ram,
            lines: &lines,
            router: &router,
            chip: &chip,
            injector: &injector,
            vm: &hooks,
            services: &mut services,
            held,
        };
        for device in &config.platform {
            device.build(&mut w)?;
        }
        mark("platform devices");
        let pci = pci::build(&mut w, Arc::new(KvmIoEvents(vm_fd.clone())))?;
        mark("pci platform");
        let vcpus = vcpu_threads::create(&kvm, &vm_fd, &config, loaded.entry)?;
        mark("vcpus, cpuid, regs");
        Ok(Vm {
            config,
            services,
            pci,
            pio,
            mmio,
            control,
            injector,
            vcpus,
            vm_fd,
            ram,
            _kvm: kvm,
        })
    }

    /// Takes the vCPU fds out of the VM, for callers that run their own exit loop (the
    /// bare-loop benchmark). [`Vm::run`] then runs no vCPU.
    pub fn take_vcpus(&mut self) -> Vec<VcpuFd> {
        std::mem::take(&mut self.vcpus)
    }

    /// Opens KVM's binary statistics for the VM and every vCPU; what cannot be opened
    /// (an older kernel) is logged and left out.
    fn kvm_stats(&self, vm: &str) -> Vec<monitor::KvmStats> {
        let mut out = Vec::new();
        let mut add = |fd: monitor::Result<std::os::fd::OwnedFd>, scope| match fd
            .and_then(|fd| monitor::KvmStats::new(vm, scope, fd))
        {
            Ok(s) => out.push(s),
            Err(e) => log::warn!("KVM statistics unavailable: {e}"),
        };
        add(monitor::get_stats_fd(&*self.vm_fd), monitor::StatsScope::Vm);
        for (i, v) in self.vcpus.iter().enumerate() {
            add(
                monitor::get_stats_fd(v),
                monitor::StatsScope::Vcpu(i as u32),
            );
        }
        out
    }

    /// Runs every vCPU until the VM stops; returns why it stopped. SIGINT, SIGTERM and
    /// SIGHUP stop the VM. The calling thread blocks until then (no periodic wake-ups).
    pub fn run(mut self, opts: &RunOptions) -> Result<StopReason> {
        let vm = self.config.name.clone();
        set_state(&vm, "running");
        metrics::gauge!(monitor::names::VM_VCPUS, "vm" => vm.clone()).set(self.config.vcpus as f64);
        metrics::gauge!(monitor::names::VM_MEMORY_BYTES, "vm" => vm.clone())
            .set(self.ram.size as f64);
        let signals = monitor::stop_on_signals().map_err(|e| crate::Error::Device {
            device: "signals".into(),
            detail: e.to_string(),
        })?;
        mark("signal thread");

        let sampler = opts.kvm_stats_period.map(|period| {
            let (tx, rx) = crossbeam_channel::bounded::<()>(1);
            let started = Instant::now();
            let uptime = metrics::gauge!(monitor::names::VM_UPTIME_SECONDS, "vm" => vm.clone());
            let tick = move || uptime.set(started.elapsed().as_secs_f64());
            let t = monitor::spawn_stats_sampler(self.kvm_stats(&vm), period, rx, tick);
            (tx, t)
        });
        let (pio, mmio, control, injector) = (&self.pio, &self.mmio, &self.control, &self.injector);
        let threads = VcpuThreads::spawn(
            std::mem::take(&mut self.vcpus),
            |id| vcpu_threads::context(id, pio, mmio, control, injector),
            &vm,
            opts.timed_exits,
        )?;
        self.injector.set_threads(threads.handles());
        mark("stats sampler, vcpu threads spawned");

        let reason = crossbeam_channel::select! {
            recv(self.control.stopped()) -> _ => self.control.wait(),
            recv(signals) -> sig => {
                self.control.request_stop(StopReason::Signal(sig.unwrap_or(libc::SIGTERM)));
                self.control.wait()
            }
        };
        mark("stop noticed");
        set_state(&vm, "stopping");
        self.services.stop_devices();
        threads.stop();
        if let Some((tx, t)) = sampler {
            let _ = tx.send(());
            let _ = t.join();
        }
        self.services.finish();
        guard::log_summary();
        set_state(&vm, "stopped");
        mark("threads joined");
        // Release in the struct's order, timed (the launch benchmark reports each step).
        let Vm {
            config,
            services,
            pci,
            pio,
            mmio,
            control,
            injector,
            vcpus,
            vm_fd,
            ram,
            _kvm,
        } = self;
        // A reboot follows: the kernel's teardown is waited for, so that boots never
        // pile up teardown children.
        let reboots = config.on_reset.reboots_after(&reason);
        drop((config, services, pci, pio, mmio, control, injector, vcpus));
        mark("devices and buses released");
        let handoff = (opts.async_teardown && !reboots)
            .then(|| teardown::hand_off(&*vm_fd, startup::tracing()))
            .flatten();
        drop(vm_fd);
        drop(handoff);
        mark("vm fd closed");
        drop(ram);
        mark("guest memory unmapped");
        Ok(reason)
    }
}

fn set_state(vm: &str, state: &'static str) {
    for s in ["starting", "running", "stopping", "stopped"] {
        metrics::gauge!(monitor::names::VM_STATE, "vm" => vm.to_string(), "state" => s)
            .set(if s == state { 1.0 } else { 0.0 });
    }
}
