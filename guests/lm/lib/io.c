#include <stdarg.h>
#include "lm.h"

void *memcpy(void *d, const void *s, u64 n) {
    u8 *a = d;
    const u8 *b = s;
    while (n--) *a++ = *b++;
    return d;
}

void *memset(void *d, int c, u64 n) {
    u8 *a = d;
    while (n--) *a++ = (u8)c;
    return d;
}

int memcmp(const void *x, const void *y, u64 n) {
    const u8 *a = x, *b = y;
    for (; n; n--, a++, b++)
        if (*a != *b) return *a < *b ? -1 : 1;
    return 0;
}

u64 strlen(const char *s) {
    u64 n = 0;
    while (s[n]) n++;
    return n;
}

int strcmp(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return (u8)*a - (u8)*b;
}

#define COM1 0x3F8
static volatile u32 out_lock;

static void lock(void) { while (__sync_lock_test_and_set(&out_lock, 1)) pause(); }
static void unlock(void) { __sync_lock_release(&out_lock); }

void serial_init(void) {
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x80);
    outb(COM1 + 0, 0x01);
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);
    outb(COM1 + 2, 0xC7);
    outb(COM1 + 4, 0x03);
}

static void putch(char c) {
    while (!(inb(COM1 + 5) & 0x20)) pause();
    outb(COM1, (u8)c);
}

static void put_num(u64 v, u32 base, int width, char pad) {
    char buf[24];
    int n = 0;
    do {
        buf[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (n < width) buf[n++] = pad;
    while (n) putch(buf[--n]);
}

static void vprint(const char *fmt, va_list ap) {
    for (; *fmt; fmt++) {
        if (*fmt != '%') { putch(*fmt); continue; }
        fmt++;
        char pad = ' ';
        int width = 0, longs = 0;
        if (*fmt == '0') { pad = '0'; fmt++; }
        while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l') { longs++; fmt++; }
        switch (*fmt) {
        case 'd': {
            i64 s = longs ? va_arg(ap, i64) : va_arg(ap, i32);
            if (s < 0) { putch('-'); s = -s; }
            put_num((u64)s, 10, width, pad);
            break;
        }
        case 'u': case 'x': {
            u64 v = longs ? va_arg(ap, u64) : va_arg(ap, u32);
            put_num(v, *fmt == 'u' ? 10 : 16, width, pad);
            break;
        }
        case 's': {
            const char *s = va_arg(ap, const char *);
            while (*s) putch(*s++);
            break;
        }
        case 'c': putch((char)va_arg(ap, int)); break;
        default: putch('%'); putch(*fmt); break;
        }
    }
}

void printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    lock();
    vprint(fmt, ap);
    unlock();
    va_end(ap);
}

static u32 tests, failures;

void report(int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    lock();
    tests++;
    if (!ok) failures++;
    for (const char *p = ok ? "PASS: " : "FAIL: "; *p; p++) putch(*p);
    vprint(fmt, ap);
    putch('\n');
    unlock();
    va_end(ap);
}

int report_summary(void) {
    printf("SUMMARY: %u tests, %u unexpected failures\n", tests, failures);
    return failures ? 1 : 0;
}

void lm_exit(u32 code) {
    outl(DEBUG_EXIT_PORT, code);
    for (;;) __asm__ volatile("cli; hlt");
}
