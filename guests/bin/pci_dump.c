/* pci-dump: enumerates bus 0 over CAM (0xCF8/0xCFC), sizes every BAR as firmware does,
 * and prints an `lspci -xxx`-style block per function (a "BB:DD.F" line, then 16 lines
 * of 16 hex bytes: the full 256-byte config space), followed by a "# sizes" line with
 * what BAR sizing found (lspci -F cannot size BARs from a dump). Then it exits. */
#include "../lib/guest.h"

static const char *kind(u32 bar) {
    if (bar & 1) return "io";
    return ((bar >> 1) & 3) == 2 ? ((bar & 8) ? "mem64pf" : "mem64") : ((bar & 8) ? "mem32pf" : "mem32");
}

void kmain(u32 magic, void *mbi) {
    serial_init();
    mb_init(magic, mbi);
    struct pci_fn fns[32];
    u32 n = pci_enumerate(fns, 32);
    if (n > 32) n = 32;
    for (u32 i = 0; i < n; i++) {
        struct pci_fn *f = &fns[i];
        printf("%02x:%02x.%u Device %04x:%04x\n", f->bus, f->dev, f->fn, f->vendor, f->device);
        for (u32 row = 0; row < 256; row += 16) {
            u8 b[16];
            for (u32 j = 0; j < 16; j += 4) {
                u32 v = pci_cfg_read32(f->bus, f->dev, f->fn, (u16)(row + j));
                b[j] = v; b[j + 1] = v >> 8; b[j + 2] = v >> 16; b[j + 3] = v >> 24;
            }
            printf("%02x:", row);
            for (u32 j = 0; j < 16; j++) printf(" %02x", b[j]);
            printf("\n");
        }
        printf("# sizes %02x:%02x.%u", f->bus, f->dev, f->fn);
        for (int b = 0; b < 6; b++)
            if (f->bar_size[b]) printf(" bar%d=%s:%u", b, kind(f->bar[b]), f->bar_size[b]);
        printf("\n\n");
    }
    printf("# %u functions\n", n);
    debug_exit(0);
}
