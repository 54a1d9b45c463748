/* irq-check: interrupts are file descriptors, checked from the guest. With the irq-test
 * device it checks, printing "irq-check: <name> ok" or "FAIL ...":
 *  paced    n=N interrupts fired one at a time are handled exactly N times;
 *  mask     a masked vector delivers nothing, its PBA bit is set, unmask delivers once;
 *  retarget changing data mid-stream delivers the next interrupt to the new vector;
 *  msi      plain MSI (multiple message) delivers vector base+i;
 *  cpus     with >1 vCPU, vector i aimed at APIC i lands on CPU i only;
 *  external (with `external`) waits for one interrupt on entry 5 raised by another process;
 *  intx     (a device with an interrupt pin) INTx, level-triggered through the I/O APIC
 *           input named by the interrupt-line register: a line left asserted is
 *           delivered again after every EOI (nothing lost); once deasserted, nothing
 *           more arrives (nothing invented), three times over.
 * Exit code: the number of failures. */
#include "../lib/guest.h"
#include "../lib/irqt.h"

static u32 failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; printf("FAIL "); printf(__VA_ARGS__); printf("\n"); } } while (0)

static void ap_idle(u32 cpu) { (void)cpu; }

/* INTx deliveries (the handler only counts; the line is driven from the main loop). */
static volatile u32 intx_seen;
static void intx_handler(u32 vector) { (void)vector; intx_seen++; }

/* I/O APIC input `pin` -> `vector` on APIC 0: fixed, level-triggered, active high. */
static void ioapic_route_level(u32 pin, u8 vector) {
    outb(0x21, 0xFF);
    outb(0xA1, 0xFF);
    mmio_write32(0xFEC00000u, 0x11 + 2 * pin);
    mmio_write32(0xFEC00010u, 0);
    mmio_write32(0xFEC00000u, 0x10 + 2 * pin);
    mmio_write32(0xFEC00010u, (1u << 15) | vector);
}

static void check_intx(struct irqt *t) {
    u8 pin = pci_cfg_read8(t->bus, t->dev, t->fn, 0x3d);
    u8 line = pci_cfg_read8(t->bus, t->dev, t->fn, 0x3c);
    if (!pin) { printf("irq-check: intx skipped: no interrupt pin\n"); return; }
    CHECK(line >= 16 && line < 24, "intx: interrupt line %u is not an I/O APIC PCI input", line);
    idt_set_handler(0x70, intx_handler);
    ioapic_route_level(line, 0x70);
    for (u32 round = 1; round <= 3; round++) {
        /* Asserted: delivered, and again after each EOI while it stays asserted. */
        u32 base = intx_seen;
        outl(t->io + IRQT_INTX, 1);
        u64 end = now_us() + 2000000;
        while (intx_seen < base + 3 && now_us() < end) cpu_relax();
        CHECK(intx_seen >= base + 3, "intx: round %u: %u deliveries while asserted, want >= 3", round,
              intx_seen - base);
        /* Deasserted: whatever was in flight lands, then nothing more. (Through a
         * resampling irqfd, a re-raise already on its way when the device deasserts
         * still arrives: one EOI round trip, which a busy host can stretch.) */
        outl(t->io + IRQT_INTX, 0);
        CHECK(inl(t->io + IRQT_INTX) == 0, "intx: round %u: line still asserted", round);
        udelay(300000);
        u32 settled = intx_seen;
        udelay(100000);
        CHECK(intx_seen == settled, "intx: round %u: %u deliveries after deassert", round, intx_seen - settled);
    }
    printf("irq-check: intx ok: line %u, re-raised after EOI while asserted, quiet once deasserted\n", line);
}

