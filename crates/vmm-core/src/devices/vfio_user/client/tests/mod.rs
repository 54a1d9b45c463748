//! Client against the server in this process (no KVM): the irq-test device served over a
//! real socket, a dying server, INTx level semantics, and malformed servers.

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use irq_router::IrqHandle;
use pci_emu::{Bdf, PciFunction};
use vfio_user_proto as vu;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::*;
use crate::devices::irq_line::IrqLine;
use crate::devices::irq_test::MAGIC;
use crate::devices::vfio_user::server::{self, LevelIntx, Served, Server};
use crate::devices::vfio_user::{served_irq_test, slots::IrqSlots};

fn sock(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "kvmbus-vu-{}-{tag}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ))
}

fn opts(path: &std::path::Path) -> ClientOptions {
    ClientOptions {
        vm: "test".into(),
        bdf: Bdf::new(0, 5, 0).unwrap(),
        socket: path.to_path_buf(),
        connect_timeout: Duration::from_secs(5),
        reply_timeout: Duration::from_secs(2),
        held: None,
        interrupts: InterruptPath::Direct,
        control: None,
    }
}

/// Connects with MSI/MSI-X vectors from `vectors` only: no DMA, no mapped regions, no INTx.
fn connect_msi(
    o: &ClientOptions,
    vectors: &mut dyn FnMut(u16) -> Result<Vec<IrqHandle>>,
) -> Result<VfioUserDevice> {
    VfioUserDevice::connect(
        o,
        Wiring {
            vectors,
            dma: None,
            mapper: None,
            intx: None,
        },
    )
}

/// Serves `served` for `connections` clients in a thread; each accepted stream is also
/// sent back so a test can cut it.
fn spawn_server(
    path: &std::path::Path,
    served: Served,
    connections: usize,
) -> crossbeam_channel::Receiver<UnixStream> {
    let listener = server::listen(path).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        let mut srv = Server::new(served);
        for _ in 0..connections {
            let (c, _) = listener.accept().unwrap();
            tx.send(c.try_clone().unwrap()).unwrap();
            let _ = srv.serve(c);
        }
    });
    rx
}

fn handles(n: u16) -> Vec<IrqHandle> {
    (0..n)
        .map(|_| {
            IrqHandle::new(
                Arc::new(EventFd::new(EFD_NONBLOCK).unwrap()),
                ::metrics::Counter::noop(),
            )
        })
        .collect()
}

fn r32(f: &mut dyn PciFunction, bar: u8, off: u64) -> u32 {
    let mut b = [0u8; 4];
    f.bar_read(bar, off, &mut b);
    u32::from_le_bytes(b)
}

