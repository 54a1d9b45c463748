/* cpuid-dump: prints the CPUID leaves a CPU-feature test looks at, so the same image
 * shows what kvmbus and QEMU -cpu host give a guest. APIC IDs (leaf 1 EBX[31:24],
 * leaf 0xB/0x1F EDX) are printed separately; `all` on the command line dumps every
 * basic, hypervisor and extended leaf instead of the usual set. Exits with debug-exit 0x22. */
#include "../lib/guest.h"

static void leaf(u32 l, u32 s) {
    u32 a, b, c, d;
    cpuid(l, s, &a, &b, &c, &d);
    if (l == 1) b &= 0x00ffffff;
    if (l == 0xb || l == 0x1f) d = 0;
    printf("%08x.%u: %08x %08x %08x %08x\n", l, s, a, b, c, d);
}

void kmain(u32 magic, void *mbi) {
    serial_init();
    mb_init(magic, mbi);
    u32 a, b, c, d, max, hmax, emax;
    cpuid(0, 0, &max, &b, &c, &d);
    cpuid(0x40000000, 0, &hmax, &b, &c, &d);
    cpuid(0x80000000, 0, &emax, &b, &c, &d);
    cpuid(1, 0, &a, &b, &c, &d);
    printf("cpuid-dump: apic id %u\n", b >> 24);
    if (cmdline_has("all")) {
        for (u32 l = 0; l <= max && l < 0x40; l++)
            for (u32 s = 0; s < ((l == 4 || l == 7 || l == 0xb || l == 0xd || l == 0x1f) ? 4 : 1); s++)
                leaf(l, s);
        if (hmax >= 0x40000000 && hmax < 0x40000100)
            for (u32 l = 0x40000000; l <= hmax; l++) leaf(l, 0);
        for (u32 l = 0x80000000; l <= emax && l < 0x80000040; l++) leaf(l, 0);
    } else {
        /* The leaves kvmbus builds as QEMU -cpu host does (see arch/cpu.rs). */
        u32 set[] = {0, 1, 5, 6, 7, 0xa, 0xd, 0x40000001, 0x80000001, 0x80000002,
                     0x80000003, 0x80000004, 0x80000007, 0x80000019, 0x80000021};
        for (u32 i = 0; i < sizeof set / sizeof set[0]; i++)
            if (set[i] <= max || (set[i] >= 0x40000000 && set[i] <= hmax) ||
                (set[i] >= 0x80000000 && set[i] <= emax))
                leaf(set[i], 0);
        if (max >= 0xb)
            for (u32 s = 0; s < 4; s++) leaf(0xb, s);
    }
    debug_exit(0x22);
}
