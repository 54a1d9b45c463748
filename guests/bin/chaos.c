/* chaos: the misbehaving-guest suite's guest (tests/integration/chaos.rs, docs/chaos.md).
 * One case per run, named first on the command line, with `seed=S` (xorshift64*, so a
 * failing run is reproducible from its command line) and `n=N` operations:
 *   pio      N accesses over every port 0..0xFFFF (an odd stride from the seed, so N=65536
 *            visits each port once), random width 1/2/4, read or write of a random value
 *   mmio     N random accesses over the PCI hole, ECAM, IOAPIC/LAPIC pages, pc-testdev iomem,
 *            every memory BAR of every function (MSI-X tables and PBAs included), unclaimed
 *            addresses and the top of the 4 GiB space
 *   cfg      N random config-space operations over CAM and ECAM on every function (and on
 *            absent ones): garbage writes, BAR sizing, BARs moved over each other, over RAM
 *            and over platform ports, COMMAND toggles, MSI/MSI-X enabled with garbage
 *            addresses and data, interrupts fired through whatever routes result
 *   hc       N garbage hypercalls: sync calls with random blocks at random addresses, ring
 *            queues with random geometry, descriptors, avail indices and notifies
 *   fwcfg    N fw_cfg DMA descriptors with random control, length and addresses, mixed
 *            with random accesses to the fw_cfg ports
 *   cmos     N random accesses to RTC/CMOS (0x70..0x77) and the ACPI PM block (0x600..0x60f)
 *   exits    N rounds of PIO, MMIO and config exits in a tight loop
 *   spin     spins forever with interrupts off (never ends by itself)
 *   hlt      HLT with interrupts off on every vCPU: dead vCPUs (never ends by itself)
 *   triple   the `exits` storm on every vCPU, and a triple fault on the boot CPU after N/2
 * Flags: `smp` runs the exits storm on the other vCPUs meanwhile; `wild` lets interrupt
 * messages keep delivery modes other than fixed (NMI, SMI, INIT kill the guest itself).
 * The garbage never targets the guest's own image (below 16 MiB): addresses a device may
 * write to are drawn from the junk zone [32 MiB, RAM end), from outside RAM and from edges.
 * A case that ends by itself prints "chaos: <case> done" and exits with debug-exit code 0;
 * skipped: writes to debug-exit (0xF4..0xF7), the reset register 0xCF9, the fw_cfg DMA ports
 * in `pio` (the `fwcfg` case owns them), and SLP_EN in PM1a_CNT (power-off, S3). */
#include "../lib/guest.h"
#include "../lib/hc.h"
#include "../lib/fwcfg.h"
#include "../lib/testdev.h"

#define JUNK 0x02000000u
#define IOAPIC 0xFEC00000u
#define ECAM 0xB0000000u
#define MAXF 16

static u64 rs;
static u64 rnd(void) {
    rs ^= rs >> 12;
    rs ^= rs << 25;
    rs ^= rs >> 27;
    return rs * 0x2545F4914F6CDD1DULL;
}
static u32 r32(void) { return (u32)(rnd() >> 32); }
static u32 below(u32 n) { return n ? (u32)(((rnd() >> 32) * (u64)n) >> 32) : 0; }
static u32 width(void) { return 1u << below(3); }

static int wild;
static int cx8; /* `cx8`: mmio also does 8-byte accesses (cmpxchg8b) */
static u32 trace = 0xFFFFFFFF; /* trace=K: print ops from the K-th on */
static u32 ram_end;
static u32 junk_size;
static struct pci_fn fns[MAXF];
static u32 nfns;
static u8 msi_cap[MAXF], msix_cap[MAXF];

