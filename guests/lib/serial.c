#include <stdarg.h>
#include "guest.h"

#define COM1 0x3F8
static volatile u32 serial_lock;

static void lock(void) { spin_lock(&serial_lock); }
static void unlock(void) { spin_unlock(&serial_lock); }

void serial_init(void) {
    outb(COM1 + 1, 0x00); /* no interrupts */
    outb(COM1 + 3, 0x80); /* DLAB */
    outb(COM1 + 0, 0x01); /* 115200 */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); /* 8N1 */
    outb(COM1 + 2, 0xC7); /* FIFO */
    outb(COM1 + 4, 0x03);
}

static void raw_putc(char c) {
    while (!(inb(COM1 + 5) & 0x20)) cpu_relax();
    outb(COM1, (u8)c);
}

void putc(char c) { lock(); raw_putc(c); unlock(); }
void puts(const char *s) { lock(); while (*s) raw_putc(*s++); unlock(); }

static void put_num(u64 v, u32 base, int width, char pad, int upper) {
    char buf[24];
    int n = 0;
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        u32 r;
        v = udiv64(v, base, &r);
        buf[n++] = digits[r];
    } while (v);
    while (n < width) buf[n++] = pad;
    while (n) raw_putc(buf[--n]);
}

void printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    lock();
    for (; *fmt; fmt++) {
        if (*fmt != '%') { raw_putc(*fmt); continue; }
        fmt++;
        char pad = ' ';
        int width = 0, longs = 0;
        if (*fmt == '0') { pad = '0'; fmt++; }
        while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l') { longs++; fmt++; }
        u64 v;
        switch (*fmt) {
        case 'd': {
            i64 s = longs >= 2 ? va_arg(ap, i64) : va_arg(ap, i32);
            if (s < 0) { raw_putc('-'); s = -s; }
            put_num((u64)s, 10, width, pad, 0);
            break;
        }
        case 'u': case 'x': case 'X':
            v = longs >= 2 ? va_arg(ap, u64) : va_arg(ap, u32);
            put_num(v, *fmt == 'u' ? 10 : 16, width, pad, *fmt == 'X');
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            int len = (int)strlen(s);
            while (*s) raw_putc(*s++);
            while (len++ < width) raw_putc(' ');
            break;
        }
        case 'c': raw_putc((char)va_arg(ap, int)); break;
        case '%': raw_putc('%'); break;
        default: raw_putc('?'); break;
        }
    }
    unlock();
    va_end(ap);
}
