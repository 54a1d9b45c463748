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
    // Joined at the end: a backend thread still exiting after the iteration shows up
    // as a (thread-local destructor) leak to LeakSanitizer.
    let irq_stop = irq_test.stopper();
    let gh = r.add_device(gw_bdf, "gw", 4).unwrap();
    let m = mem(1 << 20);
    let gw = hypercall_gw::Gateway::new(
        hypercall_gw::GatewayConfig {
            vm: "fuzz".into(),
            // One queue thread: every iteration starts and joins the device threads.
            queues: 1,
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
    bus.add_function(Some(it), f_it.clone()).unwrap();
    bus.add_function(Some(gw_bdf), gw.function()).unwrap();
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
    irq_stop.stop();
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

/// Guest memory for the fw_cfg target: two 32 KiB regions with a hole between them, so
/// descriptors and buffers can sit in RAM, across its ends or in the hole.
const FW_CFG_RAM: [(u64, usize); 2] = [(0, 0x8000), (0x1_0000, 0x8000)];

/// True if `[addr, addr + len)` lies within one RAM region of [`FW_CFG_RAM`].
fn fw_cfg_in_ram(addr: u64, len: u64) -> bool {
    FW_CFG_RAM.iter().any(|&(base, size)| {
        addr >= base
            && addr
                .checked_add(len)
                .is_some_and(|e| e <= base + size as u64)
    })
}

/// A guest-physical address: mostly in or near RAM, sometimes anywhere.
fn fw_cfg_gpa(inp: &mut Input) -> u64 {
    match inp.u8() % 4 {
        0 | 1 => u64::from(inp.u16()),
        2 => 0x1_0000 + u64::from(inp.u16()),
        _ => inp.u64(),
    }
}

/// The fw_cfg device on its ports (selector, data, DMA address halves) in fuzzed order,
/// over fuzzed guest memory holding DMA descriptors, with fuzzed files. Checks: byte
/// reads after a port select return the item's bytes (0 past the end); a DMA descriptor
/// in RAM ends with control 0 or the error bit; a select-and-read DMA into RAM that
/// does not overlap its descriptor copies the item's bytes (zeros past the end) and
/// succeeds.
pub fn fw_cfg(data: &[u8]) {
    use vmm_core::bus::BusDevice;
    use vmm_core::devices::fw_cfg::{
        FwCfg, FwCfgItems, MachineInfo, DMA_CTL_ERROR, DMA_CTL_READ, DMA_CTL_SELECT,
        FW_CFG_SIGNATURE,
    };
    static MEM: OnceLock<GuestMemoryMmap> = OnceLock::new();
    let m = MEM.get_or_init(|| {
        let ranges: Vec<_> = FW_CFG_RAM
            .iter()
            .map(|&(b, s)| (GuestAddress(b), s))
            .collect();
        GuestMemoryMmap::from_ranges(&ranges).expect("guest memory")
    });
    for &(base, size) in &FW_CFG_RAM {
        m.write_slice(&vec![0u8; size], GuestAddress(base)).unwrap();
    }
    let mut inp = Input(data);
    let cpus = 1 + u16::from(inp.u8() % 8);
    let mut items = FwCfgItems::new(MachineInfo {
        ram_size: 0x1_8000,
        boot_cpus: cpus,
        max_cpus: cpus,
    });
    for _ in 0..inp.u8() % 4 {
        let name: Vec<u8> = (0..inp.u8() % 12).map(|_| inp.u8()).collect();
        let len = usize::from(inp.u16() % 600);
        let body: Vec<u8> = (0..len).map(|_| inp.u8()).collect();
        let _ = items.add_file(&String::from_utf8_lossy(&name), body);
    }
    let dev = FwCfg::new(items, m.clone());
    let item = |key: u16| dev.items().data(key).unwrap_or(&[]).to_vec();
    let read_mem = |addr: u64, len: usize| {
        let mut b = vec![0u8; len];
        m.read_slice(&mut b, GuestAddress(addr)).ok().map(|_| b)
    };
    // The cursor as the port interface alone moves it: (key, offset), None once an
    // access this model does not follow has happened.
    let mut model = Some((FW_CFG_SIGNATURE, 0usize));
    let mut ops = 0;
    while inp.more() && ops < 1024 {
        ops += 1;
        let op = inp.u8();
        match op % 7 {
            0 => {
                let key = inp.u16();
                dev.write(0, &key.to_le_bytes());
                model = Some((key, 0));
            }
            1 => {
                let mut b = [0u8];
                dev.read(u64::from(op >> 7), &mut b);
                if let Some((key, off)) = &mut model {
                    let want = item(*key).get(*off).copied();
                    if want.is_some() {
                        *off += 1;
                    }
                    assert_eq!(b[0], want.unwrap_or(0), "port read of key {key:#x}");
                }
            }
            2 | 3 => {
                let len = [1usize, 2, 4, 8][usize::from(op >> 4 & 3)];
                let off = u64::from(inp.u8()) % (13 - len as u64);
                let mut b = inp.u64().to_le_bytes();
                if op % 7 == 2 {
                    dev.read(off, &mut b[..len]);
                } else {
                    dev.write(off, &b[..len]);
                }
                model = None;
            }
            4 => {
                // A descriptor: be32 control, be32 length, be64 address.
                let at = fw_cfg_gpa(&mut inp);
                let control = inp.u32();
                let length = if op & 0x80 != 0 {
                    inp.u32()
                } else {
                    u32::from(inp.u16() % 0x1000)
                };
                let address = fw_cfg_gpa(&mut inp);
                let mut d = [0u8; 16];
                d[0..4].copy_from_slice(&control.to_be_bytes());
                d[4..8].copy_from_slice(&length.to_be_bytes());
                d[8..16].copy_from_slice(&address.to_be_bytes());
                let _ = m.write_slice(&d, GuestAddress(at));
            }
            5 => {
                let desc = if op & 0x80 != 0 {
                    fw_cfg_gpa(&mut inp)
                } else {
                    u64::from(inp.u16())
                };
                let before = read_mem(desc, 16);
                dev.write(4, &((desc >> 32) as u32).to_be_bytes());
                dev.write(8, &(desc as u32).to_be_bytes());
                model = None;
                if let Some(c) = read_mem(desc, 4) {
                    let c = u32::from_be_bytes(c.try_into().unwrap());
                    assert!(c == 0 || c == DMA_CTL_ERROR, "control {c:#x} after DMA");
                }
                let Some(d) = before else { continue };
                let control = u32::from_be_bytes(d[0..4].try_into().unwrap());
                let length = u32::from_be_bytes(d[4..8].try_into().unwrap()) as u64;
                let address = u64::from_be_bytes(d[8..16].try_into().unwrap());
                let overlaps = address < desc + 16 && desc < address.saturating_add(length);
                if control & (DMA_CTL_SELECT | DMA_CTL_READ) == DMA_CTL_SELECT | DMA_CTL_READ
                    && length <= 0x1000
                    && fw_cfg_in_ram(address, length)
                    && !overlaps
                {
                    let key = (control >> 16) as u16;
                    let mut want = item(key);
                    want.resize(want.len().max(length as usize), 0);
                    let got = read_mem(address, length as usize).unwrap();
                    assert_eq!(got, want[..length as usize], "DMA read of key {key:#x}");
                    let c = read_mem(desc, 4).unwrap();
                    assert_eq!(c, [0; 4], "select-and-read into RAM failed");
                    let n = (length as usize).min(item(key).len());
                    model = Some((key, n));
                }
            }
            _ => {
                let at = fw_cfg_gpa(&mut inp);
                let bytes: Vec<u8> = (0..inp.u8() % 32).map(|_| inp.u8()).collect();
                let _ = m.write_slice(&bytes, GuestAddress(at));
            }
        }
    }
}

/// Round trip of one fixed-shape vfio-user payload type: what decodes re-encodes to no
/// more bytes than it came in, and decodes back to itself.
fn vfio_user_fixed<T: PartialEq + std::fmt::Debug>(
    p: &[u8],
    decode: fn(&[u8]) -> vfio_user_proto::Result<T>,
    encode: fn(&T) -> Vec<u8>,
) {
    if let Ok(x) = decode(p) {
        let e = encode(&x);
        assert!(e.len() <= p.len(), "{x:?} re-encodes longer than its input");
        match decode(&e) {
            Ok(y) => assert_eq!(y, x, "round trip"),
            Err(err) => panic!("{x:?} re-encodes to something that does not decode: {err}"),
        }
    }
}

/// Every vfio-user payload decoder on one payload, with round-trip checks.
pub fn vfio_user_payload(p: &[u8]) {
    use vfio_user_proto as vu;
    vfio_user_fixed(p, vu::DmaMap::decode, vu::DmaMap::encode);
    vfio_user_fixed(p, vu::DmaUnmap::decode, vu::DmaUnmap::encode);
    vfio_user_fixed(p, vu::DeviceInfo::decode, vu::DeviceInfo::encode);
    vfio_user_fixed(p, vu::IrqInfo::decode, vu::IrqInfo::encode);
    vfio_user_fixed(p, vu::SetIrqs::decode, vu::SetIrqs::encode);
    vfio_user_fixed(p, vu::RegionAccess::decode, vu::RegionAccess::encode);
    vfio_user_fixed(p, vu::DmaAccess::decode, vu::DmaAccess::encode);
    if let Ok(r) = vu::RegionInfo::decode(p) {
        // The capability chain is re-laid out (one sparse capability right after the
        // fixed part), so compare what it says, and that a second round is stable.
        let e = r.encode();
        assert!(e.len() <= p.len(), "{r:?} re-encodes longer than its input");
        let r2 = match vu::RegionInfo::decode(&e) {
            Ok(r2) => r2,
            Err(err) => panic!("{r:?} re-encodes to something that does not decode: {err}"),
        };
        assert_eq!(
            (r2.index, r2.size, r2.offset, &r2.sparse),
            (r.index, r.size, r.offset, &r.sparse)
        );
        assert_eq!(r2.encode(), e, "second round differs");
    }
    if let Ok(v) = vu::Version::decode(p) {
        match vu::Version::decode(&v.encode()) {
            Ok(v2) => assert_eq!(v2, v, "round trip"),
            Err(err) => panic!("{v:?} re-encodes to something that does not decode: {err}"),
        }
    }
}

/// The vfio-user message codec on bytes from a peer. An even first byte: the rest is
/// one payload, given to every decoder. An odd one: the rest is a stream read by
/// `Channel::recv` (size bounds, framing), each message's payload then given to every
/// decoder. What decodes must re-encode to no more bytes and decode back the same.
pub fn vfio_user_codec(data: &[u8]) {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use vfio_user_proto as vu;
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        vfio_user_payload(data);
        return;
    }
    let data = &data[..data.len().min(64 << 10)];
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(data).unwrap();
    drop(a);
    let mut ch = vu::Channel::new(
        b,
        vu::Limits {
            max_fds: 4,
            max_data: 4096,
        },
    );
    let mut used = 0;
    while let Ok(msg) = ch.recv(None) {
        assert_eq!(
            msg.header.size as usize,
            vu::HEADER_SIZE + msg.payload.len()
        );
        used += msg.header.size as usize;
        assert!(used <= data.len(), "more bytes received than sent");
        if !msg.header.is_error() {
            vfio_user_payload(&msg.payload);
        }
    }
}
