//! [`PciPlatform`]: the PCI bus on the machine, and the application of its events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use irq_router::IrqRouter;
use kvm_ioctls::IoEventAddress;
use pci_emu::{BarChange, Bdf, FunctionEvent, IoEventSpec, PciBus, PciEvent, PciFunction};

use super::access::BarRegion;
use super::kept::{Kept, KeptIoEvents};
use super::IoEvents;
use crate::bus::Bus;
use crate::Result;

/// Pre-registered counters of config space accesses.
pub(crate) struct ConfigAccesses {
    pub(crate) cam_read: metrics::Counter,
    pub(crate) cam_write: metrics::Counter,
    pub(crate) ecam_read: metrics::Counter,
    pub(crate) ecam_write: metrics::Counter,
}

/// A BAR as placed on a bus.
struct Placed {
    base: u64,
    memory: bool,
    /// False when the range overlapped something and was left unmapped.
    mapped: bool,
    ioevents: Vec<(IoEventAddress, IoEventSpec)>,
}

/// The PCI bus of one VM, wired to its PIO/MMIO buses, KVM's ioeventfds and the
/// interrupt router.
pub struct PciPlatform {
    vm: String,
    bus: Mutex<PciBus>,
    pio: Arc<Bus>,
    mmio: Arc<Bus>,
    ram_size: u64,
    ioevents: Arc<dyn IoEvents>,
    router: Arc<Mutex<IrqRouter>>,
    placed: Mutex<HashMap<(Bdf, u8), Placed>>,
    /// Doorbells left registered at BARs' previous addresses (see `kept.rs`).
    kept: Mutex<KeptIoEvents>,
    me: Weak<PciPlatform>,
    /// The VM's memory-slot and INTx hooks, for devices added after the build.
    vm_hooks: std::sync::OnceLock<Arc<crate::devices::wiring::VmHooks>>,
    pub(crate) config_accesses: ConfigAccesses,
    overlaps: metrics::Counter,
}

impl PciPlatform {
    /// A platform with just the host bridge; `ram_size` bytes from 0 are RAM, which no
    /// memory BAR may shadow.
    pub fn new(
        vm: &str,
        pio: Arc<Bus>,
        mmio: Arc<Bus>,
        ram_size: u64,
        ioevents: Arc<dyn IoEvents>,
        router: Arc<Mutex<IrqRouter>>,
    ) -> Arc<PciPlatform> {
        let c = |mechanism: &'static str, dir: &'static str| {
            metrics::counter!(monitor::names::PCI_CONFIG_ACCESSES,
                "vm" => vm.to_string(), "mechanism" => mechanism, "dir" => dir)
        };
        Arc::new_cyclic(|me| PciPlatform {
            vm: vm.to_string(),
            bus: Mutex::new(PciBus::new()),
            pio,
            mmio,
            ram_size,
            ioevents,
            router,
            placed: Mutex::new(HashMap::new()),
            kept: Mutex::new(KeptIoEvents::default()),
            me: me.clone(),
            vm_hooks: std::sync::OnceLock::new(),
            config_accesses: ConfigAccesses {
                cam_read: c("cam", "read"),
                cam_write: c("cam", "write"),
                ecam_read: c("ecam", "read"),
                ecam_write: c("ecam", "write"),
            },
            overlaps: metrics::counter!(monitor::names::PCI_BAR_OVERLAPS, "vm" => vm.to_string()),
        })
    }

    /// The PCI bus (locked).
    pub fn bus(&self) -> MutexGuard<'_, PciBus> {
        self.bus.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The interrupt router.
    pub fn router(&self) -> &Arc<Mutex<IrqRouter>> {
        &self.router
    }

    /// Keeps the VM's hooks for devices added after the build (the first call wins).
    pub fn set_vm_hooks(&self, hooks: Arc<crate::devices::wiring::VmHooks>) {
        let _ = self.vm_hooks.set(hooks);
    }

    /// The VM's hooks, if the platform was built with them.
    pub fn vm_hooks(&self) -> Option<&Arc<crate::devices::wiring::VmHooks>> {
        self.vm_hooks.get()
    }

