#include "guest.h"

struct mb_info {
    u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
    u32 syms[4];
    u32 mmap_length, mmap_addr;
};

static const char *cmdline = "";
static u32 mem_kib;

void mb_init(u32 magic, struct mb_info *mbi) {
    if (magic != 0x2BADB002) {
        printf("bad multiboot magic %08x\n", magic);
        debug_exit(0x7e);
    }
    if ((mbi->flags & (1u << 2)) && mbi->cmdline) cmdline = (const char *)mbi->cmdline;
    if (mbi->flags & 1u) mem_kib = mbi->mem_lower + mbi->mem_upper + 384;
}

const char *mb_cmdline(void) { return cmdline; }
u32 mb_mem_kib(void) { return mem_kib; }

static const char *find_word(const char *key) {
    u32 n = strlen(key);
    const char *p = cmdline;
    while (*p) {
        while (*p == ' ') p++;
        if (!strncmp(p, key, n)) return p + n;
        while (*p && *p != ' ') p++;
    }
    return NULL;
}

u64 cmdline_u64(const char *key, u64 dflt) {
    const char *p = find_word(key);
    if (!p || *p < '0' || *p > '9') return dflt;
    u64 v = 0;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        for (p += 2;; p++) {
            u32 d = (*p >= '0' && *p <= '9') ? (u32)(*p - '0')
                  : (*p >= 'a' && *p <= 'f') ? (u32)(*p - 'a' + 10)
                  : (*p >= 'A' && *p <= 'F') ? (u32)(*p - 'A' + 10) : 16;
            if (d == 16) return v;
            v = (v << 4) | d;
        }
    }
    while (*p >= '0' && *p <= '9') v = v * 10 + (u64)(*p++ - '0');
    return v;
}

int cmdline_has(const char *word) {
    const char *p = find_word(word);
    return p && (*p == 0 || *p == ' ');
}
