/* lm-smp: SMP bring-up as kvm-unit-tests' smp.c and cstart64.S do it (the CPU count
 * from fw_cfg, INIT and SIPI vector 0 to all but self, every AP through the real-mode
 * trampoline into long mode), then IPI round trips to every AP and back (the vmexit
 * test's ipi), first in xAPIC mode and then with every CPU in x2APIC mode. */
#include "../lib/lm.h"

#define PING 0x40
#define PONG 0x41
#define TO_X2APIC 0x42
#define ROUNDS 16

static volatile u32 pongs, pings_seen[MAX_CPUS], switched;

/* This CPU's index, from the per-CPU pointer cpu_setup() put in GS base. */
static u32 my_index(void) {
    u32 id;
    __asm__ volatile("movl %%gs:0, %0" : "=r"(id));
    u64 p = rdmsr(0xC0000101);
    u32 k = (u32)((volatile u32 *)p - cpu_apic_ids);
    return k < MAX_CPUS && cpu_apic_ids[k] == id ? k : MAX_CPUS - 1;
}

static void on_ping(struct frame *f) {
    __sync_fetch_and_add(&pings_seen[my_index()], 1);
    apic_eoi();
    apic_icr(cpu_apic_ids[0], 0x4000 | PONG);
}

static void on_pong(struct frame *f) {
    pongs++;
    apic_eoi();
}

static void on_to_x2apic(struct frame *f) {
    apic_eoi();
    x2apic_enable();
    __sync_fetch_and_add(&switched, 1);
}

/* ROUNDS ping-pongs with each AP; returns how many came back. */
static u32 ping_all(u32 n, const char *mode) {
    u32 back = 0;
    for (u32 cpu = 1; cpu < n; cpu++) {
        u64 t = rdtsc();
        for (u32 r = 0; r < ROUNDS; r++) {
            pongs = 0;
            apic_icr(cpu_apic_ids[cpu], 0x4000 | PING);
            for (u64 t0 = rdtsc(); !pongs && rdtsc() - t0 < 20000000000ul;) pause();
            back += pongs;
        }
        printf("info: %s ipi round trip to cpu %u: %lu cycles\n", mode, cpu, (rdtsc() - t) / ROUNDS);
    }
    return back;
}

int main(int argc, char **argv, char **envp) {
    u32 n = fwcfg_cpu_count();
    printf("lm-smp: fw_cfg says %u CPU(s)\n", n);
    report(cpus_online == n, "%u of %u CPUs reached long mode", cpus_online, n);
    u32 distinct = 1;
    for (u32 a = 0; a < cpus_online; a++)
        for (u32 b = a + 1; b < cpus_online; b++) distinct &= cpu_apic_ids[a] != cpu_apic_ids[b];
    report(distinct, "APIC IDs are distinct");
    set_handler(PING, on_ping);
    set_handler(PONG, on_pong);
    set_handler(TO_X2APIC, on_to_x2apic);
    sti();
    u32 back = ping_all(cpus_online, "xapic");
    report(back == (cpus_online - 1) * ROUNDS, "xAPIC: %u IPI round trips to %u AP(s)", back, cpus_online - 1);
    for (u32 k = 1; k < cpus_online; k++) report(pings_seen[k] == ROUNDS, "xAPIC: cpu %u took %u IPIs", k, pings_seen[k]);

    if (!x2apic_supported()) {
        printf("x2APIC not supported\n");
        return report_summary();
    }
    for (u32 cpu = 1; cpu < cpus_online; cpu++) apic_icr(cpu_apic_ids[cpu], 0x4000 | TO_X2APIC);
    for (u32 spin = 0; switched < cpus_online - 1 && spin < 1000; spin++) pm_delay_us(100);
    x2apic_enable();
    report(switched == cpus_online - 1 && x2apic_on(), "every CPU switched to x2APIC mode");
    report(apic_id() == cpu_apic_ids[0], "the x2APIC ID is the xAPIC ID");
    back = ping_all(cpus_online, "x2apic");
    report(back == (cpus_online - 1) * ROUNDS, "x2APIC: %u IPI round trips to %u AP(s)", back, cpus_online - 1);
    return report_summary();
}
