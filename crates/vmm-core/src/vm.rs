//! Building a VM from a [`Config`] and running it to its end.

use std::os::unix::thread::JoinHandleExt;
use std::sync::{Arc, Mutex};

use irq_router::{DeliveryMode, IrqChip, IrqRouter, KvmIrqChip, RouterConfig};
use pci_emu::{Bdf, PciFunction};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use crate::arch;
use crate::bus::{Bus, Space};
use crate::config::{BootKind, Config, ConfigError, DeviceKind, HypercallServiceConfig};
use crate::control::{StopReason, VmControl};
use crate::devices::irq_test::IrqTest;
use crate::devices::{self, DebugExit, PostPort, PowerOff, SerialConsole, SerialSink};
use crate::error::kvm_err;
use crate::inject::ExitInjector;
use crate::loader::{self, LoadError};
use crate::memory::GuestRam;
use crate::pci::{self, CamPort, EcamWindow, KvmIoEvents, PciPlatform};
use crate::signals;
use crate::vcpu::{self, ExitMetrics, VcpuContext};
use crate::{Error, Result};
use hypercall_gw::{BackendMode, Gateway, GatewayConfig, GuestMemoryShare, ServiceConfig};

/// KVM's TSS and identity-map pages, just below the BIOS area at 4 GiB.
const KVM_TSS_ADDR: usize = 0xfffb_d000;
const KVM_IDENTITY_MAP_ADDR: u64 = 0xfffb_c000;
/// The serial port's legacy interrupt line.
const COM1_GSI: u32 = 4;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Record per-exit handling time histograms (metrics on).
    pub timed_exits: bool,
    /// Sample KVM's binary statistics (VM and every vCPU) into metrics this often.
    pub kvm_stats_period: Option<Duration>,
}

/// A VM ready to run.
pub struct Vm {
    /// Its configuration.
    pub config: Config,
    /// The KVM VM.
    pub vm_fd: Arc<VmFd>,
    /// Guest RAM.
    pub ram: GuestRam,
    /// Port I/O bus.
    pub pio: Arc<Bus>,
    /// MMIO bus.
    pub mmio: Arc<Bus>,
    /// Stop state.
    pub control: Arc<VmControl>,
    /// The PCI bus and its glue.
    pub pci: Arc<PciPlatform>,
    /// The userspace interrupt path (for comparison with irqfd).
    pub injector: Arc<ExitInjector>,
    gateways: Vec<Gateway>,
    vcpus: Vec<VcpuFd>,
    serial: Arc<SerialConsole>,
    _kvm: Kvm,
}

/// The image bytes the configuration names.
pub fn image_bytes(config: &Config) -> Result<(String, Vec<u8>)> {
    match config.boot.kind {
        BootKind::Builtin => {
            let img = crate::builtin::image(&config.boot.image).unwrap_or_default();
            Ok((format!("builtin:{}", config.boot.image), img.to_vec()))
        }
        BootKind::Multiboot => {
            let path = &config.boot.image;
            let bytes = std::fs::read(path).map_err(|e| {
                config_err(
                    config,
                    config.places.image,
                    format!("key 'image' in [boot]: cannot read {path}: {e}"),
                )
            })?;
            Ok((path.clone(), bytes))
        }
    }
}

fn config_err(config: &Config, (line, column): (usize, usize), message: String) -> Error {
    Error::Config(ConfigError {
        file: config.path.clone(),
        line,
        column,
        message,
    })
}

/// Loads the image, boot information and MP table into `mem`. A segment beyond memory
/// is reported against `memory_mib`, a malformed image against `image`.
pub fn load_guest(config: &Config, mem: &GuestMemoryMmap) -> Result<loader::LoadedImage> {
    let (name, bytes) = image_bytes(config)?;
    let size = config.memory_mib << 20;
    let loaded = loader::load_multiboot(&name, &bytes, mem, size).map_err(|e| match e {
        LoadError::OutsideMemory { .. } => config_err(
            config,
            config.places.memory_mib,
            format!("key 'memory_mib' in [vm] is too small for the image: {e}"),
        ),
        e => config_err(
            config,
            config.places.image,
            format!("key 'image' in [boot]: {e}"),
        ),
    })?;
    loader::write_boot_info(
        mem,
        &loader::BootInfo {
            mem_size: size,
            cmdline: &config.boot.cmdline,
        },
    )?;
    arch::write_mptable(mem, config.vcpus)?;
    Ok(loaded)
}

