/* Guest driver for the kvmbus hypercall gateway (ABI v1, docs/hypercall-abi.md). */
#ifndef HC_H
#define HC_H
#include "guest.h"

#define HC_NOP 0
#define HC_ECHO 1
#define HC_SUM 2
#define HC_TIME 3
#define HC_OK 0
#define HC_ENOSYS 1
#define HC_EINVAL 2
#define HC_EBUSY 3
#define HC_EFAULT 4

struct hc_block { u32 nr, flags; u64 args[6]; i64 ret; u32 status, reserved; } __attribute__((aligned(8)));
struct hc_req { u32 nr, flags; u64 args[6]; };
struct hc_resp { i64 ret; u32 status, reserved; };

struct vdesc { u64 addr; u32 len; u16 flags, next; };
#define HQ_SIZE 256
#define HQ_SLOTS (HQ_SIZE / 2)
struct vavail { u16 flags, idx, ring[HQ_SIZE], used_event; };
struct vused_elem { u32 id, len; };
struct vused { u16 flags, idx; struct vused_elem ring[HQ_SIZE]; u16 avail_event; };

struct hq {
    u16 io, q;
    struct vdesc desc[HQ_SIZE] __attribute__((aligned(16)));
    struct vavail avail __attribute__((aligned(4)));
    struct vused used __attribute__((aligned(4)));
    struct hc_req req[HQ_SLOTS];
    struct hc_resp resp[HQ_SLOTS];
    u16 free[HQ_SLOTS];
    u32 nfree;
    u16 last_used;
    u32 used_len[HQ_SLOTS];
};

/* `lock` serializes the queue registers: QUEUE_SEL is one register for the whole device,
 * so two vCPUs setting up queues at once would write each other's queue. */
struct hc { u8 bus, dev, fn; u16 io; u16 max_queue; u8 queues; u8 msix_cap; uptr msix_table; volatile u32 lock; };

int hc_open(struct hc *h);
/* Synchronous call through CALL_LO; fills b->ret/status. */
void hc_call(struct hc *h, struct hc_block *b);
/* Sets up queue q (size HQ_SIZE) at the given completion vector (0xFFFF none);
 * interrupts suppressed unless `irq`. Returns 1 if the queue enabled. */
int hq_init(struct hc *h, struct hq *r, u16 q, u16 vector, int irq);
/* Takes a slot (-1 if none free), posts it (no notify). */
int hq_post(struct hq *r, u32 nr, const u64 args[6]);
void hq_notify(struct hq *r);
/* Reaps one used entry: returns its slot or -1 if none. */
int hq_reap(struct hq *r);
void hq_release(struct hq *r, int slot);
#endif
