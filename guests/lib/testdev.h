/* QEMU's test devices as kvm-unit-tests uses them: pc-testdev (ISA) and pci-testdev. */
#ifndef TESTDEV_H
#define TESTDEV_H
#include "guest.h"

/* pc-testdev */
#define PCTD_IOPORT 0xE0        /* 32-bit scratch register */
#define PCTD_FLUSH 0xE4         /* 4-byte write of a guest-physical address */
#define PCTD_IOPORT_BYTE 0xE8   /* the scratch register, byte-served */
#define PCTD_IRQ 0x2000         /* + n: 1-byte write sets ISA IRQ n's level */
#define PCTD_IOMEM 0xFF000000u  /* 64 KiB of scratch memory behind exits */

/* pci-testdev (1b36:0005): BAR0 memory, BAR1 I/O; the selected test's header. */
#define PTD_VENDOR 0x1B36
#define PTD_DEVICE 0x0005
#define PTD_HDR_TEST 0
#define PTD_HDR_WIDTH 1
#define PTD_HDR_OFFSET 4
#define PTD_HDR_DATA 8
#define PTD_HDR_COUNT 12
#define PTD_HDR_NAME 16

struct ptd { u8 bus, dev, fn; u16 io; uptr mem; };
/* One selected test, as its header describes it; `doorbell` is the port or address. */
struct ptd_test { int io; u8 index, width; u32 offset, data; uptr doorbell; char name[32]; };

int ptd_open(struct ptd *d);
/* Selects test t (0 no-eventfd, 1 wildcard, 2 datamatch; 3 deselects) through the
 * I/O BAR (io=1) or the memory BAR (io=0); returns the header's width (0: none). */
u8 ptd_select(struct ptd *d, int io, u8 t, struct ptd_test *out);
u32 ptd_count(struct ptd *d, int io);
static inline void ptd_ring(const struct ptd_test *t, u8 v) {
    if (t->io) outb((u16)t->doorbell, v); else mmio_write8(t->doorbell, v);
}

/* IOAPIC at 0xFEC00000: routes `pin` as edge-triggered, active-high, fixed `vector` to
 * physical APIC `dest`, or masks it. Masks the 8259 PICs first (once). */
void ioapic_route(u8 pin, u8 vector, u8 dest);
void ioapic_mask(u8 pin);
#endif