/// Opens /dev/kvm and checks what kvmbus needs.
pub fn open_kvm() -> Result<Kvm> {
    let kvm =
        Kvm::new().map_err(|e| Error::KvmUnavailable(format!("cannot open /dev/kvm: {e}")))?;
    // Without IRQ routing or irqfd, MSIs fall back to KVM_SIGNAL_MSI (see build_pci).
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
        return Err(config_err(
            config,
            config.places.vcpus,
            format!(
                "key 'vcpus' in [vm] is {}, but KVM allows at most {max}",
                config.vcpus
            ),
        ));
    }
    Ok(())
}

impl Vm {
    /// Builds the VM: KVM, memory, irqchip, PIT, platform devices, the guest image, vCPUs.
    pub fn new(config: Config) -> Result<Vm> {
        let kvm = open_kvm()?;
        check_vcpus(&config, &kvm)?;
        let vm_fd = Arc::new(kvm.create_vm().map_err(kvm_err("KVM_CREATE_VM"))?);
        vm_fd
            .set_tss_address(KVM_TSS_ADDR)
            .map_err(kvm_err("KVM_SET_TSS_ADDR"))?;
        vm_fd
            .set_identity_map_address(KVM_IDENTITY_MAP_ADDR)
            .map_err(kvm_err("KVM_SET_IDENTITY_MAP_ADDR"))?;
        vm_fd
            .create_irq_chip()
            .map_err(kvm_err("KVM_CREATE_IRQCHIP"))?;
        vm_fd
            .create_pit2(kvm_pit_config {
                flags: KVM_PIT_SPEAKER_DUMMY,
                ..Default::default()
            })
            .map_err(kvm_err("KVM_CREATE_PIT2"))?;

        let ram = GuestRam::new(config.memory_mib << 20)?;
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
        // SAFETY: the region maps `ram`, which is owned by the returned Vm and outlives
        // the VM fd's use of it; the host address and size come from that mapping.
        unsafe { vm_fd.set_user_memory_region(region) }
            .map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;

        let loaded = load_guest(&config, &ram.memory)?;

        let control = Arc::new(VmControl::default());
        let pio = Arc::new(Bus::new(Space::Pio, &config.name));
        let mmio = Arc::new(Bus::new(Space::Mmio, &config.name));
        let serial_irq = Arc::new(EventFd::new(libc::EFD_NONBLOCK).map_err(|e| Error::Io {
            what: "eventfd".into(),
            source: e,
        })?);
        if kvm.check_extension(Cap::Irqfd) {
            vm_fd
                .register_irqfd(&serial_irq, COM1_GSI)
                .map_err(kvm_err("KVM_IRQFD"))?;
        } else {
            log::warn!("KVM lacks irqfd: the UART raises no interrupts (guests must poll)");
        }
        let serial = Arc::new(SerialConsole::new(
            serial_irq,
            SerialSink::open(&config.serial)?,
        ));
        pio.insert(devices::COM1_PORT as u64, 8, "serial", serial.clone())?;
        pio.insert(
            devices::DEBUG_EXIT_PORT as u64,
            1,
            "debug-exit",
            Arc::new(DebugExit(control.clone())),
        )?;
        pio.insert(
            devices::POWER_OFF_PORT as u64,
            2,
            "power-off",
            Arc::new(PowerOff(control.clone())),
        )?;
        pio.insert(
            devices::POST_PORT as u64,
            1,
            "post",
            Arc::new(PostPort::default()),
        )?;
        let chip: Arc<dyn IrqChip> = Arc::new(KvmIrqChip::new(vm_fd.clone()));
        let injector = Arc::new(ExitInjector::new(chip.clone()));
        let mut gateways = Vec::new();
        let pci = build_pci(
            &config,
            (&kvm, &vm_fd),
            &chip,
            &injector,
            (&pio, &mmio),
            &ram,
            &mut gateways,
        )?;

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
                    loaded.entry,
                    loader::MB_BOOTLOADER_MAGIC,
                    loader::MBI_ADDR as u32,
                )?;
            }
            // Application processors stay in KVM's wait-for-SIPI state (the in-kernel
            // local APIC makes every vCPU but 0 start uninitialized).
            vcpus.push(vcpu);
        }

        Ok(Vm {
            config,
            vm_fd,
            pci,
            injector,
            gateways,
            ram,
            pio,
            mmio,
            control,
            vcpus,
            serial,
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

    /// Runs every vCPU until the VM stops; returns why it stopped.
    pub fn run(self, opts: &RunOptions) -> Result<StopReason> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| Error::Io { what, source }
        };
        signals::install_kick_handler().map_err(io("kick signal handler"))?;
        signals::stop_on_signals(self.control.clone()).map_err(io("SIGINT/SIGTERM handlers"))?;
        let vm = self.config.name.clone();
        set_state(&vm, "running");
        metrics::gauge!(monitor::names::VM_VCPUS, "vm" => vm.clone()).set(self.config.vcpus as f64);
        metrics::gauge!(monitor::names::VM_MEMORY_BYTES, "vm" => vm.clone())
            .set(self.ram.size as f64);

        let (stats_stop, stats_thread) = match opts.kvm_stats_period {
            Some(period) => {
                let (tx, rx) = crossbeam_channel::bounded::<()>(1);
                let stats = self.kvm_stats(&vm);
                (
                    Some(tx),
                    Some(monitor::spawn_stats_sampler(stats, period, rx)),
                )
            }
            None => (None, None),
        };
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        for (id, vcpu) in self.vcpus.into_iter().enumerate() {
            let cx = VcpuContext {
                id: id as u32,
                pio: self.pio.clone(),
                mmio: self.mmio.clone(),
                control: self.control.clone(),
                injector: self.injector.clone(),
            };
            let m = ExitMetrics::new(&vm, id as u32, opts.timed_exits);
            let t = std::thread::Builder::new()
                .name(format!("vcpu{id}"))
                .spawn(move || vcpu::run_loop(vcpu, cx, m))
                .map_err(io("spawning a vCPU thread"))?;
            threads.push(t);
        }
        self.injector.set_threads(&threads);
        let started = Instant::now();
        let uptime = metrics::gauge!(monitor::names::VM_UPTIME_SECONDS, "vm" => vm.clone());
        let reason = loop {
            uptime.set(started.elapsed().as_secs_f64());
            if self.control.stopping() {
                break self.control.wait();
            }
            std::thread::park_timeout(Duration::from_millis(100));
        };
        set_state(&vm, "stopping");
        stop_vcpus(threads);
        if let (Some(tx), Some(t)) = (stats_stop, stats_thread) {
            let _ = tx.send(());
            let _ = t.join();
        }
        self.serial.flush();
        for gw in self.gateways {
            gw.shutdown();
        }
        set_state(&vm, "stopped");
        Ok(reason)
    }
}

