/* demo: the main job. Brings up every vCPU, lists the PCI functions it finds, keeps the
 * vCPUs busy (PIO exits; MSI-X interrupts from the irq-test device when there is one)
 * and prints one status line per second of what it is doing, until the VM is stopped
 * (or after `seconds=N`). */
#include "../lib/guest.h"
#include "../lib/irqt.h"
#include "../lib/hc.h"

static volatile u64 work[MAX_CPUS];
static struct irqt irqt;
static int have_irqt;
static volatile u32 irq_cpu = 0xFFFFFFFF;
static struct hc gw;
static struct hq ring;
static int have_gw;
static u64 sync_calls, ring_calls;

/* One sync ECHO through CALL_LO, then the ring: reap completions, refill, notify. */
static void hc_round(void) {
    static struct hc_block b;
    b.nr = HC_ECHO;
    b.args[0] = sync_calls;
    hc_call(&gw, &b);
    if (b.status == HC_OK) sync_calls++;
    int k;
    while ((k = hq_reap(&ring)) >= 0) {
        if (ring.resp[k].status == HC_OK) ring_calls++;
        hq_release(&ring, k);
    }
    u32 posted = 0;
    while (ring.nfree) {
        u64 args[6] = {ring_calls, 0, 0, 0, 0, 0};
        hq_post(&ring, HC_ECHO, args);
        posted++;
    }
    if (posted) hq_notify(&ring);
}

/* Fires one MSI-X interrupt at this CPU and halts until its handler ran. */
static void irq_round(void) {
    u32 before = irq_total(0x40);
    irqt_fire(&irqt, 0, 1);
    irq_wait_halt(0x40, before + 1);
}

static void ap_work(u32 cpu) {
    for (u32 i = 0;; i++) {
        if (cpu == irq_cpu) {
            irq_round();
        } else {
            outb(0x80, (u8)i);
        }
        work[cpu]++;
    }
}

void kmain(u32 magic, void *mbi) {
    boot_init(magic, mbi);
    struct pci_fn fns[32];
    u32 nfn = pci_enumerate(fns, 32);
    for (u32 i = 0; i < nfn && i < 32; i++)
        printf("demo: pci %02x:%02x.%u %04x:%04x class %06x\n", fns[i].bus, fns[i].dev, fns[i].fn,
               fns[i].vendor, fns[i].device, fns[i].class_rev >> 8);
    have_irqt = irqt_open(&irqt);
    have_gw = hc_open(&gw) && hq_init(&gw, &ring, 0, 0xFFFF, 0);
    u32 want = mp_cpu_count();
    if (have_irqt && want > 1) irq_cpu = 1;
    u32 up = smp_start(ap_work);
    if (have_irqt) {
        /* Aimed at the CPU that fires it, which waits for it in HLT. */
        msix_set(&irqt, 0, irq_cpu == 1 && up > 1 ? ap_apic_ids[1] : lapic_id(), 0x40, 0);
        msix_enable(&irqt, 1);
        sti();
        if (up < 2) irq_cpu = 0xFFFFFFFF;
    }
    printf("demo: %u of %u cpus online, %u pci functions, tsc %llu kHz\n", up, want, nfn, tsc_khz());
    u64 limit = cmdline_u64("seconds=", 0);
    u64 last[MAX_CPUS] = {0};
    u64 last_irqs = 0, last_sync = 0, last_ring = 0;
    u64 next = now_us() + 1000000;
    for (u64 sec = 1;;) {
        if (have_irqt && irq_cpu == 0xFFFFFFFF) irq_round();
        else if (have_gw) hc_round();
        else outb(0x80, (u8)sec);
        work[0]++;
        if (now_us() < next) continue;
        next += 1000000;
        u64 pio = 0;
        for (u32 c = 0; c < up; c++) {
            if (c != irq_cpu && !(c == 0 && have_gw)) pio += work[c] - last[c];
            last[c] = work[c];
        }
        u64 irqs = irq_total(0x40);
        printf("demo: t=%llus cpus=%u pci=%u pio_exits/s=%llu irqs/s=%llu hypercalls/s sync=%llu ring=%llu\n",
               sec, up, nfn, pio, irqs - last_irqs, sync_calls - last_sync, ring_calls - last_ring);
        last_irqs = irqs;
        last_sync = sync_calls;
        last_ring = ring_calls;
        if (limit && sec >= limit) debug_exit(0);
        sec++;
    }
}
