/* idle: prints a line, then halts with interrupts off: the vCPU sleeps in KVM with no
 * exits, so anything the VMM process does meanwhile is its own idle cost. */
#include "../lib/guest.h"

void kmain(u32 magic, void *mbi) {
    boot_init(magic, mbi);
    printf("idle: halted\n");
    halt_forever();
}
