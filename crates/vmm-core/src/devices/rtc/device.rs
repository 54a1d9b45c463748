//! The MC146818 state machine, after QEMU's hw/rtc/mc146818rtc.c.
//!
//! Guest RTC time is `base_secs` seconds at clock time `last_update`, plus the clock
//! time since, plus a sub-second `offset` (QEMU's model). The flags of register C are
//! brought up to date lazily on every access and by a timer thread that sleeps until
//! the next moment an interrupt could newly fire (next update, alarm or periodic tick).

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::calendar::{from_reg, gmtime, hour_from_reg, hour_to_reg, mktimegm, to_reg, Tm};
use super::*;
use crate::devices::clock::Clock;
use crate::devices::deadline::{Deadline, TimerThread};
use crate::devices::irq_line::IrqLine;

const NS: i128 = 1_000_000_000;
/// UIP reads set this long before each update (8 cycles of the 32768 Hz clock; QEMU's
/// UIP_HOLD_LENGTH).
pub const UIP_HOLD_NS: i128 = 8 * NS / 32_768;
/// The RTC's base clock.
const RTC_HZ: u128 = 32_768;

pub(super) struct State {
    index: u8,
    nmi_disabled: bool,
    pub(super) cmos: [u8; 128],
    base_secs: i64,
    last_update: u64,
    offset: i64,
    /// The last guest second whose update (UF, AF) has been accounted for.
    last_sec: i64,
    /// The next periodic tick, in 32768 Hz ticks of the clock.
    next_periodic: u64,
    /// The periodic rate the schedule was computed for (ticks, 0 = off).
    period: u64,
    /// The clock time of the update the timer thread is armed for, until it has run
    /// (QEMU's pending update timer: UIP reads set from 244 us before it until then).
    update_due: Option<u64>,
}

/// Work to do after the state lock is released.
#[derive(Default)]
struct After {
    wake: bool,
}

/// The real-time clock and CMOS RAM.
pub struct Rtc {
    clock: Arc<dyn Clock>,
    irq: Arc<dyn IrqLine>,
    st: Mutex<State>,
    deadline: Arc<Deadline>,
    wake: Mutex<Option<WakeHook>>,
}

/// Called when the alarm fires with AIE set (QEMU's wakeup request for S3).
pub type WakeHook = Box<dyn Fn() + Send + Sync>;

impl Rtc {
    /// An RTC set to the clock's wall-clock time (UTC, whole seconds), 24-hour BCD, with `extra` CMOS
    /// bytes (index, value) such as [`super::cmos::machine_bytes`].
    pub fn new(clock: Arc<dyn Clock>, irq: Arc<dyn IrqLine>, extra: &[(u8, u8)]) -> Rtc {
        let now = clock.now_ns();
        let epoch = clock.epoch_ns();
        let mut cmos = [0u8; 128];
        cmos[REG_A as usize] = 0x26;
        cmos[REG_B as usize] = REG_B_24H;
        cmos[REG_D as usize] = 0x80;
        for (i, v) in extra {
            cmos[(*i & 0x7f) as usize] = *v;
        }
        let mut st = State {
            index: 0,
            nmi_disabled: false,
            cmos,
            // As QEMU's rtc_set_date_from_host: whole seconds, sub-second phase 0 at
            // start, so updates fall at whole seconds of the VM's life.
            base_secs: (epoch / 1_000_000_000) as i64,
            last_update: now,
            offset: 0,
            last_sec: 0,
            next_periodic: 0,
            period: 0,
            update_due: None,
        };
        st.last_sec = Self::guest_sec(&st, now);
        Self::update_time(&mut st, now);
        Rtc {
            clock,
            irq,
            st: Mutex::new(st),
            deadline: Arc::new(Deadline::default()),
            wake: Mutex::new(None),
        }
    }

