//! Integration tests: the real `kvmbus` binary on real KVM.
//!
//! Tests that need /dev/kvm print `SKIP (no /dev/kvm): <name>` and return where it is
//! missing; on the development and CI machines it is present and they run.

mod boot;
mod common;
mod hostile;
mod hypercall;
mod irq;
mod load;
mod monitor;
mod pci;
