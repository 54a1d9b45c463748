#include "guest.h"

static volatile u32 pci_lock;
static void lock(void) { spin_lock(&pci_lock); }
static void unlock(void) { spin_unlock(&pci_lock); }

static void sel(u8 bus, u8 dev, u8 fn, u16 off) {
    outl(0xCF8, 0x80000000u | ((u32)bus << 16) | ((u32)dev << 11) | ((u32)fn << 8) | (off & 0xFC));
}
u32 pci_cfg_read32(u8 b, u8 d, u8 f, u16 o) { lock(); sel(b, d, f, o); u32 v = inl(0xCFC); unlock(); return v; }
u16 pci_cfg_read16(u8 b, u8 d, u8 f, u16 o) { lock(); sel(b, d, f, o); u16 v = inw(0xCFC + (o & 2)); unlock(); return v; }
u8 pci_cfg_read8(u8 b, u8 d, u8 f, u16 o) { lock(); sel(b, d, f, o); u8 v = inb(0xCFC + (o & 3)); unlock(); return v; }
void pci_cfg_write32(u8 b, u8 d, u8 f, u16 o, u32 v) { lock(); sel(b, d, f, o); outl(0xCFC, v); unlock(); }
void pci_cfg_write16(u8 b, u8 d, u8 f, u16 o, u16 v) { lock(); sel(b, d, f, o); outw(0xCFC + (o & 2), v); unlock(); }
void pci_cfg_write8(u8 b, u8 d, u8 f, u16 o, u8 v) { lock(); sel(b, d, f, o); outb(0xCFC + (o & 3), v); unlock(); }

static uptr ecam_addr(uptr base, u8 b, u8 d, u8 f, u16 o) {
    return base + ((u32)b << 20) + ((u32)d << 15) + ((u32)f << 12) + o;
}
u32 ecam_read32(uptr base, u8 b, u8 d, u8 f, u16 o) { return mmio_read32(ecam_addr(base, b, d, f, o)); }
void ecam_write32(uptr base, u8 b, u8 d, u8 f, u16 o, u32 v) { mmio_write32(ecam_addr(base, b, d, f, o), v); }

u8 pci_find_cap(u8 b, u8 d, u8 f, u8 id) {
    if (!(pci_cfg_read16(b, d, f, 0x06) & 0x10)) return 0;
    u8 p = pci_cfg_read8(b, d, f, 0x34) & 0xFC;
    for (int guard = 0; p && guard < 48; guard++) {
        if (pci_cfg_read8(b, d, f, p) == id) return p;
        p = pci_cfg_read8(b, d, f, p + 1) & 0xFC;
    }
    return 0;
}

/* Sizes BAR i the way firmware does: decode off, write all-ones, read back, restore. */
static void size_bars(struct pci_fn *pf) {
    u16 cmd = pci_cfg_read16(pf->bus, pf->dev, pf->fn, 0x04);
    pci_cfg_write16(pf->bus, pf->dev, pf->fn, 0x04, cmd & ~3);
    for (int i = 0; i < 6; i++) {
        u16 off = 0x10 + 4 * i;
        u32 orig = pci_cfg_read32(pf->bus, pf->dev, pf->fn, off);
        pci_cfg_write32(pf->bus, pf->dev, pf->fn, off, 0xFFFFFFFF);
        u32 mask = pci_cfg_read32(pf->bus, pf->dev, pf->fn, off);
        pci_cfg_write32(pf->bus, pf->dev, pf->fn, off, orig);
        pf->bar[i] = orig;
        if (!mask) { pf->bar_size[i] = 0; continue; }
        if (orig & 1) {
            pf->bar_size[i] = (~(mask & ~3u) + 1) & 0xFFFF;
        } else {
            pf->bar_size[i] = ~(mask & ~0xFu) + 1;
            if (((orig >> 1) & 3) == 2 && i < 5) { /* 64-bit: the upper half is part of this BAR */
                i++;
                pf->bar[i] = pci_cfg_read32(pf->bus, pf->dev, pf->fn, off + 4);
                pf->bar_size[i] = 0;
            }
        }
    }
    pci_cfg_write16(pf->bus, pf->dev, pf->fn, 0x04, cmd);
}

u32 pci_enumerate(struct pci_fn *out, u32 max) {
    u32 n = 0;
    for (u8 d = 0; d < 32; d++) {
        for (u8 f = 0; f < 8; f++) {
            u16 vendor = pci_cfg_read16(0, d, f, 0);
            if (vendor == 0xFFFF) {
                if (f == 0) break;
                continue;
            }
            if (n < max) {
                struct pci_fn *pf = &out[n];
                memset(pf, 0, sizeof(*pf));
                pf->bus = 0; pf->dev = d; pf->fn = f;
                pf->vendor = vendor;
                pf->device = pci_cfg_read16(0, d, f, 2);
                pf->class_rev = pci_cfg_read32(0, d, f, 8);
                if ((pci_cfg_read8(0, d, f, 0x0E) & 0x7F) == 0) size_bars(pf);
            }
            n++;
            if (f == 0 && !(pci_cfg_read8(0, d, f, 0x0E) & 0x80)) break;
        }
    }
    return n;
}

int pci_find(u16 vendor, u16 device, struct pci_fn *out) {
    struct pci_fn fns[32];
    u32 n = pci_enumerate(fns, 32);
    for (u32 i = 0; i < n && i < 32; i++)
        if (fns[i].vendor == vendor && fns[i].device == device) { *out = fns[i]; return 1; }
    return 0;
}
