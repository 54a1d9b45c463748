#include "lm.h"

struct acpi_hdr { char sig[4]; u32 length; u8 rev, sum; char oem[6], table[8]; u32 oem_rev, creator, creator_rev; } __attribute__((packed));

static void *find_rsdp(void) {
    for (uptr a = 0xE0000; a < 0x100000; a += 16)
        if (!memcmp((void *)a, "RSD PTR ", 8)) return (void *)a;
    return NULL;
}

/* A table listed in the RSDT, by signature. */
void *acpi_find(const char *sig) {
    u8 *rsdp = find_rsdp();
    if (!rsdp) return NULL;
    struct acpi_hdr *rsdt = (struct acpi_hdr *)(uptr)*(u32 *)(rsdp + 16);
    u32 *e = (u32 *)(rsdt + 1);
    for (u32 i = 0; i < (rsdt->length - sizeof(*rsdt)) / 4; i++)
        if (!memcmp((void *)(uptr)e[i], sig, 4)) return (void *)(uptr)e[i];
    return NULL;
}

/* PM_TMR_BLK, at offset 76 of the FADT. */
u16 pm_timer_port(void) {
    u8 *f = acpi_find("FACP");
    return f ? (u16)*(u32 *)(f + 76) : 0;
}

u32 pm_timer_read(void) {
    static u16 port;
    if (!port) port = pm_timer_port();
    return inl(port) & 0xffffff;
}

/* Busy-waits `us` microseconds on the 3.579545 MHz PM timer (24-bit wrap handled). */
void pm_delay_us(u32 us) {
    u64 ticks = (u64)us * 3579545 / 1000000, seen = 0;
    u32 last = pm_timer_read();
    while (seen < ticks) {
        u32 now = pm_timer_read();
        seen += (now - last) & 0xffffff;
        last = now;
    }
}
