/* ACPI tables and fixed hardware from the guest's side: the RSDP scan, table lookup
 * with checksums, and the FADT fields the checks use. Shared by acpi-check and s3-check. */
#ifndef GUEST_ACPI_H
#define GUEST_ACPI_H
#include "guest.h"

struct acpi_hdr {
    char sig[4];
    u32 length;
    u8 revision, checksum;
    char oem_id[6], oem_table_id[8];
    u32 oem_revision, creator_id, creator_revision;
} __attribute__((packed));

struct acpi_rsdp {
    char sig[8];
    u8 checksum;
    char oem_id[6];
    u8 revision;
    u32 rsdt;
    u32 length;
    u64 xsdt;
    u8 ext_checksum, reserved[3];
} __attribute__((packed));

/* The FADT up to the fields used here (ACPI 1.0 layout). */
struct acpi_fadt {
    struct acpi_hdr h;
    u32 firmware_ctrl, dsdt;
    u8 model, pm_profile;
    u16 sci_int;
    u32 smi_cmd;
    u8 acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
    u32 pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk, pm2_cnt_blk, pm_tmr_blk;
    u32 gpe0_blk, gpe1_blk;
    u8 pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len;
} __attribute__((packed));

struct acpi_facs {
    char sig[4];
    u32 length, hw_signature, waking_vector, global_lock, flags;
    u64 x_waking_vector;
    u8 version;
} __attribute__((packed));

/* Sum of n bytes (0 for a valid table). */
u8 acpi_sum(const void *p, u32 n);
/* The RSDP found by the 16-byte scan of 0xE0000-0xFFFFF, or NULL. */
struct acpi_rsdp *acpi_find_rsdp(void);
/* The table with signature sig listed in the RSDT (FACS and DSDT through the FADT). */
void *acpi_find(const char *sig);
/* SLP_TYP for sleep state `s` ("_S3_", "_S5_") from the DSDT's package, -1 if absent. */
int acpi_slp_typ(const char *name);

#endif
