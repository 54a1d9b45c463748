/* lm-reset: the reset control register 0xCF9 (the FADT's reset register). A byte write
 * without RST_CPU keeps only the reset type (bit 1), a dword at 0xCF8 is still the PCI
 * CAM address latch, and writing 0x06 (RST_CPU | SYS_RST) resets the machine: kvmbus
 * ends the VM with exit code 4, QEMU with -no-reboot exits 0. */
#include "../lib/lm.h"

#define RCR 0xCF9

int main(int argc, char **argv, char **envp) {
    /* FADT: RESET_REG (a generic address) at 116, its address at 120, RESET_VALUE at
     * 128; QEMU's pc machine has a revision-1 FADT (116 bytes) without it. */
    u8 *fadt = acpi_find("FACP");
    if (fadt && *(u32 *)(fadt + 4) > 128)
        printf("info: FADT reset register %x value %x\n", (u32)*(u64 *)(fadt + 120), fadt[128]);
    else
        printf("info: FADT has no reset register\n");
    report(inb(RCR) == 0, "RCR reads 0 at start");
    outb(RCR, 0x0b);
    report(inb(RCR) == 0x02, "RCR keeps only the reset type of 0x0b: %x", inb(RCR));
    outl(0xCF8, 0x80000000u);
    report(inl(0xCF8) == 0x80000000u, "a dword at 0xCF8 is the CAM address latch");
    outl(0xCF8, 0x80000000u);
    u32 id = inl(0xCFC);
    printf("info: 00:00.0 ID %x\n", id);
    report(inb(RCR) == 0x02, "the CAM accesses leave RCR alone");
    report_summary();
    printf("lm-reset: writing 06 to port cf9\n");
    outb(RCR, 0x06);
    for (int k = 0; k < 1000; k++) pause();
    printf("FAIL: still running after the reset request\n");
    return 1;
}
