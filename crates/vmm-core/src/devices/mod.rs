//! Devices: the models (UART, debug-exit, ACPI PM and RTC, POST port, fw_cfg, irq-test,
//! ...), their kinds (config + construction, in [`kinds`]) and the [`registry`] that maps
//! a configuration to them.

pub mod clock;
pub mod deadline;
pub mod fw_cfg;
pub mod irq_line;
pub mod irq_socket;
pub mod irq_test;
pub mod kinds;
mod legacy;
pub mod pc_testdev;
pub mod pci_testdev;
pub mod pm;
pub mod registry;
pub mod reset_control;
pub mod rtc;
mod serial;
pub mod vfio_user;
pub mod wiring;

pub use legacy::{DebugExit, DebugExitPorts, PostPort};
pub use serial::{SerialConsole, SerialSink};

/// I/O port of the QEMU-compatible debug-exit device.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// I/O port of the power-off register: ACPI PM1a_CNT (as on QEMU's q35).
pub const POWER_OFF_PORT: u16 = pm::PM1A_CNT_PORT;
/// The 16-bit value that powers off: SLP_EN with SLP_TYP 0, QEMU's \_S5 type.
pub const POWER_OFF_VALUE: u16 = pm::SLP_EN | ((pm::SLP_TYP_S5 as u16) << 10);
/// The first serial port.
pub const COM1_PORT: u16 = 0x3f8;
/// The POST diagnostic port.
pub const POST_PORT: u16 = 0x80;
