//! The PM1 registers, the PM timer's count and the SCI, following QEMU's hw/acpi/core.c:
//! TMR_STS is set when bit 23 of the count toggles, SCI = STS & EN for the timer, global
//! lock, power button and RTC bits, and a timer thread raises the SCI at the next
//! overflow while TMR_EN is set and TMR_STS clear.

use std::sync::{Arc, Mutex, Weak};

use super::{
    GBL_STS, PM_TIMER_HZ, PWRBTN_STS, RTC_STS, SCI_EN, SLP_EN, SLP_TYP_S3, SLP_TYP_S4, SLP_TYP_S5,
    TMR_STS, WAK_STS,
};
use crate::control::{StopReason, VmControl};
use crate::devices::clock::Clock;
use crate::devices::deadline::{Deadline, TimerThread};
use crate::devices::irq_line::IrqLine;

const NS_PER_SEC: u128 = 1_000_000_000;
/// Status bits that raise the SCI when enabled (QEMU's acpi_update_sci).
const SCI_MASK: u16 = TMR_STS | GBL_STS | PWRBTN_STS | RTC_STS;

/// A sleep state the guest entered through PM1a_CNT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SleepState {
    /// Suspend to RAM.
    S3,
    /// Suspend to disk (QEMU powers off).
    S4,
    /// Soft off.
    S5,
}

/// Why a suspended machine woke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeReason {
    /// The RTC alarm (needs RTC_EN).
    Rtc,
    /// Anything else (the stop path, a "power button"): always allowed.
    Other,
}

/// What the machine does when the guest sets SLP_EN.
pub trait SleepHandler: Send + Sync {
    /// The guest asked for `state`. Runs on the vCPU thread that wrote PM1a_CNT, before
    /// that write returns to the guest.
    fn sleep(&self, state: SleepState);
}

/// Without S3 support a VM powers off for S4 and S5 and ignores S3 (logged).
impl SleepHandler for VmControl {
    fn sleep(&self, state: SleepState) {
        match state {
            SleepState::S4 | SleepState::S5 => self.request_stop(StopReason::PowerOff),
            SleepState::S3 => log::warn!("guest asked for S3; this VM does not suspend"),
        }
    }
}

struct Regs {
    sts: u16,
    en: u16,
    cnt: u16,
    /// The PM timer count (in ticks, unwrapped) at which TMR_STS is next set.
    overflow: u64,
}

/// The ACPI fixed hardware registers of one VM.
pub struct AcpiPm {
    clock: Arc<dyn Clock>,
    sci: Arc<dyn IrqLine>,
    sleep: Arc<dyn SleepHandler>,
    regs: Mutex<Regs>,
    deadline: Arc<Deadline>,
}

impl AcpiPm {
    /// Registers in their reset state: ACPI mode on (SCI_EN: there is no SMI_CMD port).
    pub fn new(
        clock: Arc<dyn Clock>,
        sci: Arc<dyn IrqLine>,
        sleep: Arc<dyn SleepHandler>,
    ) -> AcpiPm {
        AcpiPm {
            clock,
            sci,
            sleep,
            regs: Mutex::new(Regs {
                sts: 0,
                en: 0,
                cnt: SCI_EN,
                overflow: 0,
            }),
            deadline: Arc::new(Deadline::default()),
        }
    }