    /// Adds a function at `bdf`.
    pub fn add_function(&self, bdf: Bdf, f: Arc<Mutex<dyn PciFunction>>) -> Result<Bdf> {
        self.bus()
            .add_function(Some(bdf), f)
            .map_err(|e| crate::Error::Device {
                device: bdf.to_string(),
                detail: e.to_string(),
            })
    }

    /// The lowest device slot on bus 0 that is free and not in `reserved`.
    pub fn free_slot(&self, reserved: &[Bdf]) -> Option<Bdf> {
        let used = self.bus().bdfs();
        (1..32).filter_map(|d| Bdf::new(0, d, 0)).find(|b| {
            !used
                .iter()
                .chain(reserved)
                .any(|u| u.device == b.device && u.bus == b.bus)
        })
    }

    /// Applies the events of one guest (or firmware) write, synchronously: BAR moves
    /// remap the buses and move their ioeventfds; vector changes update KVM's routing
    /// table and irqfds through the router. Called before the write returns.
    pub fn apply(&self, events: &[PciEvent]) {
        for ev in events {
            match ev.event {
                FunctionEvent::Bar(change) => self.move_bar(ev.bdf, change),
                FunctionEvent::Vector(_) => {
                    let mut router = self.router.lock().unwrap_or_else(|e| e.into_inner());
                    if let Err(e) = router.apply(ev) {
                        guard::guest_log!(
                            log::Level::Error,
                            "{}: interrupt routing for {}: {e}",
                            self.vm,
                            ev.bdf
                        );
                    }
                }
                FunctionEvent::Command { .. } => {}
            }
        }
    }

    fn space(&self, memory: bool) -> &Bus {
        if memory {
            &self.mmio
        } else {
            &self.pio
        }
    }

    /// Deassigns doorbells that are no longer kept.
    fn deassign(&self, gone: Vec<Kept>) {
        for k in gone {
            let s = &k.spec;
            if let Err(e) = self.ioevents.unregister(&s.fd, k.addr, s.len, s.datamatch) {
                guard::guest_log!(
                    log::Level::Error,
                    "{}: {} BAR{}: {e}",
                    self.vm,
                    k.owner.0,
                    k.owner.1
                );
            }
        }
    }