    /// Sets the hook the alarm calls (with AIE set) to wake a suspended machine.
    pub fn set_wake_hook(&self, hook: WakeHook) {
        *self.wake.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    /// Starts the interrupt timer thread (stop it at teardown).
    pub fn start_timer(self: &Arc<Self>) -> std::io::Result<TimerThread> {
        let me: Weak<Rtc> = Arc::downgrade(self);
        TimerThread::spawn(
            "rtc-timer",
            self.clock.clone(),
            self.deadline.clone(),
            move || {
                if let Some(rtc) = me.upgrade() {
                    rtc.on_timer();
                }
            },
        )
    }

    /// Whether the guest last wrote the index port with bit 7 (NMI disable) set.
    pub fn nmi_disabled(&self) -> bool {
        self.lock().nmi_disabled
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state brought up to `now`, then reschedules the timer and runs
    /// the wake hook if the alarm asked for it.
    fn access<R>(&self, f: impl FnOnce(&mut State, u64) -> R) -> R {
        let mut after = After::default();
        let r = {
            let mut st = self.lock();
            let now = self.clock.now_ns();
            self.advance(&mut st, now, &mut after);
            let r = f(&mut st, now);
            self.advance(&mut st, now, &mut after);
            self.reschedule(&mut st, now);
            r
        };
        if after.wake {
            if let Some(h) = self.wake.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                h();
            }
        }
        r
    }

    /// The timer thread's work: the due update has run (UIP drops), flags and
    /// interrupts are brought up to date.
    fn on_timer(&self) {
        self.access(|st, now| {
            if st.update_due.is_some_and(|t| now >= t) {
                st.update_due = None;
            }
        });
    }

    fn guest_ns(st: &State, now: u64) -> i128 {
        st.base_secs as i128 * NS + (now as i128 - st.last_update as i128) + st.offset as i128
    }

    fn guest_sec(st: &State, now: u64) -> i64 {
        Self::guest_ns(st, now).div_euclid(NS) as i64
    }

    fn running(st: &State) -> bool {
        st.cmos[REG_B as usize] & REG_B_SET == 0 && st.cmos[REG_A as usize] & 0x70 <= 0x20
    }

    fn dividers_reset(st: &State) -> bool {
        st.cmos[REG_A as usize] & 0x60 == 0x60
    }

    fn binary(st: &State) -> bool {
        st.cmos[REG_B as usize] & REG_B_DM_BINARY != 0
    }

    fn h24(st: &State) -> bool {
        st.cmos[REG_B as usize] & REG_B_24H != 0
    }

    /// Writes the time of day into the time registers (QEMU's rtc_update_time).
    fn update_time(st: &mut State, now: u64) {
        let tm = gmtime(Self::guest_sec(st, now));
        let (bin, h24) = (Self::binary(st), Self::h24(st));
        let c = &mut st.cmos;
        c[SECONDS as usize] = to_reg(tm.sec, bin);
        c[MINUTES as usize] = to_reg(tm.min, bin);
        c[HOURS as usize] = hour_to_reg(tm.hour, h24, bin);
        c[DAY_OF_WEEK as usize] = to_reg(tm.wday + 1, bin);
        c[DAY_OF_MONTH as usize] = to_reg(tm.day, bin);
        c[MONTH as usize] = to_reg(tm.month, bin);
        c[YEAR as usize] = to_reg(tm.year, bin);
        c[CENTURY as usize] = to_reg(tm.year.div_euclid(100), bin);
    }

    /// Takes the time of day from the time registers (QEMU's rtc_set_time).
    fn set_time(st: &mut State, now: u64) {
        let (bin, h24) = (Self::binary(st), Self::h24(st));
        let c = &st.cmos;
        let tm = Tm {
            year: from_reg(c[YEAR as usize], bin) + from_reg(c[CENTURY as usize], bin) * 100,
            month: from_reg(c[MONTH as usize], bin),
            day: from_reg(c[DAY_OF_MONTH as usize], bin),
            hour: hour_from_reg(c[HOURS as usize], h24, bin),
            min: from_reg(c[MINUTES as usize], bin),
            sec: from_reg(c[SECONDS as usize], bin),
            wday: 0,
        };
        st.base_secs = mktimegm(&tm);
        st.last_update = now;
        st.last_sec = Self::guest_sec(st, now);
    }

    /// The alarm registers decoded: (hour, minute, second), -1 = don't care.
    fn alarm(st: &State) -> (i64, i64, i64) {
        let (bin, h24) = (Self::binary(st), Self::h24(st));
        let c = &st.cmos;
        let h = c[HOURS_ALARM as usize];
        let hour = if h & 0xc0 == 0xc0 {
            -1
        } else {
            hour_from_reg(h, h24, bin)
        };
        (
            hour,
            from_reg(c[MINUTES_ALARM as usize], bin),
            from_reg(c[SECONDS_ALARM as usize], bin),
        )
    }

    /// The first guest second in `from..=to` whose time matches the alarm.
    fn next_alarm(st: &State, from: i64, to: i64) -> Option<i64> {
        let (ah, am, asec) = Self::alarm(st);
        let mut s = from;
        // Each step jumps to the next hour, minute or matching second: ~100 steps a day.
        while s <= to {
            let tm = gmtime(s);
            if ah != -1 && ah != tm.hour {
                s += 3600 - tm.min * 60 - tm.sec;
            } else if am != -1 && am != tm.min {
                s += 60 - tm.sec;
            } else if asec != -1 && asec != tm.sec {
                s += if tm.sec < asec && asec < 60 {
                    asec - tm.sec
                } else {
                    60 - tm.sec
                };
            } else {
                return Some(s);
            }
        }
        None
    }

    /// The periodic interrupt's period in 32768 Hz ticks (0: off), as QEMU: only with
    /// PIE set; rate selects 1 and 2 mean 8 and 9.
    fn period(st: &State) -> u64 {
        if st.cmos[REG_B as usize] & REG_B_PIE == 0 {
            return 0;
        }
        match st.cmos[REG_A as usize] & 0x0f {
            0 => 0,
            c @ 1..=2 => 1 << (c + 7 - 1),
            c => 1 << (c - 1),
        }
    }

    fn ticks(now: u64) -> u64 {
        (now as u128 * RTC_HZ / NS as u128) as u64
    }

    /// Brings register C up to `now`: update-ended and alarm at each second boundary
    /// passed, the periodic flag at each periodic tick; raises the interrupt for newly
    /// set, enabled flags.
    fn advance(&self, st: &mut State, now: u64, after: &mut After) {
        let mut irqs = 0u8;
        if !Self::dividers_reset(st) {
            let sec = Self::guest_sec(st, now);
            if sec > st.last_sec {
                irqs |= REG_C_UF;
                let from = (st.last_sec + 1).max(sec - 86_399);
                if Self::running(st) && Self::next_alarm(st, from, sec).is_some() {
                    irqs |= REG_C_AF;
                }
                st.last_sec = sec;
            }
        }
        let period = Self::period(st);
        if period != st.period {
            st.period = period;
            st.next_periodic = (Self::ticks(now) & !(period.max(1) - 1)) + period;
        }
        if period != 0 && Self::ticks(now) >= st.next_periodic {
            irqs |= REG_C_PF;
            st.next_periodic = (Self::ticks(now) & !(period - 1)) + period;
        }
        let b = st.cmos[REG_B as usize];
        let c = &mut st.cmos[REG_C as usize];
        let new = irqs & !*c;
        *c |= irqs;
        if irqs & REG_C_AF != 0 && b & REG_B_AIE != 0 {
            after.wake = true;
        }
        if new & (REG_C_UF | REG_C_AF) & b != 0 {
            *c |= REG_C_IRQF;
            self.irq.pulse();
        }
        if irqs & REG_C_PF != 0 && b & REG_B_PIE != 0 {
            *c |= REG_C_IRQF;
            self.irq.set_level(true);
        }
    }

    /// Arms the timer for the next moment an enabled interrupt could newly fire.
    fn reschedule(&self, st: &mut State, now: u64) {
        let b = st.cmos[REG_B as usize];
        let c = st.cmos[REG_C as usize];
        let mut next: Option<u64> = None;
        let mut at = |t: u64| next = Some(next.map_or(t, |n| n.min(t)));
        if Self::dividers_reset(st) {
            st.update_due = None;
        } else {
            let g = Self::guest_ns(st, now);
            let boundary = now + (NS - g.rem_euclid(NS)) as u64;
            // As QEMU's check_update_timer: the update timer runs while UF is clear (so
            // UF and UIE interrupts happen) and, once UIP may read set for an update, until
            // that update has run.
            match st.update_due {
                Some(t) if now + UIP_HOLD_NS as u64 >= t => at(t),
                _ if c & REG_C_UF == 0 => {
                    st.update_due = Some(boundary);
                    at(boundary);
                }
                _ => st.update_due = None,
            }
            if b & REG_B_AIE != 0 && c & REG_C_AF == 0 && Self::running(st) {
                let sec = Self::guest_sec(st, now);
                if let Some(s) = Self::next_alarm(st, sec + 1, sec + 86_400) {
                    at(boundary + (s - sec - 1) as u64 * NS as u64);
                }
            }
        }
        if st.period != 0 {
            let ns = (st.next_periodic as u128 * NS as u128).div_ceil(RTC_HZ) as u64;
            at(ns);
        }
        self.deadline.set(next);
    }

    /// A read of CMOS register `index` (the data port).
    fn read_reg(&self, st: &mut State, now: u64) -> u8 {
        if st.index == IBM_PS2_CENTURY {
            st.index = CENTURY;
        }
        let i = st.index;
        match i {
            SECONDS | MINUTES | HOURS | DAY_OF_WEEK | DAY_OF_MONTH | MONTH | YEAR | CENTURY => {
                if Self::running(st) {
                    Self::update_time(st, now);
                }
                st.cmos[i as usize]
            }
            REG_A => {
                // UIP: the 244 us before each update, and after it until the pending
                // update has run, as QEMU's update_in_progress.
                let due = st.update_due.is_some_and(|t| now + UIP_HOLD_NS as u64 >= t);
                let uip = Self::running(st)
                    && (due || Self::guest_ns(st, now).rem_euclid(NS) >= NS - UIP_HOLD_NS);
                st.cmos[REG_A as usize] | if uip { REG_A_UIP } else { 0 }
            }
            REG_C => {
                let v = st.cmos[REG_C as usize];
                st.cmos[REG_C as usize] = 0;
                self.irq.set_level(false);
                v
            }
            _ => st.cmos[i as usize],
        }
    }

    /// A write of CMOS register `index`.
    fn write_reg(&self, st: &mut State, now: u64, data: u8) {
        if st.index == IBM_PS2_CENTURY {
            st.index = CENTURY;
        }
        let i = st.index;
        match i {
            SECONDS | MINUTES | HOURS | DAY_OF_WEEK | DAY_OF_MONTH | MONTH | YEAR | CENTURY => {
                st.cmos[i as usize] = data;
                if Self::running(st) {
                    Self::set_time(st, now);
                }
            }
            REG_A => {
                let a = st.cmos[REG_A as usize];
                if data & 0x60 == 0x60 {
                    if Self::running(st) {
                        Self::update_time(st, now);
                    }
                } else if a & 0x60 == 0x60 && data & 0x70 <= 0x20 {
                    // Leaving divider reset: the first update comes half a second later.
                    if st.cmos[REG_B as usize] & REG_B_SET == 0 {
                        st.offset = 500_000_000;
                        Self::set_time(st, now);
                    }
                }
                st.cmos[REG_A as usize] = data & !REG_A_UIP;
            }
            REG_B => self.write_b(st, now, data),
            REG_C | REG_D => {} // read-only
            _ => st.cmos[i as usize] = data,
        }
    }

    fn write_b(&self, st: &mut State, now: u64, mut data: u8) {
        let b = st.cmos[REG_B as usize];
        if data & REG_B_SET != 0 {
            if Self::running(st) {
                Self::update_time(st, now);
            }
            data &= !REG_B_UIE; // setting SET clears UIE
        } else if b & REG_B_SET != 0 && st.cmos[REG_A as usize] & 0x70 <= 0x20 {
            // Leaving set mode: the registers become the time, the phase is kept.
            st.offset = Self::guest_ns(st, now).rem_euclid(NS) as i64;
            Self::set_time(st, now);
        }
        // A flag already set when its interrupt becomes enabled interrupts at once.
        let c = &mut st.cmos[REG_C as usize];
        if data & *c & (REG_C_PF | REG_C_AF | REG_C_UF) != 0 {
            *c |= REG_C_IRQF;
            self.irq.set_level(true);
        } else {
            *c &= !REG_C_IRQF;
            self.irq.set_level(false);
        }
        st.cmos[REG_B as usize] = data;
    }

    /// A read of port 0x70 + `port` (0 index, 1 data). The index port reads 0xFF.
    pub fn read_port(&self, port: u64) -> u8 {
        if port == 0 {
            return 0xff;
        }
        self.access(|st, now| self.read_reg(st, now))
    }

    /// A write of port 0x70 + `port`: the index (bit 7 = NMI disable) or data.
    pub fn write_port(&self, port: u64, data: u8) {
        if port == 0 {
            let mut st = self.lock();
            st.index = data & 0x7f;
            st.nmi_disabled = data & 0x80 != 0;
            return;
        }
        self.access(|st, now| self.write_reg(st, now, data))
    }

    /// The machine is entering S3: the shutdown status byte says "resume" (0xFE), as
    /// QEMU's suspend notifier writes it.
    pub fn notify_suspend(&self) {
        self.lock().cmos[SHUTDOWN_STATUS as usize] = 0xfe;
    }

    /// The device reset a resuming machine goes through (QEMU's rtc_resetdev): periodic,
    /// alarm and square-wave enables and the interrupt flags clear, the line low; the
    /// time and CMOS RAM stay.
    pub fn reset(&self) {
        self.access(|st, _| {
            st.cmos[REG_B as usize] &= !(REG_B_PIE | REG_B_AIE | REG_B_SQWE);
            st.cmos[REG_C as usize] &= !(REG_C_UF | REG_C_IRQF | REG_C_PF | REG_C_AF);
            self.irq.set_level(false);
        });
    }

    #[cfg(test)]
    pub(super) fn armed(&self) -> Option<u64> {
        self.deadline.get()
    }

    #[cfg(test)]
    pub(super) fn cmos_byte(&self, i: u8) -> u8 {
        self.lock().cmos[i as usize]
    }

    /// Runs the timer callback by hand (tests with a manual clock).
    #[cfg(test)]
    pub(super) fn fire(&self) {
        self.on_timer();
    }
}
