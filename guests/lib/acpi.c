#include "acpi.h"

u8 acpi_sum(const void *p, u32 n) {
    const u8 *b = p;
    u8 s = 0;
    for (u32 i = 0; i < n; i++) s += b[i];
    return s;
}

struct acpi_rsdp *acpi_find_rsdp(void) {
    for (uptr a = 0xE0000; a < 0x100000; a += 16)
        if (!memcmp((void *)a, "RSD PTR ", 8)) return (struct acpi_rsdp *)a;
    return NULL;
}

void *acpi_find(const char *sig) {
    if (!memcmp(sig, "FACS", 4) || !memcmp(sig, "DSDT", 4)) {
        struct acpi_fadt *f = acpi_find("FACP");
        if (!f) return NULL;
        return (void *)(sig[0] == 'F' ? f->firmware_ctrl : f->dsdt);
    }
    struct acpi_rsdp *rsdp = acpi_find_rsdp();
    if (!rsdp) return NULL;
    struct acpi_hdr *rsdt = (struct acpi_hdr *)rsdp->rsdt;
    u32 *e = (u32 *)(rsdt + 1);
    u32 n = (rsdt->length - sizeof(*rsdt)) / 4;
    for (u32 i = 0; i < n; i++)
        if (!memcmp((void *)e[i], sig, 4)) return (void *)e[i];
    return NULL;
}

int acpi_slp_typ(const char *name) {
    struct acpi_hdr *d = acpi_find("DSDT");
    if (!d) return -1;
    const u8 *b = (const u8 *)d;
    for (u32 i = sizeof(*d); i + 8 < d->length; i++) {
        /* NameOp "_Sx_" PackageOp PkgLength NumElements first-element */
        if (b[i] != 0x08 || memcmp(b + i + 1, name, 4) || b[i + 5] != 0x12) continue;
        const u8 *el = b + i + 8;
        if (el[0] == 0x00 || el[0] == 0x01) return el[0];
        if (el[0] == 0x0A) return el[1];
        return -1;
    }
    return -1;
}
