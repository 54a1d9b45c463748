//! The PCI bus: the functions by address and the two configuration access mechanisms,
//! CAM (ports 0xCF8 address, 0xCFC..0xCFF data) and ECAM (a memory window in which
//! function `bus:dev.fn` register `reg` is at `bus << 20 | dev << 15 | fn << 12 | reg`).
//!
//! Absent functions read all-ones and ignore writes; so do misaligned accesses and
//! accesses that are not 1, 2 or 4 bytes. Function 0 of a device that has other
//! functions reports multi-function in its header type (bit 7 of 0x0E), whatever the
//! function's own config says.
//!
//! Writes return the events they caused (wrapped as [`PciEvent`]s); the caller applies
//! them before the guest's access completes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::host_bridge::HostBridge;
use crate::regs::valid_access;
use crate::types::{Bdf, FunctionEvent, PciEvent, PciFunction};

/// CAM address register: enable bit.
const CAM_ENABLE: u32 = 1 << 31;
/// CAM address register bits that are kept (enable, bus, device, function, register).
const CAM_ADDRESS_MASK: u32 = 0x80FF_FFFC;
/// Size of the ECAM window (256 buses).
const ECAM_SIZE: u64 = 256 << 20;
const HEADER_TYPE: u16 = 0x0E;

type Function = Arc<Mutex<dyn PciFunction>>;

fn lock(f: &Function) -> MutexGuard<'_, dyn PciFunction + 'static> {
    // A poisoned function still has a config space; keep serving it.
    f.lock().unwrap_or_else(|e| e.into_inner())
}

/// The PCI bus with its functions.
pub struct PciBus {
    functions: BTreeMap<Bdf, Function>,
    cam_address: u32,
}

impl Default for PciBus {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PciBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PciBus")
            .field("bdfs", &self.bdfs())
            .field("cam_address", &self.cam_address)
            .finish_non_exhaustive()
    }
}

impl PciBus {
    /// A bus with the [`HostBridge`] at 00:00.0.
    pub fn new() -> Self {
        let mut functions: BTreeMap<Bdf, Function> = BTreeMap::new();
        functions.insert(
            Bdf {
                bus: 0,
                device: 0,
                function: 0,
            },
            Arc::new(Mutex::new(HostBridge::new())),
        );
        PciBus {
            functions,
            cam_address: 0,
        }
    }

    /// Installs `f` at `bdf`, or with `None` at function 0 of the lowest free device
    /// slot on bus 0. Adding a function other than 0 makes function 0 of the same device
    /// report multi-function.
    pub fn add_function(
        &mut self,
        bdf: Option<Bdf>,
        f: Arc<Mutex<dyn PciFunction>>,
    ) -> Result<Bdf> {
        let bdf = match bdf {
            Some(b) => b,
            None => (0..32)
                .find(|&d| !self.functions.keys().any(|b| b.bus == 0 && b.device == d))
                .map(|device| Bdf {
                    bus: 0,
                    device,
                    function: 0,
                })
                .ok_or(Error::BusFull)?,
        };
        if self.functions.contains_key(&bdf) {
            return Err(Error::Duplicate(bdf));
        }
        self.functions.insert(bdf, f);
        Ok(bdf)
    }

    /// The function at `bdf`.
    pub fn function(&self, bdf: Bdf) -> Option<Arc<Mutex<dyn PciFunction>>> {
        self.functions.get(&bdf).cloned()
    }

    /// Addresses of all functions, in order.
    pub fn bdfs(&self) -> Vec<Bdf> {
        self.functions.keys().copied().collect()
    }

    /// Tags a function's events with its address.
    pub fn wrap(bdf: Bdf, events: Vec<FunctionEvent>) -> Vec<PciEvent> {
        events
            .into_iter()
            .map(|event| PciEvent { bdf, event })
            .collect()
    }

    fn is_multifunction_parent(&self, bdf: Bdf) -> bool {
        bdf.function == 0
            && self
                .functions
                .keys()
                .any(|b| b.bus == bdf.bus && b.device == bdf.device && b.function != 0)
    }

    /// Resolves a config access of `len` bytes at `reg` of `bdf`.
    fn resolve(&self, bdf: Bdf, reg: u16, len: usize) -> ConfigAccess {
        match self.functions.get(&bdf) {
            Some(f) if valid_access(usize::from(reg), len) => ConfigAccess::Function {
                bdf,
                reg,
                function: f.clone(),
                multifunction_parent: self.is_multifunction_parent(bdf),
            },
            _ => ConfigAccess::Absent,
        }
    }

