//! The harnesses behind the fuzz targets: each drives the entry point a guest (or a
//! peer, or a user's file) drives, with the fuzzer's bytes.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use irq_router::{DeliveryMode, IrqChip, IrqRouter, RecordingIrqChip, RouterConfig};
use pci_emu::{Bdf, FunctionEvent, PciBus, PciEvent, PciFunction};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// A byte reader that yields zeros once the input is used up.
pub struct Input<'a>(pub &'a [u8]);

impl Input<'_> {
    /// The next byte (0 at the end).
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    /// The next little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    /// The next little-endian u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    /// The next little-endian u64.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }
    /// True while input remains.
    pub fn more(&self) -> bool {
        !self.0.is_empty()
    }
}

fn router(chip: Arc<dyn IrqChip>) -> IrqRouter {
    IrqRouter::new(
        chip,
        RouterConfig {
            vm: "fuzz".into(),
            // Small, so that the fuzzer reaches a full table (spilling) too.
            max_routes: 48,
            mode: DeliveryMode::Irqfd,
        },
    )
    .expect("router")
}

fn mem(size: usize) -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size)]).expect("guest memory")
}

/// PCI config space and BAR access sequences on a bus holding the irq-test device and
/// the hypercall gateway (MSI and MSI-X, tables in BARs), over CAM and ECAM; every
/// vector event goes through the interrupt router (recording chip).
pub fn pci_config(data: &[u8]) {
    let mut inp = Input(data);
    let chip: Arc<dyn IrqChip> = Arc::new(RecordingIrqChip::new());
    let mut r = router(chip.clone());
    let (it, gw_bdf) = (Bdf::new(0, 3, 0).unwrap(), Bdf::new(0, 4, 0).unwrap());
    let msix = 1 + u16::from(inp.u8() % 64);
    let h = r.add_device(it, "irq-test", msix).unwrap();
    let injector = Arc::new(vmm_core::inject::ExitInjector::new(chip.clone()));
    let irq_test = vmm_core::devices::irq_test::IrqTest::new(msix, 4, h, chip.clone(), injector)
        .expect("irq-test");
    let gh = r.add_device(gw_bdf, "gw", 4).unwrap();
    let m = mem(1 << 20);
    let gw = hypercall_gw::Gateway::new(
        hypercall_gw::GatewayConfig {
            vm: "fuzz".into(),
            queues: 2,
            queue_size: 256,
            msix_vectors: 4,
            ..Default::default()
        },
        m,
        None,
        gh,
    )
    .expect("gateway");
    let mut bus = PciBus::new();
    let f_it: Arc<Mutex<dyn PciFunction>> = Arc::new(Mutex::new(irq_test));
    bus.add_function(it, f_it.clone()).unwrap();
    bus.add_function(gw_bdf, gw.function()).unwrap();
    let fns = [f_it, gw.function()];
    let mut apply = |events: Vec<PciEvent>| {
        for e in events {
            if let FunctionEvent::Vector(_) = e.event {
                let _ = r.apply(&e);
            }
        }
    };
    let mut ops = 0;
    while inp.more() && ops < 4096 {
        ops += 1;
        let op = inp.u8();
        let len = [1usize, 2, 4, 8][usize::from(op >> 4 & 3)];
        let mut buf = [0u8; 8];
        match op % 6 {
            0 => bus.cam_read(inp.u16() % 8, &mut buf[..len.min(4)]),
            1 => {
                let off = inp.u16() % 8;
                let v = inp.u32().to_le_bytes();
                apply(bus.cam_write(off, &v[..len.min(4)]));
            }
            2 => bus.ecam_read(u64::from(inp.u32() & 0x1f_ffff), &mut buf[..len]),
            3 => {
                let off = u64::from(inp.u32() & 0x1f_ffff);
                let v = inp.u64().to_le_bytes();
                apply(bus.ecam_write(off, &v[..len]));
            }
            4 => {
                let f = &fns[usize::from(op >> 6 & 1)];
                let (bar, off) = (inp.u8() % 6, u64::from(inp.u16()));
                f.lock().unwrap().bar_read(bar, off, &mut buf[..len]);
            }
            _ => {
                let which = usize::from(op >> 6 & 1);
                let (bar, off, v) = (inp.u8() % 6, u64::from(inp.u16()), inp.u64());
                // irq-test FIRE asks for real work: keep counts small.
                let v = if which == 0 && bar < 2 && off == 8 {
                    v & 0xff
                } else {
                    v
                };
                let ev = fns[which]
                    .lock()
                    .unwrap()
                    .bar_write(bar, off, &v.to_le_bytes()[..len]);
                let bdf = if which == 0 { it } else { gw_bdf };
                apply(PciBus::wrap(bdf, ev));
            }
        }
    }
    gw.shutdown();
}

