//! QEMU's `pc-testdev`: the ISA test device kvm-unit-tests' x86 kernels expect.
//!
//! The same ranges as QEMU 7.2's `hw/misc/pc-testdev.c`:
//!
//! | where | size | what |
//! |---|---|---|
//! | port 0xE0 | 4 | a 32-bit scratch register; an access of width w at 0xE0+k reads or writes bytes k..k+w |
//! | port 0xE4 | 4 | flush page: a 4-byte write of a guest-physical address makes KVM drop its mapping of that page (other widths ignored; reads 0) |
//! | port 0xE8 | 4 | the same scratch register, served one byte at a time (as QEMU's `ioport-byte`) |
//! | ports 0x2000-0x2017 | 24 | IRQ lines: a 1-byte write of v to 0x2000+n sets ISA IRQ / GSI n to `v != 0` (level; other widths ignored; reads 0) |
//! | memory 0xFF000000 | 64 KiB | RAM-like scratch memory served by exits (any width, little-endian) |
//!
//! QEMU flushes the page by `mprotect`ing it to `PROT_NONE` and back, which invalidates
//! KVM's mapping through the MMU notifier. kvmbus toggles `PROT_EXEC` instead (RW to RWX
//! and back): the notifier fires alike, but the page stays readable and writable for the
//! VMM's other threads in between, so a device thread touching it cannot fault.
//! QEMU asserts (and aborts) on IRQ lines 16-23; kvmbus drives IOAPIC pins 16-23.

use std::sync::{Arc, Mutex};

use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use super::irq_line::IrqLine;
use crate::bus::{Bus, BusDevice, Space};
use crate::Result;

/// Port of the 32-bit scratch register.
pub const IOPORT: u16 = 0xe0;
/// Port of the flush-page register.
pub const FLUSH_PORT: u16 = 0xe4;
/// Port of the byte-served view of the scratch register.
pub const IOPORT_BYTE: u16 = 0xe8;
/// First IRQ-line port.
pub const IRQ_PORT: u16 = 0x2000;
/// Number of IRQ-line ports (one per IOAPIC pin).
pub const IRQ_LINES: usize = 24;
/// Guest-physical base of the iomem window.
pub const IOMEM_BASE: u64 = 0xff00_0000;
/// Size of the iomem window.
pub const IOMEM_LEN: u64 = 0x1_0000;

/// One range the device occupies.
pub struct Region {
    /// PIO or MMIO.
    pub space: Space,
    /// First address.
    pub base: u64,
    /// Length in bytes.
    pub len: u64,
    /// Name on the bus.
    pub name: &'static str,
    /// What serves it.
    pub device: Arc<dyn BusDevice>,
}

/// The pc-testdev: build it with [`PcTestdev::new`], map it with [`PcTestdev::attach`].
pub struct PcTestdev {
    scratch: Arc<Scratch>,
    flush: Arc<FlushPage>,
    irq: Arc<IrqPorts>,
    iomem: Arc<Iomem>,
}

impl PcTestdev {
    /// A device flushing pages of `memory` and driving `lines[n]` for IRQ port n
    /// (missing lines are ignored).
    pub fn new(memory: GuestMemoryMmap, lines: Vec<Arc<dyn IrqLine>>) -> PcTestdev {
        PcTestdev {
            scratch: Arc::new(Scratch::default()),
            flush: Arc::new(FlushPage { memory }),
            irq: Arc::new(IrqPorts { lines }),
            iomem: Arc::new(Iomem(Mutex::new(vec![0; IOMEM_LEN as usize]))),
        }
    }

    /// The ranges it occupies, as QEMU places them.
    pub fn regions(&self) -> Vec<Region> {
        let scratch = self.scratch.clone();
        vec![
            Region {
                space: Space::Pio,
                base: IOPORT.into(),
                len: 4,
                name: "pc-testdev-ioport",
                device: scratch.clone(),
            },
            Region {
                space: Space::Pio,
                base: FLUSH_PORT.into(),
                len: 4,
                name: "pc-testdev-flush-page",
                device: self.flush.clone(),
            },
            Region {
                space: Space::Pio,
                base: IOPORT_BYTE.into(),
                len: 4,
                name: "pc-testdev-ioport-byte",
                device: Arc::new(ByteWise(scratch)),
            },
            Region {
                space: Space::Pio,
                base: IRQ_PORT.into(),
                len: IRQ_LINES as u64,
                name: "pc-testdev-irq-line",
                device: self.irq.clone(),
            },
            Region {
                space: Space::Mmio,
                base: IOMEM_BASE,
                len: IOMEM_LEN,
                name: "pc-testdev-iomem",
                device: self.iomem.clone(),
            },
        ]
    }

    /// Maps every region on `pio` or `mmio`.
    pub fn attach(&self, pio: &Bus, mmio: &Bus) -> Result<()> {
        for r in self.regions() {
            let bus = match r.space {
                Space::Pio => pio,
                Space::Mmio => mmio,
            };
            bus.insert(r.base, r.len, r.name, r.device)?;
        }
        Ok(())
    }
}