fn wait_count(fd: &EventFd, want: u64) -> u64 {
    let t0 = Instant::now();
    let mut got = 0;
    while got < want && t0.elapsed() < Duration::from_secs(5) {
        match fd.read() {
            Ok(n) => got += n,
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    got
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(5), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_served_irq_test_reads_fires_dies_and_comes_back() {
    let path = sock("irq");
    let conns = spawn_server(&path, served_irq_test(8, 4, false).unwrap(), 2);
    let hs = handles(8);
    let given = hs.clone();
    let mut asked = 0;
    let mut vectors = |n: u16| {
        asked = n;
        Ok(given.clone())
    };
    let mut dev = connect_msi(&opts(&path), &mut vectors).unwrap();
    assert_eq!(asked, 8);
    let mut id = [0u8; 4];
    dev.config_read(0, &mut id);
    assert_eq!(u32::from_le_bytes(id), 0x4954_1234);
    // BARs as the server sizes them: I/O 32, MMIO 4 KiB, 64-bit 16 KiB.
    let bars = dev.config.bars();
    assert_eq!(
        bars.iter().map(|b| (b.index, b.size)).collect::<Vec<_>>(),
        vec![(0, 64), (1, 4096), (2, 16 << 10)]
    );
    assert_eq!(r32(&mut dev, 0, 0), MAGIC);
    assert_eq!(r32(&mut dev, 1, 0x14), 8, "VECTORS through the MMIO BAR");

    // FIRE twice on vector 3: the server's device thread writes our eventfd directly.
    dev.bar_write(0, 4, &3u32.to_le_bytes());
    dev.bar_write(0, 8, &2u32.to_le_bytes());
    assert_eq!(wait_count(hs[3].eventfd(), 2), 2);
    wait_until("FIRED = 2", || r32(&mut dev, 0, 0x0c) == 2);
    assert!(hs[0].eventfd().read().is_err(), "no other vector fired");

    // The MSI-X table is local: a write reads back and produces a vector event when
    // the vector becomes deliverable.
    dev.bar_write(2, 0, &0xfee0_0000u32.to_le_bytes());
    assert_eq!(r32(&mut dev, 2, 0), 0xfee0_0000);

    // The server goes away: all-ones, writes dropped, the VM's side keeps going.
    let first = conns.recv_timeout(Duration::from_secs(5)).unwrap();
    first.shutdown(std::net::Shutdown::Both).unwrap();
    assert_eq!(r32(&mut dev, 0, 0), u32::MAX);
    assert!(!dev.connected());
    dev.bar_write(0, 8, &1u32.to_le_bytes());

    // It comes back: reads work and interrupts reach us again (SET_IRQS replayed).
    wait_until("reconnected", || dev.connected());
    assert_eq!(r32(&mut dev, 0, 0), MAGIC);
    dev.bar_write(0, 4, &5u32.to_le_bytes());
    dev.bar_write(0, 8, &1u32.to_le_bytes());
    assert_eq!(wait_count(hs[5].eventfd(), 1), 1);
    let _ = std::fs::remove_file(&path);
}

/// A function that is only its config space (BAR reads all-ones).
struct ConfigOnly(pci_emu::PciConfig);

impl PciFunction for ConfigOnly {
    fn config_read(&mut self, offset: u16, data: &mut [u8]) {
        self.0.read(offset, data)
    }
    fn config_write(&mut self, offset: u16, data: &[u8]) -> Vec<pci_emu::FunctionEvent> {
        self.0.write(offset, data)
    }
    fn bar_read(&mut self, _bar: u8, _offset: u64, data: &mut [u8]) {
        data.fill(0xff)
    }
    fn bar_write(&mut self, _bar: u8, _offset: u64, _data: &[u8]) -> Vec<pci_emu::FunctionEvent> {
        Vec::new()
    }
    fn name(&self) -> &str {
        "config-only"
    }
}

/// A test route standing in for KVM: it records the trigger and resample fds.
#[derive(Default)]
struct TestRoute {
    fds: Mutex<Option<(EventFd, EventFd)>>,
}

impl IntxRoute for TestRoute {
    fn bind(&self, trigger: &EventFd, resample: &EventFd, _gsi: u32) -> Result<()> {
        *self.fds.lock().unwrap() =
            Some((trigger.try_clone().unwrap(), resample.try_clone().unwrap()));
        Ok(())
    }
    fn unbind(&self, _trigger: &EventFd, _gsi: u32) {}
}

fn w32(f: &mut dyn PciFunction, bar: u8, off: u64, v: u32) {
    f.bar_write(bar, off, &v.to_le_bytes());
}

#[test]
fn device_reset_at_attach_on_request_and_on_flr_resets_the_served_model() {
    let path = sock("reset");
    let _conns = spawn_server(&path, served_irq_test(8, 4, false).unwrap(), 2);
    let connect = || {
        let hs = handles(8);
        let mut vectors = move |_n: u16| Ok(hs.clone());
        connect_msi(&opts(&path), &mut vectors).unwrap()
    };
    let mut dev = connect();
    w32(&mut dev, 0, 0x04, 5);
    w32(&mut dev, 0, 0x18, 1);
    assert_eq!((r32(&mut dev, 0, 0x04), r32(&mut dev, 0, 0x18)), (5, 1));
    assert!(dev.reset(), "DEVICE_RESET answered");
    assert_eq!(
        (r32(&mut dev, 0, 0x04), r32(&mut dev, 0, 0x18)),
        (0, 0),
        "VECTOR and MODE back to 0"
    );
    // FLR: the served irq-test advertises it; Initiate FLR resets the device (through
    // DEVICE_RESET) and what kvmbus owns (COMMAND).
    let pcie = dev
        .config
        .capabilities()
        .into_iter()
        .find(|c| c.id == 0x10)
        .expect("PCI Express capability")
        .offset as u16;
    let mut devcap = [0u8; 4];
    dev.config_read(pcie + 4, &mut devcap);
    assert_ne!(u32::from_le_bytes(devcap) & 1 << 28, 0, "FLR advertised");
    dev.config_write(4, &[3, 0]);
    w32(&mut dev, 0, 0x04, 6);
    let mut ctl = [0u8; 2];
    dev.config_read(pcie + 8, &mut ctl);
    ctl[1] |= 0x80;
    dev.config_write(pcie + 8, &ctl);
    assert_eq!(r32(&mut dev, 0, 0x04), 0, "VECTOR reset by the FLR");
    assert_eq!(dev.config.command() & 3, 0, "decoding off after the FLR");
    dev.config_read(pcie + 8, &mut ctl);
    assert_eq!(ctl[1] & 0x80, 0, "Initiate FLR reads 0");
    w32(&mut dev, 0, 0x04, 7);
    drop(dev);
    // The server keeps the device across clients; a new client resets it at attach.
    let mut dev = connect();
    assert_eq!(r32(&mut dev, 0, 0x04), 0, "reset at attach");
}

#[test]
fn intx_is_a_level_re_raised_after_eoi_while_asserted() {
    let path = sock("intx");
    let line = LevelIntx::new().unwrap();
    // A device model with one I/O BAR and INTA#.
    let mut cfg = pci_emu::PciConfig::new(pci_emu::PciIds {
        vendor_id: 0x494f,
        device_id: 0x0dc8,
        class_code: 0xff_0000,
        revision: 0,
        subsystem_vendor_id: 0,
        subsystem_id: 0,
    });
    cfg.add_bar(2, pci_emu::BarKind::Io, 256).unwrap();
    cfg.set_interrupt_pin(1);
    let served = Served {
        function: Box::new(ConfigOnly(cfg)),
        slots: IrqSlots::new(0).unwrap(),
        msi: 0,
        msix: 0,
        intx: Some(line.clone()),
        shared_bars: Vec::new(),
        reset: None,
    };
    let _conns = spawn_server(&path, served, 1);
    let route = Arc::new(TestRoute::default());
    let mut none = |_n: u16| -> Result<Vec<IrqHandle>> { panic!("no MSI vectors expected") };
    let mut dev = VfioUserDevice::connect(
        &opts(&path),
        Wiring {
            vectors: &mut none,
            dma: None,
            mapper: None,
            intx: Some((route.clone(), 18)),
        },
    )
    .unwrap();
    let mut l = [0u8; 2];
    dev.config_read(0x3c, &mut l);
    assert_eq!(l, [18, 1], "interrupt line names the IOAPIC pin; pin INTA#");
    let (trigger, resample) = route.fds.lock().unwrap().take().unwrap();
    trigger.read().err();

    // Assert: one trigger, however often the device re-asserts while masked.
    line.set_level(true);
    line.set_level(true);
    assert_eq!(wait_count(&trigger, 1), 1);
    std::thread::sleep(Duration::from_millis(50));
    assert!(trigger.read().is_err(), "no duplicate while unacknowledged");
    // EOI while still asserted: raised again.
    resample.write(1).unwrap();
    assert_eq!(wait_count(&trigger, 1), 1);
    // Deassert, then EOI: nothing more.
    line.set_level(false);
    resample.write(1).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        trigger.read().is_err(),
        "a deasserted line is not re-raised"
    );
    // The next assertion is delivered.
    line.set_level(true);
    assert_eq!(wait_count(&trigger, 1), 1);
    drop(dev);
    let _ = std::fs::remove_file(&path);
}

/// A fake server: answers VERSION, then runs `then` on the channel.
fn fake_server(path: &std::path::Path, then: impl FnOnce(&mut vu::Channel) + Send + 'static) {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (c, _) = listener.accept().unwrap();
        let mut ch = vu::Channel::new(c, vu::Limits::default());
        let m = ch.recv(None).unwrap();
        let v = vu::Version {
            major: 0,
            minor: 0,
            caps: vu::Capabilities::default(),
        };
        ch.reply(&m.header, &v.encode(), &[]).unwrap();
        then(&mut ch);
        std::thread::sleep(Duration::from_millis(200));
    });
}

