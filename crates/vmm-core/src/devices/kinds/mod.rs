//! The device kinds of the [registry](super::registry): each module parses its kind's
//! TOML into a typed spec and builds the device from it. The device models themselves
//! live beside this module (`devices/irq_test.rs`, `devices/serial.rs`, ...).

pub mod acpi;
pub mod fw_cfg;
pub mod hypercall_gateway;
pub mod irq_test;
pub mod legacy;
pub mod pc_testdev;
pub mod pci_testdev;
pub mod reset_control;
pub mod serial;
pub mod vfio_user;
