#include "fwcfg.h"

void fwcfg_select(u16 key) { outw(FWCFG_SEL, key); }

void fwcfg_read(void *buf, u32 n) {
    u8 *p = buf;
    while (n--) *p++ = inb(FWCFG_DATA);
}

u64 fwcfg_read_le(u16 key, u32 n) {
    u8 b[8] = {0};
    fwcfg_select(key);
    fwcfg_read(b, n > 8 ? 8 : n);
    u64 v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

struct fwcfg_dma_access { u32 control, length; u64 address; } __attribute__((packed));
static volatile struct fwcfg_dma_access desc __attribute__((aligned(16)));

u32 fwcfg_dma64(u32 control, u64 addr, u32 len) {
    desc.control = bswap32(control);
    desc.length = bswap32(len);
    desc.address = ((u64)bswap32((u32)addr) << 32) | bswap32((u32)(addr >> 32));
    barrier();
    outl(FWCFG_DMA, bswap32(0));
    outl(FWCFG_DMA + 4, bswap32((u32)(uptr)&desc));
    barrier();
    return bswap32(desc.control);
}

u32 fwcfg_dma(u32 control, void *buf, u32 len) { return fwcfg_dma64(control, (uptr)buf, len); }

u16 fwcfg_find_file(const char *name, u32 *size) {
    u32 count;
    fwcfg_select(FWCFG_FILE_DIR);
    fwcfg_read(&count, 4);
    count = bswap32(count);
    for (u32 i = 0; i < count; i++) {
        struct { u32 size; u16 select, reserved; char name[56]; } e;
        fwcfg_read(&e, sizeof e);
        if (!strncmp(e.name, name, 56)) {
            *size = bswap32(e.size);
            return bswap16(e.select);
        }
    }
    return 0;
}