fn no_vectors(_n: u16) -> Result<Vec<IrqHandle>> {
    Ok(Vec::new())
}

fn try_connect(path: &std::path::Path) -> Result<VfioUserDevice> {
    connect_msi(&opts(path), &mut no_vectors)
}

#[test]
fn malformed_servers_are_errors_not_panics() {
    // A truncated DEVICE_GET_INFO reply.
    let p = sock("short");
    fake_server(&p, |ch| {
        let m = ch.recv(None).unwrap();
        ch.reply(&m.header, &[16, 0, 0], &[]).unwrap();
    });
    assert!(try_connect(&p).is_err());
    // An oversized reply header.
    let p2 = sock("huge");
    fake_server(&p2, |ch| {
        let m = ch.recv(None).unwrap();
        let h = vu::Header {
            msg_id: m.header.msg_id,
            command: m.header.command,
            size: u32::MAX,
            flags: vu::TYPE_REPLY,
            error: 0,
        };
        let _ = ch.write_all(&h.encode());
    });
    assert!(try_connect(&p2).is_err());
    // Too few regions.
    let p3 = sock("few");
    fake_server(&p3, |ch| {
        let m = ch.recv(None).unwrap();
        let i = vu::DeviceInfo {
            flags: 2,
            num_regions: 2,
            num_irqs: 0,
        };
        ch.reply(&m.header, &i.encode(), &[]).unwrap();
    });
    assert!(try_connect(&p3).is_err());
    // A server that never answers: bounded by the reply timeout.
    let p4 = sock("mute");
    fake_server(&p4, |ch| {
        let _ = ch.recv(None);
        std::thread::sleep(Duration::from_secs(3));
    });
    let t0 = Instant::now();
    assert!(try_connect(&p4).is_err());
    assert!(t0.elapsed() < Duration::from_secs(4));
    // No socket at all: a bounded wait.
    let mut o = opts(&sock("absent"));
    o.connect_timeout = Duration::from_millis(200);
    let r = connect_msi(&o, &mut no_vectors);
    assert!(r.is_err());
    for p in [p, p2, p3, p4] {
        let _ = std::fs::remove_file(p);
    }
}

