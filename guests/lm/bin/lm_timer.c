/* lm-timer: the local APIC timer in TSC-deadline mode (kvm-unit-tests' vmexit
 * tscdeadline and tscdeadline_immed), the one-shot timer, and x2APIC mode: the switch,
 * a self-IPI through the ICR and through the SELF IPI register, and the deadline timer
 * again with the APIC driven through MSRs. */
#include "../lib/lm.h"

#define TIMER_VEC 0xEE
#define IPI_VEC 0x60
#define MSR_TSC_DEADLINE 0x6E0

static volatile u32 fired, ipis;
static void on_timer(struct frame *f) { fired++; apic_eoi(); }
static void on_ipi(struct frame *f) { ipis++; apic_eoi(); }

/* Waits with interrupts on for `count` to move; gives up after about 2 s. */
static int wait_for(volatile u32 *count, u32 before) {
    for (u32 ms = 0; *count == before && ms < 2000; ms++) {
        sti();
        pm_delay_us(1000);
        cli();
    }
    return *count != before;
}

static void deadline_tests(const char *mode) {
    apic_write(APIC_LVTT, TIMER_VEC | (2u << 17));
    u32 f0 = fired;
    wrmsr(MSR_TSC_DEADLINE, rdtsc() + 2000000);
    int ok = wait_for(&fired, f0);
    report(ok && fired == f0 + 1, "%s: TSC deadline in the future fires once", mode);
    report(rdmsr(MSR_TSC_DEADLINE) == 0, "%s: the deadline MSR reads 0 after it fired", mode);
    f0 = fired;
    u64 t = rdtsc();
    wrmsr(MSR_TSC_DEADLINE, t);
    ok = wait_for(&fired, f0);
    printf("info: %s: an expired deadline fired after %lu cycles\n", mode, rdtsc() - t);
    report(ok && fired == f0 + 1, "%s: TSC deadline already passed fires", mode);
    f0 = fired;
    wrmsr(MSR_TSC_DEADLINE, rdtsc() + 1000000000000ul);
    wrmsr(MSR_TSC_DEADLINE, 0);
    sti();
    pm_delay_us(20000);
    cli();
    report(fired == f0, "%s: writing 0 disarms the deadline", mode);
}

int main(int argc, char **argv, char **envp) {
    u32 a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    printf("lm-timer: TSC deadline %s, x2APIC %s\n", (c >> 24) & 1 ? "yes" : "no",
           x2apic_supported() ? "yes" : "no");
    set_handler(TIMER_VEC, on_timer);
    set_handler(IPI_VEC, on_ipi);

    apic_write(APIC_TDCR, 0xB); /* divide by 1 */
    apic_write(APIC_LVTT, TIMER_VEC);
    u32 f0 = fired;
    apic_write(APIC_TMICT, 100000);
    report(wait_for(&fired, f0), "one-shot APIC timer fires");
    apic_write(APIC_TMICT, 0);

    if ((c >> 24) & 1) deadline_tests("xAPIC");
    else printf("TSC deadline not supported\n");

    if (!x2apic_supported()) {
        printf("x2APIC not supported\n");
        return report_summary();
    }
    x2apic_enable();
    report(x2apic_on() && (rdmsr(0x1B) & 0xC00) == 0xC00, "x2APIC enabled (APIC base MSR bits 10, 11)");
    report(apic_id() == cpu_apic_ids[0], "x2APIC ID %u is the xAPIC ID", apic_id());
    u32 i0 = ipis;
    apic_icr(0, 0x44000 | IPI_VEC); /* fixed, assert, self */
    report(wait_for(&ipis, i0) && ipis == i0 + 1, "x2APIC: self-IPI through the ICR");
    i0 = ipis;
    wrmsr(0x83F, IPI_VEC); /* SELF IPI */
    report(wait_for(&ipis, i0) && ipis == i0 + 1, "x2APIC: self-IPI through SELF IPI");
    if ((c >> 24) & 1) deadline_tests("x2APIC");
    return report_summary();
}