/* An address a device may be told to write to: never the guest's own memory. */
static u64 dma_addr(void) {
    switch (below(10)) {
    case 0: return 0;
    case 1: return ram_end - 1 - below(64);
    case 2: return ram_end + below(0x1000);
    case 3: return 0xFFFFFFFFull - below(64);
    case 4: return ((u64)r32() << 32) | r32();
    case 5: return 0xFFFFFFFFFFFFFFFFull - below(64);
    case 6: return 0x80000000u + r32() % 0x7F000000u;
    default: return JUNK + below(junk_size);
    }
}
/* Where a structure the device reads (fw_cfg descriptor, call block, ring) may be: RAM
 * the guest fills itself, or memory the device cannot read whole (so uncontrolled bytes
 * never steer a device's writes into the guest's image). */
static u64 desc_addr(u32 size) {
    switch (below(12)) {
    case 0: return ram_end - 1 - below(size - 1);
    case 1: return ram_end + below(0x1000);
    case 2: return 0xFFFFFFFFull - below(16);
    case 3: return ((u64)(r32() | 1) << 32) | r32();
    case 4: return 0xFFFFFFFFFFFFFFFFull - below(16);
    case 5: return 0x80000000u + r32() % 0x7F000000u;
    default: return JUNK + (below(junk_size - size) & (below(8) ? ~15u : ~0u));
    }
}
static u32 dma_len(void) {
    switch (below(8)) {
    case 0: return 0;
    case 1: return 0xFFFFFFFFu - below(16);
    case 2: return r32();
    case 3: return junk_size;
    default: return below(64);
    }
}
static u64 arg(void) {
    switch (below(4)) {
    case 0: return below(64);
    case 1: return dma_addr();
    case 2: return dma_len();
    default: return rnd();
    }
}

/* Interrupt messages keep a fixed/lowest-priority delivery mode unless `wild`: NMI, SMI
 * and INIT would end the guest itself, which is not what the case is about. */
static u32 tame(u32 v, u32 byte) { return wild || byte > 1 ? v : v & ~(0x700u >> (8 * byte)); }

/* Writes `w` bytes of `v` to a config register of function `f` (index into fns, or -1),
 * taming writes that land on an MSI data register. */
static u32 tame_cfg(int f, u32 off, u32 v) {
    if (f < 0) return v;
    u32 dw = off & ~3u;
    if (msi_cap[f] && (dw == msi_cap[f] + 8u || dw == msi_cap[f] + 12u)) return tame(v, off & 3);
    return v;
}

static void pio_write(u16 p, u32 w, u32 v) {
    if (w == 1) outb(p, (u8)v); else if (w == 2) outw(p, (u16)v); else outl(p, v);
}
static u32 pio_read(u16 p, u32 w) {
    return w == 1 ? inb(p) : w == 2 ? inw(p) : inl(p);
}
static void mm_write(uptr a, u32 w, u32 v) {
    if (w == 1) mmio_write8(a, (u8)v); else if (w == 2) mmio_write16(a, (u16)v); else mmio_write32(a, v);
}
static u32 mm_read(uptr a, u32 w) {
    return w == 1 ? mmio_read8(a) : w == 2 ? mmio_read16(a) : mmio_read32(a);
}

/* An 8-byte access (a 32-bit guest's only one without SSE): cmpxchg8b reads 8 bytes and,
 * if they equal EDX:EAX, writes ECX:EBX. */
static void mm_cx8(uptr a, u64 expect, u64 v) {
    __asm__ volatile("lock cmpxchg8b %0"
                     : "+m"(*(volatile u64 *)a), "+A"(expect)
                     : "b"((u32)v), "c"((u32)(v >> 32))
                     : "memory", "cc");
}

static int hits(u32 p, u32 w, u32 lo, u32 hi) { return p <= hi && p + w > lo; }

static void cfg_write(int f, u8 bus, u8 dev, u8 fn, u16 off, u32 w, u32 v, int ecam) {
    v = tame_cfg(f, off, v);
    if (ecam) {
        mm_write(ECAM + ((u32)bus << 20) + ((u32)dev << 15) + ((u32)fn << 12) + off, w, v);
    } else {
        outl(0xCF8, 0x80000000u | ((u32)bus << 16) | ((u32)dev << 11) | ((u32)fn << 8) | (off & 0xFC));
        pio_write((u16)(0xCFC + (off & 3)), w, v);
    }
}

