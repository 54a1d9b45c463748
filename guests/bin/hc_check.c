/* hc-check: the hypercall gateway from the guest's side (ABI v1). Prints
 * "hc-check: <part> ok" per part and "FAIL ..." per failed check; exits with the count.
 *  sync     built-ins 0-3, ENOSYS, a misaligned block (EINVAL)
 *  ring     `ring=N` ECHO calls (default 1000000), every result checked
 *  same     sync and ring give identical results (SUM, and KV at `kv=BASE` if given)
 *  bad      ring ENOSYS, EFAULT (buffer outside RAM), malformed chain (used len 0)
 *  irq      completions raise the queue's MSI-X vector and ISR
 *  smp      with `smp`, one queue per vCPU, each vCPU `percpu=N` ECHO calls
 *  relay    with `relay=BASE`: the external KV service over the sync path and a ring
 *  direct   with `direct=BASE dq=Q`: the same through the queue the backend owns
 *  kill     with `kill=BASE`: call LEN until EBUSY shows up, then until OK again
 * `hold=MS` keeps the VM up that long before it exits. */
#include "../lib/guest.h"
#include "../lib/hc.h"
#include "../lib/irqt.h"

static u32 failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; printf("FAIL "); printf(__VA_ARGS__); printf("\n"); } } while (0)

static struct hc gw;
static struct hq queues[8];
static volatile u32 smp_done, smp_bad;
static u32 percpu;

static i64 sync_call(u32 nr, u64 a0, u64 a1, u32 *status) {
    static struct hc_block b[MAX_CPUS];
    struct hc_block *blk = &b[lapic_id() % MAX_CPUS];
    memset(blk, 0, sizeof(*blk));
    blk->nr = nr; blk->args[0] = a0; blk->args[1] = a1;
    blk->status = 0xFFFF;
    hc_call(&gw, blk);
    *status = blk->status;
    return blk->ret;
}

/* One call through queue r, polled. */
static i64 ring_call(struct hq *r, u32 nr, u64 a0, u64 a1, u32 *status) {
    u64 args[6] = {a0, a1, 0, 0, 0, 0};
    hq_post(r, nr, args);
    hq_notify(r);
    int got;
    while ((got = hq_reap(r)) < 0) cpu_relax();
    *status = r->resp[got].status;
    i64 ret = r->resp[got].ret;
    hq_release(r, got);
    return ret;
}

/* `n` ECHO calls on r in batches; returns the number of wrong results. */
static u32 echo_storm(struct hq *r, u32 n, u64 salt) {
    u32 bad = 0, sent = 0, done = 0;
    while (done < n) {
        u32 posted = 0;
        while (sent < n && r->nfree) {
            u64 args[6] = {salt + sent, 0, 0, 0, 0, 0};
            hq_post(r, HC_ECHO, args);
            sent++;
            posted++;
        }
        if (posted) hq_notify(r);
        int k;
        while ((k = hq_reap(r)) >= 0) {
            u64 want = r->req[k].args[0]; /* ECHO returns what was sent */
            if (r->resp[k].status != HC_OK || (u64)r->resp[k].ret != want || r->used_len[k] != 16) bad++;
            hq_release(r, k);
            done++;
        }
    }
    return bad;
}

static void ap_calls(u32 cpu) {
    if (cpu < gw.queues && cpu < 8) {
        struct hq *r = &queues[cpu];
        if (!hq_init(&gw, r, (u16)cpu, 0xFFFF, 0)) atomic_inc(&smp_bad);
        else atomic_add(&smp_bad, echo_storm(r, percpu, (u64)cpu << 40));
    }
    atomic_inc(&smp_done);
}

/* Waits (up to 20 s) until the service at `base` answers LEN with OK: a backend
 * process connects when it is ready. */
static void wait_service(u32 base) {
    u32 st = HC_EBUSY;
    u64 end = now_us() + 20000000;
    while (now_us() < end) {
        sync_call(base + 3, 0, 0, &st);
        if (st == HC_OK) return;
        udelay(50000);
    }
    CHECK(0, "service %x never answered (status %u)", base, st);
}

static void kv_checks(const char *what, u32 base, struct hq *r) {
    u32 st;
    i64 v;
    u64 key = 0x1000 + base;
    if (r) v = ring_call(r, base + 0, key, 4242, &st); else v = sync_call(base + 0, key, 4242, &st);
    CHECK(st == HC_OK, "%s PUT status %u", what, st);
    if (r) v = ring_call(r, base + 1, key, 0, &st); else v = sync_call(base + 1, key, 0, &st);
    CHECK(st == HC_OK && v == 4242, "%s GET %lld status %u", what, v, st);
    if (r) v = ring_call(r, base + 1, key + 1, 0, &st); else v = sync_call(base + 1, key + 1, 0, &st);
    CHECK(st == HC_EINVAL, "%s GET of an absent key: status %u", what, st);
    if (r) v = ring_call(r, base + 3, 0, 0, &st); else v = sync_call(base + 3, 0, 0, &st);
    CHECK(st == HC_OK && v >= 1, "%s LEN %lld status %u", what, v, st);
}