void kmain(u32 magic, void *mbi) {
    boot_init(magic, mbi);
    u32 cpus = smp_start(ap_idle);
    struct irqt t;
    if (!irqt_open(&t)) { printf("FAIL no irq-test device\n"); debug_exit(1); }
    sti();
    u32 n = (u32)cmdline_u64("n=", 10000);

    /* paced: fire one, wait for it, n times. */
    msix_set(&t, 0, 0, 0x40, 0);
    msix_enable(&t, 1);
    u64 t0 = rdtsc();
    for (u32 i = 1; i <= n; i++) {
        irqt_fire(&t, 0, 1);
        if (irq_wait(0x40, i, 1000000) != i) break;
    }
    u64 cyc = rdtsc() - t0;
    udelay(20000);
    CHECK(irq_total(0x40) == n, "paced: %u fired, %u handled", n, irq_total(0x40));
    CHECK(inl(t.io + IRQT_FIRED) == n, "paced: device says %u fired", inl(t.io + IRQT_FIRED));
    printf("irq-check: paced ok: %u interrupts, %llu cycles each round trip\n", irq_total(0x40),
           udiv64(cyc, n ? n : 1, NULL));

    /* mask: nothing delivered, pending set, exactly one on unmask. */
    msix_set(&t, 1, 0, 0x41, 1);
    u32 before = inl(t.io + IRQT_FIRED);
    irqt_fire(&t, 1, 5);
    u64 end = now_us() + 1000000;
    while (inl(t.io + IRQT_FIRED) < before + 5 && now_us() < end) cpu_relax();
    udelay(20000);
    CHECK(irq_total(0x41) == 0, "mask: %u delivered while masked", irq_total(0x41));
    CHECK(msix_pending(&t, 1), "mask: PBA bit not set");
    msix_mask(&t, 1, 0);
    irq_wait(0x41, 1, 1000000);
    udelay(50000);
    CHECK(irq_total(0x41) == 1, "mask: %u delivered on unmask, want 1", irq_total(0x41));
    CHECK(!msix_pending(&t, 1), "mask: PBA bit still set after delivery");
    /* Function mask too. */
    u16 ctl = pci_cfg_read16(t.bus, t.dev, t.fn, t.msix_cap + 2);
    pci_cfg_write16(t.bus, t.dev, t.fn, t.msix_cap + 2, ctl | 0x4000);
    irqt_fire(&t, 1, 1);
    udelay(50000);
    CHECK(irq_total(0x41) == 1, "function mask: delivered while masked");
    CHECK(msix_pending(&t, 1), "function mask: PBA bit not set");
    pci_cfg_write16(t.bus, t.dev, t.fn, t.msix_cap + 2, ctl);
    irq_wait(0x41, 2, 1000000);
    CHECK(irq_total(0x41) == 2, "function mask: %u after unmask, want 2", irq_total(0x41));
    printf("irq-check: mask ok\n");

    /* retarget: the same entry, new data, mid-stream. */
    msix_set(&t, 2, 0, 0x42, 0);
    irqt_fire(&t, 2, 1);
    irq_wait(0x42, 1, 1000000);
    mmio_write32(t.table + 2 * 16 + 8, 0x43);
    irqt_fire(&t, 2, 1);
    irq_wait(0x43, 1, 1000000);
    udelay(20000);
    CHECK(irq_total(0x42) == 1 && irq_total(0x43) == 1, "retarget: 0x42=%u 0x43=%u",
          irq_total(0x42), irq_total(0x43));
    printf("irq-check: retarget ok\n");

    /* cpus: entry 8+i aimed at APIC i, vector 0x60+i. */
    if (cpus > 1) {
        u32 k = 100;
        for (u32 c = 0; c < cpus && c < 4 && 8 + c < t.vectors; c++) msix_set(&t, 8 + c, ap_apic_ids[c], 0x60 + c, 0);
        for (u32 r = 1; r <= k; r++)
            for (u32 c = 0; c < cpus && c < 4 && 8 + c < t.vectors; c++) {
                irqt_fire(&t, 8 + c, 1);
                irq_wait(0x60 + c, r, 1000000);
            }
        for (u32 c = 0; c < cpus && c < 4 && 8 + c < t.vectors; c++) {
            u32 apic = ap_apic_ids[c];
            CHECK(irq_counts[0x60 + c][apic] == k && irq_total(0x60 + c) == k,
                  "cpus: vector %x: %u on apic %u, %u in all", 0x60 + c, irq_counts[0x60 + c][apic], apic,
                  irq_total(0x60 + c));
        }
        printf("irq-check: cpus ok: %u cpus each received their own\n", cpus < 4 ? cpus : 4);
    }

    /* external: another process holds entry 5's fd. */
    if (cmdline_has("external")) {
        msix_set(&t, 5, 0, 0x45, 0);
        printf("irq-check: waiting for an external trigger on entry 5\n");
        irq_wait(0x45, 1, 20000000);
        udelay(100000);
        CHECK(irq_total(0x45) == 1, "external: %u interrupts, want 1", irq_total(0x45));
        printf("irq-check: external ok: %u interrupt\n", irq_total(0x45));
    }

    /* msi: MSI-X off, MSI with 4 messages at 0x50. */
    msix_enable(&t, 0);
    msi_enable(&t, 0, 0x50, 2);
    irqt_fire(&t, 2, 1);
    irq_wait(0x52, 1, 1000000);
    irqt_fire(&t, 0, 1);
    irq_wait(0x50, 1, 1000000);
    udelay(20000);
    CHECK(irq_total(0x52) == 1 && irq_total(0x50) == 1, "msi: 0x50=%u 0x52=%u", irq_total(0x50), irq_total(0x52));
    printf("irq-check: msi ok\n");

    /* intx: with MSI and MSI-X off, as the PCI spec requires. */
    u16 mctl = pci_cfg_read16(t.bus, t.dev, t.fn, t.msi_cap + 2);
    pci_cfg_write16(t.bus, t.dev, t.fn, t.msi_cap + 2, (u16)(mctl & ~1));
    check_intx(&t);

    printf("irq-check: %u failures\n", failures);
    debug_exit((u8)failures);
}
