/* irq-bench: trigger-to-handler latency of the irq-test device's three delivery paths,
 * interleaved round by round (mode 0 irqfd, 1 KVM_SIGNAL_MSI from the device thread,
 * 2 the userspace exit path: the vCPU is kicked out of KVM_RUN and its thread injects). Each round: read the TSC, ask for one
 * interrupt (a PIO write), HLT until the handler stamps the TSC. Prints every latency
 * in cycles ("irq-bench: mode M lat ..." lines) and each mode's total time.
 *
 * modes=K runs only modes 0..K-1 (default 3). delay=US (default 0) also times each
 * interrupt from the moment the device raised it: the device waits US µs after the FIRE
 * write before it fires (so the vCPU is back in HLT whatever the write cost), stamps its
 * host TSC just before raising the vector, and the guest subtracts that stamp (on the
 * guest's clock: "irq-bench: tsc offset" estimates host minus guest TSC from the
 * tightest of 64 bracketed TSC register reads) from the handler's TSC: "irq-bench: mode
 * M trig ..." lines, in cycles (negative values clamp to 0). */
#include "../lib/guest.h"
#include "../lib/irqt.h"

#define MODES 3
#define IRQT_DELAY 0x24
#define IRQT_STAMP 0x28
#define IRQT_STAMP_HI 0x2C
#define IRQT_TSC 0x30
#define IRQT_TSC_HI 0x34
static volatile u64 stamp;
static volatile u32 handled;

static void on_irq(u32 vector) { (void)vector; stamp = rdtsc(); handled++; }

/* Host TSC minus guest TSC, from the read of the TSC register that took the fewest
 * cycles (its midpoint); 0 when that read's bracket holds the host value as is (the
 * guest runs on the host's clock). */
static u64 tsc_offset(struct irqt *t) {
    u64 best = ~0ull, off = 0, ba = 0, bh = 0, bb = 0;
    for (u32 i = 0; i < 64; i++) {
        u64 a = rdtsc();
        u32 lo = inl(t->io + IRQT_TSC);
        u64 b = rdtsc();
        u64 h = ((u64)inl(t->io + IRQT_TSC_HI) << 32) | lo;
        if (b - a < best) { best = b - a; ba = a; bh = h; bb = b; }
    }
    int same = ba <= bh && bh <= bb;
    if (!same) off = bh - (ba + (bb - ba) / 2);
    printf("irq-bench: tsc offset %lld bracket %llu cycles (%s)\n", (i64)off, best,
           same ? "same clock" : "midpoint estimate");
    return off;
}

void kmain(u32 magic, void *mbi) {
    boot_init(magic, mbi);
    struct irqt t;
    if (!irqt_open(&t)) { printf("irq-bench: no irq-test device\n"); debug_exit(1); }
    idt_set_handler(0x40, on_irq);
    msix_set(&t, 0, lapic_id(), 0x40, 0);
    msix_enable(&t, 1);
    outl(t.io + IRQT_VECTOR, 0);
    u32 modes = (u32)cmdline_u64("modes=", MODES);
    if (modes < 1 || modes > MODES) modes = MODES;
    u32 delay = (u32)cmdline_u64("delay=", 0);
    u64 off = 0;
    if (delay) {
        off = tsc_offset(&t);
        outl(t.io + IRQT_DELAY, delay);
    }
    sti();
    u32 rounds = (u32)cmdline_u64("n=", 2000);
    static u32 lat[MODES][4096], trig[MODES][4096];
    if (rounds > 4096) rounds = 4096;
    u64 total[MODES] = {0};
    for (u32 i = 0; i < rounds; i++) {
        for (u32 m = 0; m < modes; m++) {
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
            if (delay) {
                u32 lo = inl(t.io + IRQT_STAMP);
                u64 raised = (((u64)inl(t.io + IRQT_STAMP_HI) << 32) | lo) - off;
                i64 s = (i64)(stamp - raised);
                trig[m][i] = s < 0 ? 0 : s > 0xFFFFFFFFll ? 0xFFFFFFFF : (u32)s;
            }
        }
    }
    for (u32 m = 0; m < modes; m++) {
        for (u32 i = 0; i < rounds; i += 16) {
            printf("irq-bench: mode %u lat", m);
            for (u32 j = i; j < i + 16 && j < rounds; j++) printf(" %u", lat[m][j]);
            printf("\n");
        }
        for (u32 i = 0; delay && i < rounds; i += 16) {
            printf("irq-bench: mode %u trig", m);
            for (u32 j = i; j < i + 16 && j < rounds; j++) printf(" %u", trig[m][j]);
            printf("\n");
        }
        printf("irq-bench: mode %u rounds %u total %llu cycles\n", m, rounds, total[m]);
    }
    printf("irq-bench: tsc %llu kHz\n", tsc_khz());
    debug_exit(0);
}
