//! The ACPI platform of a VM in one place: the tables in guest memory, the PM blocks and
//! timer on the PIO bus with the SCI on GSI 9, the RTC/CMOS at 0x70 on GSI 8, and their
//! timer threads. [`AcpiPlatform::stop`] (or drop) stops and joins the threads: call it
//! before the vCPUs and the VM go away.

use std::sync::Arc;

use vm_memory::GuestMemoryMmap;

use super::{
    AcpiPm, Pm1Cnt, Pm1Evt, PmTimer, SleepHandler, PM1A_CNT_PORT, PM1A_EVT_PORT, PM1_CNT_LEN,
    PM1_EVT_LEN, PM_TMR_LEN, PM_TMR_PORT, SCI_IRQ,
};
use crate::arch::acpi::{write_acpi_tables, AcpiLayout};
use crate::bus::Bus;
use crate::devices::clock::{Clock, HostClock};
use crate::devices::deadline::TimerThread;
use crate::devices::irq_line::IrqLine;
use crate::devices::rtc::{cmos, Rtc, RtcPort, RTC_IRQ, RTC_PORT};
use crate::{Error, Result};

/// The ACPI devices of a running VM.
pub struct AcpiPlatform {
    /// Where the tables are.
    pub layout: AcpiLayout,
    /// PM1 blocks and the PM timer.
    pub pm: Arc<AcpiPm>,
    /// The RTC and CMOS RAM.
    pub rtc: Arc<Rtc>,
    timers: Vec<TimerThread>,
}

impl AcpiPlatform {
    /// Writes the tables for `vcpus` into `mem` (`ram` bytes), maps the devices on `pio`
    /// and starts their timers. `line(gsi)` gives an interrupt line (KvmIrqLine on a VM);
    /// `sleep` decides what SLP_EN does.
    pub fn build(
        mem: &GuestMemoryMmap,
        ram: u64,
        vcpus: u32,
        pio: &Bus,
        line: impl Fn(u32) -> Arc<dyn IrqLine>,
        sleep: Arc<dyn SleepHandler>,
    ) -> Result<AcpiPlatform> {
        let layout = write_acpi_tables(mem, vcpus)?;
        let clock: Arc<dyn Clock> = Arc::new(HostClock::default());
        let pm = Arc::new(AcpiPm::new(clock.clone(), line(SCI_IRQ), sleep));
        let rtc = Arc::new(Rtc::new(
            clock,
            line(RTC_IRQ),
            &cmos::machine_bytes(ram, vcpus),
        ));
        pio.insert(
            PM1A_EVT_PORT as u64,
            PM1_EVT_LEN as u64,
            "acpi-pm1-evt",
            Arc::new(Pm1Evt(pm.clone())),
        )?;
        pio.insert(
            PM1A_CNT_PORT as u64,
            PM1_CNT_LEN as u64,
            "acpi-pm1-cnt",
            Arc::new(Pm1Cnt(pm.clone())),
        )?;
        pio.insert(
            PM_TMR_PORT as u64,
            PM_TMR_LEN as u64,
            "acpi-pm-tmr",
            Arc::new(PmTimer(pm.clone())),
        )?;
        pio.insert(RTC_PORT as u64, 2, "rtc", Arc::new(RtcPort(rtc.clone())))?;
        let io = |what: &str| {
            let what = what.to_string();
            move |source| Error::Io { what, source }
        };
        let timers = vec![
            pm.start_timer().map_err(io("acpi pm timer thread"))?,
            rtc.start_timer().map_err(io("rtc timer thread"))?,
        ];
        Ok(AcpiPlatform {
            layout,
            pm,
            rtc,
            timers,
        })
    }

    /// Stops and joins the timer threads (idempotent).
    pub fn stop(&mut self) {
        for t in &mut self.timers {
            t.stop();
        }
    }
}

impl Drop for AcpiPlatform {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Space;
    use crate::control::{StopReason, VmControl};
    use crate::devices::irq_line::RecordingIrqLine;
    use vm_memory::GuestAddress;

    #[test]
    fn maps_the_fadt_ports_and_powers_off_through_pm1a_cnt() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let pio = Bus::new(Space::Pio, "t");
        let control = Arc::new(VmControl::default());
        let sci = Arc::new(RecordingIrqLine::default());
        let s2 = sci.clone();
        let mut p = AcpiPlatform::build(
            &mem,
            64 << 20,
            2,
            &pio,
            move |gsi| -> Arc<dyn IrqLine> {
                if gsi == SCI_IRQ {
                    s2.clone()
                } else {
                    Arc::new(RecordingIrqLine::default())
                }
            },
            control.clone(),
        )
        .unwrap();
        let names: Vec<String> = pio.ranges().into_iter().map(|r| r.2).collect();
        assert_eq!(
            names,
            ["rtc", "acpi-pm1-evt", "acpi-pm1-cnt", "acpi-pm-tmr"]
        );
        // PM timer advances between two dword reads.
        let (mut a, mut b) = ([0u8; 4], [0u8; 4]);
        pio.read(PM_TMR_PORT as u64, &mut a);
        std::thread::sleep(std::time::Duration::from_millis(2));
        pio.read(PM_TMR_PORT as u64, &mut b);
        assert!(u32::from_le_bytes(b).wrapping_sub(u32::from_le_bytes(a)) & 0xff_ffff >= 7000);
        // RTC: register D via the index/data ports.
        pio.write(RTC_PORT as u64, &[0x0d]);
        let mut d = [0u8];
        pio.read(RTC_PORT as u64 + 1, &mut d);
        assert_eq!(d, [0x80]);
        // The old power-off write still powers off with exit code 0.
        pio.write(PM1A_CNT_PORT as u64, &0x2000u16.to_le_bytes());
        assert_eq!(control.reason(), Some(StopReason::PowerOff));
        assert!(!sci.level());
        p.stop();
    }
}
