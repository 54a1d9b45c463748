/* The MC146818 RTC/CMOS at ports 0x70/0x71, from the guest's side. */
#ifndef GUEST_RTC_H
#define GUEST_RTC_H
#include "guest.h"

#define RTC_SECONDS 0x00
#define RTC_SECONDS_ALARM 0x01
#define RTC_MINUTES 0x02
#define RTC_MINUTES_ALARM 0x03
#define RTC_HOURS 0x04
#define RTC_HOURS_ALARM 0x05
#define RTC_DAY 0x07
#define RTC_MONTH 0x08
#define RTC_YEAR 0x09
#define RTC_REG_A 0x0A
#define RTC_REG_B 0x0B
#define RTC_REG_C 0x0C
#define RTC_CENTURY 0x32
#define RTC_A_UIP 0x80
#define RTC_B_SET 0x80
#define RTC_B_PIE 0x40
#define RTC_B_AIE 0x20
#define RTC_B_UIE 0x10
#define RTC_B_BINARY 0x04
#define RTC_B_24H 0x02
#define RTC_C_IRQF 0x80
#define RTC_C_PF 0x40
#define RTC_C_AF 0x20
#define RTC_C_UF 0x10
#define RTC_ALARM_DONT_CARE 0xC0

static inline u8 rtc_in(u8 reg) { outb(0x70, reg); return inb(0x71); }
static inline void rtc_out(u8 reg, u8 v) { outb(0x70, reg); outb(0x71, v); }
/* Waits (at most `us`) for UIP to read `level`; returns 0 on timeout. The loop only
 * reads the port and the TSC, so it samples faster than the 244 us UIP window even where
 * guest instructions are slow. */
static inline int rtc_wait_uip_tsc(int level, u64 tsc_ticks) {
    u64 end = rdtsc() + tsc_ticks;
    while (!!(rtc_in(RTC_REG_A) & RTC_A_UIP) != level)
        if (rdtsc() > end) return 0;
    return 1;
}
/* TSC ticks in `us` microseconds (a 64-bit division: slow in emulated guests, so
 * compute it before time-critical loops). */
static inline u64 tsc_ticks_us(u64 us) { return udiv64(us * tsc_khz(), 1000, NULL); }
static inline int rtc_wait_uip(int level, u64 us) { return rtc_wait_uip_tsc(level, tsc_ticks_us(us)); }

/* I/O APIC pin `pin` -> `vector` on APIC `dest`, edge-triggered, active-high. */
static inline void ioapic_route(u32 pin, u8 vector, u32 dest) {
    volatile u32 *sel = (volatile u32 *)0xFEC00000u, *win = (volatile u32 *)0xFEC00010u;
    *sel = 0x11 + 2 * pin;
    *win = dest << 24;
    *sel = 0x10 + 2 * pin;
    *win = vector;
}
static inline void ioapic_mask(u32 pin) {
    volatile u32 *sel = (volatile u32 *)0xFEC00000u, *win = (volatile u32 *)0xFEC00010u;
    *sel = 0x10 + 2 * pin;
    *win = 1u << 16;
}
#endif
