//! The PCI glue without KVM: BAR placement on the buses, doorbells moving with their
//! BAR, the overlap rule, and vector events reaching the router synchronously.

use std::sync::{Arc, Mutex};

use irq_router::{IrqRouter, RecordingIrqChip, RouterConfig};
use kvm_ioctls::IoEventAddress;
use pci_emu::{BarKind, Bdf, FunctionEvent, IoEventSpec, PciConfig, PciFunction, PciIds};
use vmm_sys_util::eventfd::EventFd;

use super::*;
use crate::bus::{Bus, BusDevice, Space};

/// Records (un)registrations: (register?, I/O port or MMIO address as 'p'/'m', address).
#[derive(Default)]
struct RecIo(Mutex<Vec<(bool, char, u64)>>);

fn flat(a: IoEventAddress) -> (char, u64) {
    match a {
        IoEventAddress::Pio(p) => ('p', p),
        IoEventAddress::Mmio(m) => ('m', m),
    }
}

impl IoEvents for RecIo {
    fn register(&self, _: &EventFd, a: IoEventAddress, _: u8, _: Option<u64>) -> crate::Result<()> {
        let (k, v) = flat(a);
        self.0.lock().unwrap().push((true, k, v));
        Ok(())
    }
    fn unregister(
        &self,
        _: &EventFd,
        a: IoEventAddress,
        _: u8,
        _: Option<u64>,
    ) -> crate::Result<()> {
        let (k, v) = flat(a);
        self.0.lock().unwrap().push((false, k, v));
        Ok(())
    }
}

/// BAR0: 16 bytes of I/O with a doorbell at +4 and an ID register at 0; BAR1: 4 KiB MMIO.
struct Dev {
    config: PciConfig,
    doorbell: Arc<EventFd>,
}

impl Dev {
    fn new() -> Dev {
        let mut config = PciConfig::new(PciIds {
            vendor_id: 0x1234,
            device_id: 0x0001,
            class_code: 0xff0000,
            revision: 0,
            subsystem_vendor_id: 0,
            subsystem_id: 0,
        });
        config.add_bar(0, BarKind::Io, 16).unwrap();
        config
            .add_bar(
                1,
                BarKind::Mem32 {
                    prefetchable: false,
                },
                4096,
            )
            .unwrap();
        config.add_msix(2, 1, 0, 1, 0x800).unwrap();
        Dev {
            config,
            doorbell: Arc::new(EventFd::new(0).unwrap()),
        }
    }
}

impl PciFunction for Dev {
    fn config_read(&mut self, o: u16, d: &mut [u8]) {
        self.config.read(o, d)
    }
    fn config_write(&mut self, o: u16, d: &[u8]) -> Vec<FunctionEvent> {
        self.config.write(o, d)
    }
    fn bar_read(&mut self, bar: u8, off: u64, d: &mut [u8]) {
        if !self.config.msix_bar_read(bar, off, d) {
            d.fill(0x5a);
        }
    }
    fn bar_write(&mut self, bar: u8, off: u64, d: &[u8]) -> Vec<FunctionEvent> {
        let mut ev = Vec::new();
        self.config.msix_bar_write(bar, off, d, &mut ev);
        ev
    }
    fn ioevents(&self) -> Vec<IoEventSpec> {
        vec![IoEventSpec {
            bar: 0,
            offset: 4,
            len: 4,
            datamatch: None,
            fd: self.doorbell.clone(),
        }]
    }
    fn name(&self) -> &str {
        "dev"
    }
}

struct Rig {
    p: Arc<PciPlatform>,
    pio: Arc<Bus>,
    mmio: Arc<Bus>,
    io: Arc<RecIo>,
    chip: Arc<RecordingIrqChip>,
    cam: CamPort,
}

fn rig() -> Rig {
    let pio = Arc::new(Bus::new(Space::Pio, "t"));
    let mmio = Arc::new(Bus::new(Space::Mmio, "t"));
    let io = Arc::new(RecIo::default());
    let chip = Arc::new(RecordingIrqChip::new());
    let router = IrqRouter::new(
        chip.clone(),
        RouterConfig {
            vm: "t".into(),
            max_routes: 4096,
            mode: irq_router::DeliveryMode::Irqfd,
        },
    )
    .unwrap();
    let p = PciPlatform::new(
        "t",
        pio.clone(),
        mmio.clone(),
        64 << 20,
        io.clone(),
        Arc::new(Mutex::new(router)),
    );
    let cam = CamPort(Arc::downgrade(&p));
    Rig {
        p,
        pio,
        mmio,
        io,
        chip,
        cam,
    }
}

