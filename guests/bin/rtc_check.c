/* rtc-check: reads the time of day, watches the update-in-progress edge, takes the
 * alarm interrupt on IRQ 8 through the I/O APIC (register C says AF), then counts
 * periodic interrupts at 64 Hz. Exits 0 (debug-exit code 1) when everything holds. */
#include "../lib/rtc.h"

#define RTC_VECTOR 0x48

static u32 failures;
static volatile u32 irqs;
static volatile u8 last_c;

static void check(int ok, const char *what) {
    printf("rtc-check: %s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) failures++;
}

static void rtc_irq(u32 vector) {
    last_c = rtc_in(RTC_REG_C); /* reading C acknowledges and lowers IRQ 8 */
    irqs++;
}

static u32 bcd(u8 v) { return (rtc_in(RTC_REG_B) & RTC_B_BINARY) ? v : (v >> 4) * 10 + (v & 15); }

void kmain(u32 magic, void *mbi) {
    boot_init(magic, mbi);
    idt_set_handler(RTC_VECTOR, rtc_irq);
    /* No firmware set up the 8259s: mask them (and LINT0) so IRQ 8 arrives only through
     * the I/O APIC. */
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    mmio_write32(LAPIC_BASE + 0x350, 1u << 16);
    rtc_in(RTC_REG_C);
    ioapic_route(8, RTC_VECTOR, lapic_id());

    /* A coherent read: between updates. */
    check(rtc_wait_uip(0, 2000000), "UIP clears");
    u32 s = bcd(rtc_in(RTC_SECONDS)), m = bcd(rtc_in(RTC_MINUTES)), h = bcd(rtc_in(RTC_HOURS));
    u32 d = bcd(rtc_in(RTC_DAY)), mo = bcd(rtc_in(RTC_MONTH)), y = bcd(rtc_in(RTC_YEAR));
    u32 c = bcd(rtc_in(RTC_CENTURY));
    printf("rtc-check: time %u%02u-%02u-%02u %02u:%02u:%02u, A %x B %x\n", c, y, mo, d, h, m, s,
           rtc_in(RTC_REG_A), rtc_in(RTC_REG_B));
    check(c >= 20 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 24 && m < 60 && s < 60,
          "time of day is a valid date");

    /* The update cycle: UIP rises, then falls with the new second in the registers. */
    u32 before = bcd(rtc_in(RTC_SECONDS));
    check(rtc_wait_uip(1, 1100000), "UIP rises within a second");
    u64 t0 = now_us();
    check(rtc_wait_uip(0, 10000), "UIP falls within 10 ms");
    u32 uip_us = (u32)(now_us() - t0);
    u32 after = bcd(rtc_in(RTC_SECONDS));
    printf("rtc-check: UIP edge: second %u -> %u, UIP fell %u us after it was seen\n", before,
           after, uip_us);
    /* Where port accesses are slow (QEMU here: ~1 ms each) the poll can miss a 244 us
     * window and catch the next one, so one or two seconds may have passed. */
    u32 step = (after + 60 - before) % 60;
    check(step == 1 || step == 2, "seconds advance at the UIP edge");

    /* Alarm two seconds on, any hour and minute; AIE. */
    rtc_in(RTC_REG_C);
    u32 now_s = bcd(rtc_in(RTC_SECONDS));
    u8 alarm = (u8)((now_s + 2) % 60);
    if (!(rtc_in(RTC_REG_B) & RTC_B_BINARY)) alarm = (u8)(((alarm / 10) << 4) | (alarm % 10));
    rtc_out(RTC_SECONDS_ALARM, alarm);
    rtc_out(RTC_MINUTES_ALARM, RTC_ALARM_DONT_CARE);
    rtc_out(RTC_HOURS_ALARM, RTC_ALARM_DONT_CARE);
    irqs = 0;
    t0 = now_us();
    rtc_out(RTC_REG_B, rtc_in(RTC_REG_B) | RTC_B_AIE);
    sti();
    while (!irqs && now_us() - t0 < 4000000) cpu_relax();
    cli();
    u32 alarm_ms = (u32)udiv64(now_us() - t0, 1000, NULL);
    printf("rtc-check: alarm: %u interrupts after %u ms, C was %x\n", irqs, alarm_ms, last_c);
    check(irqs >= 1 && (last_c & (RTC_C_IRQF | RTC_C_AF)) == (RTC_C_IRQF | RTC_C_AF),
          "alarm interrupt on IRQ 8 with AF");
    check(alarm_ms >= 900 && alarm_ms <= 2500, "alarm fires 1-2 s after being set");
    rtc_out(RTC_REG_B, rtc_in(RTC_REG_B) & ~RTC_B_AIE);
    rtc_in(RTC_REG_C);

    /* Periodic interrupts at 64 Hz (rate select 10) for half a second. */
    rtc_out(RTC_REG_A, (rtc_in(RTC_REG_A) & 0xF0) | 10);
    irqs = 0;
    rtc_out(RTC_REG_B, rtc_in(RTC_REG_B) | RTC_B_PIE);
    t0 = now_us();
    sti();
    while (now_us() - t0 < 500000) cpu_relax();
    cli();
    rtc_out(RTC_REG_B, rtc_in(RTC_REG_B) & ~RTC_B_PIE);
    rtc_in(RTC_REG_C);
    printf("rtc-check: periodic: %u interrupts in 500 ms at 64 Hz, C was %x\n", irqs, last_c);
    check(irqs >= 24 && irqs <= 40, "periodic rate from register A (32 +- 25%)");
    check(last_c & RTC_C_PF, "PF set");
    ioapic_mask(8);
    printf("rtc-check: %s (%u failures)\n", failures ? "FAILED" : "all ok", failures);
    debug_exit(failures ? 1 : 0);
}
