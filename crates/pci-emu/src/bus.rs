//! The PCI bus: the functions by address and the two configuration access mechanisms,
//! CAM (ports 0xCF8 address, 0xCFC..0xCFF data) and ECAM (a memory window in which
//! function `bus:dev.fn` register `reg` is at `bus << 20 | dev << 15 | fn << 12 | reg`).
//!
//! Absent functions read all-ones and ignore writes; so do misaligned accesses and
//! accesses that are not 1, 2 or 4 bytes. Function 0 of a device that has other
//! functions reports multi-function in its header type (bit 7 of 0x0E), whatever the
//! function's own config says.
//!
//! Writes return the events they caused (wrapped as [`PciEvent`]s) and publish a copy
//! of each to every [`subscribe`](PciBus::subscribe)r.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam_channel::{Receiver, Sender};

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

/// The PCI bus with its functions and subscribers.
pub struct PciBus {
    functions: BTreeMap<Bdf, Function>,
    subscribers: Mutex<Vec<Sender<PciEvent>>>,
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
            subscribers: Mutex::new(Vec::new()),
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

    /// A receiver of a copy of every event from now on (unbounded).
    pub fn subscribe(&mut self) -> Receiver<PciEvent> {
        let (tx, rx) = crossbeam_channel::unbounded();
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
    }

    /// The function at `bdf`.
    pub fn function(&self, bdf: Bdf) -> Option<Arc<Mutex<dyn PciFunction>>> {
        self.functions.get(&bdf).cloned()
    }

    /// Addresses of all functions, in order.
    pub fn bdfs(&self) -> Vec<Bdf> {
        self.functions.keys().copied().collect()
    }

    /// Tags a function's events with its address. Does not publish: the bus's own write
    /// entry points publish; callers that wrap events themselves (BAR writes) call
    /// [`publish`](Self::publish).
    pub fn wrap(bdf: Bdf, events: Vec<FunctionEvent>) -> Vec<PciEvent> {
        events
            .into_iter()
            .map(|event| PciEvent { bdf, event })
            .collect()
    }

    /// Sends a copy of `events` to every subscriber; drops subscribers that are gone.
    pub fn publish(&self, events: &[PciEvent]) {
        if events.is_empty() {
            return;
        }
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|tx| events.iter().all(|e| tx.send(*e).is_ok()));
    }

    fn is_multifunction_parent(&self, bdf: Bdf) -> bool {
        bdf.function == 0
            && self
                .functions
                .keys()
                .any(|b| b.bus == bdf.bus && b.device == bdf.device && b.function != 0)
    }

    /// Reads config space of `bdf` at `reg`; all-ones for absent functions and bad
    /// accesses.
    fn config_read(&self, bdf: Bdf, reg: u16, data: &mut [u8]) {
        let f = match self.functions.get(&bdf) {
            Some(f) if valid_access(usize::from(reg), data.len()) => f,
            _ => {
                data.fill(0xFF);
                return;
            }
        };
        lock(f).config_read(reg, data);
        let end = reg + data.len() as u16;
        if (reg..end).contains(&HEADER_TYPE) && self.is_multifunction_parent(bdf) {
            data[usize::from(HEADER_TYPE - reg)] |= 0x80;
        }
    }

    fn config_write(&self, bdf: Bdf, reg: u16, data: &[u8]) -> Vec<PciEvent> {
        let f = match self.functions.get(&bdf) {
            Some(f) if valid_access(usize::from(reg), data.len()) => f,
            _ => return Vec::new(),
        };
        let events = Self::wrap(bdf, lock(f).config_write(reg, data));
        self.publish(&events);
        events
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

    /// A read from port 0xCF8 + `port_offset` (0..8). The address latch answers only
    /// dword reads at 0; the data port answers 1, 2 or 4 bytes aligned within 0xCFC.
    pub fn cam_read(&mut self, port_offset: u16, data: &mut [u8]) {
        let len = data.len();
        match port_offset {
            0 if len == 4 => data.copy_from_slice(&self.cam_address.to_le_bytes()),
            4..=7
                if valid_access(usize::from(port_offset - 4), len)
                    && port_offset as usize + len <= 8 =>
            {
                match self.cam_target(port_offset) {
                    Some((bdf, reg)) => self.config_read(bdf, reg, data),
                    None => data.fill(0xFF),
                }
            }
            _ => data.fill(0xFF),
        }
    }

    /// A write to port 0xCF8 + `port_offset` (0..8): a dword at 0 sets the address
    /// latch; 1, 2 or 4 bytes aligned within 0xCFC write config space of the latched
    /// function. Returns (and publishes) the events the write caused.
    pub fn cam_write(&mut self, port_offset: u16, data: &[u8]) -> Vec<PciEvent> {
        let len = data.len();
        match port_offset {
            0 if len == 4 => {
                let v = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                self.cam_address = v & CAM_ADDRESS_MASK;
                Vec::new()
            }
            4..=7
                if valid_access(usize::from(port_offset - 4), len)
                    && port_offset as usize + len <= 8 =>
            {
                match self.cam_target(port_offset) {
                    Some((bdf, reg)) => self.config_write(bdf, reg, data),
                    None => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    fn ecam_target(offset: u64, len: usize) -> Option<(Bdf, u16)> {
        if offset >= ECAM_SIZE || !valid_access((offset & 0xFFF) as usize, len) {
            return None;
        }
        let bdf = Bdf {
            bus: (offset >> 20) as u8,
            device: ((offset >> 15) & 0x1F) as u8,
            function: ((offset >> 12) & 0x7) as u8,
        };
        Some((bdf, (offset & 0xFFF) as u16))
    }

    /// A read at `offset` inside the ECAM window.
    pub fn ecam_read(&mut self, offset: u64, data: &mut [u8]) {
        match Self::ecam_target(offset, data.len()) {
            Some((bdf, reg)) => self.config_read(bdf, reg, data),
            None => data.fill(0xFF),
        }
    }

    /// A write at `offset` inside the ECAM window; returns (and publishes) its events.
    pub fn ecam_write(&mut self, offset: u64, data: &[u8]) -> Vec<PciEvent> {
        match Self::ecam_target(offset, data.len()) {
            Some((bdf, reg)) => self.config_write(bdf, reg, data),
            None => Vec::new(),
        }
    }
}
