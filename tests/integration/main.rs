//! Integration tests: the real `kvmbus` binary on real KVM.
//!
//! Tests that need /dev/kvm print `SKIP (no /dev/kvm): <name>` and return where it is
//! missing; on the development and CI machines it is present and they run.

mod acpi;
mod boot;
mod chaos;
mod common;
mod fleet;
mod fwcfg;
mod hostile;
mod hypercall;
mod irq;
mod lifecycle;
mod load;
mod longmode;
mod monitor;
mod pci;
mod reboot;
mod testdev;
mod vfio_user;