static void enumerate(void) {
    nfns = pci_enumerate(fns, MAXF);
    if (nfns > MAXF) nfns = MAXF;
    for (u32 i = 0; i < nfns; i++) {
        msi_cap[i] = pci_find_cap(fns[i].bus, fns[i].dev, fns[i].fn, 0x05);
        msix_cap[i] = pci_find_cap(fns[i].bus, fns[i].dev, fns[i].fn, 0x11);
    }
}

/* ---- pio ---- */
static u32 chaos_pio(u32 n) {
    u32 start = r32() & 0xFFFF, stride = (r32() & 0xFFFF) | 1;
    for (u32 i = 0; i < n; i++) {
        u16 p = (u16)(start + i * stride);
        u32 w = width(), v = r32();
        if (rnd() & 1) { (void)pio_read(p, w); continue; }
        if (hits(p, w, 0xF4, 0xF7) || hits(p, w, 0xCF9, 0xCF9) || hits(p, w, 0x514, 0x51B)) continue;
        if (hits(p, w, 0x604, 0x605)) v &= ~(p == 0x605 ? 0x20u : 0x2000u);
        if (hits(p, w, 0xCFC, 0xCFF) && !wild) v &= ~0x0700u; /* config data: tame MSI */
        pio_write(p, w, v);
    }
    return n;
}

/* ---- mmio ---- */
static u32 chaos_mmio(u32 n) {
    enumerate();
    for (u32 i = 0; i < n; i++) {
        u32 w = width(), v = r32(), a, k = below(10);
        int rd = rnd() & 1;
        if (k == 0) {
            a = 0x80000000u + below(0x7EC00000u);              /* the PCI hole */
        } else if (k == 1) {
            a = ECAM + (below(8) ? (below(0x20000) << 3) : (r32() & 0x0FFFFFFF)); /* bus 0 mostly */
        } else if (k == 2) {
            a = IOAPIC + (below(4) ? (below(2) << 4) : below(0x1000));
            if (!rd && (a & 0xFF) == 0x10) v = tame(v, 0);
        } else if (k == 3) {
            u32 off = below(0x1000);
            a = LAPIC_BASE + off;
            if ((off & ~3u) == 0x300 && !rd) { v = tame(v, off & 3); if (!wild) v &= ~0xC0000u; }
        } else if (k == 4) {
            a = PCTD_IOMEM + below(0x10000);
        } else if (k == 5) {
            a = ram_end + below(0x80000000u - ram_end);        /* unclaimed */
        } else if (k == 6) {
            a = 0xFF010000u + below(0x00FF0000u);              /* top of 4 GiB */
        } else {
            /* a memory BAR of some function, MSI-X tables and PBAs among them */
            struct pci_fn *f = &fns[below(nfns)];
            u32 b = below(6);
            if (!f->bar_size[b] || (f->bar[b] & 1)) continue;
            a = (f->bar[b] & ~0xFu) + below(f->bar_size[b]);
            if (a < ram_end) continue;
            if (!rd && (a & 0xF) >= 8 && (a & 0xF) < 12) v = tame(v, a & 3);
        }
        if (!rd && a < ram_end) continue;
        if (a > 0xFFFFF000u || below(4)) a &= ~(w - 1); /* mostly aligned; never past 4 GiB */
        if (cx8 && !below(8)) {
            a &= ~7u;
            mm_cx8(a, below(2) ? 0xFFFFFFFFFFFFFFFFull : 0, ((u64)r32() << 32) | tame(v, 0));
        } else if (rd) {
            (void)mm_read(a, w);
        } else {
            mm_write(a, w, v);
        }
    }
    return n;
}

