//! ACPI power management (fixed hardware), laid out as on QEMU's q35 (ICH9, PM base
//! 0x600): the PM1a event block (status/enable), the PM1a control block (SCI_EN,
//! SLP_TYP/SLP_EN) and the 24-bit PM timer at 3.579545 MHz, with the SCI on GSI 9.
//!
//! Sleep types follow QEMU's DSDT: SLP_TYP 0 is S5 (power off), 1 is S3, 2 is S4 (QEMU
//! powers off for it too). So the old power-off write, 0x2000 (SLP_EN with SLP_TYP 0)
//! to port 0x604, still powers off.

mod platform;
mod ports;
mod regs;
mod suspend;

pub use platform::AcpiPlatform;
pub use ports::{Pm1Cnt, Pm1Evt, PmTimer};
pub use regs::{AcpiPm, SleepHandler, SleepState, WakeReason};
pub use suspend::{Park, ParkState, ResumeFn, ResumeTo, S3Sleep, SuspendGate};

/// Port of the PM1a event block (PM1_STS at +0, PM1_EN at +2).
pub const PM1A_EVT_PORT: u16 = 0x600;
/// Its length.
pub const PM1_EVT_LEN: u8 = 4;
/// Port of the PM1a control block.
pub const PM1A_CNT_PORT: u16 = 0x604;
/// Its length.
pub const PM1_CNT_LEN: u8 = 2;
/// Port of the PM timer.
pub const PM_TMR_PORT: u16 = 0x608;
/// Its length.
pub const PM_TMR_LEN: u8 = 4;
/// The ISA IRQ (and GSI) of the SCI.
pub const SCI_IRQ: u32 = 9;
/// The PM timer's frequency in Hz.
pub const PM_TIMER_HZ: u64 = 3_579_545;

/// SLP_TYP for S3 (suspend to RAM).
pub const SLP_TYP_S3: u8 = 1;
/// SLP_TYP for S4 (QEMU's `s4_val` default; powers off).
pub const SLP_TYP_S4: u8 = 2;
/// SLP_TYP for S5 (soft off).
pub const SLP_TYP_S5: u8 = 0;

/// PM1_STS / PM1_EN: timer overflow.
pub const TMR_STS: u16 = 1 << 0;
/// PM1_STS / PM1_EN: global lock release.
pub const GBL_STS: u16 = 1 << 5;
/// PM1_STS / PM1_EN: power button.
pub const PWRBTN_STS: u16 = 1 << 8;
/// PM1_STS / PM1_EN: RTC alarm.
pub const RTC_STS: u16 = 1 << 10;
/// PM1_STS: woke from a sleep state.
pub const WAK_STS: u16 = 1 << 15;
/// PM1_CNT: SCI enable (ACPI mode).
pub const SCI_EN: u16 = 1 << 0;
/// PM1_CNT: sleep enable (write-only).
pub const SLP_EN: u16 = 1 << 13;
