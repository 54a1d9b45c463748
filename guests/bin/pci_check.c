/* pci-check: checks PCI from the guest's side and exits 0 if everything held:
 *  - CAM and ECAM (MMIO at `ecam=` base, default 0xB0000000) give identical bytes for
 *    every function; ECAM bytes 256..4095 read 0; absent functions read all-ones;
 *  - moving the irq-test device's I/O BAR and its memory BAR moves where it answers.
 * Each failed check prints "FAIL ..." and the exit code counts them. */
#include "../lib/guest.h"

static u32 failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; printf("FAIL "); printf(__VA_ARGS__); printf("\n"); } } while (0)

void kmain(u32 magic, void *mbi) {
    serial_init();
    mb_init(magic, mbi);
    uptr ecam = (uptr)cmdline_u64("ecam=", 0xB0000000u);
    struct pci_fn fns[32];
    u32 n = pci_enumerate(fns, 32);
    u32 compared = 0;
    for (u32 i = 0; i < n && i < 32; i++) {
        struct pci_fn *f = &fns[i];
        for (u16 off = 0; off < 256; off += 4) {
            u32 a = pci_cfg_read32(f->bus, f->dev, f->fn, off);
            u32 b = ecam_read32(ecam, f->bus, f->dev, f->fn, off);
            CHECK(a == b, "%02x:%02x.%u +%x cam %08x ecam %08x", f->bus, f->dev, f->fn, off, a, b);
            compared++;
        }
        for (u16 off = 0x100; off < 0x1000; off += 0x100) {
            u32 v = ecam_read32(ecam, f->bus, f->dev, f->fn, off);
            /* Beyond what a conventional device implements: zeros. */
            if (!pci_find_cap(f->bus, f->dev, f->fn, 0x10))
                CHECK(v == 0, "%02x:%02x.%u ecam +%x = %08x, want 0", f->bus, f->dev, f->fn, off, v);
        }
    }
    CHECK(ecam_read32(ecam, 0, 31, 7, 0) == 0xFFFFFFFF, "absent 00:1f.7 over ECAM");
    CHECK(pci_cfg_read32(0, 31, 7, 0) == 0xFFFFFFFF, "absent 00:1f.7 over CAM");
    printf("pci-check: %u functions, %u dwords identical over CAM and ECAM\n", n, compared);

    struct pci_fn t;
    if (!pci_find(IRQT_VENDOR, IRQT_DEVICE, &t)) {
        printf("pci-check: no irq-test device, skipping BAR moves\n");
        debug_exit((u8)failures);
    }
    u16 io = (u16)(t.bar[0] & ~3u);
    CHECK(inl(io + IRQT_ID) == IRQT_MAGIC, "irq-test I/O BAR at %x does not answer", io);
    u16 new_io = (u16)cmdline_u64("newio=", 0xE000);
    pci_cfg_write32(t.bus, t.dev, t.fn, 0x10, new_io);
    CHECK(inl(new_io + IRQT_ID) == IRQT_MAGIC, "irq-test does not answer at moved I/O BAR %x", new_io);
    CHECK(inl(io + IRQT_ID) == 0xFFFFFFFF, "old I/O BAR %x still answers", io);
    /* Decoding off: nothing answers; on again: back at the new place. */
    u16 cmd = pci_cfg_read16(t.bus, t.dev, t.fn, 0x04);
    pci_cfg_write16(t.bus, t.dev, t.fn, 0x04, cmd & ~1);
    CHECK(inl(new_io + IRQT_ID) == 0xFFFFFFFF, "I/O BAR answers with I/O decoding off");
    pci_cfg_write16(t.bus, t.dev, t.fn, 0x04, cmd);
    CHECK(inl(new_io + IRQT_ID) == IRQT_MAGIC, "I/O BAR silent after decoding on");

    uptr mem = t.bar[1] & ~0xFu;
    CHECK(mmio_read32(mem + IRQT_ID) == IRQT_MAGIC, "irq-test memory BAR at %x does not answer", mem);
    uptr new_mem = (uptr)cmdline_u64("newmem=", 0xA0000000u);
    pci_cfg_write32(t.bus, t.dev, t.fn, 0x14, new_mem);
    CHECK(mmio_read32(new_mem + IRQT_ID) == IRQT_MAGIC, "no answer at moved memory BAR %x", new_mem);
    CHECK(mmio_read32(mem + IRQT_ID) == 0xFFFFFFFF, "old memory BAR %x still answers", mem);
    printf("pci-check: BARs moved (io %x -> %x, mem %x -> %x), %u failures\n", io, new_io, mem, new_mem, failures);
    debug_exit((u8)failures);
}
