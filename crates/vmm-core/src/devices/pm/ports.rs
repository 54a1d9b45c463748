//! The PM blocks as bus devices. PM1_STS, PM1_EN and PM1_CNT are 16-bit registers that
//! also take byte accesses (a byte write keeps the register's other byte; for the
//! write-one-to-clear PM1_STS that other byte is simply not written), and a 4-byte access
//! to the event block covers both of its registers, as QEMU splits it. The PM timer is
//! read as a dword; narrower reads get the bytes of the count at their offset (what QEMU
//! 7.2 returns, checked with acpi-check) and writes are dropped.

use std::sync::Arc;

use super::AcpiPm;
use crate::bus::BusDevice;

/// Reads bytes `offset..offset+data.len()` of a file of 16-bit registers.
fn read16(offset: u64, data: &mut [u8], reg: impl Fn(u64) -> u16) {
    for (i, b) in data.iter_mut().enumerate() {
        let o = offset + i as u64;
        *b = (reg(o & !1) >> (8 * (o & 1))) as u8;
    }
}

/// Splits a write into (register offset, value, byte mask) per 16-bit register touched.
fn write16(offset: u64, data: &[u8]) -> Vec<(u64, u16, u16)> {
    let mut out: Vec<(u64, u16, u16)> = Vec::new();
    for (i, b) in data.iter().enumerate() {
        let o = offset + i as u64;
        let shift = 8 * (o & 1);
        match out.last_mut() {
            Some(last) if last.0 == o & !1 => {
                last.1 |= (*b as u16) << shift;
                last.2 |= 0xff << shift;
            }
            _ => out.push((o & !1, (*b as u16) << shift, 0xff << shift)),
        }
    }
    out
}

/// PM1a_EVT_BLK: PM1_STS at +0, PM1_EN at +2.
pub struct Pm1Evt(pub Arc<AcpiPm>);

impl BusDevice for Pm1Evt {
    fn read(&self, offset: u64, data: &mut [u8]) {
        let (sts, en) = (self.0.read_sts(), self.0.read_en());
        read16(offset, data, |r| if r == 0 { sts } else { en });
    }
    fn write(&self, offset: u64, data: &[u8]) {
        for (reg, val, mask) in write16(offset, data) {
            match reg {
                0 => self.0.write_sts(val),
                _ => self.0.write_en((self.0.read_en() & !mask) | val),
            }
        }
    }
}

/// PM1a_CNT_BLK.
pub struct Pm1Cnt(pub Arc<AcpiPm>);

impl BusDevice for Pm1Cnt {
    fn read(&self, offset: u64, data: &mut [u8]) {
        let cnt = self.0.read_cnt();
        read16(offset, data, |_| cnt);
    }
    fn write(&self, offset: u64, data: &[u8]) {
        for (_, val, mask) in write16(offset, data) {
            self.0.write_cnt((self.0.read_cnt() & !mask) | val);
        }
    }
}

/// PM_TMR_BLK: the 24-bit timer, read as a dword.
pub struct PmTimer(pub Arc<AcpiPm>);

impl BusDevice for PmTimer {
    fn read(&self, offset: u64, data: &mut [u8]) {
        let t = self.0.timer().to_le_bytes();
        for (i, b) in data.iter_mut().enumerate() {
            *b = t.get(offset as usize + i).copied().unwrap_or(0);
        }
    }
    fn write(&self, _offset: u64, _data: &[u8]) {}
}

#[cfg(test)]
mod tests {
    use super::super::{SleepHandler, SleepState, PWRBTN_STS, RTC_STS, SCI_EN, TMR_STS};
    use super::*;
    use crate::devices::clock::ManualClock;
    use crate::devices::irq_line::RecordingIrqLine;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Sleeps(Mutex<Vec<SleepState>>);
    impl SleepHandler for Sleeps {
        fn sleep(&self, s: SleepState) {
            self.0.lock().unwrap().push(s);
        }
    }

    fn pm() -> (Arc<AcpiPm>, Arc<ManualClock>, Arc<Sleeps>) {
        let c = Arc::new(ManualClock::new(0));
        let s = Arc::new(Sleeps::default());
        let l = Arc::new(RecordingIrqLine::default());
        (Arc::new(AcpiPm::new(c.clone(), l, s.clone())), c, s)
    }

    #[test]
    fn timer_reads_as_dword_word_or_byte() {
        let (p, c, _) = pm();
        let t = PmTimer(p);
        c.set(2_000_000_000);
        let mut d = [0u8; 4];
        t.read(0, &mut d);
        assert_eq!(u32::from_le_bytes(d), 7_159_090); // 0x6D3D32
        let mut w = [0xffu8; 2];
        t.read(0, &mut w);
        assert_eq!(u16::from_le_bytes(w), 0x3d32);
        let mut b = [0xffu8; 1];
        t.read(2, &mut b);
        assert_eq!(b, [0x6d]);
        t.write(0, &[0; 4]);
        t.read(0, &mut d);
        assert_eq!(u32::from_le_bytes(d), 7_159_090);
    }

    #[test]
    fn event_block_bytes_words_and_dwords() {
        let (p, _, _) = pm();
        let e = Pm1Evt(p.clone());
        e.write(0, &[TMR_STS as u8]); // clear the reset-time TMR_STS
        e.write(2, &0x0400u16.to_le_bytes()); // s3.c: RTC_EN
        assert_eq!(p.read_en(), RTC_STS);
        e.write(2, &[0x01]); // low byte only: RTC_EN (high byte) stays
        assert_eq!(p.read_en(), RTC_STS | TMR_STS);
        let mut d = [0u8; 4];
        e.read(0, &mut d);
        assert_eq!(u32::from_le_bytes(d), ((RTC_STS | TMR_STS) as u32) << 16);
        p.wake(super::super::WakeReason::Other);
        let mut b = [0u8; 1];
        e.read(1, &mut b);
        assert_eq!(b[0], ((super::super::WAK_STS | PWRBTN_STS) >> 8) as u8);
        e.write(0, &[0, 0x81, 0x00, 0x00]); // a dword: clears WAK and PWRBTN, EN := 0
        assert_eq!(p.read_sts() & !TMR_STS, 0);
        assert_eq!(p.read_en(), 0);
    }

    #[test]
    fn control_block_keeps_the_other_byte_and_sleeps() {
        let (p, _, s) = pm();
        let c = Pm1Cnt(p.clone());
        let mut d = [0u8; 2];
        c.read(0, &mut d);
        assert_eq!(u16::from_le_bytes(d), SCI_EN);
        c.write(1, &[0x24]); // byte write of SLP_EN|S3 to the high byte
        assert_eq!(*s.0.lock().unwrap(), [SleepState::S3]);
        assert_eq!(p.read_cnt(), SCI_EN | (1 << 10));
        c.write(0, &0x2000u16.to_le_bytes());
        assert_eq!(s.0.lock().unwrap().last(), Some(&SleepState::S5));
    }
}
