/* triple-fault: loads an empty IDT and raises an exception: #GP -> #DF -> shutdown. */
#include "../lib/guest.h"

void kmain(u32 magic, void *mbi) {
    serial_init();
    mb_init(magic, mbi);
    puts("triple-fault: loading an empty IDT and raising int3\n");
    static struct { u16 limit; u32 base; } __attribute__((packed)) empty = {0, 0};
    __asm__ volatile("lidt %0; int3" ::"m"(empty));
    puts("triple-fault: still alive?\n");
    debug_exit(0x7c);
}
