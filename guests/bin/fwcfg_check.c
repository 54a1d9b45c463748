/* fwcfg-check: reads QEMU's fw_cfg by port and DMA and prints what it sees, so that
 * kvmbus and QEMU can be compared line by line. Expects the files
 * opt/org.kvmbus/greeting (a string) and opt/org.kvmbus/blob (any bytes). Ends with a
 * 4-byte write of 0x1a1 to the debug-exit port: exit status (0x1a1 << 1 | 1) & 0xff = 0x43. */
#include "../lib/guest.h"
#include "../lib/fwcfg.h"

static u8 buf[4096] __attribute__((aligned(16)));

static u32 sum(const u8 *p, u32 n) {
    u32 s = 0;
    for (u32 i = 0; i < n; i++) s = s * 31 + p[i];
    return s;
}

static void show(const char *what, const u8 *p, u32 n) {
    printf("%s:", what);
    for (u32 i = 0; i < n; i++) printf(" %02x", p[i]);
    printf("\n");
}

static void ports(void) {
    u8 sig[4];
    fwcfg_select(FWCFG_SIGNATURE);
    fwcfg_read(sig, 4);
    printf("signature: %c%c%c%c\n", sig[0], sig[1], sig[2], sig[3]);
    printf("id: %x\n", (u32)fwcfg_read_le(FWCFG_ID, 4));
    printf("ram size: %llx\n", fwcfg_read_le(FWCFG_RAM_SIZE, 8));
    printf("cpus: %u max %u\n", (u32)fwcfg_read_le(FWCFG_NB_CPUS, 2),
           (u32)fwcfg_read_le(FWCFG_MAX_CPUS, 2));
    printf("unused key 0x1f: %x, key 0x1234: %x\n", (u32)fwcfg_read_le(0x1f, 4),
           (u32)fwcfg_read_le(0x1234, 4));
    /* Wider accesses than QEMU's byte data port, each after selecting the signature. */
    static const struct { u16 port; u8 width; } wide[] = {
        {0x510, 2}, {0x510, 4}, {0x511, 2}, {0x511, 4}, {0x512, 2}, {0x512, 4},
        {0x513, 2}, {0x513, 4}, {0x514, 1}, {0x515, 4}, {0x516, 2}, {0x518, 4},
    };
    for (u32 i = 0; i < sizeof wide / sizeof wide[0]; i++) {
        fwcfg_select(FWCFG_SIGNATURE);
        u16 p = wide[i].port;
        u32 v = wide[i].width == 1 ? inb(p) : wide[i].width == 2 ? inw(p) : inl(p);
        printf("in%c %x: %x, then data %x\n", "?bw?l"[wide[i].width], p, v, inb(FWCFG_DATA));
    }
    fwcfg_select(FWCFG_SIGNATURE);
    outl(FWCFG_SEL, 0xffff0000u | FWCFG_NB_CPUS);
    printf("outl 510: data %x\n", inb(FWCFG_DATA));
    fwcfg_select(FWCFG_SIGNATURE);
    outb(FWCFG_SEL, FWCFG_NB_CPUS);
    outw(FWCFG_DATA, FWCFG_NB_CPUS);
    printf("outb 510, outw 511: data %x\n", inb(FWCFG_DATA));
    printf("debug-exit reads: %x %x\n", inb(DEBUG_EXIT_PORT), inl(DEBUG_EXIT_PORT));
}

static void directory(void) {
    u32 count;
    fwcfg_select(FWCFG_FILE_DIR);
    fwcfg_read(&count, 4);
    count = bswap32(count);
    char prev[56] = {0};
    int sorted = 1, keys = 1;
    for (u32 i = 0; i < count; i++) {
        struct { u32 size; u16 select, reserved; char name[56]; } e;
        fwcfg_read(&e, sizeof e);
        if (bswap16(e.select) != 0x20 + i) keys = 0;
        if (i && strncmp(prev, e.name, 56) >= 0) sorted = 0;
        memcpy(prev, e.name, 56);
    }
    printf("directory: %s, %s\n", sorted ? "sorted" : "NOT SORTED",
           keys ? "keys from 0x20" : "BAD KEYS");
}

