#include "guest.h"

extern char ap_tramp_start[], ap_tramp_end[];
volatile u32 cpus_online = 1;
volatile u32 ap_apic_ids[MAX_CPUS];
static void (*volatile ap_fn)(u32);

static const u8 *scan_mp(u32 start, u32 len) {
    for (u32 a = start; a + 16 <= start + len; a += 16)
        if (!memcmp((const void *)a, "_MP_", 4)) return (const u8 *)a;
    return NULL;
}

/* Counts enabled processors in the Intel MP table (1 if there is none). */
u32 mp_cpu_count(void) {
    u32 ebda = (u32)mmio_read16(0x40E) << 4;
    const u8 *fp = ebda >= 0x80000 && ebda < 0xA0000 ? scan_mp(ebda, 0x400) : NULL;
    if (!fp) fp = scan_mp(0x9FC00, 0x400);
    if (!fp) fp = scan_mp(0xF0000, 0x10000);
    if (!fp) return 1;
    const u8 *cfg = (const u8 *)*(const u32 *)(fp + 4);
    if (!cfg || memcmp(cfg, "PCMP", 4)) return 1;
    u16 entries = *(const u16 *)(cfg + 34);
    const u8 *e = cfg + 44;
    u32 cpus = 0;
    for (u16 i = 0; i < entries; i++) {
        if (e[0] == 0) {
            if (e[3] & 1) cpus++;
            e += 20;
        } else {
            e += 8;
        }
    }
    return cpus ? cpus : 1;
}

void ap_main(u32 slot) {
    idt_init();
    lapic_enable();
    ap_apic_ids[slot + 1] = lapic_id();
    atomic_inc(&cpus_online);
    if (ap_fn) ap_fn(slot + 1);
    for (;;) { sti(); __asm__ volatile("hlt"); }
}

/* INIT-SIPI-SIPI to all but self, as on real hardware; waits for the MP table's count
 * (or 300 ms when there is no table). */
u32 smp_start(void (*fn)(u32)) {
    u32 want = mp_cpu_count();
    ap_fn = fn;
    ap_apic_ids[0] = lapic_id();
    memcpy((void *)0x8000, ap_tramp_start, (u32)(ap_tramp_end - ap_tramp_start));
    lapic_ipi(0, 0x000C4500); /* INIT, all excluding self */
    udelay(10000);
    lapic_ipi(0, 0x000C4608); /* SIPI vector 0x08 -> 0x8000 */
    udelay(200);
    if (cpus_online < want) lapic_ipi(0, 0x000C4608);
    u64 deadline = now_us() + (want > 1 ? 2000000 : 300000);
    while (now_us() < deadline && (want == 1 || cpus_online < want)) cpu_relax();
    return cpus_online;
}
