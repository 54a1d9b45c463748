#include "guest.h"

void boot_init(u32 magic, void *mbi) {
    serial_init();
    mb_init(magic, (struct mb_info *)mbi);
    idt_init();
    time_init();
    lapic_enable();
}
