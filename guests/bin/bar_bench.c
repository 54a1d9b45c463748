/* bar-bench: the cost of one read of the irq-test device's ID register, timed with the
 * TSC: through BAR0 (I/O), BAR1 (MMIO) and, when the device has one, BAR4 (a region a
 * vfio-user server hands over as an mmap-able fd, which kvmbus maps into the guest).
 * Prints "bar-bench: <bar> <n> reads <cycles> cycles each" lines (the mean of one timed
 * loop) and "bar-bench: <bar> median <cycles> cycles" (each read timed alone, two RDTSCs
 * around it; the median resists the host preempting the vCPU), and "bar-bench: timer
 * median <cycles> cycles" (the same timing around a call that reads nothing: what to
 * subtract from a median to get the read alone); n=N reads per BAR. */
#include "../lib/guest.h"
#include "../lib/irqt.h"

/* Per-read cycle counts in buckets of 256 cycles (the last bucket takes the rest). */
#define BUCKETS 4096
static u32 hist[BUCKETS];

__attribute__((noinline)) static void median(const char *what, u32 n, u32 (*read)(uptr), uptr at, u32 *sum) {
    for (u32 i = 0; i < BUCKETS; i++) hist[i] = 0;
    for (u32 i = 0; i < n; i++) {
        u64 t0 = rdtsc();
        *sum += read(at);
        u64 d = (rdtsc() - t0) >> 8;
        hist[d < BUCKETS ? d : BUCKETS - 1]++;
    }
    u32 seen = 0, b = 0;
    for (; b < BUCKETS - 1; b++) {
        seen += hist[b];
        if (2 * seen >= n) break;
    }
    printf("bar-bench: %s median %u cycles\n", what, (b << 8) + 128);
}

static u32 io_read(uptr p) { return inl((u16)p); }
static u32 no_read(uptr p) { return (u32)p; }
static u32 mem_read(uptr a) { return mmio_read32(a); }

void kmain(u32 magic, void *mbi) {
    boot_init(magic, mbi);
    struct irqt t;
    if (!irqt_open(&t)) { printf("bar-bench: no irq-test device\n"); debug_exit(1); }
    u32 n = (u32)cmdline_u64("n=", 2000);
    if (n == 0) n = 1;
    printf("bar-bench: tsc %llu kHz\n", tsc_khz());
    u32 sum = 0;
    u64 t0 = rdtsc();
    for (u32 i = 0; i < n; i++) sum += inl(t.io);
    u64 io = rdtsc() - t0;
    printf("bar-bench: io %u reads %llu cycles each\n", n, udiv64(io, n, NULL));
    median("io", n, io_read, t.io, &sum);
    uptr bar1 = pci_cfg_read32(t.bus, t.dev, t.fn, 0x14) & ~0xFu;
    t0 = rdtsc();
    for (u32 i = 0; i < n; i++) sum += mmio_read32(bar1);
    u64 mm = rdtsc() - t0;
    printf("bar-bench: mmio %u reads %llu cycles each\n", n, udiv64(mm, n, NULL));
    median("mmio", n, mem_read, bar1, &sum);
    uptr bar4 = pci_cfg_read32(t.bus, t.dev, t.fn, 0x20) & ~0xFu;
    if (bar4) {
        mmio_write32(bar4, 0x12345678);
        t0 = rdtsc();
        for (u32 i = 0; i < n; i++) sum += mmio_read32(bar4);
        u64 mp = rdtsc() - t0;
        printf("bar-bench: mapped %u reads %llu cycles each (read back %x)\n", n, udiv64(mp, n, NULL),
               mmio_read32(bar4));
        median("mapped", n, mem_read, bar4, &sum);
    }
    /* Last, warm (measured first, it came out up to a third higher now and then). */
    median("timer", n, no_read, 0, &sum);
    printf("bar-bench: done %u\n", sum);
    debug_exit(0);
}