/// The 32-bit scratch register (`ioport_data` in QEMU).
#[derive(Default)]
struct Scratch(Mutex<u32>);

impl Scratch {
    fn lock(&self) -> std::sync::MutexGuard<'_, u32> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Bytes `k..k+len` of the register, as an access at offset k of `len` bytes sees them
/// (bytes beyond the register read as 0 and are not written).
impl BusDevice for Scratch {
    fn read(&self, offset: u64, data: &mut [u8]) {
        let v = self.lock().to_le_bytes();
        for (i, d) in data.iter_mut().enumerate() {
            *d = v.get((offset & 3) as usize + i).copied().unwrap_or(0);
        }
    }
    fn write(&self, offset: u64, data: &[u8]) {
        let mut reg = self.lock();
        let mut v = reg.to_le_bytes();
        for (i, d) in data.iter().enumerate() {
            if let Some(b) = v.get_mut((offset & 3) as usize + i) {
                *b = *d;
            }
        }
        *reg = u32::from_le_bytes(v);
    }
}

/// Serves a device one byte at a time (QEMU's `impl.max_access_size = 1`).
struct ByteWise(Arc<Scratch>);

impl BusDevice for ByteWise {
    fn read(&self, offset: u64, data: &mut [u8]) {
        for (i, d) in data.iter_mut().enumerate() {
            self.0.read(offset + i as u64, std::slice::from_mut(d));
        }
    }
    fn write(&self, offset: u64, data: &[u8]) {
        for (i, d) in data.iter().enumerate() {
            self.0.write(offset + i as u64, std::slice::from_ref(d));
        }
    }
}

/// The flush-page port.
struct FlushPage {
    memory: GuestMemoryMmap,
}

impl FlushPage {
    /// Makes KVM drop its mapping of the 4 KiB guest page holding `gpa`, keeping its
    /// contents. Returns false if the page is not RAM or the kernel refused.
    fn flush(&self, gpa: u64) -> bool {
        const PAGE: u64 = 4096;
        let page = gpa & !(PAGE - 1);
        let Some(end) = page.checked_add(PAGE - 1) else {
            return false;
        };
        let (Ok(first), Ok(last)) = (
            self.memory.get_host_address(GuestAddress(page)),
            self.memory.get_host_address(GuestAddress(end)),
        ) else {
            return false;
        };
        if last as usize - first as usize != (PAGE - 1) as usize {
            return false;
        }
        let ptr = first.cast::<libc::c_void>();
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: `ptr..ptr+PAGE` is one page inside the guest-memory mapping that
        // `self.memory` keeps alive, and the mapping's regions are page aligned at
        // guest-physical page boundaries. Adding PROT_EXEC and restoring READ|WRITE never
        // removes access, so no thread touching the page can fault; no Rust reference
        // depends on the protection bits.
        let ok = unsafe {
            libc::mprotect(ptr, PAGE as usize, rw | libc::PROT_EXEC) == 0
                && libc::mprotect(ptr, PAGE as usize, rw) == 0
        };
        if !ok {
            log::warn!(
                "pc-testdev: flushing page {page:#x}: {}",
                std::io::Error::last_os_error()
            );
        }
        ok
    }
}

impl BusDevice for FlushPage {
    fn read(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write(&self, offset: u64, data: &[u8]) {
        if let (0, Ok(v)) = (offset, <[u8; 4]>::try_from(data)) {
            self.flush(u32::from_le_bytes(v).into());
        }
    }
}

/// The IRQ-line ports.
struct IrqPorts {
    lines: Vec<Arc<dyn IrqLine>>,
}

impl BusDevice for IrqPorts {
    fn read(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write(&self, offset: u64, data: &[u8]) {
        if let ([v], Some(line)) = (data, self.lines.get(offset as usize)) {
            line.set_level(*v != 0);
        }
    }
}

/// The iomem window: plain bytes behind exits.
struct Iomem(Mutex<Vec<u8>>);

impl BusDevice for Iomem {
    fn read(&self, offset: u64, data: &mut [u8]) {
        let buf = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match buf.get(offset as usize..offset as usize + data.len()) {
            Some(s) => data.copy_from_slice(s),
            None => data.fill(0),
        }
    }
    fn write(&self, offset: u64, data: &[u8]) {
        let mut buf = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = buf.get_mut(offset as usize..offset as usize + data.len()) {
            s.copy_from_slice(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::irq_line::RecordingIrqLine;
    use vm_memory::Bytes;

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x4000)]).unwrap()
    }

    fn lines() -> (Vec<Arc<RecordingIrqLine>>, Vec<Arc<dyn IrqLine>>) {
        let rec: Vec<Arc<RecordingIrqLine>> = (0..IRQ_LINES).map(|_| Arc::default()).collect();
        let dynl = rec.iter().map(|l| l.clone() as Arc<dyn IrqLine>).collect();
        (rec, dynl)
    }

