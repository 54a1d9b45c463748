#include "testdev.h"

int ptd_open(struct ptd *d) {
    struct pci_fn f;
    if (!pci_find(PTD_VENDOR, PTD_DEVICE, &f)) return 0;
    d->bus = f.bus; d->dev = f.dev; d->fn = f.fn;
    d->mem = f.bar[0] & ~0xFu;
    d->io = (u16)(f.bar[1] & ~3u);
    return 1;
}

static u8 rd8(struct ptd *d, int io, u32 off) {
    return io ? inb((u16)(d->io + off)) : mmio_read8(d->mem + off);
}
static u32 rd32(struct ptd *d, int io, u32 off) {
    return io ? inl((u16)(d->io + off)) : mmio_read32(d->mem + off);
}

u8 ptd_select(struct ptd *d, int io, u8 t, struct ptd_test *out) {
    if (io) outb(d->io + PTD_HDR_TEST, t); else mmio_write8(d->mem + PTD_HDR_TEST, t);
    out->io = io;
    out->index = rd8(d, io, PTD_HDR_TEST);
    out->width = rd8(d, io, PTD_HDR_WIDTH);
    out->offset = rd32(d, io, PTD_HDR_OFFSET);
    out->data = rd32(d, io, PTD_HDR_DATA);
    out->doorbell = (io ? d->io : d->mem) + out->offset;
    u32 i = 0;
    for (; i < sizeof(out->name) - 1; i++) {
        out->name[i] = (char)rd8(d, io, PTD_HDR_NAME + i);
        if (!out->name[i]) break;
    }
    out->name[i] = 0;
    return out->width;
}

u32 ptd_count(struct ptd *d, int io) { return rd32(d, io, PTD_HDR_COUNT); }

#define IOAPIC_BASE 0xFEC00000u
static void ioapic_write(u32 reg, u32 v) {
    mmio_write32(IOAPIC_BASE, reg);
    mmio_write32(IOAPIC_BASE + 0x10, v);
}

static void pic_mask_all(void) {
    static int done;
    if (done) return;
    outb(0x21, 0xFF);
    outb(0xA1, 0xFF);
    done = 1;
}

void ioapic_route(u8 pin, u8 vector, u8 dest) {
    pic_mask_all();
    ioapic_write(0x11 + 2 * pin, (u32)dest << 24);
    ioapic_write(0x10 + 2 * pin, vector); /* fixed, physical, active high, edge, unmasked */
}

void ioapic_mask(u8 pin) { ioapic_write(0x10 + 2 * pin, 1u << 16); }
