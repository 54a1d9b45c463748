//! QEMU's `pci-testdev` (1b36:0005): the field's own measurement of "a doorbell is an
//! fd" against "a doorbell is an exit", as kvm-unit-tests' `vmexit` uses it.
//!
//! BAR0 is 4 KiB of memory, BAR1 256 bytes of I/O (QEMU's `IOTEST_MEMSIZE * 2` and
//! `IOTEST_IOSIZE * 2`). Both are served one byte at a time, as QEMU's
//! `impl.max_access_size = 1`: a wider access is split into byte accesses.
//!
//! Six tests, index `type * 3 + t` with type 0 = mmio (BAR0), 1 = portio (BAR1) and
//! t = 0 "no-eventfd", 1 "wildcard-eventfd", 2 "datamatch-eventfd". Writing t to byte 0
//! of a BAR selects test `t` of that BAR's type (t >= 3 deselects) and zeroes its count.
//! While a test is selected both BARs read its header (bytes past the header, and
//! everything while none is selected, read 0):
//!
//! | off | size | field |
//! |---|---|---|
//! | 0 | 1 | test index |
//! | 1 | 1 | width of the doorbell access (1) |
//! | 4 | 4 | doorbell offset in the BAR: 2048 + index (mmio), 128 + index (portio) |
//! | 8 | 1 | data: 0xFA (no-eventfd, datamatch), 0xCE (wildcard) |
//! | 12 | 4 | count of doorbell writes that reached the device |
//! | 16 | .. | name, NUL-terminated: "mmio-no-eventfd", ..., "portio-datamatch-eventfd" |
//!
//! A byte write at the selected test's offset counts if the test matches any data
//! (wildcard) or the byte equals `data`. The wildcard and datamatch doorbells are KVM
//! ioeventfds ([`PciFunction::ioevents`]): those writes never leave the kernel, so their
//! count stays 0, while no-eventfd writes exit to kvmbus and count.
//!
//! Two differences from QEMU, neither visible to a guest: QEMU adds a test's ioeventfd
//! when the test is selected, kvmbus keeps all four registered while the BARs decode
//! (their offsets differ, and a write at an unselected test's offset counts nothing
//! either way); and the portio wildcard doorbell matches writes of any width (kvmbus's
//! wildcard ioeventfds have no length), where QEMU's matches 1-byte writes.

use std::sync::Arc;

use pci_emu::{BarKind, FunctionEvent, IoEventSpec, PciConfig, PciFunction, PciIds};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::{Error, Result};

/// Red Hat's PCI vendor ID (QEMU's devices).
pub const VENDOR_ID: u16 = 0x1b36;
/// QEMU's PCI test device.
pub const DEVICE_ID: u16 = 0x0005;
/// Size of the memory BAR (BAR0).
pub const MEM_BAR_SIZE: u64 = 4096;
/// Size of the I/O BAR (BAR1).
pub const IO_BAR_SIZE: u64 = 256;
/// `data` of the no-eventfd and datamatch tests.
pub const DATAMATCH: u8 = 0xfa;
/// `data` of the wildcard tests.
pub const NOMATCH: u8 = 0xce;
/// Header offset of the test index.
pub const HDR_TEST: u64 = 0;
/// Header offset of the access width.
pub const HDR_WIDTH: u64 = 1;
/// Header offset of the doorbell offset.
pub const HDR_OFFSET: u64 = 4;
/// Header offset of the data byte.
pub const HDR_DATA: u64 = 8;
/// Header offset of the count.
pub const HDR_COUNT: u64 = 12;
/// Header offset of the name.
pub const HDR_NAME: u64 = 16;

/// The three test kinds, in index order.
pub const TESTS: [&str; 3] = ["no-eventfd", "wildcard-eventfd", "datamatch-eventfd"];
/// The two access types, in index order (BAR0, BAR1).
pub const TYPES: [&str; 2] = ["mmio", "portio"];

/// One of the six tests.
struct IoTest {
    /// Header bytes, name and NUL included.
    hdr: Vec<u8>,
    /// False for wildcard tests.
    match_data: bool,
    /// The doorbell's ioeventfd (the eventfd variants).
    fd: Option<Arc<EventFd>>,
}

