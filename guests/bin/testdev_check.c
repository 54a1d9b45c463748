/* testdev-check: QEMU's test devices checked from the guest; the same image passes under
 * kvmbus ([pc_testdev] enabled, a pci-testdev device) and under QEMU 7.2
 * (-device pc-testdev -device pci-testdev). Prints "testdev-check: <part> ok" or
 * "FAIL ..."; the exit code counts failures.
 *  pc-scratch  the scratch register at 0xE0 echoes by byte lanes; 0xE8 is the same one
 *  pc-iomem    the 64 KiB window at 0xFF000000 keeps what is written, any width
 *  pc-flush    flushing a page (port 0xE4) keeps its contents
 *  pc-irq      IRQ-line ports raise ISA IRQs through the IOAPIC: one interrupt per
 *              rising edge, none while the line stays high or low
 *  pci-<name>  for the six pci-testdev tests: header (index, width 1, offset, data,
 *              name); `n=` doorbell writes count n for no-eventfd and 0 for the eventfd
 *              variants (the writes never reach the device model: the kernel takes them) */
#include "../lib/guest.h"
#include "../lib/irqt.h"
#include "../lib/testdev.h"

static u32 failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; printf("FAIL "); printf(__VA_ARGS__); printf("\n"); } } while (0)

static volatile u32 flush_target[1024] __attribute__((aligned(4096)));

static void pc_scratch(void) {
    u32 f0 = failures;
    outl(PCTD_IOPORT, 0x12345678);
    CHECK(inl(PCTD_IOPORT) == 0x12345678, "scratch reads %08x", inl(PCTD_IOPORT));
    CHECK(inb(PCTD_IOPORT + 1) == 0x56, "byte 1 reads %02x", inb(PCTD_IOPORT + 1));
    CHECK(inw(PCTD_IOPORT + 2) == 0x1234, "word 1 reads %04x", inw(PCTD_IOPORT + 2));
    outb(PCTD_IOPORT + 2, 0xAB);
    CHECK(inl(PCTD_IOPORT) == 0x12AB5678, "after a byte write: %08x", inl(PCTD_IOPORT));
    CHECK(inl(PCTD_IOPORT_BYTE) == 0x12AB5678, "0xE8 view reads %08x", inl(PCTD_IOPORT_BYTE));
    outl(PCTD_IOPORT_BYTE, 0xCAFE0102);
    CHECK(inl(PCTD_IOPORT) == 0xCAFE0102, "after 0xE8 write: %08x", inl(PCTD_IOPORT));
    CHECK(inb(PCTD_IOPORT_BYTE + 3) == 0xCA, "0xEB reads %02x", inb(PCTD_IOPORT_BYTE + 3));
    if (failures == f0) printf("testdev-check: pc-scratch ok\n");
}

static void pc_iomem(void) {
    u32 f0 = failures;
    mmio_write32(PCTD_IOMEM + 0x100, 0xDEADBEEF);
    CHECK(mmio_read32(PCTD_IOMEM + 0x100) == 0xDEADBEEF, "iomem reads %08x", mmio_read32(PCTD_IOMEM + 0x100));
    CHECK(mmio_read8(PCTD_IOMEM + 0x101) == 0xBE, "iomem byte reads %02x", mmio_read8(PCTD_IOMEM + 0x101));
    mmio_write16(PCTD_IOMEM + 0x102, 0x1234);
    CHECK(mmio_read32(PCTD_IOMEM + 0x100) == 0x1234BEEF, "iomem after word: %08x", mmio_read32(PCTD_IOMEM + 0x100));
    mmio_write32(PCTD_IOMEM + 0xFFFC, 0x55AA55AA);
    CHECK(mmio_read32(PCTD_IOMEM + 0xFFFC) == 0x55AA55AA, "iomem end reads %08x", mmio_read32(PCTD_IOMEM + 0xFFFC));
    if (failures == f0) printf("testdev-check: pc-iomem ok\n");
}

static void pc_flush(void) {
    u32 f0 = failures;
    for (u32 i = 0; i < 1024; i++) flush_target[i] = i * 7;
    outl(PCTD_FLUSH, (u32)flush_target);
    u32 bad = 0;
    for (u32 i = 0; i < 1024; i++) bad += flush_target[i] != i * 7;
    CHECK(bad == 0, "%u words changed by a page flush", bad);
    flush_target[5] = 99;
    outl(PCTD_FLUSH, (u32)&flush_target[5]);
    CHECK(flush_target[5] == 99, "write after flush lost");
    if (failures == f0) printf("testdev-check: pc-flush ok\n");
}

