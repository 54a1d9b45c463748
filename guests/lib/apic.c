#include "guest.h"

#define REG(off) (LAPIC_BASE + (off))

void lapic_enable(void) {
    mmio_write32(REG(0xF0), 0x1FF); /* software enable, spurious vector 0xFF */
    mmio_write32(REG(0x80), 0);     /* TPR: accept everything */
}
u32 lapic_id(void) { return mmio_read32(REG(0x20)) >> 24; }
void lapic_eoi(void) { mmio_write32(REG(0xB0), 0); }
void lapic_ipi(u32 dest, u32 icr_low) {
    mmio_write32(REG(0x310), dest << 24);
    mmio_write32(REG(0x300), icr_low);
    while (mmio_read32(REG(0x300)) & (1u << 12)) cpu_relax();
}
