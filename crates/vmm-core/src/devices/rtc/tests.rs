//! RTC unit tests on a manual clock (and one on the host clock for the timer thread).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::bus::BusDevice;
use crate::devices::clock::{Clock, HostClock, ManualClock};
use crate::devices::irq_line::RecordingIrqLine;

/// 2026-11-30 04:39:56 UTC, a Monday. The RTC drops the sub-second part of the host
/// time it starts from (as QEMU), so its updates fall at whole seconds of the clock.
const T0: u64 = 1_796_013_596;
const S: u64 = 1_000_000_000;

fn rtc(frac_ns: u64) -> (Arc<Rtc>, Arc<ManualClock>, Arc<RecordingIrqLine>) {
    let c = Arc::new(ManualClock::new(T0 * S + frac_ns));
    let l = Arc::new(RecordingIrqLine::default());
    let r = Arc::new(Rtc::new(
        c.clone(),
        l.clone(),
        &cmos::machine_bytes(128 << 20, 2),
    ));
    (r, c, l)
}

fn rd(r: &Rtc, i: u8) -> u8 {
    r.write_port(0, i);
    r.read_port(1)
}

fn wr(r: &Rtc, i: u8, v: u8) {
    r.write_port(0, i);
    r.write_port(1, v);
}

#[test]
fn time_of_day_in_bcd_binary_and_12_hour() {
    let (r, c, _) = rtc(250_000_000);
    let regs = [
        SECONDS,
        MINUTES,
        HOURS,
        DAY_OF_WEEK,
        DAY_OF_MONTH,
        MONTH,
        YEAR,
        CENTURY,
    ];
    let got: Vec<u8> = regs.iter().map(|i| rd(&r, *i)).collect();
    assert_eq!(got, [0x56, 0x39, 0x04, 2, 0x30, 0x11, 0x26, 0x20]);
    assert_eq!(rd(&r, IBM_PS2_CENTURY), 0x20);
    assert_eq!(rd(&r, REG_A), 0x26);
    assert_eq!(rd(&r, REG_B), REG_B_24H);
    assert_eq!(rd(&r, REG_D), 0x80);
    wr(&r, REG_B, REG_B_24H | REG_B_DM_BINARY);
    assert_eq!(rd(&r, SECONDS), 56);
    assert_eq!(rd(&r, DAY_OF_MONTH), 30);
    wr(&r, REG_B, 0); // BCD, 12-hour
    assert_eq!(rd(&r, HOURS), 0x04);
    c.advance(8 * 3600 * S);
    assert_eq!(rd(&r, HOURS), 0x80 | 0x12); // 12 PM
    c.advance(3600 * S);
    assert_eq!(rd(&r, HOURS), 0x81);
    // Time runs: 4 s later (the clock moved 9 h 4 s).
    c.advance(4 * S);
    assert_eq!(rd(&r, SECONDS), 0x00);
    assert_eq!(rd(&r, MINUTES), 0x40);
}

#[test]
fn uip_reads_set_in_the_244us_before_each_update() {
    let (r, c, _) = rtc(0);
    let edge = S - UIP_HOLD_NS as u64;
    c.set(edge - 1);
    assert_eq!(rd(&r, REG_A) & REG_A_UIP, 0);
    assert_eq!(rd(&r, SECONDS), 0x56);
    c.set(edge);
    assert_eq!(rd(&r, REG_A) & REG_A_UIP, REG_A_UIP);
    c.set(S - 1);
    assert_eq!(rd(&r, REG_A), 0x26 | REG_A_UIP);
    assert_eq!(rd(&r, SECONDS), 0x56, "old second until the update");
    // Past the boundary UIP stays set until the update has run (QEMU's pending update
    // timer), which the timer thread does.
    c.set(S + 3_000_000);
    assert_eq!(rd(&r, REG_A) & REG_A_UIP, REG_A_UIP);
    assert_eq!(r.armed(), Some(S));
    r.fire();
    assert_eq!(rd(&r, REG_A) & REG_A_UIP, 0);
    assert_eq!(rd(&r, SECONDS), 0x57);
    // With UF set (C not read) no update is pending: just the 244 us window.
    c.set(2 * S + 3_000_000);
    assert_eq!(rd(&r, REG_A) & REG_A_UIP, 0);
    assert_eq!(r.armed(), None);
    // No updates while SET: no UIP either.
    wr(&r, REG_B, REG_B_24H | REG_B_SET);
    c.set(2 * S + edge);
    assert_eq!(rd(&r, REG_A) & REG_A_UIP, 0);
    // Writing register A cannot set UIP.
    wr(&r, REG_A, 0xa6);
    assert_eq!(rd(&r, REG_A), 0x26);
}

