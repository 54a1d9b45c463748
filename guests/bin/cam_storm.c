/* cam-storm: `n=N` CAM dword reads of the host bridge's ID register (00:00.0 offset 0),
 * each the way an OS does it (address to 0xCF8, data from 0xCFC), timed by the TSC. */
#include "../lib/guest.h"

void kmain(u32 magic, void *mbi) {
    serial_init();
    mb_init(magic, mbi);
    time_init();
    u64 n = cmdline_u64("n=", 100000);
    u32 id = pci_cfg_read32(0, 0, 0, 0);
    printf("cam-storm: %llu reads of 00:00.0 ID %08x\n", n, id);
    u32 bad = 0;
    u64 t0 = rdtsc();
    for (u64 i = 0; i < n; i++) {
        outl(0xCF8, 0x80000000u);
        if (inl(0xCFC) != id) bad++;
    }
    u64 cycles = rdtsc() - t0;
    u64 per = udiv64(cycles, (u32)(n > 0xFFFFFFFFull ? 0xFFFFFFFF : (n ? n : 1)), NULL);
    printf("cam-storm: done %llu accesses in %llu cycles, %llu cycles/access, %u mismatches, tsc %llu kHz\n",
           n, cycles, per, bad, tsc_khz());
    debug_exit(bad ? 1 : 0);
}