/* ---- cfg ---- */
static u32 bar_target(int io) {
    static const u32 ports[] = {0, 0x20, 0x70, 0xCF8, 0xCFC, 0x3F8, 0xF4, 0x510, 0x600, 0x2000, 0xE0, 0xFFFC};
    static const u32 mems[] = {0, 0x100000, JUNK, 0xFEC00000u, 0xFEE00000u, ECAM, 0xFF000000u, 0xFFFFF000u};
    if (io) {
        if (below(2)) { struct pci_fn *f = &fns[below(nfns)]; return f->bar[below(6)] | 1; }
        return ports[below(sizeof(ports) / 4)] | 1;
    }
    if (below(2)) { struct pci_fn *f = &fns[below(nfns)]; return f->bar[below(6)] & ~1u; }
    return mems[below(sizeof(mems) / 4)];
}

static u32 chaos_cfg(u32 n) {
    enumerate();
    struct pci_fn *irqt = NULL;
    for (u32 i = 0; i < nfns; i++) if (fns[i].vendor == IRQT_VENDOR && fns[i].device == IRQT_DEVICE) irqt = &fns[i];
    for (u32 i = 0; i < n; i++) {
        int fi = below(10) ? (int)below(nfns) : -1;
        u8 bus = 0, dev, fn;
        if (fi >= 0) { dev = fns[fi].dev; fn = fns[fi].fn; }
        else { bus = (u8)below(4); dev = (u8)below(32); fn = (u8)below(8); }
        int ecam = rnd() & 1;
        u32 k = below(9);
        if (fi == 0 && k != 6 && below(4)) k = 6; /* the host bridge: mostly reads */
        switch (k) {
        case 0: { /* garbage anywhere */
            u32 w = width(), off = ecam ? below(0x1000) : below(0x100);
            off &= ~(w - 1);
            cfg_write(fi, bus, dev, fn, (u16)off, w, r32(), ecam);
            break;
        }
        case 1: { /* BAR sizing, sometimes left sized */
            u16 off = (u16)(0x10 + 4 * below(6));
            u32 old = pci_cfg_read32(bus, dev, fn, off);
            cfg_write(fi, bus, dev, fn, off, 4, 0xFFFFFFFF, ecam);
            (void)pci_cfg_read32(bus, dev, fn, off);
            if (below(4)) cfg_write(fi, bus, dev, fn, off, 4, old, ecam);
            break;
        }
        case 2: { /* move a BAR over another BAR, RAM or a platform device */
            u16 off = (u16)(0x10 + 4 * below(6));
            u32 cur = pci_cfg_read32(bus, dev, fn, off);
            cfg_write(fi, bus, dev, fn, off, 4, bar_target(cur & 1), ecam);
            break;
        }
        case 3: /* COMMAND toggles */
            cfg_write(fi, bus, dev, fn, 4, 2, r32() & 0x7FF, ecam);
            break;
        case 4: /* MSI with garbage address and data */
            if (fi >= 0 && msi_cap[fi]) {
                u8 c = msi_cap[fi];
                cfg_write(fi, bus, dev, fn, c + 4, 4, below(2) ? r32() : 0xFEE00000u | (r32() & 0xFFFF0), ecam);
                cfg_write(fi, bus, dev, fn, c + 8, 4, r32(), ecam);
                cfg_write(fi, bus, dev, fn, c + 12, 2, r32(), ecam);
                cfg_write(fi, bus, dev, fn, c + 16, 4, r32(), ecam);
                cfg_write(fi, bus, dev, fn, c + 2, 2, r32() | 1, ecam);
            }
            break;
        case 5: /* MSI-X enable, function mask, garbage table entries */
            if (fi >= 0 && msix_cap[fi]) {
                u8 c = msix_cap[fi];
                cfg_write(fi, bus, dev, fn, c + 2, 2, (r32() & 0xC000) | 0x8000, ecam);
                u32 t = pci_cfg_read32(bus, dev, fn, c + 4);
                u32 bar = pci_cfg_read32(bus, dev, fn, (u16)(0x10 + 4 * (t & 7)));
                u32 hi = (t & 7) < 5 ? pci_cfg_read32(bus, dev, fn, (u16)(0x14 + 4 * (t & 7))) : 0;
                uptr e = (bar & ~0xFu) + (t & ~7u) + 16 * below(8);
                if (!(bar & 1) && (((bar >> 1) & 3) != 2 || hi == 0) && e >= ram_end && e < 0xFEC00000u) {
                    mmio_write32(e + 0, below(2) ? r32() : 0xFEE00000u | (r32() & 0xFF000));
                    mmio_write32(e + 4, below(4) ? 0 : r32());
                    mmio_write32(e + 8, tame(r32(), 0));
                    mmio_write32(e + 12, r32() & 1);
                }
            }
            break;
        case 6: /* reads */
            (void)pci_cfg_read32(bus, dev, fn, (u16)(below(0x100) & ~3u));
            if (ecam) (void)mm_read(ECAM + ((u32)dev << 15) + ((u32)fn << 12) + below(0x1000), width());
            break;
        case 7: /* fire interrupts through whatever routes the garbage made */
            if (irqt) {
                u32 b0 = pci_cfg_read32(0, irqt->dev, irqt->fn, 0x10);
                u16 io = (u16)(b0 & 0xFFFC);
                if ((b0 & 1) && io >= 0x1000 && io <= 0xFFE0) {
                    outl(io + IRQT_MODE, below(3));
                    outl(io + IRQT_VECTOR, below(40));
                    outl(io + IRQT_FIRE, below(4) ? below(8) : r32());
                }
            }
            break;
        default: { /* restore a function's BARs and COMMAND as enumerated, so others run on */
            if (fi < 0) break;
            for (u32 b = 0; b < 6; b++) if (fns[fi].bar_size[b] || fns[fi].bar[b]) pci_cfg_write32(0, dev, fn, (u16)(0x10 + 4 * b), fns[fi].bar[b]);
            pci_cfg_write16(0, dev, fn, 4, 0x0007);
            break;
        }
        }
    }
    return n;
}

