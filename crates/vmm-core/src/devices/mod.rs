//! Legacy platform devices: UART, debug-exit, power-off and the POST port.

pub mod irq_line;
pub mod irq_socket;
pub mod irq_test;
mod legacy;
mod serial;
pub mod vfio_user;

pub use legacy::{DebugExit, PostPort, PowerOff};
pub use serial::{SerialConsole, SerialSink};

/// I/O port of the QEMU-compatible debug-exit device.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// I/O port of the power-off register (ACPI PM1a control, as on QEMU's q35).
pub const POWER_OFF_PORT: u16 = 0x604;
/// The 16-bit value that powers off (SLP_EN with SLP_TYP 5).
pub const POWER_OFF_VALUE: u16 = 0x2000;
/// The first serial port.
pub const COM1_PORT: u16 = 0x3f8;
/// The POST diagnostic port.
pub const POST_PORT: u16 = 0x80;