    /// The function and register the CAM data port at `port_offset` (4..8) addresses,
    /// if the latch is enabled.
    fn cam_target(&self, port_offset: u16) -> Option<(Bdf, u16)> {
        let a = self.cam_address;
        if a & CAM_ENABLE == 0 {
            return None;
        }
        let bdf = Bdf {
            bus: (a >> 16) as u8,
            device: ((a >> 11) & 0x1F) as u8,
            function: ((a >> 8) & 0x7) as u8,
        };
        Some((bdf, (a & 0xFC) as u16 + (port_offset - 4)))
    }

    /// Resolves a data-port access of `len` bytes at 0xCF8 + `port_offset` (4..8).
    fn cam_data(&self, port_offset: u16, len: usize) -> ConfigAccess {
        let ok = valid_access(usize::from(port_offset - 4), len) && port_offset as usize + len <= 8;
        match self.cam_target(port_offset) {
            Some((bdf, reg)) if ok => self.resolve(bdf, reg, len),
            _ => ConfigAccess::Absent,
        }
    }

    /// Resolves a read from port 0xCF8 + `port_offset` (0..8). The address latch answers
    /// only dword reads at 0; the data port answers 1, 2 or 4 bytes aligned within
    /// 0xCFC. Perform it with [`ConfigAccess::read`] once the bus is no longer locked.
    pub fn cam_resolve_read(&self, port_offset: u16, len: usize) -> ConfigAccess {
        match port_offset {
            0 if len == 4 => ConfigAccess::Latch(self.cam_address),
            4..=7 => self.cam_data(port_offset, len),
            _ => ConfigAccess::Absent,
        }
    }

    /// Resolves a write to port 0xCF8 + `port_offset` (0..8): a dword at 0 sets the
    /// address latch (done here); 1, 2 or 4 bytes aligned within 0xCFC write config
    /// space of the latched function (with [`ConfigAccess::write`]).
    pub fn cam_resolve_write(&mut self, port_offset: u16, data: &[u8]) -> ConfigAccess {
        match port_offset {
            0 if data.len() == 4 => {
                let v = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                self.cam_address = v & CAM_ADDRESS_MASK;
                ConfigAccess::Absent
            }
            4..=7 => self.cam_data(port_offset, data.len()),
            _ => ConfigAccess::Absent,
        }
    }

    /// Resolves an access of `len` bytes at `offset` inside the ECAM window.
    pub fn ecam_resolve(&self, offset: u64, len: usize) -> ConfigAccess {
        if offset >= ECAM_SIZE {
            return ConfigAccess::Absent;
        }
        let bdf = Bdf {
            bus: (offset >> 20) as u8,
            device: ((offset >> 15) & 0x1F) as u8,
            function: ((offset >> 12) & 0x7) as u8,
        };
        self.resolve(bdf, (offset & 0xFFF) as u16, len)
    }

    /// A read from port 0xCF8 + `port_offset`, performed with the bus borrowed.
    pub fn cam_read(&mut self, port_offset: u16, data: &mut [u8]) {
        self.cam_resolve_read(port_offset, data.len()).read(data);
    }

    /// A write to port 0xCF8 + `port_offset`; returns the events the write caused.
    pub fn cam_write(&mut self, port_offset: u16, data: &[u8]) -> Vec<PciEvent> {
        self.cam_resolve_write(port_offset, data).write(data)
    }

    /// A read at `offset` inside the ECAM window.
    pub fn ecam_read(&mut self, offset: u64, data: &mut [u8]) {
        self.ecam_resolve(offset, data.len()).read(data);
    }

    /// A write at `offset` inside the ECAM window; returns its events.
    pub fn ecam_write(&mut self, offset: u64, data: &[u8]) -> Vec<PciEvent> {
        self.ecam_resolve(offset, data.len()).write(data)
    }
}

/// A configuration access resolved by the bus, performed after the bus lock is released:
/// a slow function never holds up config accesses to the others.
#[must_use]
pub enum ConfigAccess {
    /// No function answers: reads are all-ones, writes are dropped.
    Absent,
    /// A read of the CAM address latch.
    Latch(u32),
    /// Config space of one function.
    Function {
        /// Its address.
        bdf: Bdf,
        /// The register.
        reg: u16,
        /// The function.
        function: Function,
        /// Function 0 of a multi-function device (header type bit 7 reads set).
        multifunction_parent: bool,
    },
}

