//! x86 platform setup: boot vCPU state, CPUID, the MP table and the ACPI tables.

pub mod acpi;
mod cpu;
mod mptable;
mod resume;

pub use cpu::{guest_cpuid, host_brand, setup_boot_regs, setup_cpuid};
pub use mptable::{write_mptable, write_mptable_with_pci, PciIntx, IOAPIC_ADDR, LAPIC_ADDR};
pub use resume::{setup_resume_regs, setup_wait_for_sipi};
