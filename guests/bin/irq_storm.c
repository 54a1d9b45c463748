/* irq-storm: asks the irq-test device to fire 0xFFFFFFFF interrupts on one MSI-X vector
 * (irqfd path, or `mode=N`) and handles them in a HLT loop until the VM is stopped. For
 * teardown tests: the device thread is firing at full rate when the stop comes. */
#include "../lib/guest.h"
#include "../lib/irqt.h"

static volatile u32 handled;

static void on_irq(u32 vector) { (void)vector; handled++; }

void kmain(u32 magic, void *mbi) {
    boot_init(magic, mbi);
    struct irqt t;
    if (!irqt_open(&t)) { printf("irq-storm: no irq-test device\n"); debug_exit(1); }
    idt_set_handler(0x40, on_irq);
    msix_set(&t, 0, lapic_id(), 0x40, 0);
    msix_enable(&t, 1);
    outl(t.io + 0x18, (u32)cmdline_u64("mode=", 0));
    outl(t.io + IRQT_VECTOR, 0);
    sti();
    irqt_fire(&t, 0, 0xFFFFFFFFu);
    while (handled < 1000) __asm__ volatile("hlt" ::: "memory");
    printf("irq-storm: firing, %u handled\n", handled);
    for (;;) __asm__ volatile("hlt" ::: "memory");
}
