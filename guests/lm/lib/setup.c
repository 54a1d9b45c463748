#include "lm.h"

struct mb_info {
    u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
};
struct mb_module { u32 start, end, cmdline, reserved; };

#define MAX_ARGS 32
#define MAX_ENV 64
#define ENV_BYTES 16384

u32 mb_mem_upper_kib;
u32 mb_mods_count;
static char args[2048];
static char *argv[MAX_ARGS + 1];
static int argc;
static char env_text[ENV_BYTES + 1];
static char *envp[MAX_ENV + 1];

/* Splits the command line at spaces: argv[0] is the kernel's name, as QEMU passes it. */
static void setup_args(const char *cmdline) {
    u64 n = strlen(cmdline);
    if (n >= sizeof(args)) n = sizeof(args) - 1;
    memcpy(args, cmdline, n);
    char *p = args;
    while (*p && argc < MAX_ARGS) {
        while (*p == ' ') *p++ = 0;
        if (!*p) break;
        argv[argc++] = p;
        while (*p && *p != ' ') p++;
    }
    argv[argc] = NULL;
}

/* The first module holds the environment: KEY=VALUE lines. */
static void setup_env(const struct mb_module *m) {
    u64 n = m->end - m->start;
    if (n > ENV_BYTES) n = ENV_BYTES;
    memcpy(env_text, (const void *)(uptr)m->start, n);
    int count = 0;
    char *p = env_text, *end = env_text + n;
    while (p < end && count < MAX_ENV) {
        char *line = p;
        while (p < end && *p != '\n') p++;
        *p++ = 0;
        for (char *q = line; *q; q++)
            if (*q == '=') { envp[count++] = line; break; }
    }
    envp[count] = NULL;
}

const char *getenv(const char *key) {
    u64 n = strlen(key);
    for (char **e = envp; *e; e++)
        if (!memcmp(*e, key, n) && (*e)[n] == '=') return *e + n + 1;
    return NULL;
}

u64 str_to_u64(const char *s) {
    u64 v = 0;
    while (*s >= '0' && *s <= '9') v = v * 10 + (u64)(*s++ - '0');
    return v;
}

/* fw_cfg item 0x05: the number of boot CPUs (selector 0x510, data 0x511). */
u32 fwcfg_cpu_count(void) {
    outw(0x510, 0x05);
    u32 lo = inb(0x511);
    return lo | (u32)inb(0x511) << 8;
}

void lm_boot(u32 magic, u32 mbi_addr) {
    serial_init();
    outb(0x21, 0xff); /* mask both PICs */
    outb(0xa1, 0xff);
    cpu_setup(0);
    if (magic != 0x2BADB002) {
        printf("FAIL: multiboot magic %x\n", magic);
        lm_exit(0x7e);
    }
    const struct mb_info *mbi = (const struct mb_info *)(uptr)mbi_addr;
    if (mbi->flags & 1) mb_mem_upper_kib = mbi->mem_upper;
    setup_args((mbi->flags & 4) && mbi->cmdline ? (const char *)(uptr)mbi->cmdline : "");
    envp[0] = NULL;
    if (mbi->flags & 8) {
        mb_mods_count = mbi->mods_count;
        if (mbi->mods_count >= 1) setup_env((const struct mb_module *)(uptr)mbi->mods_addr);
    }
    smp_start();
    lm_exit((u32)main(argc, argv, envp));
}