#[test]
fn alarm_fires_on_irq8_sets_af_and_reg_c_read_clears() {
    let (r, c, l) = rtc(400_000_000);
    let woke = Arc::new(AtomicU32::new(0));
    let w = woke.clone();
    r.set_wake_hook(Box::new(move || {
        w.fetch_add(1, Ordering::SeqCst);
    }));
    // As s3.c: clear C, alarm on every second ("don't care" everywhere), AIE.
    rd(&r, REG_C);
    for a in [SECONDS_ALARM, MINUTES_ALARM, HOURS_ALARM] {
        wr(&r, a, 0xc0);
    }
    wr(&r, REG_B, rd(&r, REG_B) | REG_B_AIE);
    assert_eq!(r.armed(), Some(S), "next update at the second boundary");
    c.set(S);
    r.fire();
    assert_eq!(l.raised(), 1);
    assert_eq!(woke.load(Ordering::SeqCst), 1);
    assert_eq!(r.cmos_byte(REG_C), REG_C_IRQF | REG_C_AF | REG_C_UF);
    assert_eq!(rd(&r, REG_C), REG_C_IRQF | REG_C_AF | REG_C_UF);
    assert_eq!(rd(&r, REG_C), 0);
    assert!(!l.level());

    // A specific alarm three seconds on (04:39:57 now in BCD; alarm at 04:40:00). While
    // UF is clear the update timer runs each second; once UF is set it targets the alarm.
    wr(&r, SECONDS_ALARM, 0x00);
    wr(&r, MINUTES_ALARM, 0x40);
    wr(&r, HOURS_ALARM, 0x04);
    assert_eq!(r.armed(), Some(S + S));
    c.set(S + S);
    r.fire();
    assert_eq!(r.cmos_byte(REG_C), REG_C_UF, "updates, no alarm yet");
    assert_eq!(r.armed(), Some(S + 3 * S));
    c.set(S + 3 * S);
    r.fire();
    assert_eq!(rd(&r, REG_C), REG_C_IRQF | REG_C_AF | REG_C_UF);
    assert_eq!(l.raised(), 2);
    // Alarm hours in 12-hour mode carry the PM bit.
    wr(&r, REG_B, REG_B_AIE);
    wr(&r, HOURS_ALARM, 0x84);
    c.set(S + 3 * S + 12 * 3600 * S);
    r.fire();
    assert_eq!(rd(&r, REG_C) & REG_C_AF, REG_C_AF);
}

#[test]
fn update_ended_interrupt_and_enable_with_flag_pending() {
    let (r, c, l) = rtc(0);
    c.set(5 * S + 1);
    // UF is set by updates whether or not UIE is; enabling UIE with UF pending
    // interrupts at once.
    assert_eq!(r.cmos_byte(REG_C), 0);
    assert_eq!(rd(&r, SECONDS), 0x01);
    assert_eq!(r.cmos_byte(REG_C), REG_C_UF);
    assert!(!l.level());
    wr(&r, REG_B, REG_B_24H | REG_B_UIE);
    assert!(l.level());
    assert_eq!(rd(&r, REG_C), REG_C_IRQF | REG_C_UF);
    assert!(!l.level());
    assert_eq!(r.armed(), Some(6 * S));
    c.set(6 * S);
    r.fire();
    assert_eq!(l.raised(), 2);
    // SET clears UIE.
    wr(&r, REG_B, REG_B_24H | REG_B_UIE | REG_B_SET);
    assert_eq!(rd(&r, REG_B), REG_B_24H | REG_B_SET);
}