/* ---- hc ---- */
static u32 chaos_hc(u32 n) {
    struct hc h;
    if (!hc_open(&h)) { printf("chaos: no hypercall gateway\n"); debug_exit(0x20); }
    static const u32 nrs[] = {0, 1, 2, 3, 4, 0xFF, 0x100, 0x101, 0x102, 0x103, 0x104, 0x200, 0x300, 0xFFFFFFFF};
    for (u32 i = 0; i < n; i++) {
        u32 k = below(4);
        if (k < 2) { /* a synchronous call with a random block */
            u64 a = desc_addr(64);
            if (a >= JUNK && a + 64 <= ram_end) {
                struct hc_block *b = (struct hc_block *)(uptr)a;
                b->nr = below(2) ? nrs[below(sizeof(nrs) / 4)] : r32();
                b->flags = below(4) ? 0 : r32();
                for (int j = 0; j < 6; j++) b->args[j] = arg();
            }
            outl(h.io + 0x0C, (u32)(a >> 32));
            outl(h.io + 0x08, (u32)a);
        } else if (k == 2) { /* a queue with random geometry */
            u32 q = below(h.queues + 2u);
            outl(h.io + 0x10, q);
            if (below(2)) outl(h.io + 0x2C, 0);
            static const u32 sizes[] = {0, 1, 3, 16, 256, 257, 4096, 0xFFFF, 0xFFFFFFFF};
            outl(h.io + 0x14, below(2) ? 256 : sizes[below(sizeof(sizes) / 4)]);
            for (u32 reg = 0x18; reg <= 0x20; reg += 4) {
                u64 a = desc_addr(4096) & ~(below(4) ? 0xFull : 0);
                outl(h.io + reg, (u32)a);
            }
            outl(h.io + 0x24, below(4) ? 0 : r32());
            outl(h.io + 0x28, below(2) ? below(4) : r32());
            outl(h.io + 0x2C, below(4) ? 1 : r32());
            (void)inl(h.io + 0x2C);
        } else { /* fill the selected queue's rings with garbage and notify */
            u32 q = inl(h.io + 0x10);
            u32 desc = inl(h.io + 0x18), avail = inl(h.io + 0x1C);
            u32 size = inl(h.io + 0x14);
            if (!size || size > 4096) size = 256;
            if (desc >= JUNK && desc + size * 16 <= ram_end) {
                for (u32 j = 0; j < 4; j++) {
                    struct vdesc *d = (struct vdesc *)(uptr)(desc + 16 * below(size));
                    u64 a = below(2) ? JUNK + below(junk_size) : dma_addr();
                    d->addr = a; d->len = below(2) ? below(64) : dma_len();
                    d->flags = (u16)(below(2) ? below(8) : r32()); d->next = (u16)(below(2) ? below(size) : r32());
                }
            }
            if (avail >= JUNK && avail + 4 + 2 * size <= ram_end) {
                struct vavail *av = (struct vavail *)(uptr)avail;
                for (u32 j = 0; j < 4; j++) av->ring[below(size)] = (u16)(below(2) ? below(size) : r32());
                av->flags = (u16)below(2);
                av->idx = (u16)(av->idx + (below(4) ? below(8) : r32()));
            }
            mb();
            outl(h.io + 0x30, below(4) ? q : r32());
        }
    }
    return n;
}

