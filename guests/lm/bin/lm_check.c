/* lm-check: a long-mode guest built and booted as kvm-unit-tests' x86_64 kernels are.
 * Exceptions handled and resumed through the IDT (idt_test), setjmp/longjmp (setjmp),
 * the vmexit test's exits in long mode (cpuid, unclaimed port I/O, the ACPI PM timer,
 * unclaimed MMIO, mov to CR8), CR0.WP and CR4.PGE (cr0_wp, cr4_pge), and the multiboot
 * command line and environment module (setup.c). Lines starting "info:" carry timings
 * and differ between runs; everything else is the same on every VMM. */
#include "../lib/lm.h"

#define EXITS 64
#define UNCLAIMED_PORT 0x3100
#define UNCLAIMED_MMIO 0xE0000000ul
#define TEST_2M (48ul << 20) /* a 2 MiB page the CR0.WP / CR4.PGE tests remap */

extern u64 lm_pd[2048];

#define TRY(insn, ...)                                                           \
    __asm__ volatile("lea 1f(%%rip), %%rax; mov %%rax, resume_rip(%%rip);" insn \
                     "; 1: movq $0, resume_rip(%%rip)" ::__VA_ARGS__ : "rax", "rcx", "rdx", "memory")

static void check_mode(void) {
    u64 efer = rdmsr(0xC0000080);
    report((efer & 0x500) == 0x500, "long mode (EFER.LME and EFER.LMA)");
    report((READ_CR(0) & 0x80000001) == 0x80000001 && (READ_CR(4) & 0x20), "paging with PAE");
}

static void expect(u64 vector, int has_error, u64 error, const char *what) {
    int ok = last_vector == vector && (!has_error || last_error == error);
    report(ok, "%s: vector %lu error %lx", what, last_vector, last_error);
    last_vector = 0xff;
}

static void check_exceptions(void) {
    last_vector = 0xff;
    TRY("ud2");
    expect(6, 0, 0, "#UD resumed");
    TRY("mov $0x8000000000000000, %%rcx; mov (%%rcx), %%rax");
    expect(13, 1, 0, "#GP (non-canonical) resumed");
    TRY("xor %%ecx, %%ecx; mov $1, %%eax; xor %%edx, %%edx; div %%ecx");
    expect(0, 0, 0, "#DE resumed");
    TRY("mov $0x100000000, %%rcx; mov (%%rcx), %%rax");
    report(last_cr2 == 0x100000000ul, "#PF address %lx", last_cr2);
    expect(14, 1, 0, "#PF (not present) resumed");
    /* (No INT n: the KVM-PVM hosts' emulator fails it in 64-bit mode, under QEMU too.) */
}

static void check_setjmp(void) {
    static jmp_buf j;
    static volatile int seen[10], i;
    for (int k = 0; k < 10; k++) seen[k] = 0;
    i = lm_setjmp(j);
    seen[i] = 1;
    if (i < 9) lm_longjmp(j, i + 1);
    int all = 1;
    for (int k = 0; k < 10; k++) all &= seen[k];
    report(all, "setjmp returns 0, then each longjmp value 1..9");
    static jmp_buf z;
    static volatile int zero_hits;
    if (lm_setjmp(z) == 0) { zero_hits++; lm_longjmp(z, 0); }
    report(zero_hits == 1, "longjmp(0) returns 1");
}

static void info_cycles(const char *what, u64 t0) {
    printf("info: %s %lu cycles per exit\n", what, (rdtsc() - t0) / EXITS);
}

static volatile u32 irq_50;
static void irq50(struct frame *f) { irq_50++; apic_eoi(); }

static void check_exits(void) {
    u32 a, b, c, d, a0, b0, c0, d0, same = 1;
    cpuid(0, 0, &a0, &b0, &c0, &d0);
    u64 t = rdtsc();
    for (int k = 0; k < EXITS; k++) {
        cpuid(0, 0, &a, &b, &c, &d);
        same &= a == a0 && b == b0 && c == c0 && d == d0;
    }
    info_cycles("cpuid", t);
    report(same && a0 >= 1, "cpuid x%u: the same vendor leaf every time", EXITS);

    u32 all_ones = 1;
    t = rdtsc();
    for (int k = 0; k < EXITS; k++) all_ones &= inl(UNCLAIMED_PORT) == 0xffffffffu;
    info_cycles("inl unclaimed port", t);
    report(all_ones, "inl %x x%u reads all-ones", UNCLAIMED_PORT, EXITS);

    u16 port = pm_timer_port();
    u32 prev = port ? inl(port) & 0xffffff : 0, moved = 0, sane = 1;
    t = rdtsc();
    for (int k = 0; k < EXITS && port; k++) {
        u32 now = inl(port) & 0xffffff;
        moved |= now != prev;
        sane &= ((now - prev) & 0xffffff) < 0x800000;
        prev = now;
    }
    info_cycles("inl pm timer", t);
    report(port && moved && sane, "inl of the PM timer (FADT port) x%u advances", EXITS);

    /* kvmbus answers all-ones (PCI semantics); QEMU 7.2 answers 0: the value is an
     * "info:" line and only its constancy is checked. */
    u32 first = mmio_read32(UNCLAIMED_MMIO), steady = 1;
    t = rdtsc();
    for (int k = 0; k < EXITS; k++) steady &= mmio_read32(UNCLAIMED_MMIO) == first;
    info_cycles("mmio read unclaimed", t);
    printf("info: unclaimed MMIO reads %x\n", first);
    report(steady, "MMIO read at %lx x%u exits and reads the same value", UNCLAIMED_MMIO, EXITS);

    u32 cr8_ok = 1;
    t = rdtsc();
    for (int k = 0; k < EXITS; k++) {
        WRITE_CR(8, k & 15);
        cr8_ok &= READ_CR(8) == (u64)(k & 15);
    }
    info_cycles("mov to/from cr8", t);
    WRITE_CR(8, 0);
    report(cr8_ok, "mov to/from CR8 x%u reads back", EXITS);

    /* CR8 is the task priority: 15 holds back a vector-0x50 self-IPI, 0 lets it in. */
    set_handler(0x50, irq50);
    WRITE_CR(8, 15);
    sti();
    apic_icr(0, 0x44050); /* fixed, assert, self */
    for (int k = 0; k < 1000; k++) pause();
    u32 held = irq_50 == 0;
    WRITE_CR(8, 0);
    for (int k = 0; k < 1000 && !irq_50; k++) pause();
    cli();
    report(held && irq_50 == 1, "CR8 = 15 holds a self-IPI back, CR8 = 0 delivers it");
}

