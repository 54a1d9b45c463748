/* Entry point, GDT, AP trampoline and interrupt stubs for the built-in guests. */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003
#define STACK_SIZE 16384
#define MAX_CPUS 64

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .text
    .code32
    .global _start
_start:
    cli
    lgdt gdt_desc
    ljmp $0x08, $1f
1:  mov $0x10, %cx
    mov %cx, %ds
    mov %cx, %es
    mov %cx, %fs
    mov %cx, %gs
    mov %cx, %ss
    mov $(cpu_stacks + STACK_SIZE), %esp
    push %ebx
    push %eax
    call kmain
    jmp halt_forever

    .global halt_forever
halt_forever:
    cli
    hlt
    jmp halt_forever

/* Application processors arrive here in 32-bit mode from the trampoline. */
ap_entry32:
    mov $0x10, %cx
    mov %cx, %ds
    mov %cx, %es
    mov %cx, %fs
    mov %cx, %gs
    mov %cx, %ss
    mov $1, %eax
    lock xadd %eax, ap_next_slot
    cmp $MAX_CPUS, %eax
    jae halt_forever
    mov %eax, %esp
    inc %esp
    imul $STACK_SIZE, %esp
    add $cpu_stacks, %esp
    add $STACK_SIZE, %esp
    push %eax
    call ap_main
    jmp halt_forever

/* Real-mode trampoline, copied to 0x8000 (SIPI vector 0x08) by smp_start(). */
    .global ap_tramp_start, ap_tramp_end
    .code16
ap_tramp_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    lgdtl (ap_tramp_gdt - ap_tramp_start + 0x8000)
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x08, $ap_entry32
ap_tramp_gdt:
    .word gdt_end - gdt - 1
    .long gdt
ap_tramp_end:
    .code32

/* Interrupt stubs: vectors 0..255 push their number and join isr_common. */
.macro ISR n
    .align 8
isr_\n:
    .if (\n == 8 || (\n >= 10 && \n <= 14) || \n == 17)
    .else
    push $0
    .endif
    push $\n
    jmp isr_common
.endm

    .align 8
    .global isr_table_start
isr_table_start:
.altmacro
.set i, 0
.rept 256
    ISR %i
    .set i, i+1
.endr

/* Returns without IRET: on hosts where KVM runs non-paged 32-bit guests through its
 * instruction emulator (KVM-PVM's batch emulation), the emulator implements IRET only
 * in real mode. For a same-privilege frame (EIP, CS, EFLAGS) restoring EFLAGS and
 * then a far return with a 4-byte stack adjustment does what IRET does. */
isr_common:
    pusha
    mov %esp, %eax
    push %eax
    call isr_dispatch
    add $4, %esp
    popa
    add $8, %esp
    pushl 8(%esp)
    popf
    lret $4


    .data
    .align 8
gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF   /* 0x08: 32-bit code, flat */
    .quad 0x00CF92000000FFFF   /* 0x10: data, flat */
gdt_end:
gdt_desc:
    .word gdt_end - gdt - 1
    .long gdt

    .global ap_next_slot
ap_next_slot:
    .long 0

    .global isr_addrs
    .align 4
isr_addrs:
.macro ISRADDR n
    .long isr_\n
.endm
.set i, 0
.rept 256
    ISRADDR %i
    .set i, i+1
.endr

    .bss
    .align 16
    .global cpu_stacks
cpu_stacks:
    .skip STACK_SIZE * (MAX_CPUS + 1)