#[test]
fn periodic_rate_follows_register_a() {
    let (r, c, l) = rtc(0);
    // Rate 15: 2 Hz (16384 ticks of 32768 Hz).
    wr(&r, REG_A, 0x2f);
    wr(&r, REG_B, REG_B_24H | REG_B_PIE);
    assert_eq!(r.armed(), Some(S / 2));
    c.set(S / 2);
    r.fire();
    assert!(l.level());
    assert_eq!(rd(&r, REG_C), REG_C_IRQF | REG_C_PF);
    assert!(!l.level());
    assert_eq!(r.armed(), Some(S));
    // Rate 6 (the reset value): 1024 Hz; rates 1 and 2 mean 8 and 9 (256 and 128 Hz).
    for (rs, hz) in [(6u8, 1024u64), (3, 8192), (1, 256), (2, 128)] {
        wr(&r, REG_A, 0x20 | rs);
        let now = c.now_ns();
        let next = r.armed().unwrap();
        assert!(next > now && next - now <= S / hz + 1, "rate {rs}");
    }
    // Without PIE there is no periodic timer (as QEMU) and no PF.
    wr(&r, REG_B, REG_B_24H);
    assert_eq!(r.armed(), Some(S), "only the update timer (UF is clear)");
    c.advance(S / 3);
    assert_eq!(rd(&r, REG_C) & REG_C_PF, 0);
}

#[test]
fn set_mode_freezes_and_takes_the_written_time() {
    let (r, c, _) = rtc(0);
    wr(&r, REG_B, REG_B_24H | REG_B_SET);
    c.advance(10 * S);
    assert_eq!(rd(&r, SECONDS), 0x56, "frozen while SET");
    for (i, v) in [
        (SECONDS, 0x58),
        (MINUTES, 0x59),
        (HOURS, 0x23),
        (DAY_OF_MONTH, 0x31),
    ] {
        wr(&r, i, v);
    }
    wr(&r, MONTH, 0x12);
    wr(&r, YEAR, 0x99);
    wr(&r, CENTURY, 0x19);
    wr(&r, REG_B, REG_B_24H);
    c.advance(2 * S);
    let t: Vec<u8> = [SECONDS, MINUTES, HOURS, DAY_OF_MONTH, MONTH, YEAR, CENTURY]
        .iter()
        .map(|i| rd(&r, *i))
        .collect();
    assert_eq!(t, [0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x20]); // Y2K
    assert_eq!(rd(&r, DAY_OF_WEEK), 7); // 2000-01-01 was a Saturday
                                        // Garbage in the time registers gives some time, not a panic.
    wr(&r, MONTH, 0xff);
    wr(&r, DAY_OF_MONTH, 0x00);
    rd(&r, SECONDS);
}

#[test]
fn index_port_nmi_bit_and_cmos_ram() {
    let (r, _, _) = rtc(0);
    let p = RtcPort(r.clone());
    p.write(0, &[0x80 | 0x15]);
    assert!(r.nmi_disabled());
    let mut d = [0u8; 1];
    p.read(1, &mut d);
    assert_eq!(d, [0x80], "640 KiB base memory, low byte");
    p.write(0, &[0x16]);
    assert!(!r.nmi_disabled());
    p.read(1, &mut d);
    assert_eq!(d, [0x02]);
    p.read(0, &mut d);
    assert_eq!(d, [0xff]);
    assert_eq!(rd(&r, 0x5f), 1);
    wr(&r, 0x7f, 0xa5);
    assert_eq!(rd(&r, 0x7f), 0xa5);
    wr(&r, REG_D, 0);
    wr(&r, REG_C, 0xff);
    assert_eq!(rd(&r, REG_D), 0x80);
    assert_eq!(rd(&r, REG_C), 0);
    r.notify_suspend();
    assert_eq!(rd(&r, SHUTDOWN_STATUS), 0xfe);
}

#[test]
fn timer_thread_raises_the_periodic_interrupt_without_accesses() {
    let clock = Arc::new(HostClock::default());
    let l = Arc::new(RecordingIrqLine::default());
    let r = Arc::new(Rtc::new(clock, l.clone(), &[]));
    let mut t = r.start_timer().unwrap();
    wr(&r, REG_A, 0x26);
    wr(&r, REG_B, REG_B_24H | REG_B_PIE); // 1024 Hz
    let start = Instant::now();
    while !l.level() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "no periodic interrupt"
        );
        std::thread::yield_now();
    }
    assert_eq!(rd(&r, REG_C) & REG_C_PF, REG_C_PF);
    let s = Instant::now();
    t.stop();
    assert!(s.elapsed() < Duration::from_secs(1));
}
