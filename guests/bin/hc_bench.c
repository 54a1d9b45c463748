/* hc-bench: hypercall throughput and latency per path, each timed by the TSC:
 *   sync      ECHO through CALL_LO
 *   ring      ECHO (a built-in) through queue 0, batches of 128
 *   ring-kv   LEN of the in-process key-value service (`kv=BASE`) through queue 0
 *   relay     LEN of an external relay backend (`relay=BASE`) through queue 0
 *   direct    LEN of an external direct backend (`direct=BASE`) through queue `dq`
 * For each: "hc-bench: path P calls N cycles C bad B" (throughput run of `n=N` calls)
 * and "hc-bench: path P lat ..." (`k=K` single calls, round-trip cycles each).
 * The throughput runs do O(1) guest work per batch (the available ring is filled once,
 * each batch only moves its index by 128, and the batch's last completion is checked):
 * on hosts where the guest runs under an instruction emulator, per-call guest work
 * would otherwise be what is measured. hc-check verifies every result of 1,000,000. */
#include "../lib/guest.h"
#include "../lib/hc.h"

static struct hc gw;
static struct hq q0, qd;
static u32 lat[1024];

/* Prepares every slot of r with call `nr` (args[0] = slot) once. */
static void prefill(struct hq *r, u32 nr) {
    for (u32 k = 0; k < HQ_SLOTS; k++) {
        r->req[k].nr = nr;
        r->req[k].flags = 0;
        for (int i = 0; i < 6; i++) r->req[k].args[i] = 0;
        r->req[k].args[0] = k;
    }
}

/* Slot k's head sits at ring positions k and k + HQ_SLOTS: with the index moving by
 * HQ_SLOTS per batch, every batch finds its heads already in place. */
static void prefill_avail(struct hq *r) {
    for (u32 i = 0; i < HQ_SIZE; i++) r->avail.ring[i] = (u16)(2 * (i % HQ_SLOTS));
}

/* `n` calls in batches of HQ_SLOTS; returns the number of bad completions. */
static u32 batches(struct hq *r, u32 n, int echo) {
    u32 bad = 0;
    for (u32 done = 0; done < n; done += HQ_SLOTS) {
        r->resp[HQ_SLOTS - 1].status = 0xFFFF;
        barrier();
        r->avail.idx = (u16)(r->avail.idx + HQ_SLOTS);
        hq_notify(r);
        u16 want = (u16)(r->last_used + HQ_SLOTS);
        while (*(volatile u16 *)&r->used.idx != want) barrier();
        barrier();
        r->last_used = want;
        u32 k = HQ_SLOTS - 1;
        if (r->resp[k].status != HC_OK || (echo && (u64)r->resp[k].ret != k)) bad++;
    }
    return bad;
}

static u32 one(struct hq *r) {
    u16 idx = r->avail.idx;
    r->avail.ring[idx % HQ_SIZE] = 0;
    barrier();
    r->avail.idx = (u16)(idx + 1);
    hq_notify(r);
    u16 want = (u16)(r->last_used + 1);
    while (*(volatile u16 *)&r->used.idx != want) cpu_relax();
    r->last_used = want;
    return r->resp[0].status;
}

static void report(const char *path, u32 n, u64 cycles, u32 bad, u32 k) {
    printf("hc-bench: path %s calls %u cycles %llu bad %u\n", path, n, cycles, bad);
    for (u32 i = 0; i < k; i += 16) {
        printf("hc-bench: path %s lat", path);
        for (u32 j = i; j < i + 16 && j < k; j++) printf(" %u", lat[j]);
        printf("\n");
    }
}

static void ring_path(const char *path, struct hq *r, u32 nr, u32 n, u32 k, int echo) {
    prefill(r, nr);
    prefill_avail(r);
    batches(r, HQ_SLOTS, echo); /* warm-up */
    u64 t0 = rdtsc();
    u32 bad = batches(r, n, echo);
    u64 c = rdtsc() - t0;
    for (u32 i = 0; i < k; i++) {
        u64 s = rdtsc();
        if (one(r) != HC_OK) bad++;
        lat[i] = (u32)(rdtsc() - s);
    }
    report(path, n, c, bad, k);
}

void kmain(u32 magic, void *mbi) {
    serial_init();
    mb_init(magic, mbi);
    time_init();
    if (!hc_open(&gw)) { printf("hc-bench: no gateway\n"); debug_exit(1); }
    u32 n = (u32)cmdline_u64("n=", 20480) / HQ_SLOTS * HQ_SLOTS;
    u32 k = (u32)cmdline_u64("k=", 500);
    if (k > 1024) k = 1024;

    static struct hc_block b;
    u32 bad = 0;
    u64 t0 = rdtsc();
    u32 ns = n / 8; /* sync calls are slower: fewer of them */
    for (u32 i = 0; i < ns; i++) {
        b.nr = HC_ECHO; b.args[0] = i;
        hc_call(&gw, &b);
        if (b.status != HC_OK || (u64)b.ret != i) bad++;
    }
    u64 c = rdtsc() - t0;
    for (u32 i = 0; i < k; i++) {
        u64 s = rdtsc();
        b.nr = HC_ECHO; b.args[0] = i;
        hc_call(&gw, &b);
        lat[i] = (u32)(rdtsc() - s);
    }
    report("sync", ns, c, bad, k);

    if (!hq_init(&gw, &q0, 0, 0xFFFF, 0)) { printf("hc-bench: queue 0 did not enable\n"); debug_exit(2); }
    ring_path("ring", &q0, HC_ECHO, n, k, 1);
    u32 kv = (u32)cmdline_u64("kv=", 0);
    if (kv) ring_path("ring-kv", &q0, kv + 3, n, k, 0);
    u32 relay = (u32)cmdline_u64("relay=", 0);
    if (relay) {
        static struct hc_block w;
        for (u32 i = 0; i < 400; i++) { w.nr = relay + 3; hc_call(&gw, &w); if (w.status == HC_OK) break; udelay(50000); }
        ring_path("relay", &q0, relay + 3, n, k, 0);
    }
    u32 direct = (u32)cmdline_u64("direct=", 0);
    if (direct) {
        static struct hc_block w;
        for (u32 i = 0; i < 400; i++) { w.nr = direct + 3; hc_call(&gw, &w); if (w.status == HC_OK) break; udelay(50000); }
        u16 dq = (u16)cmdline_u64("dq=", 2);
        if (!hq_init(&gw, &qd, dq, 0xFFFF, 0)) { printf("hc-bench: queue %u did not enable\n", dq); debug_exit(3); }
        udelay(300000); /* the VMM hands the queue to the backend */
        ring_path("direct", &qd, direct + 3, n, k, 0);
    }
    printf("hc-bench: tsc %llu kHz\n", tsc_khz());
    debug_exit(0);
}
