/* Lists a spec captures as one field: RESP's array of bulk strings (length-prefixed items) or an
 * inline command's blank-separated words. The first RW_LIST_INLINE items are spans ready to use;
 * every item, however many, is reachable by iterating over the region as received. */
#ifndef RINGWRIGHT_LIST_H
#define RINGWRIGHT_LIST_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RW_LIST_INLINE 16

enum rw_list_kind {
  RW_LIST_WORDS = 1, /* items separated by runs of blanks (space, tab) */
  RW_LIST_PREFIXED,  /* each item: prefix, decimal length, sep, the bytes, sep */
  RW_LIST_FIELDS,    /* "name: value" lines, each ending in \r\n (the header section) */
  RW_LIST_CHUNKED,   /* chunked coding: hex size [;ext] \r\n, the bytes, \r\n; ends at size 0 */
  RW_LIST_SINGLE,    /* one item: the whole region (a body of known length) */
};

typedef struct rw_list {
  uint32_t count;
  uint8_t kind;
  uint8_t prefix_len, sep_len;
  uint8_t sep[4];
  rw_span region;
  rw_span item[RW_LIST_INLINE];
} rw_list;

typedef struct rw_list_iter {
  const uint8_t *p;
  uint32_t i;
} rw_list_iter;

/* Sets a list's header and leaves its items alone (generated parsers fill the ones they use):
 * writing a whole rw_list would clear 16 inline spans per message for nothing. */
static inline void rw_list_set(rw_list *l, uint8_t kind, uint32_t count, rw_span region)
{
  l->count = count;
  l->kind = kind;
  l->prefix_len = l->sep_len = 0;
  l->sep[0] = l->sep[1] = l->sep[2] = l->sep[3] = 0;
  l->region = region;
}

/* Fills `l` with the blank-separated words of p[0..n) (generated parsers call this). */
void rw_list_words(rw_list *l, const uint8_t *p, size_t n);

/* Item i (i < count): O(1) for the first RW_LIST_INLINE, a walk from the start for the rest
 * (O(i): a loop over every item iterates instead). */
rw_span rw_list_at(const rw_list *l, uint32_t i);
void rw_list_iter_init(const rw_list *l, rw_list_iter *it);
/* The next item into *out; 0, or -1 after the last. */
int rw_list_next(const rw_list *l, rw_list_iter *it, rw_span *out);

/* Where an iteration stands, as an offset into the region: a handler dispatched again with the
 * same frame (conn.h, -EAGAIN) finds it where it may have moved, and goes on from there with
 * rw_list_iter_seek() (`i`: the items already taken, it.i) instead of walking from the start. */
static inline size_t rw_list_iter_offset(const rw_list *l, const rw_list_iter *it)
{
  return (size_t)(it->p - l->region.p);
}

static inline void rw_list_iter_seek(const rw_list *l, rw_list_iter *it, uint32_t i, size_t offset)
{
  it->p = l->region.p + offset;
  it->i = i;
}

/* Looks up a "name: value" field (RW_LIST_FIELDS), the name compared case-insensitively; stores
 * the value without surrounding blanks in *out (the first occurrence) and returns how many
 * fields have that name. */
unsigned rw_list_field(const rw_list *l, const char *name, rw_span *out);

#ifdef __cplusplus
}
#endif

#endif
