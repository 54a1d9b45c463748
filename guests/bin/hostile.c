/* hostile: a guest that abuses the VMM; the case is named on the command line.
 *  irq-storm  asks the irq-test device, in the userspace-injection mode, for two times
 *             0xFFFFFFFF interrupts at an unmasked vector, prints PENDING in full
 *             ("hostile: storm armed, pending 0x..."), then spins with interrupts on
 *             until the VMM stops it.
 * Without a case it exits with code 0. */
#include "../lib/guest.h"
#include "../lib/irqt.h"

static void irq_storm(void) {
    struct irqt t;
    if (!irqt_open(&t)) { printf("hostile: no irq-test device\n"); debug_exit(1); }
    msix_set(&t, 0, lapic_id(), 0x40, 0);
    msix_enable(&t, 1);
    outl(t.io + IRQT_MODE, 2);
    irqt_fire(&t, 0, 0xFFFFFFFFu);
    irqt_fire(&t, 0, 0xFFFFFFFFu);
    u32 lo = inl(t.io + IRQT_PENDING);
    u32 hi = inl(t.io + IRQT_PENDING_HI);
    printf("hostile: storm armed, pending 0x%x%08x\n", hi, lo);
    sti();
    for (;;) cpu_relax();
}

void kmain(u32 magic, void *mbi) {
    boot_init(magic, mbi);
    if (cmdline_has("irq-storm")) irq_storm();
    debug_exit(0);
}