/* ---- fwcfg ---- */
static u32 chaos_fwcfg(u32 n) {
    static const u16 keys[] = {0x00, 0x01, 0x02, 0x03, 0x05, 0x0f, 0x19, 0x20, 0x21, 0x8000, 0x4000, 0xFFFF, 0x0E};
    for (u32 i = 0; i < n; i++) {
        if (below(4) == 0) { /* the port interface */
            u16 p = (u16)(0x510 + below(4 + 8 * below(2)));
            u32 w = width();
            if (hits(p, w, 0x514, 0x51B)) p = (u16)(0x510 + below(2));
            if (i >= trace) printf("chaos: op %u port %x width %u\n", i, p, w);
            if (rnd() & 1) (void)pio_read(p, w); else pio_write(p, w, below(2) ? keys[below(13)] : r32());
            continue;
        }
        u64 da = desc_addr(16);
        if (da >= JUNK && da + 16 <= ram_end) {
            u32 *d = (u32 *)(uptr)da;
            u32 ctl = below(2) ? (1u << below(5)) | (below(2) ? FWCFG_DMA_SELECT : 0) : r32();
            if (ctl & FWCFG_DMA_SELECT) ctl = (ctl & 0xFFFFu) | ((u32)(below(2) ? keys[below(13)] : r32()) << 16);
            u64 a = dma_addr();
            u32 len = dma_len();
            if (a < 0x100000 && a + len > 0x80000) len = below(64); /* spare the guest's image */
            d[0] = bswap32(ctl);
            d[1] = bswap32(len);
            d[2] = bswap32((u32)(a >> 32));
            d[3] = bswap32((u32)a);
            if (i >= trace) printf("chaos: op %u desc %x ctl %x len %x addr %x%08x\n", i, (u32)da, ctl, len, (u32)(a >> 32), (u32)a);
        }
        mb();
        if (i >= trace) printf("chaos: op %u dma at %x%08x\n", i, (u32)(da >> 32), (u32)da);
        if (below(8)) {
            outl(0x514, bswap32((u32)(da >> 32)));
            outl(0x518, bswap32((u32)da));
        } else { /* partial writes of the address registers (a 4-byte write at 0x518 would
                  * start a transfer at a random descriptor: in the guest's own image too) */
            u32 w = below(3) ? 1u << below(2) : 4;
            u16 p = w == 4 ? 0x514 : (u16)(0x514 + (below(8) & ~(w - 1)));
            pio_write(p, w, r32());
        }
    }
    return n;
}