impl Rig {
    fn add(&self, dev: u8) -> Bdf {
        let bdf = Bdf::new(0, dev, 0).unwrap();
        self.p
            .add_function(bdf, Arc::new(Mutex::new(Dev::new())))
            .unwrap();
        bdf
    }
    fn cfg_write(&self, bdf: Bdf, reg: u8, v: u32) {
        let addr = 0x8000_0000u32 | (bdf.device as u32) << 11 | reg as u32;
        self.cam.write(0, &addr.to_le_bytes());
        self.cam.write(4, &v.to_le_bytes());
    }
}

#[test]
fn firmware_maps_bars_and_registers_doorbells() {
    let r = rig();
    let a = r.add(3);
    assign_resources(&r.p, 0xB000_0000).unwrap();
    assert_eq!(r.pio.owner(0xc000).as_deref(), Some("00:03.0 BAR0"));
    assert_eq!(
        r.mmio.owner(MEM_WINDOW_START).as_deref(),
        Some("00:03.0 BAR1")
    );
    assert_eq!(r.io.0.lock().unwrap().as_slice(), &[(true, 'p', 0xc004)]);
    let mut d = [0u8; 4];
    assert!(r.pio.read(0xc000, &mut d));
    assert_eq!(d, [0x5a; 4]);
    let _ = a;
}

#[test]
fn moving_a_bar_moves_its_range_and_doorbell() {
    let r = rig();
    let a = r.add(3);
    assign_resources(&r.p, 0xB000_0000).unwrap();
    r.io.0.lock().unwrap().clear();
    r.cfg_write(a, 0x10, 0xd000);
    assert_eq!(r.pio.owner(0xc000), None);
    assert_eq!(r.pio.owner(0xd00f).as_deref(), Some("00:03.0 BAR0"));
    // The new doorbell is assigned; the old one is kept (a deassign costs an SRCU
    // grace period).
    assert_eq!(r.io.0.lock().unwrap().as_slice(), &[(true, 'p', 0xd004)]);
    assert_eq!(r.p.kept_doorbells(), 1);
    // Decoding off unmaps (the doorbell is kept); on maps again with no ioctl.
    r.cfg_write(a, 0x04, 0x0006);
    assert_eq!(r.pio.owner(0xd000), None);
    r.cfg_write(a, 0x04, 0x0007);
    assert_eq!(r.pio.owner(0xd000).as_deref(), Some("00:03.0 BAR0"));
    // Moving back and forth costs no ioctl at all.
    for _ in 0..10 {
        r.cfg_write(a, 0x10, 0xc000);
        r.cfg_write(a, 0x10, 0xd000);
    }
    assert_eq!(r.io.0.lock().unwrap().as_slice(), &[(true, 'p', 0xd004)]);
    assert_eq!(r.p.kept_doorbells(), 1);
}

#[test]
fn a_kept_doorbell_goes_before_another_bar_is_mapped_over_it() {
    let r = rig();
    let a = r.add(3);
    let b = r.add(4);
    assign_resources(&r.p, 0xB000_0000).unwrap();
    // a: 0xc000 (doorbell 0xc004), b: 0xc010. a moves away; b moves onto a's old place.
    r.cfg_write(a, 0x10, 0xd000);
    r.io.0.lock().unwrap().clear();
    r.cfg_write(b, 0x10, 0xc000);
    assert_eq!(r.pio.owner(0xc000).as_deref(), Some("00:04.0 BAR0"));
    let calls = r.io.0.lock().unwrap().clone();
    // a's kept doorbell at 0xc004 is deassigned; b's doorbell is assigned at 0xc004
    // (its old one at 0xc014 is kept).
    assert_eq!(calls, vec![(false, 'p', 0xc004), (true, 'p', 0xc004)]);
}

#[test]
fn kept_doorbells_are_bounded_per_bar() {
    let r = rig();
    let a = r.add(3);
    assign_resources(&r.p, 0xB000_0000).unwrap();
    for i in 0..100u32 {
        r.cfg_write(a, 0x10, 0xd000 + 0x10 * i);
    }
    assert_eq!(r.p.kept_doorbells(), super::kept::MAX_KEPT);
    let unreg = r.io.0.lock().unwrap().iter().filter(|c| !c.0).count();
    assert_eq!(unreg, 100 - super::kept::MAX_KEPT);
}

#[test]
fn overlapping_bars_keep_the_first_mapping() {
    let r = rig();
    let a = r.add(3);
    let b = r.add(4);
    assign_resources(&r.p, 0xB000_0000).unwrap();
    assert_eq!(r.pio.owner(0xc010).as_deref(), Some("00:04.0 BAR0"));
    // b moves onto a: a keeps the addresses, b is unmapped and its doorbell unregistered.
    r.io.0.lock().unwrap().clear();
    r.cfg_write(b, 0x10, 0xc000);
    assert_eq!(r.pio.owner(0xc000).as_deref(), Some("00:03.0 BAR0"));
    assert_eq!(r.pio.owner(0xc010), None);
    // b's doorbell stays registered at 0xc014, where nothing is mapped.
    assert!(r.io.0.lock().unwrap().is_empty());
    assert_eq!(r.p.kept_doorbells(), 1);
    // A memory BAR placed over RAM is not mapped either.
    r.cfg_write(a, 0x14, 0x0010_0000);
    assert_eq!(r.mmio.owner(0x0010_0000), None);
    // b moved somewhere free is mapped again.
    r.cfg_write(b, 0x10, 0xe000);
    assert_eq!(r.pio.owner(0xe000).as_deref(), Some("00:04.0 BAR0"));
}

