/* demo: the main job. Brings up every vCPU, keeps them all busy, and prints one status
 * line per second of what each is doing, until the VM is stopped. */
#include "../lib/guest.h"

static volatile u64 work[MAX_CPUS];

static void ap_work(u32 cpu) {
    for (u32 i = 0;; i++) {
        outb(0x80, (u8)i);
        work[cpu]++;
    }
}

void kmain(u32 magic, void *mbi) {
    serial_init();
    mb_init(magic, mbi);
    idt_init();
    time_init();
    lapic_enable();
    u32 want = mp_cpu_count();
    u32 up = smp_start(ap_work);
    printf("demo: %u of %u cpus online, tsc %llu kHz, cmdline '%s'\n", up, want, tsc_khz(), mb_cmdline());
    u64 limit = cmdline_u64("seconds=", 0);
    u64 last[MAX_CPUS] = {0};
    u64 next = now_us() + 1000000;
    for (u64 sec = 1;; ) {
        outb(0x80, (u8)sec);
        work[0]++;
        if (now_us() < next) continue;
        next += 1000000;
        u64 total = 0;
        for (u32 c = 0; c < up; c++) {
            total += work[c] - last[c];
            last[c] = work[c];
        }
        printf("demo: t=%llus cpus=%u pio_exits/s=%llu\n", sec, up, total);
        if (limit && sec >= limit) debug_exit(0);
        sec++;
    }
}