/* ---- cmos ---- */
static u32 chaos_cmos(u32 n) {
    for (u32 i = 0; i < n; i++) {
        u32 w = below(4) ? 1 : width(), v = r32();
        u16 p = below(2) ? (u16)(0x70 + below(8)) : (u16)(0x600 + below(16));
        if (p == 0x70 && below(2)) v = below(2) ? below(0x0E) : 0x0A + below(4); /* clock registers */
        if (rnd() & 1) { (void)pio_read(p, w); continue; }
        if (hits(p, w, 0x604, 0x605)) v &= ~(p == 0x605 ? 0x20u : 0x2000u);
        pio_write(p, w, v);
    }
    return n;
}

/* ---- storms ---- */
static void exits_round(void) {
    outb(0x80, 0);
    (void)mmio_read32(ram_end + 0x1000);
    (void)pci_cfg_read32(0, 0, 0, 0);
}
static void hlt_ap(u32 cpu) {
    (void)cpu;
    for (;;) __asm__ volatile("cli; hlt");
}
static void storm_ap(u32 cpu) {
    (void)cpu;
    cli();
    for (;;) exits_round();
}

void kmain(u32 magic, void *mbi) {
    boot_init(magic, mbi);
    cli();
    const char *cases[] = {"pio", "mmio", "cfg", "hc", "fwcfg", "cmos", "exits", "spin", "hlt", "triple"};
    const char *c = NULL;
    for (u32 i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) if (cmdline_has(cases[i])) c = cases[i];
    if (!c) { printf("chaos: no case on the command line\n"); debug_exit(0x10); }
    u64 seed = cmdline_u64("seed=", 1);
    u32 n = (u32)cmdline_u64("n=", 2000);
    wild = cmdline_has("wild");
    cx8 = cmdline_has("cx8");
    trace = (u32)cmdline_u64("trace=", 0xFFFFFFFF);
    rs = seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
    if (!rs) rs = 1;
    ram_end = mb_mem_kib() * 1024u;
    if (ram_end < JUNK + 0x100000u) { printf("chaos: needs at least 33 MiB\n"); debug_exit(0x11); }
    junk_size = ram_end - JUNK;
    printf("chaos: %s seed=%u n=%u start\n", c, (u32)seed, n);
    if (cmdline_has("smp") || !strncmp(c, "triple", 6) || !strncmp(c, "hlt", 3))
        smp_start(!strncmp(c, "hlt", 3) ? hlt_ap : storm_ap);
    u64 t0 = now_us();
    u32 done = 0;
    switch (c[0]) {
    case 'p': done = chaos_pio(n); break;
    case 'm': done = chaos_mmio(n); break;
    case 'f': done = chaos_fwcfg(n); break;
    case 'e': for (; done < n; done++) exits_round(); break;
    case 's': printf("chaos: spinning\n"); for (;;) cpu_relax();
    case 't':
        for (; done < n / 2; done++) exits_round();
        printf("chaos: triple fault now\n");
        {
            static struct { u16 limit; u32 base; } __attribute__((packed)) empty = {0, 0};
            __asm__ volatile("lidt %0; int3" ::"m"(empty));
        }
        break;
    default:
        if (c[0] == 'c' && c[1] == 'f') done = chaos_cfg(n);
        else if (c[0] == 'c') done = chaos_cmos(n);
        else if (c[0] == 'h' && c[1] == 'c') done = chaos_hc(n);
        else { printf("chaos: halting\n"); for (;;) __asm__ volatile("cli; hlt"); }
    }
    serial_init(); /* the garbage may have reprogrammed the UART */
    printf("chaos: %s done ops=%u in %u ms\n", c, done, (u32)(now_us() - t0) / 1000);
    debug_exit(0);
}
