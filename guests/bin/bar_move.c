/* bar-move: `n=N` moves of a device's I/O BAR and `n=N` moves of its memory BAR, each
 * between its place and a second address (`io2=`, default 0xE000; `mem2=`, default
 * 0xAF000000), each move one CAM config write, timed by the TSC; and `n=N` writes of
 * the Interrupt Line register (a config write that moves nothing) as the baseline.
 * The device is the kvmbus hypercall gateway (doorbell ioeventfds in its I/O BAR) or,
 * under QEMU, pci-testdev (1b36:0005, ioeventfds in both BARs). Prints
 * "bar-move: <what> N moves, C cycles/move" lines; exits 0, or 1 if a BAR does not
 * read back where it was put. */
#include "../lib/guest.h"

static u32 failures;

static u64 per(u64 cycles, u64 n) { return udiv64(cycles, (u32)(n ? n : 1), NULL); }

static u64 moves(struct pci_fn *f, u16 off, u32 a, u32 b, u64 n) {
    u64 t0 = rdtsc();
    for (u64 i = 0; i < n; i++) pci_cfg_write32(f->bus, f->dev, f->fn, off, (i & 1) ? b : a);
    u64 c = rdtsc() - t0;
    u32 want = (n & 1) ? a : b; /* the last write, i = n - 1 */
    u32 got = pci_cfg_read32(f->bus, f->dev, f->fn, off) & ~0xFu;
    if (got != (want & ~0xFu)) { failures++; printf("FAIL BAR at %x reads %x, want %x\n", off, got, want); }
    return c;
}

void kmain(u32 magic, void *mbi) {
    serial_init();
    mb_init(magic, mbi);
    time_init();
    u64 n = cmdline_u64("n=", 2000);
    struct pci_fn f;
    if (!pci_find(GW_VENDOR, GW_DEVICE, &f) && !pci_find(0x1b36, 0x0005, &f)) {
        printf("bar-move: no hypercall gateway or pci-testdev\n");
        debug_exit(1);
    }
    int io = -1, mem = -1;
    for (int i = 0; i < 6; i++) {
        if (!f.bar_size[i]) continue;
        if ((f.bar[i] & 1) && io < 0) io = i;
        if (!(f.bar[i] & 7) && mem < 0) mem = i;
    }
    printf("bar-move: %04x:%04x at %02x:%02x.%u, I/O BAR%d %x, memory BAR%d %x\n",
           f.vendor, f.device, f.bus, f.dev, f.fn, io, f.bar[io], mem, f.bar[mem]);
    u64 base = moves(&f, 0x3C, 0x0A, 0x0B, n);
    printf("bar-move: baseline %llu writes, %llu cycles/move\n", n, per(base, n));
    if (io >= 0) {
        u64 c = moves(&f, (u16)(0x10 + 4 * io), f.bar[io] & ~3u, (u32)cmdline_u64("io2=", 0xE000), n);
        printf("bar-move: io %llu moves, %llu cycles/move\n", n, per(c, n));
    }
    if (mem >= 0) {
        u64 c = moves(&f, (u16)(0x10 + 4 * mem), f.bar[mem] & ~0xFu, (u32)cmdline_u64("mem2=", 0xAF000000u), n);
        printf("bar-move: mem %llu moves, %llu cycles/move\n", n, per(c, n));
    }
    printf("bar-move: tsc %llu kHz, %u failures\n", tsc_khz(), failures);
    debug_exit(failures ? 1 : 0);
}
