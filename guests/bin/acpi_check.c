/* acpi-check: finds the RSDP by the standard scan, walks the RSDT and XSDT verifying
 * every checksum, counts the MADT's local APICs against the MP table, checks the FADT's
 * blocks, the FACS and the DSDT's sleep packages, and times the PM timer against the TSC
 * (3.579545 MHz expected). Exits 0 (debug-exit code 1) when everything holds; with
 * `poweroff` on the command line it then enters S5 as an OS would, writing the DSDT's
 * \_S5 SLP_TYP with SLP_EN to PM1a_CNT. */
#include "../lib/acpi.h"

static u32 failures;

static void check(int ok, const char *what) {
    printf("acpi-check: %s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) failures++;
}

static int table_ok(void *t) {
    struct acpi_hdr *h = t;
    return t && h->length >= sizeof(*h) && h->length < 0x10000 && acpi_sum(h, h->length) == 0;
}

static void check_madt(void) {
    struct acpi_hdr *m = acpi_find("APIC");
    check(table_ok(m), "MADT checksum");
    if (!m) return;
    const u8 *b = (const u8 *)m;
    u32 lapics = 0, ioapics = 0, irq0_gsi = 0, sci_flags = 0xffff;
    for (u32 off = sizeof(*m) + 8; off + 2 <= m->length && b[off + 1]; off += b[off + 1]) {
        switch (b[off]) {
        case 0:
            if (*(const u32 *)(b + off + 4) & 1) lapics++;
            break;
        case 1:
            ioapics++;
            printf("acpi-check: I/O APIC id %u at %08x\n", b[off + 2], *(const u32 *)(b + off + 4));
            break;
        case 2:
            if (b[off + 3] == 0) irq0_gsi = *(const u32 *)(b + off + 4);
            if (b[off + 3] == 9) sci_flags = *(const u16 *)(b + off + 8);
            break;
        }
    }
    printf("acpi-check: MADT: %u local APICs, MP table: %u CPUs, SCI override flags %x\n", lapics,
           mp_cpu_count(), sci_flags);
    check(lapics == cmdline_u64("cpus=", lapics), "MADT LAPICs = vCPUs (cpus=N)");
    if (cmdline_has("mptable")) check(lapics == mp_cpu_count(), "MADT agrees with the MP table");
    check(ioapics == 1, "one I/O APIC");
    check(irq0_gsi == 2, "IRQ0 overridden to GSI 2");
}

static void check_pm_timer(u16 port) {
    /* The count is 24 bits and advances at 3.579545 MHz. */
    u32 t0 = inl(port);
    u64 c0 = rdtsc();
    udelay(100000);
    u32 t1 = inl(port);
    u64 c1 = rdtsc();
    u32 ticks = (t1 - t0) & 0xffffff;
    u64 us = udiv64((c1 - c0) * 1000, (u32)tsc_khz(), NULL);
    u64 khz = udiv64((u64)ticks * 1000, (u32)us, NULL);
    printf("acpi-check: PM timer: %u ticks in %u us = %u kHz\n", ticks, (u32)us, (u32)khz);
    check((t0 | t1) < (1u << 24), "PM timer is 24 bits");
    /* Narrower reads return the count's low bits (as QEMU 7.2 does). */
    u32 d = inl(port);
    u16 w = inw(port);
    printf("acpi-check: PM timer dword %x then word %x\n", d, w);
    check((u16)(w - (u16)d) < 0x1000, "a word read gives the count's low 16 bits");
    check(khz > 3400 && khz < 3760, "PM timer runs at 3.58 MHz (5%)");
}

void kmain(u32 magic, void *mbi) {
    boot_init(magic, mbi);
    struct acpi_rsdp *rsdp = acpi_find_rsdp();
    check(rsdp != NULL, "RSDP found in 0xE0000-0xFFFFF");
    if (!rsdp) debug_exit(2);
    printf("acpi-check: RSDP at %08x revision %u, RSDT %08x\n", (u32)rsdp, rsdp->revision, rsdp->rsdt);
    check(acpi_sum(rsdp, 20) == 0, "RSDP checksum");
    if (rsdp->revision >= 2) check(acpi_sum(rsdp, rsdp->length) == 0, "RSDP extended checksum");
    struct acpi_hdr *rsdt = (struct acpi_hdr *)rsdp->rsdt;
    check(!memcmp(rsdt->sig, "RSDT", 4) && table_ok(rsdt), "RSDT checksum");
    u32 n = (rsdt->length - sizeof(*rsdt)) / 4;
    u32 *e = (u32 *)(rsdt + 1);
    for (u32 i = 0; i < n; i++) {
        struct acpi_hdr *t = (struct acpi_hdr *)e[i];
        printf("acpi-check: RSDT[%u] %c%c%c%c at %08x length %u\n", i, t->sig[0], t->sig[1], t->sig[2],
               t->sig[3], e[i], t->length);
        check(table_ok(t), "table checksum");
    }
    if (rsdp->revision >= 2 && rsdp->xsdt >> 32 == 0 && rsdp->xsdt) {
        struct acpi_hdr *x = (struct acpi_hdr *)(u32)rsdp->xsdt;
        check(!memcmp(x->sig, "XSDT", 4) && table_ok(x), "XSDT checksum");
        u32 xn = (x->length - sizeof(*x)) / 8;
        u32 same = xn == n;
        for (u32 i = 0; same && i < n; i++) same = ((u64 *)(x + 1))[i] == e[i];
        check(same, "XSDT lists the RSDT's tables");
    }
    struct acpi_fadt *f = acpi_find("FACP");
    check(table_ok(f), "FADT checksum");
    if (!f) debug_exit(2);
    printf("acpi-check: FADT rev %u: SCI %u PM1a_EVT %x PM1a_CNT %x PM_TMR %x\n", f->h.revision,
           f->sci_int, f->pm1a_evt_blk, f->pm1a_cnt_blk, f->pm_tmr_blk);
    check(f->sci_int == 9, "SCI on IRQ 9");
    check(f->pm1_evt_len == 4 && f->pm1_cnt_len == 2 && f->pm_tmr_len == 4, "PM block lengths");
    struct acpi_facs *facs = acpi_find("FACS");
    check(facs && !memcmp(facs->sig, "FACS", 4) && facs->length >= 64 && ((u32)facs & 63) == 0,
          "FACS (64-byte aligned)");
    struct acpi_hdr *dsdt = acpi_find("DSDT");
    check(dsdt && !memcmp(dsdt->sig, "DSDT", 4) && table_ok(dsdt), "DSDT checksum");
    printf("acpi-check: SLP_TYP S3 %d S5 %d\n", acpi_slp_typ("_S3_"), acpi_slp_typ("_S5_"));
    check(acpi_slp_typ("_S5_") >= 0, "DSDT names \\_S5");
    check_madt();
    check_pm_timer((u16)f->pm_tmr_blk);
    printf("acpi-check: %s (%u failures)\n", failures ? "FAILED" : "all ok", failures);
    if (!failures && cmdline_has("poweroff")) {
        printf("acpi-check: entering S5\n");
        outw((u16)f->pm1a_cnt_blk, (u16)(0x2000 | (acpi_slp_typ("_S5_") << 10)));
        printf("acpi-check: FAIL still running after S5\n");
    }
    debug_exit(failures ? 1 : 0);
}