/// Records memory slots instead of KVM.
#[derive(Default)]
struct TestMapper {
    slots: Mutex<Vec<(u32, u64, u64)>>,
}

impl GuestMapper for TestMapper {
    fn map(&self, gpa: u64, size: u64, _host: u64) -> Result<u32> {
        let mut s = self.slots.lock().unwrap();
        let slot = 16 + s.len() as u32;
        s.push((slot, gpa, size));
        Ok(slot)
    }
    fn unmap(&self, slot: u32) {
        self.slots.lock().unwrap().retain(|(s, _, _)| *s != slot);
    }
}

#[test]
fn an_mmap_able_region_becomes_a_memory_slot_that_moves_with_its_bar() {
    let path = sock("mmap");
    let _conns = spawn_server(&path, served_irq_test(2, 1, true).unwrap(), 1);
    let mapper = Arc::new(TestMapper::default());
    let hs = handles(2);
    let mut v = |_n: u16| Ok(hs.clone());
    let mut dev = VfioUserDevice::connect(
        &opts(&path),
        Wiring {
            vectors: &mut v,
            dma: None,
            mapper: Some(mapper.clone()),
            intx: None,
        },
    )
    .unwrap();
    assert_eq!(dev.mapped_areas(), vec![(4, 0, 4096, None)]);
    // Place BAR4 and enable memory decoding: a slot appears at the BAR.
    dev.config_write(0x20, &0x9000_0000u32.to_le_bytes());
    dev.config_write(0x04, &2u16.to_le_bytes());
    assert_eq!(*mapper.slots.lock().unwrap(), vec![(16, 0x9000_0000, 4096)]);
    // The memory is the server's: written through the mapping, read by the server.
    dev.bar_write(4, 8, &0xabcd_0123u32.to_le_bytes());
    assert_eq!(r32(&mut dev, 4, 8), 0xabcd_0123);
    let mut via_server = [0u8; 4];
    dev.conn().region_read(4, 8, &mut via_server);
    assert_eq!(u32::from_le_bytes(via_server), 0xabcd_0123);
    // Move it: the slot follows.
    dev.config_write(0x20, &0x9100_0000u32.to_le_bytes());
    assert_eq!(mapper.slots.lock().unwrap()[0].1, 0x9100_0000);
    // Decoding off: no slot.
    dev.config_write(0x04, &0u16.to_le_bytes());
    assert!(mapper.slots.lock().unwrap().is_empty());
    let _ = std::fs::remove_file(&path);
}

mod areas;
mod held;
mod silent;