    /// Doorbells kept registered at BARs' previous addresses.
    pub fn kept_doorbells(&self) -> usize {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn move_bar(&self, bdf: Bdf, c: BarChange) {
        let function = self.bus().function(bdf);
        let specs: Vec<IoEventSpec> = function
            .as_ref()
            .map(|f| f.lock().unwrap_or_else(|e| e.into_inner()).ioevents())
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.bar == c.index)
            .collect();
        let mut placed = self.placed.lock().unwrap_or_else(|e| e.into_inner());
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = placed.remove(&(bdf, c.index)) {
            // The doorbells stay registered where they were (see `kept.rs`).
            for (addr, s) in old.ioevents {
                let over = kept.keep((bdf, c.index), addr, s);
                self.deassign(over);
            }
            if old.mapped {
                self.space(old.memory).remove(old.base);
            }
        }
        let memory = c.kind.is_memory();
        let kind = c.kind.label();
        let gauge = metrics::gauge!(monitor::names::PCI_BAR_ADDRESS, "vm" => self.vm.clone(),
            "bdf" => bdf.to_string(), "bar" => c.index.to_string(), "kind" => kind);
        metrics::gauge!(monitor::names::PCI_BAR_SIZE_BYTES, "vm" => self.vm.clone(),
            "bdf" => bdf.to_string(), "bar" => c.index.to_string(), "kind" => kind)
        .set(c.size as f64);
        let (Some(base), Some(function)) = (c.new, function) else {
            gauge.set(0.0);
            return;
        };
        gauge.set(base as f64);
        let unlocked = function
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unlocked_bar(c.index);
        let region = Arc::new(BarRegion {
            platform: self.me.clone(),
            function,
            bdf,
            bar: c.index,
            unlocked,
        });
        let name = format!("{bdf} BAR{}", c.index);
        // Overlaps: the range mapped first keeps the addresses; the newcomer is left
        // unmapped (and its doorbells unregistered) until the guest moves it again.
        let shadows_ram = memory && base < self.ram_size;
        // Doorbells this BAR gets back where they already are; any other kept doorbell
        // inside the new range goes before the range is mapped.
        let reused: Vec<bool> = specs
            .iter()
            .map(|s| !shadows_ram && kept.reuse(ioevent_addr(memory, base + s.offset), s))
            .collect();
        if !shadows_ram {
            let stale = kept.evict(memory, base, c.size);
            self.deassign(stale);
        }
        let mapped = !shadows_ram
            && match self.space(memory).insert(base, c.size, &name, region) {
                Ok(()) => true,
                Err(e) => {
                    guard::guest_log!(log::Level::Warn, "{}: {e}; {name} left unmapped", self.vm);
                    false
                }
            };
        if !mapped {
            if shadows_ram {
                guard::guest_log!(
                    log::Level::Warn,
                    "{}: {name} at {base:#x} overlaps RAM; left unmapped",
                    self.vm
                );
            }
            self.overlaps.increment(1);
        }
        let mut ioevents = Vec::new();
        for (s, reused) in specs.into_iter().zip(reused) {
            let a = base + s.offset;
            let addr = ioevent_addr(memory, a);
            if reused && mapped {
                ioevents.push((addr, s));
                continue;
            }
            if reused {
                // Mapped nowhere after all: keep it registered, as before the move.
                let over = kept.keep((bdf, c.index), addr, s);
                self.deassign(over);
                continue;
            }
            if mapped {
                match self.ioevents.register(&s.fd, addr, s.len, s.datamatch) {
                    Ok(()) => ioevents.push((addr, s)),
                    Err(e) => guard::guest_log!(
                        log::Level::Error,
                        "{}: {name} doorbell at {a:#x}: {e}",
                        self.vm
                    ),
                }
            }
        }
        placed.insert(
            (bdf, c.index),
            Placed {
                base,
                memory,
                mapped,
                ioevents,
            },
        );
    }

    /// Publishes the info gauges of every function (IDs, class, capabilities).
    pub fn publish_info(&self) {
        let bus = self.bus();
        for bdf in bus.bdfs() {
            let Some(f) = bus.function(bdf) else { continue };
            let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
            let mut id = [0u8; 12];
            f.config_read(0, &mut id[..4]);
            f.config_read(8, &mut id[8..12]);
            let name = f.name().to_string();
            metrics::gauge!(monitor::names::PCI_FUNCTION_INFO, "vm" => self.vm.clone(),
                "bdf" => bdf.to_string(), "device" => name,
                "vendor_id" => format!("{:04x}", u16::from_le_bytes([id[0], id[1]])),
                "device_id" => format!("{:04x}", u16::from_le_bytes([id[2], id[3]])),
                "class" => format!("{:02x}{:02x}{:02x}", id[11], id[10], id[9]))
            .set(1.0);
            // Walk the capability list as a guest would.
            let mut p = [0u8; 1];
            f.config_read(0x34, &mut p);
            let mut ptr = p[0] & 0xfc;
            for _ in 0..48 {
                if ptr < 0x40 {
                    break;
                }
                let mut hdr = [0u8; 2];
                f.config_read(ptr as u16, &mut hdr);
                let cap = match hdr[0] {
                    0x05 => "msi",
                    0x11 => "msix",
                    0x10 => "pcie",
                    0x09 => "vendor",
                    _ => "other",
                };
                metrics::gauge!(monitor::names::PCI_CAPABILITY_INFO, "vm" => self.vm.clone(),
                    "bdf" => bdf.to_string(), "cap" => cap, "offset" => format!("{ptr:#04x}"))
                .set(1.0);
                ptr = hdr[1] & 0xfc;
            }
        }
    }
}

fn ioevent_addr(memory: bool, a: u64) -> IoEventAddress {
    if memory {
        IoEventAddress::Mmio(a)
    } else {
        IoEventAddress::Pio(a)
    }
}