void kmain(u32 magic, void *mbi) {
    boot_init(magic, mbi);
    if (!hc_open(&gw)) { printf("FAIL no hypercall gateway\n"); debug_exit(1); }
    printf("hc-check: gateway %02x:%02x.%u io %x, %u queues of up to %u\n", gw.bus, gw.dev, gw.fn, gw.io,
           gw.queues, gw.max_queue);
    CHECK(inl(gw.io + 0x04) & 3, "FEATURES %x lacks SYNC|RING", inl(gw.io + 0x04));
    u32 st;

    /* sync */
    i64 v = sync_call(HC_NOP, 7, 0, &st);
    CHECK(st == HC_OK && v == 0, "NOP %lld/%u", v, st);
    v = sync_call(HC_ECHO, 0x123456789ull, 0, &st);
    CHECK(st == HC_OK && v == 0x123456789ll, "ECHO %llx/%u", v, st);
    { static struct hc_block b; memset(&b, 0, sizeof b); b.nr = HC_SUM;
      for (int i = 0; i < 6; i++) b.args[i] = 0xFFFFFFFFFFFFFFF0ull + (u64)i;
      hc_call(&gw, &b);
      CHECK(b.status == HC_OK && (u64)b.ret == (u64)(6 * 0xFFFFFFFFFFFFFFF0ull + 15), "SUM wraps: %llx", b.ret); }
    i64 t1 = sync_call(HC_TIME, 0, 0, &st);
    udelay(1000);
    i64 t2 = sync_call(HC_TIME, 0, 0, &st);
    CHECK(st == HC_OK && t1 > 0 && t2 > t1, "HOST_TIME_NS %lld then %lld", t1, t2);
    sync_call(0x99, 0, 0, &st);
    CHECK(st == HC_ENOSYS, "nr 0x99 status %u, want ENOSYS", st);
    { static u8 raw[96] __attribute__((aligned(8)));
      struct hc_block *mis = (struct hc_block *)(raw + 4);
      mis->nr = HC_ECHO; mis->status = 0xFFFF;
      hc_call(&gw, mis);
      CHECK(mis->status == HC_EINVAL, "misaligned block status %u, want EINVAL", mis->status); }
    printf("hc-check: sync ok\n");

    /* ring */
    struct hq *r0 = &queues[0];
    CHECK(hq_init(&gw, r0, 0, 0xFFFF, 0), "queue 0 did not enable");
    u32 n = (u32)cmdline_u64("ring=", 1000000);
    u64 c0 = rdtsc();
    u32 bad = echo_storm(r0, n, 0);
    u64 cyc = rdtsc() - c0;
    CHECK(bad == 0, "ring: %u of %u ECHO results wrong", bad, n);
    printf("hc-check: ring ok: %u ECHO calls checked, %llu cycles each\n", n, udiv64(cyc, n ? n : 1, NULL));

    /* same */
    for (u32 i = 0; i < 64; i++) {
        u32 s1, s2;
        i64 a = sync_call(HC_SUM, i * 0x9E3779B97F4A7C15ull, i, &s1);
        i64 b = ring_call(r0, HC_SUM, i * 0x9E3779B97F4A7C15ull, i, &s2);
        CHECK(a == b && s1 == s2 && s1 == HC_OK, "sync/ring SUM %u: %llx/%u vs %llx/%u", i, a, s1, b, s2);
    }
    u32 kv = (u32)cmdline_u64("kv=", 0);
    if (kv) { kv_checks("kv sync", kv, NULL); kv_checks("kv ring", kv, r0); }
    printf("hc-check: same ok\n");

    /* bad */
    ring_call(r0, 0x99, 0, 0, &st);
    CHECK(st == HC_ENOSYS, "ring nr 0x99 status %u", st);
    { int k = hq_post(r0, HC_ECHO, NULL); /* re-point its request outside RAM */
      r0->avail.idx--; r0->desc[2 * k].addr = 0xF0000000u; barrier(); r0->avail.idx++;
      hq_notify(r0);
      int g; while ((g = hq_reap(r0)) < 0) cpu_relax();
      CHECK(r0->resp[g].status == HC_EFAULT, "buffer outside RAM: status %u", r0->resp[g].status);
      r0->desc[2 * g].addr = (u32)&r0->req[g];
      hq_release(r0, g); }
    { int k = hq_post(r0, HC_ECHO, NULL); /* a lone readable descriptor */
      r0->avail.idx--; r0->desc[2 * k].flags = 0; barrier(); r0->avail.idx++;
      hq_notify(r0);
      int g; while ((g = hq_reap(r0)) < 0) cpu_relax();
      CHECK(r0->used_len[g] == 0, "malformed chain: used len %u, want 0", r0->used_len[g]);
      r0->desc[2 * g].flags = 1;
      hq_release(r0, g); }
    bad = echo_storm(r0, 1000, 77);
    CHECK(bad == 0, "queue 0 after bad chains: %u wrong", bad);
    printf("hc-check: bad ok\n");

    /* irq: queue 1 completes with MSI-X entry 1 -> vector 0x70 on this CPU */
    if (gw.queues > 1 && gw.msix_cap) {
        idt_set_handler(0x70, irq_count_handler);
        mmio_write32(gw.msix_table + 16 + 0, 0xFEE00000u | (lapic_id() << 12));
        mmio_write32(gw.msix_table + 16 + 4, 0);
        mmio_write32(gw.msix_table + 16 + 8, 0x70);
        mmio_write32(gw.msix_table + 16 + 12, 0);
        u16 ctl = pci_cfg_read16(gw.bus, gw.dev, gw.fn, gw.msix_cap + 2);
        pci_cfg_write16(gw.bus, gw.dev, gw.fn, gw.msix_cap + 2, (u16)((ctl | 0x8000) & ~0x4000));
        struct hq *r1 = &queues[1];
        CHECK(hq_init(&gw, r1, 1, 1, 1), "queue 1 did not enable");
        (void)inl(gw.io + 0x34);
        sti();
        u64 args[6] = {5, 0, 0, 0, 0, 0};
        hq_post(r1, HC_ECHO, args);
        hq_notify(r1);
        u64 end = now_us() + 2000000;
        while (irq_total(0x70) == 0 && now_us() < end) cpu_relax();
        int g = hq_reap(r1);
        CHECK(g >= 0 && r1->resp[g].ret == 5, "irq queue: no completion");
        CHECK(irq_total(0x70) >= 1, "irq queue: completion raised no interrupt");
        cli();
        printf("hc-check: irq ok\n");
    }

    /* smp: one queue per vCPU */
    if (cmdline_has("smp")) {
        percpu = (u32)cmdline_u64("percpu=", 20000);
        u32 up = smp_start(ap_calls);
        u32 want = up - 1 < (u32)gw.queues - 1 ? up - 1 : (u32)gw.queues - 1;
        u64 end = now_us() + 120000000;
        while (smp_done < up - 1 && now_us() < end) cpu_relax();
        u32 before = failures;
        CHECK(smp_done == up - 1 && smp_bad == 0, "smp: %u of %u vCPUs done, %u bad", smp_done, up - 1, smp_bad);
        if (failures == before) printf("hc-check: smp ok: %u vCPUs on their own queues\n", want);
    }

    u32 relay = (u32)cmdline_u64("relay=", 0);
    if (relay) {
        wait_service(relay);
        kv_checks("relay sync", relay, NULL);
        kv_checks("relay ring", relay, r0);
        printf("hc-check: relay ok\n");
    }
    u32 direct = (u32)cmdline_u64("direct=", 0);
    if (direct) {
        wait_service(direct);
        u16 dq = (u16)cmdline_u64("dq=", 2);
        struct hq *rd = &queues[dq % 8];
        CHECK(hq_init(&gw, rd, dq, 0xFFFF, 0), "direct queue %u did not enable", dq);
        udelay(200000); /* the VMM hands the queue to the backend */
        kv_checks("direct ring", direct, rd);
        u32 b2 = 0;
        for (u32 i = 0; i < 2000; i++) {
            i64 got = ring_call(rd, direct + 0, 0x5000 + i, i, &st);
            (void)got;
            if (st != HC_OK) b2++;
        }
        CHECK(b2 == 0, "direct: %u of 2000 PUTs failed", b2);
        printf("hc-check: direct ok\n");
    }
    u32 kill = (u32)cmdline_u64("kill=", 0);
    if (kill) {
        wait_service(kill);
        printf("hc-check: kill phase\n");
        u32 busy = 0, ok_after = 0;
        u64 end = now_us() + 60000000;
        while (now_us() < end && !(busy && ok_after)) {
            sync_call(kill + 3, 0, 0, &st);
            if (st == HC_EBUSY) busy++;
            else if (st == HC_OK && busy) ok_after++;
            udelay(20000);
        }
        CHECK(busy && ok_after, "kill: %u EBUSY, %u OK after", busy, ok_after);
        printf("hc-check: kill ok: %u EBUSY then served again\n", busy);
    }
    /* `hold=MS`: stay up a while (for a test to scrape the VM's metrics). */
    udelay(cmdline_u64("hold=", 0) * 1000);
    printf("hc-check: %u failures\n", failures);
    debug_exit((u8)failures);
}
