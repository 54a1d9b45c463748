#include "lm.h"

struct idt_entry { u16 off_lo, sel; u8 ist, attr; u16 off_mid; u32 off_hi, zero; } __attribute__((packed));
struct tss { u32 r0; u64 rsp[3]; u64 r1; u64 ist[7]; u64 r2; u16 r3, iomap; } __attribute__((packed));

extern u64 isr_addrs[256];
extern u8 gdt[], gdt_tss[];
extern u8 ap_tramp_start[], ap_tramp_end[];

static struct idt_entry idt[256] __attribute__((aligned(16)));
static struct tss tss[MAX_CPUS] __attribute__((aligned(16)));
static u8 ist_stacks[MAX_CPUS][4096] __attribute__((aligned(16)));
static handler_t handlers[256];

volatile u64 resume_rip;
volatile u64 last_vector, last_error, last_cr2;
volatile u32 cpus_online = 1;
volatile u32 cpu_apic_ids[MAX_CPUS];

void set_handler(u8 vector, handler_t h) { handlers[vector] = h; }

void isr_dispatch(struct frame *f) {
    if (f->vector < 32 && resume_rip) {
        last_vector = f->vector;
        last_error = f->error;
        if (f->vector == 14) last_cr2 = READ_CR(2);
        f->rip = resume_rip;
        resume_rip = 0;
        return;
    }
    if (handlers[f->vector]) {
        handlers[f->vector](f);
        return;
    }
    printf("FAIL: unexpected vector %lu at rip %lx, error %lx\n", f->vector, f->rip, f->error);
    lm_exit(0x7d);
}

static void idt_build(void) {
    for (int v = 0; v < 256; v++) {
        u64 a = isr_addrs[v];
        idt[v] = (struct idt_entry){ (u16)a, 0x08, 0, 0x8E, (u16)(a >> 16), (u32)(a >> 32), 0 };
    }
}

/* This CPU's IDT, TSS (slot `index` of the GDT, its double-fault stack in IST1) and
 * local APIC (software-enabled, spurious vector 0xFF). */
void cpu_setup(u32 index) {
    if (index == 0) idt_build();
    struct { u16 limit; u64 base; } __attribute__((packed)) d = { sizeof(idt) - 1, (u64)idt };
    __asm__ volatile("lidt %0" ::"m"(d));

    struct tss *t = &tss[index];
    t->ist[0] = (u64)&ist_stacks[index][4096];
    t->iomap = sizeof(*t);
    u64 tbase = (u64)t, limit = sizeof(*t) - 1;
    u8 *e = gdt_tss + 16 * index;
    u64 lo = (limit & 0xffff) | (tbase & 0xffffff) << 16 | (u64)0x89 << 40 |
             ((limit >> 16) & 0xf) << 48 | ((tbase >> 24) & 0xff) << 56;
    memcpy(e, &lo, 8);
    u64 hi = tbase >> 32;
    memcpy(e + 8, &hi, 8);
    u16 sel = (u16)(e - gdt);
    __asm__ volatile("ltr %0" ::"r"(sel));
    if (index == 0) idt[8].ist = 1;

    /* As kvm-unit-tests' reset_apic + enable_apic: hardware-disable the APIC through
     * its base MSR (which resets it), re-enable it in xAPIC mode, then software-enable
     * it with spurious vector 0xFF. */
    u64 base = rdmsr(0x1B);
    wrmsr(0x1B, base & ~0xC00ul);
    wrmsr(0x1B, (base & ~0xC00ul) | 0x800);
    apic_write(APIC_SVR, 0x1FF);
    cpu_apic_ids[index] = apic_id();
    wrmsr(0xC0000101, (u64)&cpu_apic_ids[index]); /* GS base: a per-CPU pointer */
}

void ap_main(u32 index) {
    cpu_setup(index);
    __sync_fetch_and_add(&cpus_online, 1);
    for (;;) safe_halt();
}

u32 smp_start(void) {
    u32 want = fwcfg_cpu_count();
    if (want <= 1) return 1;
    /* The trampoline goes to physical page 0 (SIPI vector 0), as kvm-unit-tests puts it;
     * a string move, since C may not store through address 0. */
    u64 n = (u64)(ap_tramp_end - ap_tramp_start);
    void *dst = 0, *src = ap_tramp_start;
    __asm__ volatile("cld; rep movsb" : "+D"(dst), "+S"(src), "+c"(n) :: "memory");
    apic_icr(0, 0xC4500); /* INIT, assert, all excluding self */
    apic_icr(0, 0xC4600); /* STARTUP, vector 0, all excluding self */
    for (u32 ms = 0; cpus_online < want && ms < 5000; ms++) pm_delay_us(1000);
    if (cpus_online != want)
        printf("FAIL: smp: %u of %u CPUs came online\n", cpus_online, want);
    return cpus_online;
}