impl IoTest {
    fn offset(&self) -> u64 {
        u32::from_le_bytes(self.hdr[4..8].try_into().expect("4 bytes")).into()
    }
    fn data(&self) -> u8 {
        self.hdr[HDR_DATA as usize]
    }
    fn count(&self) -> u32 {
        u32::from_le_bytes(self.hdr[12..16].try_into().expect("4 bytes"))
    }
    fn set_count(&mut self, c: u32) {
        self.hdr[12..16].copy_from_slice(&c.to_le_bytes());
    }
}

/// The pci-testdev function.
pub struct PciTestdev {
    config: PciConfig,
    tests: Vec<IoTest>,
    current: Option<usize>,
}

impl PciTestdev {
    /// A device as QEMU's `-device pci-testdev` (without the optional `membar`).
    pub fn new() -> Result<PciTestdev> {
        let err = |detail: String| Error::Device {
            device: "pci-testdev".into(),
            detail,
        };
        let mut config = PciConfig::new(PciIds {
            vendor_id: VENDOR_ID,
            device_id: DEVICE_ID,
            // PCI_CLASS_OTHERS (0xff) as QEMU writes it: the 16-bit class 0x00ff.
            class_code: 0x00_ff00,
            revision: 0,
            // QEMU's default subsystem IDs.
            subsystem_vendor_id: 0x1af4,
            subsystem_id: 0x1100,
        });
        let mem = BarKind::Mem32 {
            prefetchable: false,
        };
        config
            .add_bar(0, mem, MEM_BAR_SIZE)
            .map_err(|e| err(e.to_string()))?;
        config
            .add_bar(1, BarKind::Io, IO_BAR_SIZE)
            .map_err(|e| err(e.to_string()))?;
        let mut tests = Vec::new();
        for (ty, type_name) in TYPES.iter().enumerate() {
            for (t, test_name) in TESTS.iter().enumerate() {
                let i = ty * TESTS.len() + t;
                let name = format!("{type_name}-{test_name}");
                let mut hdr = vec![0u8; HDR_NAME as usize + name.len() + 1];
                hdr[HDR_NAME as usize..HDR_NAME as usize + name.len()]
                    .copy_from_slice(name.as_bytes());
                let base = if ty == 0 { MEM_BAR_SIZE } else { IO_BAR_SIZE } / 2;
                hdr[4..8].copy_from_slice(&(base as u32 + i as u32).to_le_bytes());
                let match_data = t != 1;
                hdr[HDR_TEST as usize] = i as u8;
                hdr[HDR_WIDTH as usize] = 1;
                hdr[HDR_DATA as usize] = if match_data { DATAMATCH } else { NOMATCH };
                let fd = if t == 0 {
                    None
                } else {
                    let fd = EventFd::new(EFD_NONBLOCK)
                        .map_err(|e| err(format!("eventfd for {name}: {e}")))?;
                    Some(Arc::new(fd))
                };
                tests.push(IoTest {
                    hdr,
                    match_data,
                    fd,
                });
            }
        }
        Ok(PciTestdev {
            config,
            tests,
            current: None,
        })
    }

    /// The name of the selected test, if any.
    pub fn current(&self) -> Option<String> {
        let t = &self.tests[self.current?];
        let name = &t.hdr[HDR_NAME as usize..t.hdr.len() - 1];
        Some(String::from_utf8_lossy(name).into_owned())
    }

    /// The count of test `index` (0..6).
    pub fn count(&self, index: usize) -> Option<u32> {
        self.tests.get(index).map(IoTest::count)
    }

    /// One byte written at `addr` of the BAR of type `ty` (0 mmio, 1 portio).
    fn write_byte(&mut self, ty: usize, addr: u64, val: u8) {
        if addr == HDR_TEST {
            self.current = None;
            if usize::from(val) < TESTS.len() {
                let t = ty * TESTS.len() + usize::from(val);
                self.tests[t].set_count(0);
                self.drain(t);
                self.current = Some(t);
            }
            return;
        }
        let Some(t) = self.current else { return };
        let test = &mut self.tests[t];
        if addr != test.offset() || (test.match_data && val != test.data()) {
            return;
        }
        test.set_count(test.count().wrapping_add(1));
    }

    /// One byte read at `addr` of either BAR.
    fn read_byte(&mut self, addr: u64) -> u8 {
        let Some(t) = self.current else { return 0 };
        self.drain(t);
        let hdr = &self.tests[t].hdr;
        // QEMU: `addr + size >= bufsize` reads 0 (so the final NUL does too).
        if addr + 1 >= hdr.len() as u64 {
            return 0;
        }
        hdr[addr as usize]
    }

