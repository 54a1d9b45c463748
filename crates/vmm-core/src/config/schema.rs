//! The validated configuration that the rest of kvmbus consumes.

use std::net::SocketAddr;
use std::path::PathBuf;

use pci_emu::Bdf;

/// A whole, validated VM configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// `[vm] name`.
    pub name: String,
    /// `[vm] vcpus`.
    pub vcpus: u32,
    /// `[vm] memory_mib`.
    pub memory_mib: u64,
    /// `[boot]`.
    pub boot: BootSource,
    /// `[serial] output`.
    pub serial: SerialOutput,
    /// `[metrics] listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `[pci] ecam_base`.
    pub ecam_base: u64,
    /// `[pci] msi_delivery`: force KVM_SIGNAL_MSI delivery instead of irqfd routes
    /// (what kvmbus falls back to where KVM lacks irqfd routing).
    pub msi_signal: bool,
    /// `[[device]]` tables in file order.
    pub devices: Vec<DeviceConfig>,
    /// `[[hypercall.service]]` tables.
    pub hypercall_services: Vec<HypercallServiceConfig>,
    /// `[hypercall] backend_timeout_ms`.
    pub backend_timeout_ms: u64,
    /// Where keys that later checks may reject were written: (line, column).
    pub places: Places,
}

/// Line/column of keys whose values are checked after parsing (against KVM or the image).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Places {
    /// `[vm] vcpus`.
    pub vcpus: (usize, usize),
    /// `[vm] memory_mib`.
    pub memory_mib: (usize, usize),
    /// `[boot] image`.
    pub image: (usize, usize),
    /// `[metrics] listen`.
    pub metrics_listen: (usize, usize),
}

/// `[boot] kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootKind {
    /// A Multiboot v1 ELF file.
    Multiboot,
    /// A guest built into the binary.
    Builtin,
}

/// What to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSource {
    /// The kind.
    pub kind: BootKind,
    /// For [`BootKind::Builtin`], the built-in's name; else the image file (relative
    /// paths are resolved against the config file's directory).
    pub image: String,
    /// The guest command line.
    pub cmdline: String,
}

/// `[serial] output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialOutput {
    /// The VMM's standard output.
    Stdout,
    /// Appended to a file.
    File(PathBuf),
    /// Discarded.
    None,
}

/// Device kinds that `[[device]] kind` may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceKind {
    /// The hypercall gateway PCI function.
    HypercallGateway {
        /// Number of ring queues.
        queues: u16,
        /// Maximum queue size (power of two, at least 256).
        queue_size: u16,
        /// MSI-X vectors.
        msix_vectors: u16,
    },
    /// The interrupt test device.
    IrqTest {
        /// MSI-X vectors.
        msix_vectors: u16,
        /// MSI vectors (power of two, 1..=32).
        msi_vectors: u16,
        /// A Unix socket that hands out the vectors' eventfds to other processes.
        socket: Option<PathBuf>,
    },
}

impl DeviceKind {
    /// The name used in `kind = "..."`.
    pub fn name(&self) -> &'static str {
        match self {
            DeviceKind::HypercallGateway { .. } => "hypercall-gateway",
            DeviceKind::IrqTest { .. } => "irq-test",
        }
    }
}

/// One `[[device]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// What it is.
    pub kind: DeviceKind,
    /// Where it sits; `None` = the next free slot.
    pub bdf: Option<Bdf>,
    /// The line of its `[[device]]` header.
    pub line: usize,
}

/// One `[[hypercall.service]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HypercallServiceConfig {
    /// Hypercall number (0x100 and up).
    pub nr: u32,
    /// Service kind ("kv", "echo", "external", ...).
    pub kind: String,
    /// For external services, the Unix socket path.
    pub socket: Option<PathBuf>,
    /// For external services, "relay" or "direct".
    pub mode: Option<String>,
    /// How many consecutive numbers it serves (external services).
    pub count: u32,
    /// Direct mode: the queue handed to the backend.
    pub queue: Option<u16>,
    /// The line of its header.
    pub line: usize,
}
