//! x86 platform setup: boot vCPU state, CPUID and the MP table.

mod cpu;
mod mptable;

pub use cpu::{setup_boot_regs, setup_cpuid};
pub use mptable::{write_mptable, write_mptable_with_pci, PciIntx, IOAPIC_ADDR, LAPIC_ADDR};
