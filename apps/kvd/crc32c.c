/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the log's batch checksum: with the
 * SSE4.2 crc32 instruction where the CPU has it, else slicing-by-8 (eight table lookups per 8
 * bytes, portable C). Chosen once, before main: the choice and the tables never change
 * afterwards, so any thread may call kvd_crc32c without a lock.
 *
 * The instruction takes 3 cycles and can start every cycle, so one chain of it runs at a third
 * of its speed: long inputs go as three chains over three adjacent blocks, joined after (CRC
 * is linear: the CRC of A then B is A's register moved on over B's length of zeros, XOR B's
 * own), which makes values written by reference cost a third as much. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kvd.h"

#ifdef __x86_64__
#include <nmmintrin.h>
#endif

#define POLY 0x82F63B78u
#define LONG_BLOCK 8192 /* three chains of this from 24 KiB... */
#define SHORT_BLOCK 256 /* ...and of this from 768 bytes (a referred value is 1 KiB or more) */

static uint32_t table[8][256];
static uint32_t (*impl)(uint32_t crc, const uint8_t *p, size_t n);

/* table[0] is the byte-at-a-time table; table[k][b] is b's CRC followed by k zero bytes. */
static void make_tables(void)
{
  for (uint32_t b = 0; b < 256; b++) {
    uint32_t c = b;
    for (int i = 0; i < 8; i++)
      c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
    table[0][b] = c;
  }
  for (uint32_t b = 0; b < 256; b++)
    for (int k = 1; k < 8; k++)
      table[k][b] = (table[k - 1][b] >> 8) ^ table[0][table[k - 1][b] & 0xff];
}

/* Bytes are loaded one by one (little-endian order by hand), so the result is the same on any
 * byte order; compilers turn the shifts into one load where the order matches. */
static uint32_t load32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t crc_soft(uint32_t crc, const uint8_t *p, size_t n)
{
  for (; n >= 8; p += 8, n -= 8) {
    uint32_t lo = crc ^ load32(p), hi = load32(p + 4);
    crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
          table[4][lo >> 24] ^ table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
          table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
  }
  while (n--)
    crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

#ifdef __x86_64__
/* Moving a register on over `len` zero bytes is linear in it: ops[k][b] is what it does to the
 * register b << 8k, and a whole register's is the XOR of its four bytes'. */
static uint32_t shift_long[4][256], shift_short[4][256];

static void make_shift(uint32_t ops[4][256], size_t len)
{
  uint32_t bit[32];
  for (int i = 0; i < 32; i++) {
    uint32_t c = 1u << i;
    for (size_t k = 0; k < len; k++)
      c = table[0][c & 0xff] ^ (c >> 8);
    bit[i] = c;
  }
  for (int k = 0; k < 4; k++)
    for (uint32_t b = 0; b < 256; b++) {
      uint32_t v = 0;
      for (int i = 0; i < 8; i++)
        v ^= b >> i & 1 ? bit[8 * k + i] : 0;
      ops[k][b] = v;
    }
}

static uint32_t shift(const uint32_t ops[4][256], uint32_t c)
{
  return ops[0][c & 0xff] ^ ops[1][(c >> 8) & 0xff] ^ ops[2][(c >> 16) & 0xff] ^ ops[3][c >> 24];
}

static uint64_t load64(const uint8_t *p)
{
  uint64_t w;
  memcpy(&w, p, 8); /* (unaligned is fine on x86; memcpy says so to the compiler) */
  return w;
}

/* Compiled for SSE4.2 whatever the build's -march: only called where cpuid said it may be. */
__attribute__((target("sse4.2"))) static uint32_t three_chains(uint32_t crc, const uint8_t **p, size_t *n,
                                                               size_t block, const uint32_t ops[4][256])
{
  const uint8_t *q = *p;
  for (; *n >= 3 * block; *n -= 3 * block, q += 2 * block) {
    uint64_t c0 = crc, c1 = 0, c2 = 0;
    for (const uint8_t *end = q + block; q < end; q += 8) {
      c0 = _mm_crc32_u64(c0, load64(q));
      c1 = _mm_crc32_u64(c1, load64(q + block));
      c2 = _mm_crc32_u64(c2, load64(q + 2 * block));
    }
    crc = shift(ops, shift(ops, (uint32_t)c0) ^ (uint32_t)c1) ^ (uint32_t)c2;
  }
  *p = q;
  return crc;
}

__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t crc, const uint8_t *p, size_t n)
{
  crc = three_chains(crc, &p, &n, LONG_BLOCK, shift_long);
  crc = three_chains(crc, &p, &n, SHORT_BLOCK, shift_short);
  uint64_t c = crc;
  for (; n >= 8; p += 8, n -= 8)
    c = _mm_crc32_u64(c, load64(p));
  crc = (uint32_t)c;
  while (n--)
    crc = _mm_crc32_u8(crc, *p++);
  return crc;
}
#endif

__attribute__((constructor)) static void choose(void)
{
  make_tables();
  impl = crc_soft;
#ifdef __x86_64__
  __builtin_cpu_init(); /* (constructors may run before the compiler's own cpuid probe) */
  if (__builtin_cpu_supports("sse4.2")) {
    make_shift(shift_long, LONG_BLOCK);
    make_shift(shift_short, SHORT_BLOCK);
    impl = crc_sse42;
  }
#endif
}

uint32_t kvd_crc32c(uint32_t crc, const void *p, size_t n)
{
  return ~impl(~crc, p, n);
}
