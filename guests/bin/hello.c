/* hello: prints a line and exits through debug-exit with `code=N` (default 0).
 * With `smp` on the command line it first brings up every vCPU and each reports in. */
#include "../lib/guest.h"

static void ap_report(u32 cpu) { printf("hello: cpu %u (apic %u) online\n", cpu, lapic_id()); }

void kmain(u32 magic, void *mbi) {
    serial_init();
    mb_init(magic, mbi);
    printf("Hello from a kvmbus guest!\n");
    if (cmdline_has("smp")) {
        idt_init();
        time_init();
        lapic_enable();
        u32 want = mp_cpu_count();
        printf("hello: cpu 0 (apic %u) online, %u cpus in the MP table\n", lapic_id(), want);
        u32 up = smp_start(ap_report);
        udelay(20000);
        printf("hello: %u of %u cpus online\n", up, want);
    }
    debug_exit((u8)cmdline_u64("code=", 0));
}
