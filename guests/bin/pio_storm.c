/* pio-storm: `n=N` one-byte OUTs to port 0x80 (N PIO exits), timed by the TSC, then exit. */
#include "../lib/guest.h"

void kmain(u32 magic, void *mbi) {
    serial_init();
    mb_init(magic, mbi);
    time_init();
    u64 n = cmdline_u64("n=", 1000000);
    printf("pio-storm: %llu exits\n", n);
    u64 t0 = rdtsc();
    for (u64 i = 0; i < n; i++) outb(0x80, (u8)i);
    u64 cycles = rdtsc() - t0;
    u64 per = n ? udiv64(cycles, (u32)(n > 0xFFFFFFFFull ? 0xFFFFFFFF : n), NULL) : 0;
    u64 ns_total = udiv64(cycles * 1000000, (u32)tsc_khz(), NULL);
    printf("pio-storm: done %llu exits in %llu cycles, %llu cycles/exit, %llu ns total, tsc %llu kHz\n",
           n, cycles, per, ns_total, tsc_khz());
    debug_exit(0);
}