/// The gateway's form of a `[[hypercall.service]]` (validated by the config loader).
fn service(s: &HypercallServiceConfig) -> ServiceConfig {
    match s.kind.as_str() {
        "kv" => ServiceConfig::Kv { nr: s.nr },
        "echo" => ServiceConfig::Echo { nr: s.nr },
        _ => ServiceConfig::External {
            nr: s.nr,
            count: s.count,
            socket: s.socket.clone().unwrap_or_default(),
            mode: if s.mode.as_deref() == Some("direct") {
                BackendMode::Direct
            } else {
                BackendMode::Relay
            },
            queue: s.queue,
        },
    }
}

/// The PCI bus: host bridge, CAM and ECAM, the configured devices, and firmware-style
/// BAR assignment with decoding enabled.
fn build_pci(
    config: &Config,
    (kvm, vm_fd): (&Kvm, &Arc<VmFd>),
    chip: &Arc<dyn IrqChip>,
    injector: &Arc<ExitInjector>,
    (pio, mmio): (&Arc<Bus>, &Arc<Bus>),
    ram: &GuestRam,
    gateways: &mut Vec<Gateway>,
) -> Result<Arc<PciPlatform>> {
    let irq_err = |e: irq_router::Error| Error::Device {
        device: "irq-router".into(),
        detail: e.to_string(),
    };
    let router = IrqRouter::new(
        chip.clone(),
        RouterConfig {
            vm: config.name.clone(),
            max_routes: kvm.check_extension_int(Cap::IrqRouting).max(0) as u32,
            // irqfd on MSI routes where KVM has them; else (or when the config asks)
            // a router thread injects with KVM_SIGNAL_MSI.
            mode: if config.msi_signal
                || !kvm.check_extension(Cap::IrqRouting)
                || !kvm.check_extension(Cap::Irqfd)
            {
                DeliveryMode::SignalMsi
            } else {
                DeliveryMode::Irqfd
            },
        },
    )
    .map_err(irq_err)?;
    let router = Arc::new(Mutex::new(router));
    let platform = PciPlatform::new(
        &config.name,
        pio.clone(),
        mmio.clone(),
        ram.size,
        Arc::new(KvmIoEvents(vm_fd.clone())),
        router.clone(),
    );
    pio.insert(
        pci::CAM_PORT as u64,
        8,
        "pci-cam",
        Arc::new(CamPort(platform.clone())),
    )?;
    mmio.insert(
        config.ecam_base,
        pci::ECAM_SIZE,
        "pci-ecam",
        Arc::new(EcamWindow(platform.clone())),
    )?;
    let reserved: Vec<Bdf> = config.devices.iter().filter_map(|d| d.bdf).collect();
    for d in &config.devices {
        let bdf = match d.bdf {
            Some(b) => b,
            None => platform.free_slot(&reserved).ok_or_else(|| Error::Device {
                device: d.kind.name().into(),
                detail: "no free PCI slot on bus 0".into(),
            })?,
        };
        let function: Arc<Mutex<dyn PciFunction>> = match &d.kind {
            DeviceKind::IrqTest {
                msix_vectors,
                msi_vectors,
                socket,
            } => {
                let handles = router
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .add_device(bdf, "irq-test", (*msix_vectors).max(*msi_vectors))
                    .map_err(irq_err)?;
                if let Some(path) = socket {
                    devices::irq_socket::serve(path, "irq-test", handles.clone())?;
                }
                Arc::new(Mutex::new(IrqTest::new(
                    *msix_vectors,
                    *msi_vectors,
                    handles,
                    chip.clone(),
                    injector.clone(),
                )?))
            }
            DeviceKind::HypercallGateway {
                queues,
                queue_size,
                msix_vectors,
            } => {
                let handles = router
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .add_device(bdf, "hypercall-gateway", *msix_vectors)
                    .map_err(irq_err)?;
                let gw = Gateway::new(
                    GatewayConfig {
                        vm: config.name.clone(),
                        queues: *queues,
                        queue_size: *queue_size,
                        msix_vectors: *msix_vectors,
                        vendor_id: 0x1234,
                        device_id: 0x4843,
                        services: config.hypercall_services.iter().map(service).collect(),
                        backend_timeout: Duration::from_millis(config.backend_timeout_ms),
                    },
                    ram.memory.clone(),
                    Some(GuestMemoryShare {
                        memfd: ram.memfd.clone(),
                        regions: vec![(0, ram.size, 0)],
                    }),
                    handles,
                )
                .map_err(|e| Error::Device {
                    device: format!("hypercall-gateway ({}:{})", config.path.display(), d.line),
                    detail: e.to_string(),
                })?;
                let f = gw.function();
                gateways.push(gw);
                f
            }
        };
        platform.add_function(bdf, function)?;
    }
    pci::assign_resources(&platform, config.ecam_base)?;
    platform.publish_info();
    Ok(platform)
}

fn set_state(vm: &str, state: &'static str) {
    for s in ["starting", "running", "stopping", "stopped"] {
        metrics::gauge!(monitor::names::VM_STATE, "vm" => vm.to_string(), "state" => s)
            .set(if s == state { 1.0 } else { 0.0 });
    }
}

/// Kicks every vCPU thread out of KVM_RUN until it has returned, then joins it. The kick
/// repeats because a signal that lands just before KVM_RUN is entered is not seen by it.
fn stop_vcpus(threads: Vec<JoinHandle<()>>) {
    for t in threads {
        while !t.is_finished() {
            // SAFETY: the thread handle is alive (not joined) so its pthread_t is valid;
            // the kick signal has a no-op handler installed.
            unsafe { libc::pthread_kill(t.as_pthread_t(), signals::kick_signal()) };
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = t.join();
    }
}
