#ifndef IRQT_H
#define IRQT_H
#include "guest.h"

struct irqt { u8 bus, dev, fn, msix_cap, msi_cap; u16 io; uptr table, pba; u32 vectors; };
extern volatile u32 irq_counts[256][MAX_CPUS];
u32 irq_total(u32 vector);
/* An IDT handler that counts per vector and CPU (what irq_total reads). */
void irq_count_handler(u32 vector);
int irqt_open(struct irqt *t);
void msix_set(struct irqt *t, u32 entry, u32 apic, u32 vector, int masked);
void msix_mask(struct irqt *t, u32 entry, int masked);
int msix_pending(struct irqt *t, u32 entry);
void msix_enable(struct irqt *t, int on);
void msi_enable(struct irqt *t, u32 apic, u32 data, u32 log2n);
void irqt_fire(struct irqt *t, u32 vector, u32 count);
u32 irq_wait(u32 vector, u32 want, u64 us);
void irq_wait_halt(u32 vector, u32 want);
#endif
