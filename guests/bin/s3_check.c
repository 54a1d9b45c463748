/* s3-check: suspends to RAM as kvm-unit-tests' s3 does and resumes at the FACS waking
 * vector. It copies a real-mode resume stub to 0x1000, points the FACS waking vector at
 * it, enables RTC wake (PM1_EN.RTC_EN), sets the RTC alarm for the next second and
 * writes SLP_TYP(S3)|SLP_EN to PM1a_CNT. The stub prints a line and writes the marker at
 * 0x600 to debug-exit: 0 (exit code 1) if the vCPU stopped at the PM1a_CNT write, 1 if it
 * ran on past it. With `nowake` RTC_EN stays clear and the machine sleeps on. */
#include "../lib/acpi.h"
#include "../lib/rtc.h"

#define RESUME_AT 0x1000
#define MARKER ((volatile u32 *)0x600)

extern char s3_resume_start[], s3_resume_end[];

__asm__(".code16\n"
        ".global s3_resume_start, s3_resume_end\n"
        "s3_resume_start:\n"
        "    mov %cs, %ax\n"
        "    mov %ax, %ds\n"
        "    mov $(s3_msg - s3_resume_start), %si\n"
        "    mov $0x3f8, %dx\n"
        "1:  lodsb\n"
        "    test %al, %al\n"
        "    jz 2f\n"
        "    out %al, %dx\n"
        "    jmp 1b\n"
        "2:  xor %ax, %ax\n"
        "    mov %ax, %ds\n"
        "    mov 0x600, %al\n"
        "    mov $0xf4, %dx\n"
        "    out %al, %dx\n"
        "3:  hlt\n"
        "    jmp 3b\n"
        "s3_msg: .asciz \"s3-check: resumed at the waking vector in real mode\\n\"\n"
        "s3_resume_end:\n"
        ".code32\n");

void kmain(u32 magic, void *mbi) {
    boot_init(magic, mbi);
    struct acpi_fadt *fadt = acpi_find("FACP");
    struct acpi_facs *facs = acpi_find("FACS");
    int typ = acpi_slp_typ("_S3_");
    if (!fadt || !facs || typ < 0) {
        printf("s3-check: FAIL no FADT/FACS/_S3 (%x %x %d)\n", (u32)fadt, (u32)facs, typ);
        debug_exit(2);
    }
    memcpy((void *)RESUME_AT, s3_resume_start, (u32)(s3_resume_end - s3_resume_start));
    facs->waking_vector = RESUME_AT;
    printf("s3-check: FACS at %x, waking vector %x, PM1a_CNT %x, SLP_TYP(S3) %d\n", (u32)facs,
           facs->waking_vector, fadt->pm1a_cnt_blk, typ);
    /* `nowake` on the command line leaves RTC_EN clear: the alarm must not wake the
     * machine, which then sleeps until the VMM is stopped. */
    if (!cmdline_has("nowake")) outw((u16)(fadt->pm1a_evt_blk + 2), 0x400); /* RTC_EN */

    /* The alarm for the next second, as s3.c sets it. */
    rtc_wait_uip(1, 1100000);
    rtc_wait_uip(0, 10000);
    rtc_in(RTC_REG_C);
    rtc_out(RTC_SECONDS_ALARM, RTC_ALARM_DONT_CARE);
    rtc_out(RTC_MINUTES_ALARM, RTC_ALARM_DONT_CARE);
    rtc_out(RTC_HOURS_ALARM, RTC_ALARM_DONT_CARE);
    rtc_out(RTC_REG_B, rtc_in(RTC_REG_B) | RTC_B_AIE);

    printf("s3-check: suspending\n");
    *MARKER = 0;
    outw((u16)fadt->pm1a_cnt_blk, (u16)(0x2000 | (typ << 10)));
    for (;;) *MARKER = 1;
}
