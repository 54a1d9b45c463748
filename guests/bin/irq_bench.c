/* irq-bench: trigger-to-handler latency of the irq-test device's three delivery paths,
 * interleaved round by round (mode 0 irqfd, 1 KVM_SIGNAL_MSI from the device thread,
 * 2 the userspace exit path: the vCPU is kicked out of KVM_RUN and its thread injects). Each round: read the TSC, ask for one
 * interrupt (a PIO write), HLT until the handler stamps the TSC. Prints every latency
 * in cycles ("irq-bench: mode M lat ..." lines) and each mode's total time. */
#include "../lib/guest.h"
#include "../lib/irqt.h"

#define MODES 3
static volatile u64 stamp;
static volatile u32 handled;

static void on_irq(u32 vector) { (void)vector; stamp = rdtsc(); handled++; }

void kmain(u32 magic, void *mbi) {
    boot_init(magic, mbi);
    struct irqt t;
    if (!irqt_open(&t)) { printf("irq-bench: no irq-test device\n"); debug_exit(1); }
    idt_set_handler(0x40, on_irq);
    msix_set(&t, 0, lapic_id(), 0x40, 0);
    msix_enable(&t, 1);
    outl(t.io + IRQT_VECTOR, 0);
    sti();
    u32 rounds = (u32)cmdline_u64("n=", 2000);
    static u32 lat[MODES][4096];
    if (rounds > 4096) rounds = 4096;
    u64 total[MODES] = {0};
    for (u32 i = 0; i < rounds; i++) {
        for (u32 m = 0; m < MODES; m++) {
            outl(t.io + 0x18, m);
            u32 want = handled + 1;
            u64 t0 = rdtsc();
            outl(t.io + IRQT_FIRE, 1);
            for (;;) {
                cli();
                if (handled >= want) { sti(); break; }
                __asm__ volatile("sti; hlt" ::: "memory");
            }
            u64 d = stamp - t0;
            lat[m][i] = d > 0xFFFFFFFFull ? 0xFFFFFFFF : (u32)d;
            total[m] += rdtsc() - t0;
        }
    }
    for (u32 m = 0; m < MODES; m++) {
        for (u32 i = 0; i < rounds; i += 16) {
            printf("irq-bench: mode %u lat", m);
            for (u32 j = i; j < i + 16 && j < rounds; j++) printf(" %u", lat[m][j]);
            printf("\n");
        }
        printf("irq-bench: mode %u rounds %u total %llu cycles\n", m, rounds, total[m]);
    }
    printf("irq-bench: tsc %llu kHz\n", tsc_khz());
    debug_exit(0);
}
