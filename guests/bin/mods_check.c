/* mods-check: prints the multiboot modules it was given (count, alignment, placement
 * after the kernel, size, a hash of the bytes, the command line after the path) and
 * the kernel command line after its first word (the image path), so that kvmbus and
 * QEMU (-initrd "a x,b") can be compared line by line. Exits with debug-exit 0x21. */
#include "../lib/guest.h"

struct mb_info {
    u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
};
struct mb_module { u32 start, end, cmdline, reserved; };
extern char _kernel_end[];

static const char *after_first_word(const char *s) {
    while (*s && *s != ' ') s++;
    while (*s == ' ') s++;
    return s;
}

static const char *basename_of_first_word(const char *s, char *out, u32 max) {
    const char *base = s;
    for (const char *p = s; *p && *p != ' '; p++)
        if (*p == '/') base = p + 1;
    u32 n = 0;
    while (base[n] && base[n] != ' ' && n + 1 < max) { out[n] = base[n]; n++; }
    out[n] = 0;
    return out;
}

void kmain(u32 magic, struct mb_info *mbi) {
    serial_init();
    mb_init(magic, (void *)mbi);
    printf("mods-check\n");
    printf("kernel args: '%s'\n", after_first_word(mb_cmdline()));
    printf("modules flag: %u, count %u\n", (mbi->flags >> 3) & 1, mbi->mods_count);
    struct mb_module *m = (struct mb_module *)mbi->mods_addr;
    u32 prev_end = (u32)(uptr)_kernel_end;
    for (u32 i = 0; i < mbi->mods_count; i++) {
        u32 len = m[i].end - m[i].start, hash = 0;
        const u8 *p = (const u8 *)m[i].start;
        for (u32 k = 0; k < len; k++) hash = hash * 31 + p[k];
        char name[64];
        const char *cl = (const char *)m[i].cmdline;
        printf("module %u: %u bytes, hash %x, page aligned %s, after %s %s, name '%s', args '%s'\n",
               i, len, hash, (m[i].start & 0xfff) ? "no" : "yes",
               i ? "the previous module" : "the kernel", m[i].start >= prev_end ? "yes" : "no",
               basename_of_first_word(cl, name, sizeof name), after_first_word(cl));
        if (len && len < 64 && p[len - 1] == '\n') printf("  text: %s", (const char *)p);
        prev_end = m[i].end;
    }
    debug_exit(0x21);
}