    /// Starts the thread that raises the SCI at timer overflows (stop it at teardown).
    pub fn start_timer(self: &Arc<Self>) -> std::io::Result<TimerThread> {
        let me: Weak<AcpiPm> = Arc::downgrade(self);
        TimerThread::spawn(
            "acpi-pm-timer",
            self.clock.clone(),
            self.deadline.clone(),
            move || {
                if let Some(pm) = me.upgrade() {
                    let mut r = pm.lock();
                    pm.update_sci(&mut r);
                }
            },
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Regs> {
        self.regs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The unwrapped PM timer count at clock time `ns`.
    fn ticks_at(ns: u64) -> u64 {
        (ns as u128 * PM_TIMER_HZ as u128 / NS_PER_SEC) as u64
    }

    /// The first clock time at which the count reaches `ticks`.
    fn ns_of(ticks: u64) -> u64 {
        (ticks as u128 * NS_PER_SEC).div_ceil(PM_TIMER_HZ as u128) as u64
    }

    /// The 24-bit PM timer value the guest reads.
    pub fn timer(&self) -> u32 {
        (Self::ticks_at(self.clock.now_ns()) & 0xff_ffff) as u32
    }

    fn sts(&self, r: &mut Regs) -> u16 {
        if Self::ticks_at(self.clock.now_ns()) >= r.overflow {
            r.sts |= TMR_STS;
        }
        r.sts
    }

    fn update_sci(&self, r: &mut Regs) {
        let sts = self.sts(r);
        self.sci.set_level(sts & r.en & SCI_MASK != 0);
        let armed = r.en & TMR_STS != 0 && sts & TMR_STS == 0;
        self.deadline.set(armed.then(|| Self::ns_of(r.overflow)));
    }

    /// PM1_STS.
    pub fn read_sts(&self) -> u16 {
        let mut r = self.lock();
        self.sts(&mut r)
    }
    /// PM1_EN.
    pub fn read_en(&self) -> u16 {
        self.lock().en
    }
    /// PM1_CNT (SLP_EN reads 0).
    pub fn read_cnt(&self) -> u16 {
        self.lock().cnt
    }

    /// A PM1_STS write: ones clear bits; clearing TMR_STS schedules the next overflow.
    pub fn write_sts(&self, val: u16) {
        let mut r = self.lock();
        if self.sts(&mut r) & val & TMR_STS != 0 {
            let now = Self::ticks_at(self.clock.now_ns());
            r.overflow = (now + 0x80_0000) & !0x7f_ffff;
        }
        r.sts &= !val;
        self.update_sci(&mut r);
    }

    /// A PM1_EN write.
    pub fn write_en(&self, val: u16) {
        let mut r = self.lock();
        r.en = val;
        self.update_sci(&mut r);
    }

    /// A PM1_CNT write: SLP_EN enters the sleep state SLP_TYP names (unknown types are
    /// ignored, as on QEMU).
    pub fn write_cnt(&self, val: u16) {
        self.lock().cnt = val & !SLP_EN;
        if val & SLP_EN == 0 {
            return;
        }
        let state = match ((val >> 10) & 7) as u8 {
            SLP_TYP_S5 => SleepState::S5,
            SLP_TYP_S3 => SleepState::S3,
            SLP_TYP_S4 => SleepState::S4,
            t => {
                log::debug!("PM1a_CNT: SLP_EN with unknown SLP_TYP {t} ignored");
                return;
            }
        };
        self.sleep.sleep(state);
    }

    /// Whether `reason` may wake the machine (RTC_EN for the RTC alarm).
    pub fn wake_enabled(&self, reason: WakeReason) -> bool {
        match reason {
            WakeReason::Rtc => self.lock().en & RTC_STS != 0,
            WakeReason::Other => true,
        }
    }

    /// The machine-reset state the registers take on resume: status and enables clear,
    /// SCI_EN set, the timer's overflow status due.
    pub fn reset(&self) {
        let mut r = self.lock();
        r.sts = 0;
        r.en = 0;
        r.cnt = SCI_EN;
        r.overflow = 0;
        self.sci.set_level(false);
        self.deadline.set(None);
    }

    /// Records a wake-up: WAK_STS with RTC_STS (alarm) or PWRBTN_STS (anything else), as
    /// QEMU's wakeup notifier does.
    pub fn wake(&self, reason: WakeReason) {
        let mut r = self.lock();
        r.sts |= WAK_STS
            | match reason {
                WakeReason::Rtc => RTC_STS,
                WakeReason::Other => PWRBTN_STS,
            };
        self.update_sci(&mut r);
    }

    #[cfg(test)]
    pub(crate) fn armed(&self) -> Option<u64> {
        self.deadline.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::clock::ManualClock;
    use crate::devices::irq_line::RecordingIrqLine;

    #[derive(Default)]
    struct Sleeps(Mutex<Vec<SleepState>>);
    impl SleepHandler for Sleeps {
        fn sleep(&self, s: SleepState) {
            self.0.lock().unwrap().push(s);
        }
    }

    fn pm() -> (AcpiPm, Arc<ManualClock>, Arc<RecordingIrqLine>, Arc<Sleeps>) {
        let c = Arc::new(ManualClock::new(0));
        let l = Arc::new(RecordingIrqLine::default());
        let s = Arc::new(Sleeps::default());
        (AcpiPm::new(c.clone(), l.clone(), s.clone()), c, l, s)
    }

    #[test]
    fn timer_counts_at_3_579545_mhz_and_wraps_at_24_bits() {
        let (p, c, _, _) = pm();
        assert_eq!(p.timer(), 0);
        c.set(1_000_000_000);
        assert_eq!(p.timer(), 3_579_545);
        c.set(1_000_000);
        assert_eq!(p.timer(), 3579);
        // 2^24 ticks = 4.687 s: the count wraps.
        c.set(5_000_000_000);
        assert_eq!(p.timer(), ((5 * 3_579_545u64) & 0xff_ffff) as u32);
    }

    #[test]
    fn tmr_sts_sets_at_bit23_toggle_and_raises_sci_when_enabled() {
        let (p, c, l, _) = pm();
        // Due at reset, as on QEMU; writing 1 clears it and schedules the next toggle.
        assert_eq!(p.read_sts() & TMR_STS, TMR_STS);
        p.write_sts(TMR_STS);
        assert_eq!(p.read_sts() & TMR_STS, 0);
        p.write_en(TMR_STS);
        assert!(!l.level());
        let at = p.armed().expect("overflow armed while TMR_EN and !TMR_STS");
        assert_eq!(AcpiPm::ticks_at(at), 0x80_0000);
        assert_eq!(AcpiPm::ticks_at(at - 1), 0x7f_ffff);
        c.set(at - 1);
        assert_eq!(p.read_sts() & TMR_STS, 0);
        c.set(at);
        // The timer thread's callback:
        p.update_sci(&mut p.lock());
        assert!(l.level());
        assert_eq!(p.armed(), None);
        p.write_sts(TMR_STS);
        assert!(!l.level());
        assert_eq!(AcpiPm::ticks_at(p.armed().unwrap()), 0x100_0000);
    }

    #[test]
    fn sts_is_write_one_to_clear_and_sci_follows_enables() {
        let (p, _, l, _) = pm();
        p.write_sts(0xffff);
        p.wake(WakeReason::Rtc);
        assert_eq!(p.read_sts(), WAK_STS | RTC_STS);
        assert!(!l.level());
        p.write_en(RTC_STS);
        assert!(l.level());
        assert!(p.wake_enabled(WakeReason::Rtc));
        p.write_sts(WAK_STS);
        assert_eq!(p.read_sts(), RTC_STS);
        assert!(l.level());
        p.write_sts(RTC_STS);
        assert!(!l.level());
        assert_eq!(l.raised(), 1);
    }

    #[test]
    fn slp_en_enters_the_state_slp_typ_names() {
        let (p, _, _, s) = pm();
        assert_eq!(p.read_cnt(), SCI_EN);
        p.write_cnt(SCI_EN | (1 << 10)); // SLP_TYP without SLP_EN: nothing
        assert_eq!(p.read_cnt(), SCI_EN | (1 << 10));
        p.write_cnt(0x2400); // s3.c's write
        p.write_cnt(0x2000); // the power-off value
        p.write_cnt(0x2800);
        p.write_cnt(0x2000 | (5 << 10)); // unknown type
        assert_eq!(
            *s.0.lock().unwrap(),
            [SleepState::S3, SleepState::S5, SleepState::S4]
        );
        assert_eq!(p.read_cnt() & SLP_EN, 0);
    }

    #[test]
    fn vm_control_powers_off_for_s5_and_s4_only() {
        let c = VmControl::default();
        c.sleep(SleepState::S3);
        assert!(!c.stopping());
        c.sleep(SleepState::S5);
        assert_eq!(c.reason(), Some(StopReason::PowerOff));
        assert_eq!(c.reason().unwrap().exit_code(), 0);
    }
}
