//! The types shared with the rest of kvmbus: addresses, events and the function trait.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

/// A PCI bus/device/function address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bdf {
    /// Bus number.
    pub bus: u8,
    /// Device number, 0..32.
    pub device: u8,
    /// Function number, 0..8.
    pub function: u8,
}

impl Bdf {
    /// Builds a BDF; `None` if device or function is out of range.
    pub fn new(bus: u8, device: u8, function: u8) -> Option<Bdf> {
        (device < 32 && function < 8).then_some(Bdf {
            bus,
            device,
            function,
        })
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// Why a BDF string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid PCI address '{0}': expected BB:DD.F (hex bus and device, function 0-7)")]
pub struct BdfParseError(pub String);

impl FromStr for Bdf {
    type Err = BdfParseError;
    /// Parses `BB:DD.F` (hex), e.g. `00:03.0`.
    fn from_str(s: &str) -> Result<Bdf, BdfParseError> {
        let err = || BdfParseError(s.to_string());
        let (bus, rest) = s.split_once(':').ok_or_else(err)?;
        let (dev, func) = rest.split_once('.').ok_or_else(err)?;
        let bus = u8::from_str_radix(bus, 16).map_err(|_| err())?;
        let dev = u8::from_str_radix(dev, 16).map_err(|_| err())?;
        let func = func.parse::<u8>().map_err(|_| err())?;
        Bdf::new(bus, dev, func).ok_or_else(err)
    }
}

/// The kind of a base address register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    /// I/O space.
    Io,
    /// 32-bit memory space.
    Mem32 {
        /// Prefetchable bit.
        prefetchable: bool,
    },
    /// 64-bit memory space (occupies two BAR slots).
    Mem64 {
        /// Prefetchable bit.
        prefetchable: bool,
    },
}

impl BarKind {
    /// True for the memory kinds.
    pub fn is_memory(self) -> bool {
        !matches!(self, BarKind::Io)
    }
}

/// A BAR's placement changed as the guest (or firmware) sees it.
///
/// `old`/`new` are the base addresses at which the BAR *decodes*: `None` while the
/// matching COMMAND decode bit is clear or the BAR is unassigned (all-ones sizing value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarChange {
    /// BAR index 0..6 (the low slot of a 64-bit BAR).
    pub index: u8,
    /// Kind of the BAR.
    pub kind: BarKind,
    /// Size in bytes (power of two).
    pub size: u64,
    /// Where it decoded before the write.
    pub old: Option<u64>,
    /// Where it decodes after the write.
    pub new: Option<u64>,
}

/// Which capability a vector belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IrqSource {
    /// The MSI capability (vector = message number under multiple-message enable).
    Msi,
    /// The MSI-X capability (vector = table entry).
    Msix,
}

/// An MSI message: what the device writes, where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MsiMessage {
    /// Message address (0xFEEx_xxxx for the local APICs).
    pub address: u64,
    /// Message data (for MSI multiple message, already OR-ed with the message number).
    pub data: u32,
}

/// The effective state of one interrupt vector changed.
///
/// `message` is `Some` while the vector is enabled (capability enable bit set and, for
/// MSI, the vector within the enabled count); `masked` folds the per-vector mask and the
/// MSI-X function mask. A vector is deliverable iff `message.is_some() && !masked`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VectorChange {
    /// MSI or MSI-X.
    pub source: IrqSource,
    /// Vector number within that capability.
    pub vector: u16,
    /// The programmed message, if the vector is enabled.
    pub message: Option<MsiMessage>,
    /// Masked (per-vector mask or function mask).
    pub masked: bool,
}

/// Something a write changed in one function; the bus wraps it in a [`PciEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionEvent {
    /// COMMAND register decode/bus-master bits changed.
    Command {
        /// I/O space decoding.
        io: bool,
        /// Memory space decoding.
        memory: bool,
        /// Bus master enable.
        bus_master: bool,
    },
    /// A BAR moved, appeared or disappeared.
    Bar(BarChange),
    /// An MSI/MSI-X vector's address, data, mask or enable changed.
    Vector(VectorChange),
}

/// A [`FunctionEvent`] with the address of the function it happened to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciEvent {
    /// The function.
    pub bdf: Bdf,
    /// What changed.
    pub event: FunctionEvent,
}

/// A doorbell that the function wants served by an ioeventfd (KVM_IOEVENTFD) instead of
/// a trip to userspace: a write of `len` bytes to `offset` inside BAR `bar`, optionally
/// only when the value written equals `datamatch`, signals `fd`. The caller registers it
/// at the BAR's current address and moves it whenever the BAR moves.
#[derive(Clone, Debug)]
pub struct IoEventSpec {
    /// BAR index.
    pub bar: u8,
    /// Offset within the BAR.
    pub offset: u64,
    /// Access width in bytes (1, 2, 4 or 8).
    pub len: u8,
    /// Only writes of this value signal the fd.
    pub datamatch: Option<u64>,
    /// The eventfd to signal (shared with whoever serves the doorbell).
    pub fd: Arc<EventFd>,
}

/// One PCI function as the bus sees it.
///
/// Accesses are 1, 2 or 4 bytes (8 for memory BARs), naturally aligned; implementations
/// give PCI semantics to anything else (reads of all-ones, writes dropped), never panic.
pub trait PciFunction: Send {
    /// Reads `data.len()` bytes of configuration space at `offset` (0..4096).
    fn config_read(&mut self, offset: u16, data: &mut [u8]);
    /// Writes configuration space; returns what the write changed.
    fn config_write(&mut self, offset: u16, data: &[u8]) -> Vec<FunctionEvent>;
    /// Reads inside BAR `bar` at `offset` from its base.
    fn bar_read(&mut self, bar: u8, offset: u64, data: &mut [u8]);
    /// Writes inside BAR `bar`; returns what the write changed (e.g. MSI-X table).
    fn bar_write(&mut self, bar: u8, offset: u64, data: &[u8]) -> Vec<FunctionEvent>;
    /// Doorbells to serve with ioeventfds (see [`IoEventSpec`]).
    fn ioevents(&self) -> Vec<IoEventSpec> {
        Vec::new()
    }
    /// A short name for logs and metrics labels (e.g. "hypercall-gateway").
    fn name(&self) -> &str;
    /// Registers of BAR `bar` that are served without the function's lock (see
    /// [`UnlockedBar`]), or `None`. Asked once when the BAR is mapped.
    fn unlocked_bar(&self, _bar: u8) -> Option<std::sync::Arc<dyn UnlockedBar>> {
        None
    }
}

/// Registers of a BAR with their own synchronization, served without the function's
/// lock: an access that may block (a synchronous hypercall waiting for its service) then
/// holds up neither other vCPUs' accesses to the function nor its config space.
pub trait UnlockedBar: Send + Sync {
    /// Reads at `offset`; `false` when the register is not one of these (the function
    /// then serves it under its lock).
    fn read(&self, offset: u64, data: &mut [u8]) -> bool;
    /// Writes at `offset`; `false` when the register is not one of these.
    fn write(&self, offset: u64, data: &[u8]) -> bool;
}
