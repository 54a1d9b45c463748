/* Helpers for guests that drive the irq-test device and its MSI/MSI-X capabilities. */
#include "guest.h"
#include "irqt.h"

volatile u32 irq_counts[256][MAX_CPUS];

void irq_count_handler(u32 vector) {
    u32 id = lapic_id();
    if (id < MAX_CPUS) irq_counts[vector][id]++;
}

u32 irq_total(u32 vector) {
    u32 t = 0;
    for (u32 c = 0; c < MAX_CPUS; c++) t += irq_counts[vector][c];
    return t;
}

int irqt_open(struct irqt *t) {
    struct pci_fn f;
    if (!pci_find(IRQT_VENDOR, IRQT_DEVICE, &f)) return 0;
    t->bus = f.bus; t->dev = f.dev; t->fn = f.fn;
    t->io = (u16)(f.bar[0] & ~3u);
    t->msix_cap = pci_find_cap(f.bus, f.dev, f.fn, 0x11);
    t->msi_cap = pci_find_cap(f.bus, f.dev, f.fn, 0x05);
    u32 table = pci_cfg_read32(f.bus, f.dev, f.fn, t->msix_cap + 4);
    u32 pba = pci_cfg_read32(f.bus, f.dev, f.fn, t->msix_cap + 8);
    uptr bar2 = f.bar[2] & ~0xFu; /* below 4 GiB: the high dword is 0 */
    t->table = bar2 + (table & ~7u);
    t->pba = bar2 + (pba & ~7u);
    t->vectors = inl(t->io + IRQT_VECTORS);
    for (u32 v = 32; v < 255; v++) idt_set_handler((u8)v, irq_count_handler);
    return 1;
}

void msix_set(struct irqt *t, u32 entry, u32 apic, u32 vector, int masked) {
    uptr e = t->table + entry * 16;
    mmio_write32(e + 0, 0xFEE00000u | (apic << 12));
    mmio_write32(e + 4, 0);
    mmio_write32(e + 8, vector);
    mmio_write32(e + 12, masked ? 1 : 0);
}

void msix_mask(struct irqt *t, u32 entry, int masked) { mmio_write32(t->table + entry * 16 + 12, masked ? 1 : 0); }
int msix_pending(struct irqt *t, u32 entry) { return (mmio_read32(t->pba + (entry / 32) * 4) >> (entry % 32)) & 1; }

void msix_enable(struct irqt *t, int on) {
    u16 ctl = pci_cfg_read16(t->bus, t->dev, t->fn, t->msix_cap + 2);
    ctl = on ? (u16)((ctl | 0x8000) & ~0x4000) : (u16)(ctl & ~0x8000);
    pci_cfg_write16(t->bus, t->dev, t->fn, t->msix_cap + 2, ctl);
}

/* 64-bit MSI with per-vector masking: address, data base, `log2n` vectors enabled. */
void msi_enable(struct irqt *t, u32 apic, u32 data, u32 log2n) {
    u8 c = t->msi_cap;
    pci_cfg_write32(t->bus, t->dev, t->fn, c + 4, 0xFEE00000u | (apic << 12));
    pci_cfg_write32(t->bus, t->dev, t->fn, c + 8, 0);
    pci_cfg_write16(t->bus, t->dev, t->fn, c + 12, (u16)data);
    pci_cfg_write32(t->bus, t->dev, t->fn, c + 16, 0); /* unmask all */
    u16 ctl = pci_cfg_read16(t->bus, t->dev, t->fn, c + 2);
    ctl = (u16)((ctl & ~0x70) | (log2n << 4) | 1);
    pci_cfg_write16(t->bus, t->dev, t->fn, c + 2, ctl);
}

void irqt_fire(struct irqt *t, u32 vector, u32 count) {
    outl(t->io + IRQT_VECTOR, vector);
    outl(t->io + IRQT_FIRE, count);
}

/* Waits in HLT until this CPU's handler for `vector` has run `want` times in all (the
 * interrupt must target this CPU: it is what wakes the HLT). */
void irq_wait_halt(u32 vector, u32 want) {
    for (;;) {
        cli();
        if (irq_total(vector) >= want) { sti(); return; }
        __asm__ volatile("sti; hlt" ::: "memory");
    }
}

/* Waits until `cond_total` reaches `want` or `us` microseconds pass; returns the total. */
u32 irq_wait(u32 vector, u32 want, u64 us) {
    u64 end = now_us() + us;
    while (irq_total(vector) < want && now_us() < end) cpu_relax();
    return irq_total(vector);
}