static u32 wait_count(u32 vector, u32 want) {
    u64 end = now_us() + 200000;
    while (irq_total(vector) < want && now_us() < end) cpu_relax();
    return irq_total(vector);
}

static void pc_irq(u8 pin, u8 vector) {
    u32 f0 = failures;
    idt_set_handler(vector, irq_count_handler);
    ioapic_route(pin, vector, (u8)lapic_id());
    sti();
    outb(PCTD_IRQ + pin, 1);
    CHECK(wait_count(vector, 1) == 1, "irq %u: %u interrupts after raising", pin, irq_total(vector));
    outb(PCTD_IRQ + pin, 1); /* still high: no edge */
    udelay(20000);
    CHECK(irq_total(vector) == 1, "irq %u: %u interrupts while held high", pin, irq_total(vector));
    outb(PCTD_IRQ + pin, 0);
    udelay(20000);
    CHECK(irq_total(vector) == 1, "irq %u: %u interrupts after lowering", pin, irq_total(vector));
    outb(PCTD_IRQ + pin, 0x80); /* any non-zero byte raises */
    CHECK(wait_count(vector, 2) == 2, "irq %u: %u interrupts after a second edge", pin, irq_total(vector));
    outb(PCTD_IRQ + pin, 0);
    ioapic_mask(pin);
    if (failures == f0) printf("testdev-check: pc-irq %u ok (vector %x)\n", pin, vector);
}

static const char *names[6] = {"mmio-no-eventfd", "mmio-wildcard-eventfd", "mmio-datamatch-eventfd",
                               "portio-no-eventfd", "portio-wildcard-eventfd", "portio-datamatch-eventfd"};

static void pci_tests(u32 n) {
    struct ptd d;
    if (!ptd_open(&d)) { failures++; printf("FAIL no pci-testdev\n"); return; }
    printf("testdev-check: pci-testdev at %02x:%02x.%u mem %x io %x\n", d.bus, d.dev, d.fn, d.mem, d.io);
    for (int io = 0; io < 2; io++) {
        for (u8 t = 0; t < 3; t++) {
            u32 f0 = failures;
            struct ptd_test x;
            u32 i = (u32)io * 3 + t;
            u8 w = ptd_select(&d, io, t, &x);
            CHECK(w == 1, "%s: width %u", names[i], w);
            CHECK(x.index == i, "%s: index %u", names[i], x.index);
            CHECK(strlen(x.name) == strlen(names[i]) && !memcmp(x.name, names[i], strlen(names[i])),
                  "test %u is named '%s', want '%s'", i, x.name, names[i]);
            u32 want_off = (io ? 128 : 2048) + i;
            CHECK(x.offset == want_off, "%s: offset %u, want %u", names[i], x.offset, want_off);
            u32 want_data = t == 1 ? 0xCE : 0xFA;
            CHECK(x.data == want_data, "%s: data %x, want %x", names[i], x.data, want_data);
            CHECK(ptd_count(&d, io) == 0, "%s: count %u after selecting", names[i], ptd_count(&d, io));
            for (u32 k = 0; k < n; k++) ptd_ring(&x, (u8)x.data);
            u32 want = t == 0 ? n : 0;
            u32 got = ptd_count(&d, !io); /* either BAR reads the header */
            CHECK(got == want, "%s: count %u after %u doorbells, want %u", names[i], got, n, want);
            if (t == 2) {
                /* A byte that does not match leaves the kernel and is ignored there. */
                ptd_ring(&x, 0x11);
                CHECK(ptd_count(&d, io) == 0, "%s: a non-matching byte counted", names[i]);
            }
            if (failures == f0) printf("testdev-check: pci-%s ok (count %u)\n", names[i], got);
        }
    }
    struct ptd_test x;
    CHECK(ptd_select(&d, 1, 3, &x) == 0, "test 3 has width %u, want 0 (none)", x.width);
}

void kmain(u32 magic, void *mbi) {
    boot_init(magic, mbi);
    u32 n = (u32)cmdline_u64("n=", 100);
    pc_scratch();
    pc_iomem();
    pc_flush();
    pc_irq((u8)cmdline_u64("irq=", 5), 0x50);
    pc_irq(10, 0x51);
    pci_tests(n);
    printf("testdev-check: done, %u failures\n", failures);
    debug_exit((u8)failures);
}
