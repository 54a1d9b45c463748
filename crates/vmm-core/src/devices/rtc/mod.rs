//! The MC146818 real-time clock and CMOS RAM at ports 0x70 (index, bit 7 disables NMIs)
//! and 0x71 (data), interrupting on ISA IRQ 8, as QEMU's `mc146818rtc`.
//!
//! Time of day comes from the host (UTC); registers hold BCD or binary and 12- or
//! 24-hour values as register B says; UIP reads set during the 244 µs before each
//! second's update; register C collects the periodic, alarm and update-ended flags
//! (reading it clears them and lowers the line). CMOS RAM holds what firmware would put
//! there (memory sizes, CPU count; see [`cmos::machine_bytes`]) and the century at 0x32.

mod calendar;
pub mod cmos;
mod device;
mod port;
#[cfg(test)]
mod tests;

pub use device::{Rtc, WakeHook, UIP_HOLD_NS};
pub use port::RtcPort;

/// The index port (the data port follows it).
pub const RTC_PORT: u16 = 0x70;
/// The ISA IRQ (GSI) the RTC interrupts on.
pub const RTC_IRQ: u32 = 8;

/// Seconds register.
pub const SECONDS: u8 = 0x00;
/// Seconds alarm.
pub const SECONDS_ALARM: u8 = 0x01;
/// Minutes register.
pub const MINUTES: u8 = 0x02;
/// Minutes alarm.
pub const MINUTES_ALARM: u8 = 0x03;
/// Hours register.
pub const HOURS: u8 = 0x04;
/// Hours alarm.
pub const HOURS_ALARM: u8 = 0x05;
/// Day of the week (1 = Sunday).
pub const DAY_OF_WEEK: u8 = 0x06;
/// Day of the month.
pub const DAY_OF_MONTH: u8 = 0x07;
/// Month.
pub const MONTH: u8 = 0x08;
/// Year within the century.
pub const YEAR: u8 = 0x09;
/// Register A: UIP, divider, rate select.
pub const REG_A: u8 = 0x0a;
/// Register B: SET, interrupt enables, data mode, 24-hour.
pub const REG_B: u8 = 0x0b;
/// Register C: interrupt flags (read clears).
pub const REG_C: u8 = 0x0c;
/// Register D: valid RAM and time.
pub const REG_D: u8 = 0x0d;
/// The shutdown status byte firmware reads on reset.
pub const SHUTDOWN_STATUS: u8 = 0x0f;
/// The century (the FADT names it).
pub const CENTURY: u8 = 0x32;
/// The IBM PS/2 century byte, an alias of [`CENTURY`].
pub const IBM_PS2_CENTURY: u8 = 0x37;

/// Register A: update in progress.
pub const REG_A_UIP: u8 = 0x80;
/// Register B: SET (updates stop, the time may be written).
pub const REG_B_SET: u8 = 0x80;
/// Register B: periodic interrupt enable.
pub const REG_B_PIE: u8 = 0x40;
/// Register B: alarm interrupt enable.
pub const REG_B_AIE: u8 = 0x20;
/// Register B: update-ended interrupt enable.
pub const REG_B_UIE: u8 = 0x10;
/// Register B: square-wave enable.
pub const REG_B_SQWE: u8 = 0x08;
/// Register B: binary (not BCD) data mode.
pub const REG_B_DM_BINARY: u8 = 0x04;
/// Register B: 24-hour mode.
pub const REG_B_24H: u8 = 0x02;
/// Register C: an enabled interrupt is pending.
pub const REG_C_IRQF: u8 = 0x80;
/// Register C: periodic.
pub const REG_C_PF: u8 = 0x40;
/// Register C: alarm.
pub const REG_C_AF: u8 = 0x20;
/// Register C: update ended.
pub const REG_C_UF: u8 = 0x10;
