/* Long-mode guests: multiboot entry in 32-bit protected mode, identity page tables
 * (2 MiB pages over the first 4 GiB), EFER.LME, then 64-bit code. Also the AP
 * real-mode trampoline, the 64-bit interrupt stubs (returning with IRETQ) and
 * setjmp/longjmp. The boot convention is kvm-unit-tests' (x86/cstart64.S): multiboot
 * flags 0 (the loader reads the ELF headers), loaded at 4 MiB. */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0
#define STACK_SIZE 16384
#define MAX_CPUS 64
#define EFER 0xC0000080

    .section .init, "ax"
    .code32
    .align 4
    .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

    .global _start
_start:
    cli
    mov %eax, boot_magic
    mov %ebx, boot_mbi
    mov $(stacks + STACK_SIZE), %esp
    call build_page_tables
    call enter_long_mode
    ljmp $0x08, $start64

/* Identity map 0..4 GiB: pml4[0] -> pdpt, pdpt[0..3] -> four page directories of
 * 512 2 MiB pages each (present, writable, accessed, dirty, large, global). */
build_page_tables:
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x1E3, %eax
    mov %eax, lm_pd(,%ecx,8)
    mov %ecx, %eax
    shr $11, %eax
    mov %eax, lm_pd+4(,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jb 1b
    xor %ecx, %ecx
2:  mov %ecx, %eax
    shl $12, %eax
    add $(lm_pd + 3), %eax
    mov %eax, lm_pdpt(,%ecx,8)
    inc %ecx
    cmp $4, %ecx
    jb 2b
    movl $(lm_pdpt + 3), lm_pml4
    ret

/* From flat 32-bit protected mode to compatibility mode; the caller far-jumps to the
 * 64-bit code segment. Clobbers eax, ecx, edx. */
enter_long_mode:
    lgdt gdt_desc
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %fs
    mov %ax, %gs
    mov %ax, %ss
    mov %cr4, %eax
    or $0x20, %eax                  /* PAE */
    mov %eax, %cr4
    mov $lm_pml4, %eax
    mov %eax, %cr3
    mov $EFER, %ecx
    rdmsr
    or $0x100, %eax                 /* LME */
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax            /* PG | PE */
    mov %eax, %cr0
    ret

/* APs arrive here from the trampoline in flat 32-bit mode; each takes the next CPU
 * index (the BSP is 0) and the stack that goes with it. */
ap_start32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $1, %esi
    lock xadd %esi, ap_next_index
    cmp $MAX_CPUS, %esi
    jae 3f
    mov %esi, %esp
    inc %esp
    imul $STACK_SIZE, %esp
    add $stacks, %esp
    call enter_long_mode
    ljmp $0x08, $ap_start64
3:  cli
    hlt
    jmp 3b

/* The real-mode trampoline, copied to the SIPI page by smp_start(). It runs with
 * CS = vector << 8 and IP = 0, so it addresses itself through DS = CS. */
    .code16
    .global ap_tramp_start, ap_tramp_end
ap_tramp_start:
    cli
    mov %cs, %ax
    mov %ax, %ds
    lgdtl ap_tramp_gdt - ap_tramp_start
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x18, $ap_start32
ap_tramp_gdt:
    .word gdt_end - gdt - 1
    .long gdt
ap_tramp_end:

    .text
    .code64
start64:
    mov boot_magic(%rip), %edi
    mov boot_mbi(%rip), %esi
    call lm_boot
4:  cli
    hlt
    jmp 4b

ap_start64:
    mov %esi, %edi
    call ap_main
5:  cli
    hlt
    jmp 5b

/* Interrupt stubs: each pushes a zero error code where the CPU pushes none, then its
 * vector, saves the general registers and calls isr_dispatch(struct frame *). The
 * handler may change the saved RIP to resume elsewhere; IRETQ returns. */
.macro ISR n
    .align 16
isr_\n:
    .if (\n == 8 || (\n >= 10 && \n <= 14) || \n == 17 || \n == 21 || \n == 29 || \n == 30)
    .else
    pushq $0
    .endif
    pushq $\n
    jmp isr_common
.endm

.altmacro
.set i, 0
.rept 256
    ISR %i
    .set i, i+1
.endr

isr_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    cld
    call isr_dispatch
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    iretq

/* jmp_buf: rip, rsp, rbx, rbp, r12, r13, r14, r15. */
    .global lm_setjmp, lm_longjmp
lm_setjmp:
    mov (%rsp), %rax
    mov %rax, 0(%rdi)
    lea 8(%rsp), %rax
    mov %rax, 8(%rdi)
    mov %rbx, 16(%rdi)
    mov %rbp, 24(%rdi)
    mov %r12, 32(%rdi)
    mov %r13, 40(%rdi)
    mov %r14, 48(%rdi)
    mov %r15, 56(%rdi)
    xor %eax, %eax
    ret

lm_longjmp:
    mov %esi, %eax
    test %eax, %eax
    jnz 6f
    inc %eax
6:  mov 16(%rdi), %rbx
    mov 24(%rdi), %rbp
    mov 32(%rdi), %r12
    mov 40(%rdi), %r13
    mov 48(%rdi), %r14
    mov 56(%rdi), %r15
    mov 8(%rdi), %rsp
    jmp *0(%rdi)

    .data
    .align 16
    .global gdt, isr_addrs
gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF   /* 0x08: 64-bit code */
    .quad 0x00CF92000000FFFF   /* 0x10: flat data */
    .quad 0x00CF9A000000FFFF   /* 0x18: flat 32-bit code (the trampoline's) */
    .global gdt_tss
gdt_tss:                       /* 0x20 + 16 * cpu: each CPU's TSS, filled by cpu_setup() */
    .skip 16 * MAX_CPUS
gdt_end:
gdt_desc:
    .word gdt_end - gdt - 1
    .quad gdt

boot_magic: .long 0
boot_mbi: .long 0
    .global ap_next_index
ap_next_index: .long 1

    .align 8
isr_addrs:
.macro ISRADDR n
    .quad isr_\n
.endm
.set i, 0
.rept 256
    ISRADDR %i
    .set i, i+1
.endr

    .bss
    .align 4096
    .global lm_pml4, lm_pdpt, lm_pd
lm_pml4: .skip 4096
lm_pdpt: .skip 4096
lm_pd: .skip 4096 * 4
    .align 16
    .global stacks
stacks:
    .skip STACK_SIZE * MAX_CPUS
	.section .note.GNU-stack, "", @progbits
