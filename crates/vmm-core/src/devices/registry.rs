//! One place builds devices.
//!
//! Every `[[device]] kind` (a PCI function) and every platform device (not a PCI
//! function: serial, debug-exit, ACPI, POST port, ...) is one module with two
//! parts:
//! * a **parse** function that turns its TOML table into its own typed spec, placing every
//!   error at `file:line:column` (the loader calls it; `kvmbus check` runs the same);
//! * the spec's **build** method, which constructs the device from that spec and a small
//!   [`Wiring`] (buses, interrupt lines and router, guest memory, stop control, the set of
//!   device threads to stop at teardown).
//!
//! Adding a device is one new module plus one line in [`PCI_KINDS`] or [`PLATFORM`].
//!
//! ```text
//! PciKind { name: "my-dev", parse: my_dev::parse },     // [[device]] kind = "my-dev"
//! PlatformKind { section: "my_port", parse: my_port::parse }, // [my_port] ...
//! ```

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pci_emu::{Bdf, PciFunction};

use super::kinds;
use super::wiring::Wiring;
use crate::config::{CheckCx, ConfigError, ParseCx, Value};
use crate::Result;

/// A PCI device kind's typed configuration, which also builds the device.
pub trait PciDeviceSpec: Debug + Send + Sync {
    /// The `kind = "..."` name.
    fn kind(&self) -> &'static str;
    /// Interrupt vectors it asks the router for (MSI-X / MSI, the larger count).
    fn vectors(&self) -> u32 {
        0
    }
    /// Unix socket paths it listens on.
    fn sockets(&self) -> Vec<PathBuf> {
        Vec::new()
    }
    /// Rules that involve the rest of the configuration.
    fn check(&self, _cx: &CheckCx<'_>) -> std::result::Result<(), ConfigError> {
        Ok(())
    }
    /// Builds the function that will sit at `bdf`.
    fn build(&self, bdf: Bdf, w: &mut Wiring<'_>) -> Result<Arc<Mutex<dyn PciFunction>>>;
}

/// A platform device's typed configuration, which also builds it.
pub trait PlatformSpec: Debug + Send + Sync {
    /// A short name (logs, `kvmbus check`).
    fn name(&self) -> &'static str;
    /// Builds the device and maps it on the buses.
    fn build(&self, w: &mut Wiring<'_>) -> Result<()>;
}

/// Parses a `[[device]]` table into its kind's spec.
pub type PciParse =
    fn(&ParseCx, Value<'_>) -> std::result::Result<Arc<dyn PciDeviceSpec>, ConfigError>;

/// Parses a platform device's top-level section (absent: `None`) into its spec, or
/// `None` when the device is not present in this configuration.
pub type PlatformParse = fn(
    &ParseCx,
    Option<Value<'_>>,
) -> std::result::Result<Option<Arc<dyn PlatformSpec>>, ConfigError>;

/// A `[[device]] kind`.
pub struct PciKind {
    /// The `kind = "..."` name.
    pub name: &'static str,
    /// Its parser.
    pub parse: PciParse,
}

/// A platform device.
pub struct PlatformKind {
    /// Its top-level TOML section, or "" when it has none of its own.
    pub section: &'static str,
    /// Its parser.
    pub parse: PlatformParse,
}

/// Every `[[device]] kind`.
pub const PCI_KINDS: &[PciKind] = &[
    PciKind {
        name: "irq-test",
        parse: kinds::irq_test::parse,
    },
    PciKind {
        name: "hypercall-gateway",
        parse: kinds::hypercall_gateway::parse,
    },
    PciKind {
        name: "pci-testdev",
        parse: kinds::pci_testdev::parse,
    },
    PciKind {
        name: "vfio-user",
        parse: kinds::vfio_user::parse,
    },
];

/// Every platform device, in build order.
pub const PLATFORM: &[PlatformKind] = &[
    PlatformKind {
        section: "",
        parse: kinds::serial::parse,
    },
    PlatformKind {
        section: "debug_exit",
        parse: kinds::legacy::parse_debug_exit,
    },
    PlatformKind {
        section: "",
        parse: kinds::acpi::parse,
    },
    PlatformKind {
        section: "",
        parse: kinds::legacy::parse_post,
    },
    PlatformKind {
        section: "pc_testdev",
        parse: kinds::pc_testdev::parse,
    },
    PlatformKind {
        section: "fw_cfg",
        parse: kinds::fw_cfg::parse,
    },
    PlatformKind {
        section: "",
        parse: kinds::reset_control::parse,
    },
];

/// The `[[device]]` kind called `name`.
pub fn pci_kind(name: &str) -> Option<&'static PciKind> {
    PCI_KINDS.iter().find(|k| k.name == name)
}

/// True if `section` is a platform device's top-level section.
pub fn is_platform_section(section: &str) -> bool {
    !section.is_empty() && PLATFORM.iter().any(|k| k.section == section)
}

/// The names of every `[[device]]` kind, for messages.
pub fn pci_kind_names() -> String {
    let names: Vec<String> = PCI_KINDS.iter().map(|k| format!("'{}'", k.name)).collect();
    names.join(", ")
}