/* String I/O: KVM hands a whole `rep outs` / `rep ins` to the VMM as one exit with a
 * count (the emulator test's string_io tests); each element is its own access. */
static void check_string_io(void) {
    static const char text[] = "rep outsb to the serial port\n";
    u64 n = sizeof(text) - 1;
    const void *src = text;
    __asm__ volatile("cld; rep outsb" : "+S"(src), "+c"(n) : "d"(0x3F8) : "memory");
    u16 port = pm_timer_port();
    u32 t[8];
    void *dst = t;
    n = 8;
    __asm__ volatile("cld; rep insl" : "+D"(dst), "+c"(n) : "d"(port) : "memory");
    u32 ok = port != 0;
    for (int k = 0; k < 8; k++) ok &= t[k] < (1u << 24) && (k == 0 || ((t[k] - t[k - 1]) & 0xffffff) < 0x800000);
    report(ok, "rep insl x8 from the PM timer reads 8 timer values");
}

static void set_pde(uptr va, u64 pde) {
    lm_pd[va >> 21] = pde;
    invlpg(va);
}

static void check_cr0_wp(void) {
    u64 pde = lm_pd[TEST_2M >> 21], cr0 = READ_CR(0);
    volatile u32 *p = (volatile u32 *)TEST_2M;
    *p = 1;
    set_pde(TEST_2M, pde & ~2ul); /* read-only */
    WRITE_CR(0, cr0 | (1ul << 16));
    report(READ_CR(0) & (1ul << 16), "CR0.WP set");
    last_vector = 0xff;
    TRY("movl $2, (%0)", "r"(p));
    report(last_vector == 14 && last_error == 3 && *p == 1,
           "WP=1: a supervisor write to a read-only page faults (#PF error %lx)", last_error);
    WRITE_CR(0, cr0 & ~(1ul << 16));
    report(!(READ_CR(0) & (1ul << 16)), "CR0.WP clear");
    last_vector = 0xff;
    TRY("movl $3, (%0)", "r"(p));
    report(last_vector == 0xff && *p == 3, "WP=0: the same write succeeds");
    u64 t = rdtsc();
    for (int k = 0; k < EXITS; k++) WRITE_CR(0, cr0 ^ (k & 1 ? 0 : 1ul << 16));
    info_cycles("cr0.wp toggle", t);
    WRITE_CR(0, cr0);
    set_pde(TEST_2M, pde);
}

static void check_cr4_pge(void) {
    u64 cr4 = READ_CR(4), pde = lm_pd[TEST_2M >> 21];
    volatile u32 *a = (volatile u32 *)TEST_2M, *b = (volatile u32 *)(TEST_2M + (2ul << 20));
    *a = 0xAAAA;
    *b = 0xBBBB;
    WRITE_CR(4, cr4 | 0x80);
    report(READ_CR(4) & 0x80, "CR4.PGE set");
    (void)*a; /* a global translation of the test page */
    lm_pd[TEST_2M >> 21] = lm_pd[(TEST_2M >> 21) + 1]; /* now maps B's frame, no invlpg */
    WRITE_CR(4, cr4 & ~0x80ul);
    report(!(READ_CR(4) & 0x80), "CR4.PGE clear");
    report(*a == 0xBBBB, "clearing CR4.PGE flushed the global translation");
    u64 t = rdtsc();
    for (int k = 0; k < EXITS; k++) WRITE_CR(4, cr4 ^ (k & 1 ? 0 : 0x80));
    info_cycles("cr4.pge toggle", t);
    lm_pd[TEST_2M >> 21] = pde;
    WRITE_CR(4, cr4 & ~0x80ul);
    WRITE_CR(4, cr4);
    report(*a == 0xAAAA, "the original mapping is back");
}

int main(int argc, char **argv, char **envp) {
    printf("lm-check: %u CPU(s), %u module(s)\n", fwcfg_cpu_count(), mb_mods_count);
    /* QEMU's multiboot ROM reports what SeaBIOS leaves (128 KiB less than kvmbus). */
    printf("info: mem_upper %u KiB\n", mb_mem_upper_kib);
    report(mb_mem_upper_kib >= 16 * 1024, "multiboot mem_upper is at least 16 MiB");
    for (int k = 1; k < argc; k++) printf("argv[%d] = %s\n", k, argv[k]);
    for (char **e = envp; *e; e++) printf("env %s\n", *e);
    report(argc >= 1 && argv[0][0] != 0, "argv[0] is the kernel's name");
    const char *nr = getenv("NR_CPUS");
    if (nr) report(str_to_u64(nr) == fwcfg_cpu_count(), "NR_CPUS from the environment matches fw_cfg");
    check_mode();
    check_exceptions();
    check_setjmp();
    check_exits();
    check_string_io();
    check_cr0_wp();
    check_cr4_pge();
    return report_summary();
}