/// One pass of the hypercall ring processor over fuzzed guest memory: the input fills
/// 64 KiB of memory and names the queue's size and ring addresses.
pub fn hypercall_ring(data: &[u8]) {
    static MEM: OnceLock<GuestMemoryMmap> = OnceLock::new();
    let m = MEM.get_or_init(|| mem(64 << 10));
    let mut inp = Input(data);
    let size = 1u16 << (inp.u8() % 9);
    let (desc, avail, used) = (
        u64::from(inp.u16()) & !15,
        u64::from(inp.u16()) & !1,
        u64::from(inp.u16()) & !3,
    );
    let mut page = vec![0u8; 64 << 10];
    for (d, s) in page.iter_mut().zip(inp.0) {
        *d = *s;
    }
    m.write_slice(&page, GuestAddress(0)).unwrap();
    let _ = hypercall_gw::test_driver::ring_pass(m, size, desc, avail, used);
}

/// Synchronous calls: the input is written into guest memory and CALL_HI/CALL_LO name
/// call blocks anywhere (in, across the end of, and outside guest memory).
pub fn hypercall_sync(data: &[u8]) {
    static GW: OnceLock<(hypercall_gw::Gateway, GuestMemoryMmap)> = OnceLock::new();
    let (gw, m) = GW.get_or_init(|| {
        let m = mem(1 << 20);
        let h = (0..2)
            .map(|_| {
                irq_router::IrqHandle::new(
                    Arc::new(vmm_sys_util::eventfd::EventFd::new(libc_nonblock()).unwrap()),
                    metrics::Counter::noop(),
                )
            })
            .collect();
        let cfg = hypercall_gw::GatewayConfig {
            vm: "fuzz".into(),
            queues: 1,
            queue_size: 256,
            msix_vectors: 2,
            services: vec![hypercall_gw::ServiceConfig::Kv { nr: 0x100 }],
            ..Default::default()
        };
        (
            hypercall_gw::Gateway::new(cfg, m.clone(), None, h).unwrap(),
            m,
        )
    });
    let f = gw.function();
    let mut inp = Input(data);
    while inp.more() {
        let at = u64::from(inp.u32() % (1 << 20));
        let block: Vec<u8> = (0..72).map(|_| inp.u8()).collect();
        let _ = m.write_slice(&block, GuestAddress(at));
        let hi = if inp.u8() & 7 == 0 { inp.u32() } else { 0 };
        let lo = match inp.u8() % 4 {
            0 => (1 << 20) - 72 + u32::from(inp.u8()),
            1 => inp.u32(),
            _ => at as u32,
        };
        let mut fl = f.lock().unwrap();
        fl.bar_write(0, 0x0c, &hi.to_le_bytes());
        fl.bar_write(0, 0x08, &lo.to_le_bytes());
    }
}

fn libc_nonblock() -> i32 {
    vmm_sys_util::eventfd::EFD_NONBLOCK
}

/// The TOML configuration loader (UTF-8 inputs; `load` handles the rest).
pub fn config_toml(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Err(e) = vmm_core::config::parse(Path::new("fuzz.toml"), s) {
            assert!(e.line > 0, "unplaced error: {e}");
        }
    }
}

/// The multiboot loader into 4 MiB of guest memory.
pub fn multiboot(data: &[u8]) {
    static MEM: OnceLock<GuestMemoryMmap> = OnceLock::new();
    let m = MEM.get_or_init(|| mem(4 << 20));
    let _ = vmm_core::loader::load_multiboot("fuzz.elf", data, m, 4 << 20);
}

/// The external-backend message codec: bytes from a peer, read by `proto::recv`;
/// whatever decodes must encode to the same frame.
pub fn backend_codec(data: &[u8]) {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let (mut a, b) = UnixStream::pair().unwrap();
    let data = &data[..data.len().min(4096)];
    a.write_all(data).unwrap();
    drop(a);
    let mut off = 0;
    while let Ok((msg, _fds)) = hypercall_gw::proto::recv(&b) {
        let enc = msg.encode();
        assert!(enc.len() <= data.len() - off, "{msg:?}");
        off += enc.len();
    }
}
