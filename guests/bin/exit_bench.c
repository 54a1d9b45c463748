/* exit-bench: per-exit costs, vmexit.c-style, timed by the TSC with O(1) guest work per
 * exit (the loop is unrolled 16 times). The same image runs under kvmbus and QEMU 7.2
 * (-device pc-testdev -device pci-testdev). `n=` exits per path, timed in 8 batches of
 * n/8 (a multiple of 16); the fastest batch is the figure (the least disturbed by other
 * load on the host), the mean of all follows.
 * Prints one line per path: "exit-bench: <path> <cycles> cycles/exit (mean <cycles>)".
 *   pio-user      inl from pc-testdev's scratch port 0xE0 (the VMM answers)
 *   pio-kernel    inb from the ELCR 0x4D0 (KVM's in-kernel PIC answers)
 *   mmio-user     32-bit read of pc-testdev's iomem at 0xFF000000
 *   <pci test>    pci-testdev doorbell writes: mmio-/portio- no-eventfd (an exit to the
 *                 VMM), wildcard-eventfd and datamatch-eventfd (ioeventfds) */
#include "../lib/guest.h"
#include "../lib/testdev.h"

#define X16(s) s s s s s s s s s s s s s s s s
#define BATCHES 8

/* Times BATCHES batches of `per_batch` exits of `body` (unrolled 16 times) and reports. */
#define TIME_PATH(name, per_batch, body)                                        \
    do {                                                                        \
        u64 best = ~0ull, total = 0;                                            \
        for (u32 b = 0; b < BATCHES; b++) {                                     \
            u64 t0 = rdtsc();                                                   \
            for (u32 i = 0; i < (per_batch); i += 16) { X16(body) }             \
            u64 c = rdtsc() - t0;                                               \
            total += c;                                                         \
            if (c < best) best = c;                                             \
        }                                                                       \
        printf("exit-bench: %s %llu cycles/exit (mean %llu)\n", (name),        \
               udiv64(best, (per_batch), NULL), udiv64(total, (per_batch) * BATCHES, NULL)); \
    } while (0)

void kmain(u32 magic, void *mbi) {
    serial_init();
    mb_init(magic, mbi);
    time_init();
    u32 m = ((u32)cmdline_u64("n=", 20000) / BATCHES) & ~15u;
    if (!m) m = 16;
    printf("exit-bench: %u exits per path in %u batches, tsc %llu kHz\n", m * BATCHES, BATCHES, tsc_khz());
    u32 v;

    TIME_PATH("pio-user", m, __asm__ volatile("inl %w1, %0" : "=a"(v) : "Nd"(PCTD_IOPORT)););
    TIME_PATH("pio-kernel", m, __asm__ volatile("inb %w1, %b0" : "=a"(v) : "d"(0x4D0)););
    volatile u32 *iomem = (volatile u32 *)PCTD_IOMEM;
    TIME_PATH("mmio-user", m, v = *iomem;);
    (void)v;

    struct ptd d;
    if (!ptd_open(&d)) {
        printf("exit-bench: no pci-testdev\n");
        debug_exit(1);
    }
    for (int io = 0; io < 2; io++) {
        for (u8 t = 0; t < 3; t++) {
            struct ptd_test x;
            if (ptd_select(&d, io, t, &x) != 1) {
                printf("exit-bench: pci-testdev test %u: width %u\n", t, x.width);
                debug_exit(2);
            }
            u8 data = (u8)x.data;
            if (io) {
                u16 port = (u16)x.doorbell;
                TIME_PATH(x.name, m, __asm__ volatile("outb %b0, %w1" ::"a"(data), "d"(port)););
            } else {
                volatile u8 *bell = (volatile u8 *)x.doorbell;
                TIME_PATH(x.name, m, *bell = data;);
            }
        }
    }
    ptd_select(&d, 1, 3, &(struct ptd_test){0});
    debug_exit(0);
}
