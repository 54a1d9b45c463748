#include "hc.h"

int hc_open(struct hc *h) {
    struct pci_fn f;
    if (!pci_find(GW_VENDOR, GW_DEVICE, &f)) return 0;
    h->lock = 0;
    h->bus = f.bus; h->dev = f.dev; h->fn = f.fn;
    h->io = (u16)(f.bar[0] & ~3u);
    u8 vc = pci_find_cap(f.bus, f.dev, f.fn, 0x09);
    if (!vc || pci_cfg_read8(f.bus, f.dev, f.fn, vc + 3) != 1) return 0;
    h->max_queue = pci_cfg_read16(f.bus, f.dev, f.fn, vc + 4);
    h->queues = pci_cfg_read8(f.bus, f.dev, f.fn, vc + 6);
    h->msix_cap = pci_find_cap(f.bus, f.dev, f.fn, 0x11);
    if (h->msix_cap) {
        u32 table = pci_cfg_read32(f.bus, f.dev, f.fn, h->msix_cap + 4);
        h->msix_table = (f.bar[table & 7] & ~0xFu) + (table & ~7u);
    }
    return inl(h->io + 0x00) == 1;
}

void hc_call(struct hc *h, struct hc_block *b) {
    outl(h->io + 0x0C, 0);
    outl(h->io + 0x08, (u32)b);
}

int hq_init(struct hc *h, struct hq *r, u16 q, u16 vector, int irq) {
    memset(r, 0, sizeof(*r));
    r->io = h->io;
    r->q = q;
    for (u32 k = 0; k < HQ_SLOTS; k++) {
        r->free[k] = (u16)k;
        struct vdesc *d = &r->desc[2 * k];
        d[0].addr = (u32)&r->req[k];
        d[0].len = sizeof(struct hc_req);
        d[0].flags = 1; /* NEXT */
        d[0].next = (u16)(2 * k + 1);
        d[1].addr = (u32)&r->resp[k];
        d[1].len = sizeof(struct hc_resp);
        d[1].flags = 2; /* WRITE */
    }
    r->nfree = HQ_SLOTS;
    r->avail.flags = irq ? 0 : 1; /* VIRTQ_AVAIL_F_NO_INTERRUPT */
    spin_lock(&h->lock);
    outl(r->io + 0x10, q);
    outl(r->io + 0x2C, 0); /* reset: registers are ignored while a queue is enabled */
    outl(r->io + 0x14, HQ_SIZE);
    outl(r->io + 0x18, (u32)r->desc);
    outl(r->io + 0x1C, (u32)&r->avail);
    outl(r->io + 0x20, (u32)&r->used);
    outl(r->io + 0x24, 0);
    outl(r->io + 0x28, vector);
    outl(r->io + 0x2C, 1);
    int on = inl(r->io + 0x2C) == 1;
    spin_unlock(&h->lock);
    return on;
}

int hq_post(struct hq *r, u32 nr, const u64 args[6]) {
    if (!r->nfree) return -1;
    int k = r->free[--r->nfree];
    r->req[k].nr = nr;
    r->req[k].flags = 0;
    for (int i = 0; i < 6; i++) r->req[k].args[i] = args ? args[i] : 0;
    r->resp[k].status = 0xFFFFFFFF;
    r->avail.ring[r->avail.idx % HQ_SIZE] = (u16)(2 * k);
    barrier();
    r->avail.idx++;
    return k;
}

void hq_notify(struct hq *r) {
    /* The avail index must be visible before used.flags is read (virtio 1.x 2.7.13.3):
     * else the device may clear NO_NOTIFY and find no new buffer, while we read the flag
     * still set and skip the notification. */
    mb();
    if (!(*(volatile u16 *)&r->used.flags & 1)) outl(r->io + 0x30, r->q);
}

int hq_reap(struct hq *r) {
    if (*(volatile u16 *)&r->used.idx == r->last_used) return -1;
    barrier();
    struct vused_elem e = r->used.ring[r->last_used % HQ_SIZE];
    r->last_used++;
    int k = (int)(e.id / 2);
    r->used_len[k] = e.len;
    return k;
}

void hq_release(struct hq *r, int slot) { r->free[r->nfree++] = (u16)slot; }
