//! x86 platform setup: boot vCPU state, CPUID and the MP table.

mod cpu;
mod mptable;

pub use cpu::{guest_cpuid, host_brand, setup_boot_regs, setup_cpuid};
pub use mptable::{write_mptable, IOAPIC_ADDR, LAPIC_ADDR};
