/* QEMU's fw_cfg as x86 guests reach it: selector 0x510, data 0x511, DMA at 0x514. */
#ifndef FWCFG_H
#define FWCFG_H
#include "guest.h"

#define FWCFG_SEL 0x510
#define FWCFG_DATA 0x511
#define FWCFG_DMA 0x514
#define FWCFG_SIGNATURE 0x00
#define FWCFG_ID 0x01
#define FWCFG_RAM_SIZE 0x03
#define FWCFG_NB_CPUS 0x05
#define FWCFG_MAX_CPUS 0x0f
#define FWCFG_FILE_DIR 0x19
#define FWCFG_DMA_ERROR 0x01
#define FWCFG_DMA_READ 0x02
#define FWCFG_DMA_SKIP 0x04
#define FWCFG_DMA_SELECT 0x08
#define FWCFG_DMA_WRITE 0x10

static inline u32 bswap32(u32 v) { return __builtin_bswap32(v); }
static inline u16 bswap16(u16 v) { return __builtin_bswap16(v); }

/* Port interface: select, then read n bytes (byte reads, little-endian result). */
void fwcfg_select(u16 key);
void fwcfg_read(void *buf, u32 n);
u64 fwcfg_read_le(u16 key, u32 n);
/* DMA: one descriptor; returns the control word the device left (0 on success). */
u32 fwcfg_dma(u32 control, void *buf, u32 len);
u32 fwcfg_dma64(u32 control, u64 addr, u32 len);
/* Finds `name` in the file directory by port reads: its key (0 if absent), size. */
u16 fwcfg_find_file(const char *name, u32 *size);

#endif
