/* The long-mode guests' runtime: ports, MSRs, control registers, serial, reports,
 * multiboot arguments and environment, fw_cfg, ACPI, the local APIC, SMP and the IDT. */
#ifndef LM_H
#define LM_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef long i64;
typedef int i32;
typedef unsigned long uptr;

#define NULL ((void *)0)
#define MAX_CPUS 64
#define DEBUG_EXIT_PORT 0xf4

static inline void outb(u16 p, u8 v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(p)); }
static inline void outw(u16 p, u16 v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(p)); }
static inline void outl(u16 p, u32 v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(p)); }
static inline u8 inb(u16 p) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline u32 inl(u16 p) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline u32 mmio_read32(uptr a) { return *(volatile u32 *)a; }
static inline void mmio_write32(uptr a, u32 v) { *(volatile u32 *)a = v; }
static inline void pause(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
/* sti; hlt: the interrupt that ends the halt is taken after the hlt, never before. */
static inline void safe_halt(void) { __asm__ volatile("sti; hlt" ::: "memory"); }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }
static inline u64 rdtsc(void) { u32 lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((u64)hi << 32) | lo; }
static inline u64 rdmsr(u32 m) { u32 lo, hi; __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(m)); return ((u64)hi << 32) | lo; }
static inline void wrmsr(u32 m, u64 v) { __asm__ volatile("wrmsr" ::"c"(m), "a"((u32)v), "d"((u32)(v >> 32)) : "memory"); }
static inline void cpuid(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d) {
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}
#define READ_CR(n) ({ u64 v_; __asm__ volatile("mov %%cr" #n ", %0" : "=r"(v_)); v_; })
#define WRITE_CR(n, v) __asm__ volatile("mov %0, %%cr" #n ::"r"((u64)(v)) : "memory")
static inline void invlpg(uptr a) { __asm__ volatile("invlpg (%0)" ::"r"(a) : "memory"); }

/* io.c: strings, the 16550 at 0x3F8 (serialised across CPUs), reports, exit */
void *memcpy(void *d, const void *s, u64 n);
void *memset(void *d, int c, u64 n);
int memcmp(const void *a, const void *b, u64 n);
u64 strlen(const char *s);
int strcmp(const char *a, const char *b);
void serial_init(void);
void printf(const char *fmt, ...);
/* Prints "PASS: <what>" or "FAIL: <what>" and counts the result. */
void report(int ok, const char *fmt, ...);
/* Prints "SUMMARY: n tests, f unexpected failures" and returns f. */
int report_summary(void);
/* QEMU's isa-debug-exit, a 4-byte write as kvm-unit-tests does: status (code << 1) | 1. */
void lm_exit(u32 code) __attribute__((noreturn));

/* setup.c: argv from the multiboot command line (argv[0] is the kernel's name), the
 * environment from the first module's KEY=VALUE lines, as kvm-unit-tests does. */
extern u32 mb_mem_upper_kib;
extern u32 mb_mods_count;
const char *getenv(const char *key);
u32 fwcfg_cpu_count(void);
u64 str_to_u64(const char *s);
int main(int argc, char **argv, char **envp);

/* acpi.c */
void *acpi_find(const char *sig);
u16 pm_timer_port(void);   /* from the FADT; 0 if there is none */
u32 pm_timer_read(void);    /* 24 bits */
void pm_delay_us(u32 us);

/* apic.c: the local APIC in xAPIC (MMIO) or x2APIC (MSR) mode */
#define APIC_BASE 0xFEE00000u
#define APIC_ID 0x20
#define APIC_EOI 0xB0
#define APIC_SVR 0xF0
#define APIC_ICR 0x300
#define APIC_ICR2 0x310
#define APIC_LVTT 0x320
#define APIC_TMICT 0x380
#define APIC_TDCR 0x3E0
u32 apic_read(u32 reg);
void apic_write(u32 reg, u32 v);
void apic_icr(u32 dest, u32 low);
u32 apic_id(void);
void apic_eoi(void);
int x2apic_supported(void);
void x2apic_enable(void);
int x2apic_on(void);

/* cpu.c: per-CPU setup (IDT, TSS, APIC), exceptions, SMP */
struct frame {
    u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    u64 vector, error, rip, cs, rflags, rsp, ss;
};
typedef void (*handler_t)(struct frame *f);
void set_handler(u8 vector, handler_t h);
/* Arms a one-shot recovery: the next exception resumes at `resume` and records its
 * vector and error code in last_vector / last_error. */
extern volatile u64 resume_rip;
extern volatile u64 last_vector, last_error, last_cr2;
extern volatile u32 cpus_online;
extern volatile u32 cpu_apic_ids[MAX_CPUS];
void cpu_setup(u32 index);
/* INIT + SIPI (vector 0) to all but self, as kvm-unit-tests does; waits for the fw_cfg
 * CPU count (5 s at most). Returns the CPUs online, this one included. */
u32 smp_start(void);

typedef u64 jmp_buf[8];
int lm_setjmp(jmp_buf b) __attribute__((returns_twice));
void lm_longjmp(jmp_buf b, int v) __attribute__((noreturn));

#endif
