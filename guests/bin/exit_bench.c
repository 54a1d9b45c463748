/* exit-bench: per-exit costs, vmexit.c-style, timed by the TSC with O(1) guest work per
 * exit (the loop is unrolled 16 times). The same image runs under kvmbus and QEMU 7.2
 * (-device pc-testdev -device pci-testdev). `n=` exits per path (a multiple of 16).
 * Prints one line per path: "exit-bench: <path> <cycles> cycles/exit".
 *   pio-user      inl from pc-testdev's scratch port 0xE0 (the VMM answers)
 *   pio-kernel    inb from the ELCR 0x4D0 (KVM's in-kernel PIC answers)
 *   mmio-user     32-bit read of pc-testdev's iomem at 0xFF000000
 *   <pci test>    pci-testdev doorbell writes: mmio-/portio- no-eventfd (an exit to the
 *                 VMM), wildcard-eventfd and datamatch-eventfd (ioeventfds) */
#include "../lib/guest.h"
#include "../lib/testdev.h"

#define X16(s) s s s s s s s s s s s s s s s s

static u64 per(u64 t0, u32 n) { return udiv64(rdtsc() - t0, n, NULL); }

static void report(const char *path, u64 cycles) {
    printf("exit-bench: %s %llu cycles/exit\n", path, cycles);
}

void kmain(u32 magic, void *mbi) {
    serial_init();
    mb_init(magic, mbi);
    time_init();
    u32 n = (u32)cmdline_u64("n=", 20000) & ~15u;
    if (!n) n = 16;
    printf("exit-bench: %u exits per path, tsc %llu kHz\n", n, tsc_khz());
    u64 t0;
    u32 v;

    t0 = rdtsc();
    for (u32 i = 0; i < n; i += 16) { X16(__asm__ volatile("inl %w1, %0" : "=a"(v) : "Nd"(PCTD_IOPORT));) }
    report("pio-user", per(t0, n));

    t0 = rdtsc();
    for (u32 i = 0; i < n; i += 16) { X16(__asm__ volatile("inb %w1, %b0" : "=a"(v) : "d"(0x4D0));) }
    report("pio-kernel", per(t0, n));

    volatile u32 *iomem = (volatile u32 *)PCTD_IOMEM;
    t0 = rdtsc();
    for (u32 i = 0; i < n; i += 16) { X16(v = *iomem;) }
    report("mmio-user", per(t0, n));
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
                t0 = rdtsc();
                for (u32 i = 0; i < n; i += 16) { X16(__asm__ volatile("outb %b0, %w1" ::"a"(data), "d"(port));) }
            } else {
                volatile u8 *bell = (volatile u8 *)x.doorbell;
                t0 = rdtsc();
                for (u32 i = 0; i < n; i += 16) { X16(*bell = data;) }
            }
            report(x.name, per(t0, n));
        }
    }
    ptd_select(&d, 1, 3, &(struct ptd_test){0});
    debug_exit(0);
}
