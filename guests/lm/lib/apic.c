#include "lm.h"

#define MSR_APIC_BASE 0x1B
#define MSR_X2APIC 0x800

/* This CPU's mode, from its own APIC base MSR (bit 10: x2APIC). */
int x2apic_on(void) { return (rdmsr(MSR_APIC_BASE) >> 10) & 1; }

u32 apic_read(u32 reg) {
    return x2apic_on() ? (u32)rdmsr(MSR_X2APIC + (reg >> 4)) : mmio_read32(APIC_BASE + reg);
}

void apic_write(u32 reg, u32 v) {
    if (x2apic_on()) wrmsr(MSR_X2APIC + (reg >> 4), v);
    else mmio_write32(APIC_BASE + reg, v);
}

/* Sends an IPI: `low` is the ICR's low word, `dest` the destination APIC ID. */
void apic_icr(u32 dest, u32 low) {
    if (x2apic_on()) {
        wrmsr(MSR_X2APIC + (APIC_ICR >> 4), (u64)dest << 32 | low);
        return;
    }
    mmio_write32(APIC_BASE + APIC_ICR2, dest << 24);
    mmio_write32(APIC_BASE + APIC_ICR, low);
    while (mmio_read32(APIC_BASE + APIC_ICR) & (1u << 12)) pause();
}

u32 apic_id(void) { return x2apic_on() ? apic_read(APIC_ID) : apic_read(APIC_ID) >> 24; }

void apic_eoi(void) { apic_write(APIC_EOI, 0); }

int x2apic_supported(void) {
    u32 a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    return (c >> 21) & 1;
}

/* This CPU only; x2APIC mode needs the xAPIC enable bit set too. */
void x2apic_enable(void) {
    wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | (1u << 11) | (1u << 10));
}
