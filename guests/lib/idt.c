#include "guest.h"

struct gate { u16 off_lo, sel; u8 zero, type; u16 off_hi; } __attribute__((packed));
static struct gate idt[256];
static struct { u16 limit; u32 base; } __attribute__((packed)) idtr;
static irq_handler_t handlers[256];
extern u32 isr_addrs[256];

void idt_init(void) {
    if (!idtr.base) {
        for (int i = 0; i < 256; i++) {
            idt[i].off_lo = isr_addrs[i] & 0xffff;
            idt[i].off_hi = isr_addrs[i] >> 16;
            idt[i].sel = 0x08;
            idt[i].type = 0x8E;
        }
        idtr.limit = sizeof(idt) - 1;
        idtr.base = (u32)idt;
    }
    __asm__ volatile("lidt %0" ::"m"(idtr));
}

void idt_set_handler(u8 vector, irq_handler_t h) { handlers[vector] = h; }

void isr_dispatch(struct regs *r) {
    if (r->vector < 32) {
        printf("guest exception %u (error %x) at eip %08x on apic %u\n", r->vector, r->error, r->eip,
               lapic_id());
        debug_exit(0x7d);
    }
    if (handlers[r->vector]) handlers[r->vector](r->vector);
    if (r->vector != 0xFF) lapic_eoi();
}