    /// Clears test `t`'s eventfd, as QEMU's `event_notifier_test_and_clear`.
    fn drain(&self, t: usize) {
        if let Some(fd) = &self.tests[t].fd {
            let _ = fd.read(); // EAGAIN when it was already clear
        }
    }
}

impl PciFunction for PciTestdev {
    fn config_read(&mut self, offset: u16, data: &mut [u8]) {
        self.config.read(offset, data);
    }
    fn config_write(&mut self, offset: u16, data: &[u8]) -> Vec<FunctionEvent> {
        self.config.write(offset, data)
    }
    fn bar_read(&mut self, bar: u8, offset: u64, data: &mut [u8]) {
        for (i, d) in data.iter_mut().enumerate() {
            *d = match bar {
                0 | 1 => self.read_byte(offset + i as u64),
                _ => 0xff,
            };
        }
    }
    fn bar_write(&mut self, bar: u8, offset: u64, data: &[u8]) -> Vec<FunctionEvent> {
        if bar <= 1 {
            for (i, d) in data.iter().enumerate() {
                self.write_byte(bar.into(), offset + i as u64, *d);
            }
        }
        Vec::new()
    }
    fn ioevents(&self) -> Vec<IoEventSpec> {
        self.tests
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                Some(IoEventSpec {
                    bar: (i / TESTS.len()) as u8,
                    offset: t.offset(),
                    len: 1,
                    datamatch: t.match_data.then(|| t.data().into()),
                    fd: t.fd.clone()?,
                })
            })
            .collect()
    }
    fn name(&self) -> &str {
        "pci-testdev"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pci_emu::{Bdf, PciBus};
    use std::sync::Mutex;

    fn read(d: &mut PciTestdev, bar: u8, off: u64, len: usize) -> u32 {
        let mut b = [0u8; 4];
        d.bar_read(bar, off, &mut b[..len]);
        u32::from_le_bytes(b)
    }

    fn name(d: &mut PciTestdev, bar: u8) -> String {
        (HDR_NAME..)
            .map(|o| read(d, bar, o, 1) as u8)
            .take_while(|c| *c != 0)
            .map(char::from)
            .collect()
    }

    #[test]
    fn config_space_is_qemus() {
        let mut bus = PciBus::new();
        let bdf = Bdf::new(0, 3, 0).unwrap();
        bus.add_function(Some(bdf), Arc::new(Mutex::new(PciTestdev::new().unwrap())))
            .unwrap();
        let cfg = |bus: &mut PciBus, off: u16| {
            let mut d = [0u8; 4];
            bus.ecam_read((3 << 15) + u64::from(off), &mut d);
            u32::from_le_bytes(d)
        };
        assert_eq!(cfg(&mut bus, 0), 0x0005_1b36);
        assert_eq!(cfg(&mut bus, 8), 0x00ff_0000, "class 00ff, revision 0");
        assert_eq!(cfg(&mut bus, 0x2c), 0x1100_1af4);
        assert_eq!(cfg(&mut bus, 0x3c) >> 8 & 0xff, 0, "no interrupt pin");
        // Size the BARs as firmware does.
        for (bar, want) in [
            (0x10u64, !(MEM_BAR_SIZE as u32 - 1)),
            (0x14, !(IO_BAR_SIZE as u32 - 1) | 1),
        ] {
            bus.ecam_write((3 << 15) + bar, &u32::MAX.to_le_bytes());
            assert_eq!(cfg(&mut bus, bar as u16), want, "BAR at {bar:#x}");
        }
        assert_eq!(cfg(&mut bus, 0x18), 0, "no BAR2");
    }

    #[test]
    fn headers_name_the_tests_as_qemu() {
        let mut d = PciTestdev::new().unwrap();
        assert_eq!(read(&mut d, 0, 0, 4), 0, "nothing selected reads 0");
        assert_eq!(d.current(), None);
        let want = [
            ("mmio-no-eventfd", 0, 2048, DATAMATCH),
            ("mmio-wildcard-eventfd", 0, 2049, NOMATCH),
            ("mmio-datamatch-eventfd", 0, 2050, DATAMATCH),
            ("portio-no-eventfd", 1, 131, DATAMATCH),
            ("portio-wildcard-eventfd", 1, 132, NOMATCH),
            ("portio-datamatch-eventfd", 1, 133, DATAMATCH),
        ];
        for (i, (n, bar, off, data)) in want.into_iter().enumerate() {
            d.bar_write(bar, HDR_TEST, &[(i % 3) as u8]);
            assert_eq!(d.current().as_deref(), Some(n));
            // Either BAR reads the selected test's header.
            for b in [0, 1] {
                assert_eq!(read(&mut d, b, HDR_TEST, 1), i as u32);
                assert_eq!(read(&mut d, b, HDR_WIDTH, 1), 1);
                assert_eq!(read(&mut d, b, HDR_OFFSET, 4), off);
                assert_eq!(read(&mut d, b, HDR_DATA, 4), u32::from(data));
                assert_eq!(name(&mut d, b), n);
            }
            let end = HDR_NAME + n.len() as u64;
            assert_eq!(
                read(&mut d, bar, end - 1, 1),
                u32::from(*n.as_bytes().last().unwrap())
            );
            assert_eq!(read(&mut d, bar, end + 1, 1), 0, "past the header");
            assert_eq!(read(&mut d, bar, 0x7ff, 1), 0);
        }
        d.bar_write(1, HDR_TEST, &[3]);
        assert_eq!(d.current(), None, "index 3 deselects");
        assert_eq!(
            read(&mut d, 1, HDR_WIDTH, 1),
            0,
            "vmexit.c stops at width 0"
        );
    }

    #[test]
    fn counts_follow_qemus_rules() {
        let mut d = PciTestdev::new().unwrap();
        // no-eventfd: only bytes equal to data, at the offset, count.
        d.bar_write(1, HDR_TEST, &[0]);
        for _ in 0..5 {
            d.bar_write(1, 131, &[DATAMATCH]);
        }
        d.bar_write(1, 131, &[0x11]);
        d.bar_write(1, 130, &[DATAMATCH]);
        d.bar_write(0, 2048, &[DATAMATCH]); // the mmio offset: not this test's
        assert_eq!(read(&mut d, 1, HDR_COUNT, 4), 5);
        // A wider write is split into bytes: its first byte lands on the offset.
        d.bar_write(1, 131, &u32::from(DATAMATCH).to_le_bytes());
        assert_eq!(d.count(3), Some(6));
        // Reselecting zeroes the count.
        d.bar_write(1, HDR_TEST, &[0]);
        assert_eq!(d.count(3), Some(0));
        // wildcard: any byte counts (when it reaches the device).
        d.bar_write(0, HDR_TEST, &[1]);
        d.bar_write(0, 2049, &[0]);
        d.bar_write(0, 2049, &[0xff]);
        assert_eq!(read(&mut d, 0, HDR_COUNT, 4), 2);
        // datamatch: only data.
        d.bar_write(0, HDR_TEST, &[2]);
        d.bar_write(0, 2050, &[NOMATCH]);
        d.bar_write(0, 2050, &[DATAMATCH]);
        assert_eq!(d.count(2), Some(1));
        // Nothing selected: writes count nowhere.
        d.bar_write(0, HDR_TEST, &[9]);
        d.bar_write(0, 2050, &[DATAMATCH]);
        assert_eq!(d.count(2), Some(1));
        // Other BARs and out-of-range offsets are harmless.
        d.bar_write(2, 0, &[1]);
        let mut b = [0u8; 4];
        d.bar_read(4, 0, &mut b);
        assert_eq!(b, [0xff; 4]);
        d.bar_read(0, u64::MAX - 1, &mut b[..1]);
    }

    #[test]
    fn eventfd_variants_are_ioeventfds_of_their_bar() {
        let d = PciTestdev::new().unwrap();
        let specs = d.ioevents();
        let got: Vec<_> = specs
            .iter()
            .map(|s| (s.bar, s.offset, s.len, s.datamatch))
            .collect();
        assert_eq!(
            got,
            [
                (0, 2049, 1, None),
                (0, 2050, 1, Some(0xfa)),
                (1, 132, 1, None),
                (1, 133, 1, Some(0xfa)),
            ]
        );
        // Four distinct eventfds; reading a header clears the selected test's.
        specs[3].fd.write(3).unwrap();
        let mut d = d;
        d.bar_write(1, HDR_TEST, &[2]);
        assert!(specs[3].fd.read().is_err(), "selecting clears the eventfd");
        specs[3].fd.write(1).unwrap();
        read(&mut d, 1, HDR_COUNT, 1);
        assert!(specs[3].fd.read().is_err(), "a header read clears it");
        specs[0].fd.write(1).unwrap();
        assert_eq!(
            specs[0].fd.read().unwrap(),
            1,
            "another test's is untouched"
        );
    }
}