    fn attached() -> (Bus, Bus, Vec<Arc<RecordingIrqLine>>, GuestMemoryMmap) {
        let mem = memory();
        let (rec, l) = lines();
        let dev = PcTestdev::new(mem.clone(), l);
        let (pio, mmio) = (Bus::new(Space::Pio, "t"), Bus::new(Space::Mmio, "t"));
        dev.attach(&pio, &mmio).unwrap();
        (pio, mmio, rec, mem)
    }

    fn read(bus: &Bus, addr: u64, len: usize) -> u64 {
        let mut d = [0u8; 8];
        assert!(bus.read(addr, &mut d[..len]), "{addr:#x} unclaimed");
        u64::from_le_bytes(d)
    }

    #[test]
    fn scratch_register_echoes_by_byte_lanes() {
        let (pio, ..) = attached();
        assert!(pio.write(0xe0, &0x1234_5678u32.to_le_bytes()));
        assert_eq!(read(&pio, 0xe0, 4), 0x1234_5678);
        assert_eq!(read(&pio, 0xe1, 1), 0x56);
        assert_eq!(read(&pio, 0xe2, 2), 0x1234);
        pio.write(0xe1, &[0xab]);
        assert_eq!(read(&pio, 0xe0, 4), 0x1234_ab78);
        pio.write(0xe2, &0xcdefu16.to_le_bytes());
        assert_eq!(read(&pio, 0xe0, 4), 0xcdef_ab78);
        // The byte-served view at 0xE8 is the same register.
        assert_eq!(read(&pio, 0xe8, 4), 0xcdef_ab78);
        pio.write(0xe8, &0x0102_0304u32.to_le_bytes());
        assert_eq!(read(&pio, 0xe0, 4), 0x0102_0304);
        assert_eq!(read(&pio, 0xeb, 1), 0x01);
        // An access straddling the register's end is not the device's.
        let mut d = [0u8; 2];
        assert!(!pio.read(0xe3, &mut d));
    }

    #[test]
    fn irq_ports_set_levels_with_byte_writes_only() {
        let (pio, _, rec, _) = attached();
        pio.write(0x2005, &[1]);
        assert!(rec[5].level());
        pio.write(0x2005, &[7]);
        assert_eq!(rec[5].raised(), 1);
        pio.write(0x2005, &[0]);
        assert!(!rec[5].level());
        pio.write(0x2017, &[1]);
        assert!(rec[23].level());
        // Wider writes are ignored, as QEMU's valid.max_access_size = 1.
        pio.write(0x2008, &[1, 1]);
        assert!(!rec[8].level() && !rec[9].level());
        assert_eq!(read(&pio, 0x2005, 1), 0);
        let raised: u64 = rec.iter().map(|l| l.raised()).sum();
        assert_eq!(raised, 2);
        assert_eq!(pio.owner(0x2018), None);
    }

    #[test]
    fn iomem_is_64k_of_scratch_memory() {
        let (_, mmio, ..) = attached();
        assert_eq!(read(&mmio, IOMEM_BASE, 4), 0);
        mmio.write(IOMEM_BASE + 0x10, &0xdead_beefu32.to_le_bytes());
        assert_eq!(read(&mmio, IOMEM_BASE + 0x10, 4), 0xdead_beef);
        assert_eq!(read(&mmio, IOMEM_BASE + 0x11, 2), 0xadbe);
        mmio.write(IOMEM_BASE + 0xfff8, &u64::MAX.to_le_bytes());
        assert_eq!(read(&mmio, IOMEM_BASE + 0xfff8, 8), u64::MAX);
        assert_eq!(
            mmio.owner(IOMEM_BASE + IOMEM_LEN - 1).as_deref(),
            Some("pc-testdev-iomem")
        );
        assert_eq!(mmio.owner(IOMEM_BASE + IOMEM_LEN), None);
    }

    #[test]
    fn flush_page_keeps_contents_and_ignores_bad_input() {
        let (pio, _, _, mem) = attached();
        mem.write_obj(0x5a5a_5a5au32, GuestAddress(0x1ffc)).unwrap();
        let dev = PcTestdev::new(mem.clone(), Vec::new());
        assert!(dev.flush.flush(0x1234));
        assert!(!dev.flush.flush(0x4000), "outside RAM");
        assert!(!dev.flush.flush(u64::MAX));
        // Through the port: 4-byte writes only; other widths and addresses are harmless.
        pio.write(0xe4, &0x1000u32.to_le_bytes());
        pio.write(0xe4, &[0x10, 0]);
        pio.write(0xe4, &0xffff_f000u32.to_le_bytes());
        assert_eq!(
            mem.read_obj::<u32>(GuestAddress(0x1ffc)).unwrap(),
            0x5a5a_5a5a
        );
        mem.write_obj(7u32, GuestAddress(0x1000)).unwrap();
        assert_eq!(mem.read_obj::<u32>(GuestAddress(0x1000)).unwrap(), 7);
        assert_eq!(read(&pio, 0xe4, 4), 0);
    }
}
