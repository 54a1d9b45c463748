//! The validated configuration that the rest of kvmbus consumes.
//!
//! Components get their own typed configurations from it: PCI devices and platform
//! devices carry the spec their registry entry parsed (see
//! [`crate::devices::registry`]), the hypercall services are the gateway's own
//! [`hypercall_gw::ServiceConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use pci_emu::Bdf;

use crate::devices::registry::{PciDeviceSpec, PlatformSpec};

/// A whole, validated VM configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// `[vm] name`.
    pub name: String,
    /// `[vm] vcpus`.
    pub vcpus: u32,
    /// `[vm] memory_mib`.
    pub memory_mib: u64,
    /// `[vm] on_reset`: what a guest's reset request (the reset control register, a
    /// triple fault) does.
    pub on_reset: OnReset,
    /// `[boot]`.
    pub boot: BootSource,
    /// `[serial] output`.
    pub serial: SerialOutput,
    /// `[metrics] listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `[metrics] sd_dir`: where the VM registers its endpoint for Prometheus' file_sd
    /// (relative to the configuration file).
    pub metrics_sd_dir: Option<PathBuf>,
    /// `[pci] ecam_base`.
    pub ecam_base: u64,
    /// `[pci] msi_delivery`: force KVM_SIGNAL_MSI delivery instead of irqfd routes
    /// (what kvmbus falls back to where KVM lacks irqfd routing).
    pub msi_signal: bool,
    /// Platform devices (not PCI functions), in build order.
    pub platform: Vec<Arc<dyn PlatformSpec>>,
    /// `[[device]]` tables in file order.
    pub devices: Vec<DeviceConfig>,
    /// `[hypercall]` and its `[[hypercall.service]]` tables.
    pub hypercall: HypercallConfig,
    /// Where keys that later checks may reject were written: (line, column).
    pub places: Places,
}

/// `[vm] on_reset`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnReset {
    /// End the VM with exit code 4, as QEMU's `-no-reboot` ends it (the default).
    #[default]
    Exit,
    /// Boot the machine again: a fresh VM from the same configuration, with
    /// vfio-user devices kept connected and reset (DEVICE_RESET), as QEMU reboots.
    Reboot,
}

impl OnReset {
    /// True if the machine boots again after stopping for `reason`: a machine reset
    /// (reset request, triple fault) with `on_reset = "reboot"`.
    pub fn reboots_after(self, reason: &crate::control::StopReason) -> bool {
        self == OnReset::Reboot && reason.is_reset()
    }
}

/// Line/column of keys whose values are checked against KVM or the image.
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
    /// `[metrics] sd_dir`.
    pub metrics_sd_dir: (usize, usize),
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
    /// `[boot] modules`: multiboot modules, in order.
    pub modules: Vec<ModuleSource>,
}

/// One multiboot module (`[boot] modules = [{ path, cmdline }]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSource {
    /// The file (resolved against the configuration's directory).
    pub path: String,
    /// Its arguments (the module's command line is `path` or `path cmdline`).
    pub cmdline: String,
    /// Where the module's table was written: (line, column).
    pub place: (usize, usize),
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

/// One `[[device]]`: its kind's typed spec and where it sits.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// The kind's own configuration, which also builds the device.
    pub spec: Arc<dyn PciDeviceSpec>,
    /// Where it sits, as configured or as the loader assigned it (next free slot).
    pub bdf: Bdf,
    /// The line of its `[[device]]` header.
    pub line: usize,
}

/// `[hypercall]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HypercallConfig {
    /// `backend_timeout_ms`.
    pub backend_timeout_ms: u64,
    /// `[[hypercall.service]]` tables, as the gateway takes them.
    pub services: Vec<hypercall_gw::ServiceConfig>,
}

impl Default for HypercallConfig {
    fn default() -> Self {
        HypercallConfig {
            backend_timeout_ms: 1000,
            services: Vec::new(),
        }
    }
}