impl ConfigAccess {
    /// Performs a read.
    pub fn read(self, data: &mut [u8]) {
        match self {
            ConfigAccess::Absent => data.fill(0xFF),
            ConfigAccess::Latch(v) => data.copy_from_slice(&v.to_le_bytes()[..data.len()]),
            ConfigAccess::Function {
                reg,
                function,
                multifunction_parent,
                ..
            } => {
                lock(&function).config_read(reg, data);
                let end = reg + data.len() as u16;
                if multifunction_parent && (reg..end).contains(&HEADER_TYPE) {
                    data[usize::from(HEADER_TYPE - reg)] |= 0x80;
                }
            }
        }
    }

    /// Performs a write; returns the events it caused.
    pub fn write(self, data: &[u8]) -> Vec<PciEvent> {
        match self {
            ConfigAccess::Function {
                bdf, reg, function, ..
            } => PciBus::wrap(bdf, lock(&function).config_write(reg, data)),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::test_utils::TestFunction;

    fn bdf(bus: u8, device: u8, function: u8) -> Bdf {
        Bdf::new(bus, device, function).unwrap()
    }

    fn cam_addr(b: Bdf, reg: u16) -> u32 {
        CAM_ENABLE
            | u32::from(b.bus) << 16
            | u32::from(b.device) << 11
            | u32::from(b.function) << 8
            | u32::from(reg & 0xFC)
    }

    fn ecam_off(b: Bdf, reg: u16) -> u64 {
        u64::from(b.bus) << 20
            | u64::from(b.device) << 15
            | u64::from(b.function) << 12
            | u64::from(reg)
    }

    fn cam_read(bus: &mut PciBus, b: Bdf, reg: u16, len: usize) -> Vec<u8> {
        bus.cam_write(0, &cam_addr(b, reg).to_le_bytes());
        let mut d = vec![0u8; len];
        bus.cam_read(4 + (reg & 3), &mut d);
        d
    }

    fn ecam_read(bus: &mut PciBus, b: Bdf, reg: u16, len: usize) -> Vec<u8> {
        let mut d = vec![0u8; len];
        bus.ecam_read(ecam_off(b, reg), &mut d);
        d
    }

    fn bus_with_functions() -> PciBus {
        let mut bus = PciBus::new();
        assert_eq!(
            bus.add_function(None, TestFunction::shared()),
            Ok(bdf(0, 1, 0))
        );
        assert_eq!(
            bus.add_function(None, TestFunction::shared()),
            Ok(bdf(0, 2, 0))
        );
        bus.add_function(Some(bdf(0, 2, 3)), TestFunction::shared())
            .unwrap();
        bus
    }

    #[test]
    fn host_bridge_and_slots() {
        let mut bus = bus_with_functions();
        assert_eq!(
            bus.bdfs(),
            vec![bdf(0, 0, 0), bdf(0, 1, 0), bdf(0, 2, 0), bdf(0, 2, 3)]
        );
        assert_eq!(
            cam_read(&mut bus, bdf(0, 0, 0), 0, 4),
            [0x86, 0x80, 0xc0, 0x29]
        );
        assert_eq!(
            bus.function(bdf(0, 0, 0)).unwrap().lock().unwrap().name(),
            "host-bridge"
        );
        assert!(bus.function(bdf(0, 3, 0)).is_none());
        assert_eq!(
            bus.add_function(Some(bdf(0, 1, 0)), TestFunction::shared()),
            Err(Error::Duplicate(bdf(0, 1, 0)))
        );
        // Function 0 free at a device that has function 3 only: None skips the device.
        bus.add_function(Some(bdf(0, 3, 1)), TestFunction::shared())
            .unwrap();
        assert_eq!(
            bus.add_function(None, TestFunction::shared()),
            Ok(bdf(0, 4, 0))
        );
        for _ in 5..32 {
            bus.add_function(None, TestFunction::shared()).unwrap();
        }
        assert_eq!(
            bus.add_function(None, TestFunction::shared()),
            Err(Error::BusFull)
        );
        // Other buses are reachable through ECAM.
        bus.add_function(Some(bdf(1, 0, 0)), TestFunction::shared())
            .unwrap();
        assert_eq!(ecam_read(&mut bus, bdf(1, 0, 0), 0, 2), [0x34, 0x12]);
    }

    #[test]
    fn multifunction_bit() {
        let mut bus = bus_with_functions();
        for read in [cam_read, ecam_read] {
            assert_eq!(read(&mut bus, bdf(0, 2, 0), 0x0E, 1), [0x80]);
            assert_eq!(read(&mut bus, bdf(0, 2, 0), 0x0C, 4)[2], 0x80);
            assert_eq!(read(&mut bus, bdf(0, 2, 0), 0x0E, 2), [0x80, 0]);
            assert_eq!(read(&mut bus, bdf(0, 2, 3), 0x0E, 1), [0x00]);
            assert_eq!(read(&mut bus, bdf(0, 1, 0), 0x0E, 1), [0x00]);
            assert_eq!(read(&mut bus, bdf(0, 0, 0), 0x0C, 4)[2], 0x00);
        }
    }

    #[test]
    fn cam_and_ecam_read_the_same_bytes() {
        let mut bus = bus_with_functions();
        for b in [
            bdf(0, 0, 0),
            bdf(0, 1, 0),
            bdf(0, 2, 0),
            bdf(0, 2, 3),
            bdf(0, 7, 0),
        ] {
            for len in [1, 2, 4] {
                for reg in (0..256).step_by(len) {
                    let reg = reg as u16;
                    assert_eq!(
                        cam_read(&mut bus, b, reg, len),
                        ecam_read(&mut bus, b, reg, len),
                        "{b} reg {reg:#x} len {len}"
                    );
                }
            }
        }
        // Writes through either land in the same place.
        let b = bdf(0, 1, 0);
        bus.cam_write(0, &cam_addr(b, 0x3C).to_le_bytes());
        bus.cam_write(4, &[0x0B]);
        assert_eq!(ecam_read(&mut bus, b, 0x3C, 1), [0x0B]);
        bus.ecam_write(ecam_off(b, 0x3C), &[0x0A]);
        assert_eq!(cam_read(&mut bus, b, 0x3C, 1), [0x0A]);
        // Extended space: zeros through ECAM for a present function.
        assert_eq!(ecam_read(&mut bus, b, 0x100, 4), [0; 4]);
        assert_eq!(ecam_read(&mut bus, b, 0xFFC, 4), [0; 4]);
    }

    #[test]
    fn absent_functions_and_bad_accesses_read_all_ones() {
        let mut bus = bus_with_functions();
        for b in [bdf(0, 5, 0), bdf(0, 1, 1), bdf(3, 0, 0), bdf(255, 31, 7)] {
            assert_eq!(cam_read(&mut bus, b, 0, 4), [0xFF; 4]);
            assert_eq!(ecam_read(&mut bus, b, 0, 4), [0xFF; 4]);
            assert_eq!(ecam_read(&mut bus, b, 0x100, 2), [0xFF; 2]);
            assert!(bus.ecam_write(ecam_off(b, 4), &[7, 0, 0, 0]).is_empty());
        }
        let b = bdf(0, 1, 0);
        // Misaligned and odd sizes.
        assert_eq!(ecam_read(&mut bus, b, 1, 2), [0xFF; 2]);
        assert_eq!(ecam_read(&mut bus, b, 0, 8), [0xFF; 8]);
        assert_eq!(ecam_read(&mut bus, b, 0, 3), [0xFF; 3]);
        let mut d = [0u8; 4];
        bus.ecam_read(ECAM_SIZE, &mut d);
        assert_eq!(d, [0xFF; 4]);
        bus.ecam_read(u64::MAX - 1, &mut d[..2]);
        assert_eq!(d, [0xFF; 4]);
        bus.cam_write(0, &cam_addr(b, 0).to_le_bytes());
        let mut w = [0u8; 2];
        bus.cam_read(5, &mut w);
        assert_eq!(w, [0xFF; 2]);
        bus.cam_read(6, &mut d);
        assert_eq!(d, [0xFF; 4]);
        bus.cam_read(8, &mut d);
        assert_eq!(d, [0xFF; 4]);
        bus.cam_read(u16::MAX, &mut d);
        assert_eq!(d, [0xFF; 4]);
        // Word read at 0xCFE addresses reg + 2 (device ID).
        bus.cam_read(6, &mut w);
        assert_eq!(w, [0x78, 0x56]);
    }

    #[test]
    fn cam_address_latch() {
        let mut bus = bus_with_functions();
        bus.cam_write(0, &0xFFFF_FFFFu32.to_le_bytes());
        let mut d = [0u8; 4];
        bus.cam_read(0, &mut d);
        assert_eq!(u32::from_le_bytes(d), 0x80FF_FFFC);
        // Only dword accesses reach the latch.
        bus.cam_write(0, &[0; 2]);
        bus.cam_write(1, &[0]);
        bus.cam_read(0, &mut d);
        assert_eq!(u32::from_le_bytes(d), 0x80FF_FFFC);
        let mut b = [0u8; 1];
        bus.cam_read(0, &mut b);
        assert_eq!(b, [0xFF]);
        // Enable bit clear: data port reads all-ones, writes are dropped.
        let f = bdf(0, 1, 0);
        bus.cam_write(0, &(cam_addr(f, 0x3C) & !CAM_ENABLE).to_le_bytes());
        bus.cam_read(4, &mut d);
        assert_eq!(d, [0xFF; 4]);
        assert!(bus.cam_write(4, &[0x0E]).is_empty());
        assert_eq!(cam_read(&mut bus, f, 0x3C, 1), [0]);
    }

    #[test]
    fn events_are_returned() {
        let mut bus = bus_with_functions();
        let f = bdf(0, 2, 3);
        bus.ecam_write(ecam_off(f, 0x14), &0xE000_0000u32.to_le_bytes());
        bus.cam_write(0, &cam_addr(f, 0x04).to_le_bytes());
        let events = bus.cam_write(4, &2u16.to_le_bytes());
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.bdf == f));
        assert_eq!(
            events[0].event,
            FunctionEvent::Command {
                io: false,
                memory: true,
                bus_master: false
            }
        );
        let fun = bus.function(f).unwrap();
        let bar_events = fun.lock().unwrap().bar_write(2, 12, &0u32.to_le_bytes());
        assert!(bar_events.is_empty(), "MSI-X disabled");
    }