#[test]
fn msix_programming_reaches_kvm_before_the_write_returns() {
    let r = rig();
    let a = r.add(3);
    let _handles =
        r.p.router()
            .lock()
            .unwrap()
            .add_device(a, "dev", 2)
            .unwrap();
    assign_resources(&r.p, 0xB000_0000).unwrap();
    let table = MEM_WINDOW_START;
    // Entry 1: address, data, unmasked; then MSI-X enable through config space.
    r.mmio.write(table + 16, &0xfee0_1000u32.to_le_bytes());
    r.mmio.write(table + 24, &0x45u32.to_le_bytes());
    r.mmio.write(table + 28, &0u32.to_le_bytes());
    let base = 3u64 << 15; // 00:03.0 in the ECAM window
    let cap = {
        let mut f = [0u8; 1];
        r.p.bus().ecam_read(base | 0x34, &mut f);
        let mut p = f[0];
        for _ in 0..48 {
            let mut h = [0u8; 2];
            r.p.bus().ecam_read(base | p as u64, &mut h);
            if h[0] == 0x11 {
                break;
            }
            p = h[1];
        }
        p
    };
    let ctl = 0x8000u32 << 16;
    r.cfg_write(a, cap, ctl | 0x11);
    // Right after the write: a route for 0x45 at APIC 1 and an irqfd bound to it.
    let routes = r.chip.msi_routes();
    assert!(
        routes
            .values()
            .any(|m| m.address == 0xfee0_1000 && m.data == 0x45),
        "{routes:?}"
    );
    assert_eq!(r.chip.irqfds().len(), 1);
    // Masking the entry unbinds it before the MMIO write returns.
    r.mmio.write(table + 28, &1u32.to_le_bytes());
    assert_eq!(r.chip.irqfds().len(), 0);
}

/// A function that blocks inside its config write until released.
struct Stuck {
    entered: crossbeam_channel::Sender<()>,
    release: crossbeam_channel::Receiver<()>,
}

impl PciFunction for Stuck {
    fn config_read(&mut self, _offset: u16, data: &mut [u8]) {
        data.fill(0x5a);
    }
    fn config_write(&mut self, _offset: u16, _data: &[u8]) -> Vec<FunctionEvent> {
        let _ = self.entered.send(());
        let _ = self.release.recv();
        Vec::new()
    }
    fn bar_read(&mut self, _bar: u8, _offset: u64, data: &mut [u8]) {
        data.fill(0xff);
    }
    fn bar_write(&mut self, _bar: u8, _offset: u64, _data: &[u8]) -> Vec<FunctionEvent> {
        Vec::new()
    }
    fn name(&self) -> &str {
        "stuck"
    }
}

#[test]
fn a_function_stuck_in_a_config_write_does_not_stall_the_others() {
    let r = rig();
    let other = r.add(4);
    let (entered_tx, entered) = crossbeam_channel::bounded(1);
    let (release, release_rx) = crossbeam_channel::bounded(1);
    let stuck = Bdf::new(0, 3, 0).unwrap();
    r.p.add_function(
        stuck,
        Arc::new(Mutex::new(Stuck {
            entered: entered_tx,
            release: release_rx,
        })),
    )
    .unwrap();
    let ecam = Arc::new(EcamWindow(Arc::downgrade(&r.p)));
    let e = ecam.clone();
    let writer = std::thread::spawn(move || e.write(3 << 15 | 0x40, &[1, 2, 3, 4]));
    entered
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("the stuck function's write started");
    // While it is stuck, the other function answers through ECAM (on another thread,
    // so that a regression fails here instead of hanging) and CAM.
    let (tx, rx) = crossbeam_channel::bounded(1);
    let e = ecam.clone();
    std::thread::spawn(move || {
        let mut id = [0u8; 4];
        e.read((other.device as u64) << 15, &mut id);
        let _ = tx.send(id);
    });
    let id = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("config read of another function blocked behind the stuck one");
    assert_ne!(id, [0xff; 4]);
    let addr = 0x8000_0000u32 | (other.device as u32) << 11;
    r.cam.write(0, &addr.to_le_bytes());
    let mut again = [0u8; 4];
    r.cam.read(4, &mut again);
    assert_eq!(again, id);
    release.send(()).unwrap();
    writer.join().unwrap();
}
