/* The built-in guests' tiny runtime: ports, serial, time, APIC, SMP, IDT, PCI. */
#ifndef GUEST_H
#define GUEST_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef int i32;
typedef long long i64;
typedef u32 uptr;

#define NULL ((void *)0)
#define MAX_CPUS 64
#define DEBUG_EXIT_PORT 0xf4
#define POWEROFF_PORT 0x604
#define POWEROFF_VALUE 0x2000

static inline void outb(u16 p, u8 v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(p)); }
static inline void outw(u16 p, u16 v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(p)); }
static inline void outl(u16 p, u32 v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(p)); }
static inline u8 inb(u16 p) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline u16 inw(u16 p) { u16 v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline u32 inl(u16 p) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline u32 mmio_read32(uptr a) { return *(volatile u32 *)a; }
static inline void mmio_write32(uptr a, u32 v) { *(volatile u32 *)a = v; }
static inline u16 mmio_read16(uptr a) { return *(volatile u16 *)a; }
static inline void mmio_write16(uptr a, u16 v) { *(volatile u16 *)a = v; }
static inline u8 mmio_read8(uptr a) { return *(volatile u8 *)a; }
static inline void mmio_write8(uptr a, u8 v) { *(volatile u8 *)a = v; }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }
/* A full memory barrier (orders stores before later loads too: x86 otherwise lets a load
 * pass an earlier store). A locked add works on every x86, unlike mfence before SSE2. */
static inline void mb(void) { __asm__ volatile("lock; addl $0, (%%esp)" ::: "memory", "cc"); }
static inline u64 rdtsc(void) { u32 lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((u64)hi << 32) | lo; }
static inline void cpuid(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d) {
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}
static inline u32 atomic_add(volatile u32 *p, u32 v) { __asm__ volatile("lock xaddl %0, %1" : "+r"(v), "+m"(*p)::"memory"); return v; }
static inline u32 atomic_inc(volatile u32 *p) { return atomic_add(p, 1); }
/* A test-and-set spinlock (an xchg; waiters spin on plain reads). */
static inline void spin_lock(volatile u32 *l) {
    while (__sync_lock_test_and_set(l, 1))
        while (*l) cpu_relax();
}
static inline void spin_unlock(volatile u32 *l) { __sync_lock_release(l); }

/* string.c */
void *memcpy(void *d, const void *s, u32 n);
void *memset(void *d, int c, u32 n);
int memcmp(const void *a, const void *b, u32 n);
u32 strlen(const char *s);
int strncmp(const char *a, const char *b, u32 n);
u64 udiv64(u64 n, u32 d, u32 *rem);

/* serial.c: 16550 at 0x3F8, output is serialised across CPUs */
void serial_init(void);
void putc(char c);
void puts(const char *s);
void printf(const char *fmt, ...);

/* exit.c */
void debug_exit(u8 code) __attribute__((noreturn));
void poweroff(void) __attribute__((noreturn));
extern void halt_forever(void) __attribute__((noreturn));

/* boot.c: serial, multiboot info, IDT, TSC calibration and the local APIC of the boot
 * CPU: what most guests do first. */
void boot_init(u32 magic, void *mbi);

/* multiboot.c */
struct mb_info;
void mb_init(u32 magic, struct mb_info *mbi);
const char *mb_cmdline(void);
u32 mb_mem_kib(void);
/* cmdline_u64("n=", default) parses "n=123" from the command line. */
u64 cmdline_u64(const char *key, u64 dflt);
int cmdline_has(const char *word);

/* time.c: TSC calibrated from the hypervisor timing leaf or the PIT */
void time_init(void);
u64 tsc_khz(void);
u64 now_us(void);
void udelay(u64 us);

/* apic.c */
#define LAPIC_BASE 0xFEE00000u
void lapic_enable(void);
u32 lapic_id(void);
void lapic_eoi(void);
void lapic_ipi(u32 dest, u32 icr_low);

/* smp.c */
extern volatile u32 cpus_online;
u32 mp_cpu_count(void);             /* from the MP table, 1 if none */
u32 smp_start(void (*ap_fn)(u32 cpu_index)); /* returns CPUs online, BSP included */
extern volatile u32 ap_apic_ids[MAX_CPUS];

/* idt.c */
struct regs { u32 edi, esi, ebp, esp, ebx, edx, ecx, eax, vector, error, eip, cs, eflags; };
typedef void (*irq_handler_t)(u32 vector);
void idt_init(void);               /* installs the IDT on this CPU (call on every CPU) */
void idt_set_handler(u8 vector, irq_handler_t h);

/* pci.c */
u32 pci_cfg_read32(u8 bus, u8 dev, u8 fn, u16 off);
u16 pci_cfg_read16(u8 bus, u8 dev, u8 fn, u16 off);
u8 pci_cfg_read8(u8 bus, u8 dev, u8 fn, u16 off);
void pci_cfg_write32(u8 bus, u8 dev, u8 fn, u16 off, u32 v);
void pci_cfg_write16(u8 bus, u8 dev, u8 fn, u16 off, u16 v);
void pci_cfg_write8(u8 bus, u8 dev, u8 fn, u16 off, u8 v);
/* ECAM at the given base (32-bit guests reach it by MMIO). */
u32 ecam_read32(uptr base, u8 bus, u8 dev, u8 fn, u16 off);
void ecam_write32(uptr base, u8 bus, u8 dev, u8 fn, u16 off, u32 v);
struct pci_fn { u8 bus, dev, fn; u16 vendor, device; u32 class_rev; u32 bar[6]; u32 bar_size[6]; };
/* Enumerates bus 0 over CAM; fills up to max; returns the count. */
u32 pci_enumerate(struct pci_fn *out, u32 max);
/* Finds capability `id` (0 if absent). */
u8 pci_find_cap(u8 bus, u8 dev, u8 fn, u8 id);
int pci_find(u16 vendor, u16 device, struct pci_fn *out);

/* The irq-test device (kvmbus `[[device]] kind = "irq-test"`). BAR0: 32 bytes of I/O;
 * BAR1: the same registers in 4 KiB of MMIO; BAR2/3: 64-bit prefetchable memory with
 * the MSI-X table at 0 and the PBA at 0x800. */
#define IRQT_VENDOR 0x1234
#define IRQT_DEVICE 0x4954
#define IRQT_MAGIC 0x49525154u /* "TQRI" read from ID */
#define IRQT_ID 0x00       /* R: magic */
#define IRQT_VECTOR 0x04   /* RW: vector the next FIRE uses */
#define IRQT_FIRE 0x08     /* W: ask the backend thread to trigger N interrupts */
#define IRQT_FIRED 0x0C    /* R: interrupts the backend triggered, in total */
#define IRQT_PENDING 0x10  /* R: requested but not yet triggered */
#define IRQT_VECTORS 0x14  /* R: number of vectors */
#define IRQT_MODE 0x18     /* RW: 0 irqfd, 1 KVM_SIGNAL_MSI, 2 userspace exit path */
#define IRQT_PENDING_HI 0x1C /* R: high half of PENDING as of the last PENDING read */
#define IRQT_INTX 0x20     /* RW: bit 0 = INTx level (devices with an interrupt pin) */

#define GW_VENDOR 0x1234
#define GW_DEVICE 0x4843

#endif