    #[derive(Clone, Debug)]
    enum BusOp {
        Cam(u16, Vec<u8>, bool),
        Ecam(u64, Vec<u8>, bool),
    }

    fn bus_op() -> impl Strategy<Value = BusOp> {
        let len = prop_oneof![Just(1usize), Just(2), Just(4), 0usize..9];
        let data = len.prop_flat_map(|l| prop::collection::vec(any::<u8>(), l));
        let ecam = prop_oneof![
            (0u64..4, 0u64..32, 0u64..8, 0u64..0x1000)
                .prop_map(|(b, d, f, r)| b << 20 | d << 15 | f << 12 | r),
            any::<u64>(),
        ];
        prop_oneof![
            (
                prop_oneof![0u16..8, any::<u16>()],
                data.clone(),
                any::<bool>()
            )
                .prop_map(|(o, d, w)| BusOp::Cam(o, d, w)),
            (ecam, data, any::<bool>()).prop_map(|(o, d, w)| BusOp::Ecam(o, d, w)),
        ]
    }

    proptest! {
        #[test]
        fn random_bus_accesses_never_panic(ops in prop::collection::vec(bus_op(), 1..100)) {
            let mut bus = bus_with_functions();
            let mut returned = Vec::new();
            for op in ops {
                match op {
                    BusOp::Cam(o, mut d, true) => bus.cam_read(o, &mut d),
                    BusOp::Cam(o, d, false) => returned.extend(bus.cam_write(o, &d)),
                    BusOp::Ecam(o, mut d, true) => bus.ecam_read(o, &mut d),
                    BusOp::Ecam(o, d, false) => returned.extend(bus.ecam_write(o, &d)),
                }
            }
            prop_assert!(returned.len() <= 400, "a write causes a bounded number of events");
            let host = bdf(0, 0, 0);
            prop_assert_eq!(ecam_read(&mut bus, host, 0, 4), vec![0x86, 0x80, 0xc0, 0x29]);
            prop_assert_eq!(ecam_read(&mut bus, host, 8, 4), vec![0, 0, 0, 6]);
            prop_assert_eq!(ecam_read(&mut bus, bdf(0, 2, 0), 0x0E, 1), vec![0x80]);
        }
    }
}
