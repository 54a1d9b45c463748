//! The Fixed ACPI Description Table (ACPI 6.x §5.2.9), revision 3 (244 bytes, with the
//! X_ fields), laid out like QEMU's q35: PM1a event block at 0x600, PM1a control at
//! 0x604, the PM timer at 0x608, SCI on IRQ 9, reset register 0xCF9 (value 0x0F).

use super::sdt::{AddressSpace, Sdt};
use crate::devices::pm::{
    PM1A_CNT_PORT, PM1A_EVT_PORT, PM1_CNT_LEN, PM1_EVT_LEN, PM_TMR_LEN, PM_TMR_PORT, SCI_IRQ,
};

/// The reset register QEMU's q35 names (the ICH9 reset control register).
pub const RESET_PORT: u16 = 0xcf9;
/// The value OSPM writes to it to reset.
pub const RESET_VALUE: u8 = 0x0f;
/// The CMOS index of the century byte.
pub const CENTURY_INDEX: u8 = 0x32;

// IA-PC boot architecture flags: LEGACY_DEVICES, VGA not present.
const IAPC_BOOT_ARCH: u16 = (1 << 0) | (1 << 2);
// Flags: WBINVD, PROC_C1, SLP_BUTTON (none), RTC_S4, RESET_REG_SUP, USE_PLATFORM_CLOCK
// (as QEMU's q35). TMR_VAL_EXT is clear: the PM timer is 24 bits.
const FLAGS: u32 = (1 << 0) | (1 << 2) | (1 << 5) | (1 << 7) | (1 << 10) | (1 << 15);

/// Offset of PM1a_EVT_BLK in the table.
pub const PM1A_EVT_BLK_OFFSET: usize = 56;
/// Offset of PM_TMR_BLK.
pub const PM_TMR_BLK_OFFSET: usize = 76;
/// Total length of a revision-3 FADT.
pub const FADT_LEN: usize = 244;

/// The FADT pointing at `facs` and `dsdt`.
pub fn fadt(facs: u32, dsdt: u32) -> Vec<u8> {
    let mut t = Sdt::new(b"FACP", 3);
    t.u32(facs) // FIRMWARE_CTRL
        .u32(dsdt) // DSDT
        .u8(0) // reserved
        .u8(0) // preferred PM profile: unspecified
        .u16(SCI_IRQ as u16)
        .u32(0) // SMI_CMD: none, ACPI mode is always on (SCI_EN reads 1)
        .u8(0) // ACPI_ENABLE
        .u8(0) // ACPI_DISABLE
        .u8(0) // S4BIOS_REQ
        .u8(0); // PSTATE_CNT
    debug_assert_eq!(t.offset(), PM1A_EVT_BLK_OFFSET);
    t.u32(PM1A_EVT_PORT as u32)
        .u32(0) // PM1b_EVT_BLK
        .u32(PM1A_CNT_PORT as u32)
        .u32(0) // PM1b_CNT_BLK
        .u32(0); // PM2_CNT_BLK
    debug_assert_eq!(t.offset(), PM_TMR_BLK_OFFSET);
    t.u32(PM_TMR_PORT as u32)
        .u32(0) // GPE0_BLK
        .u32(0) // GPE1_BLK
        .u8(PM1_EVT_LEN)
        .u8(PM1_CNT_LEN)
        .u8(0) // PM2_CNT_LEN
        .u8(PM_TMR_LEN)
        .u8(0) // GPE0_BLK_LEN
        .u8(0) // GPE1_BLK_LEN
        .u8(0) // GPE1_BASE
        .u8(0) // CST_CNT
        .u16(0xfff) // P_LVL2_LAT: C2 not supported
        .u16(0x3e9) // P_LVL3_LAT: C3 not supported
        .u16(0) // FLUSH_SIZE
        .u16(0) // FLUSH_STRIDE
        .u8(0) // DUTY_OFFSET
        .u8(0) // DUTY_WIDTH
        .u8(0) // DAY_ALRM: no day alarm
        .u8(0) // MON_ALRM
        .u8(CENTURY_INDEX)
        .u16(IAPC_BOOT_ARCH)
        .u8(0)
        .u32(FLAGS)
        .gas(AddressSpace::Io, 8, 1, RESET_PORT as u64)
        .u8(RESET_VALUE)
        .bytes(&[0; 3]) // reserved (ARM_BOOT_ARCH, minor version in later revisions)
        .u64(0) // X_FIRMWARE_CTRL: FIRMWARE_CTRL holds the FACS
        .u64(dsdt as u64)
        .gas(AddressSpace::Io, PM1_EVT_LEN * 8, 0, PM1A_EVT_PORT as u64)
        .bytes(&[0; 12]) // X_PM1b_EVT_BLK
        .gas(AddressSpace::Io, PM1_CNT_LEN * 8, 0, PM1A_CNT_PORT as u64)
        .bytes(&[0; 12]) // X_PM1b_CNT_BLK
        .bytes(&[0; 12]) // X_PM2_CNT_BLK
        .gas(AddressSpace::Io, PM_TMR_LEN * 8, 0, PM_TMR_PORT as u64)
        .bytes(&[0; 12]) // X_GPE0_BLK
        .bytes(&[0; 12]); // X_GPE1_BLK
    debug_assert_eq!(t.offset(), FADT_LEN);
    t.finish()
}