static void files(void) {
    u32 size;
    u16 key = fwcfg_find_file("opt/org.kvmbus/greeting", &size);
    if (!key || size >= sizeof buf) {
        printf("greeting: missing\n");
        return;
    }
    memset(buf, 0, sizeof buf);
    fwcfg_select(key);
    fwcfg_read(buf, size);
    printf("greeting (port, %u bytes): %s\n", size, (char *)buf);
    memset(buf, 0, sizeof buf);
    u32 c = fwcfg_dma(((u32)key << 16) | FWCFG_DMA_SELECT | FWCFG_DMA_READ, buf, size);
    printf("greeting (dma, control %x): %s\n", c, (char *)buf);

    key = fwcfg_find_file("opt/org.kvmbus/blob", &size);
    if (!key || size > sizeof buf) {
        printf("blob: missing\n");
        return;
    }
    fwcfg_select(key);
    fwcfg_read(buf, size);
    u32 by_port = sum(buf, size);
    memset(buf, 0, sizeof buf);
    c = fwcfg_dma(((u32)key << 16) | FWCFG_DMA_SELECT | FWCFG_DMA_READ, buf, size);
    printf("blob: %u bytes, port hash %x, dma hash %x, control %x\n", size, by_port,
           sum(buf, size), c);
}

static void dma(void) {
    u32 c;
    memset(buf, 0xee, 16);
    c = fwcfg_dma((FWCFG_NB_CPUS << 16) | FWCFG_DMA_SELECT | FWCFG_DMA_READ, buf, 2);
    show("dma nb_cpus", buf, 3);
    printf("control %x\n", c);
    memset(buf, 0xee, 16);
    c = fwcfg_dma((FWCFG_SIGNATURE << 16) | FWCFG_DMA_SELECT | FWCFG_DMA_SKIP, 0, 2);
    c |= fwcfg_dma(FWCFG_DMA_READ, buf, 8);
    show("dma skip 2 then read 8 of the signature", buf, 9);
    printf("control %x\n", c);
    /* Port and DMA share the cursor. */
    fwcfg_select(FWCFG_SIGNATURE);
    inb(FWCFG_DATA);
    memset(buf, 0xee, 16);
    c = fwcfg_dma(FWCFG_DMA_READ, buf, 2);
    printf("after a port read, dma reads %c%c (control %x)\n", buf[0], buf[1], c);
    c = fwcfg_dma((FWCFG_ID << 16) | FWCFG_DMA_SELECT, buf, 4);
    printf("select only: control %x, port then reads %x\n", c, inb(FWCFG_DATA));
    c = fwcfg_dma((FWCFG_SIGNATURE << 16) | FWCFG_DMA_SELECT | FWCFG_DMA_WRITE, buf, 4);
    printf("dma write: control %x\n", c);
    memset(buf, 0xee, 16);
    c = fwcfg_dma((0x1234 << 16) | FWCFG_DMA_SELECT | FWCFG_DMA_READ, buf, 4);
    show("dma read of key 0x1234", buf, 5);
    printf("control %x\n", c);
    c = fwcfg_dma64((FWCFG_FILE_DIR << 16) | FWCFG_DMA_SELECT | FWCFG_DMA_READ,
                    0x100000000000ull, 64);
    printf("dma to a buffer outside RAM: control %x\n", c);
}

void kmain(u32 magic, void *mbi) {
    serial_init();
    mb_init(magic, mbi);
    printf("fwcfg-check\n");
    ports();
    directory();
    files();
    dma();
    printf("fwcfg-check done\n");
    outl(DEBUG_EXIT_PORT, 0x1a1);
    printf("debug-exit ignored the 4-byte write\n");
    debug_exit(0x7e);
}
