/* RESP2 replies as a client reads them: a resumable scanner that checks a whole reply (nested
 * arrays included) against a spec's limits without copying or allocating, and a walk over a
 * checked reply's values in order. Code rwgen generates for a `frame resp2;` spec calls the
 * scanner; an application walks the reply its handler receives. */
#ifndef RINGWRIGHT_RESP_H
#define RINGWRIGHT_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The deepest nesting of arrays a spec may declare (`limit depth`). */
#define RW_RESP_DEPTH_MAX 32

typedef struct rw_resp_limits {
  uint64_t line;  /* a simple string, error, integer or length line, its CRLF included */
  uint64_t reply; /* a whole reply, every byte of it */
  uint64_t items; /* the elements of a reply's arrays, every level together */
  unsigned depth; /* arrays inside arrays: 1 allows a flat array, at most RW_RESP_DEPTH_MAX */
} rw_resp_limits;

/* Where a reply's scan stopped: offsets from the reply's first byte, so that the bytes may move
 * between calls. Zeroed, it starts a reply. */
typedef struct rw_resp_scan {
  uint64_t pos;     /* bytes of the reply checked */
  uint64_t scanned; /* bytes past pos searched for the current line's end */
  uint64_t items;
  unsigned depth;                  /* arrays open */
  int64_t left[RW_RESP_DEPTH_MAX]; /* values each open array still expects */
} rw_resp_scan;

/* Checks the reply at buf[0..len): 0 with *out_len its length once complete, RW_PARSE_MORE
 * (nothing consumed; call again with the same reply's bytes and more), RW_PARSE_OVERLONG (a
 * line past limits->line), RW_PARSE_TOO_LARGE (past limits->reply) or RW_PARSE_BAD_DATA (a
 * malformed reply, an array nested past limits->depth or holding past limits->items). */
int rw_resp_scan_run(rw_resp_scan *s, const rw_resp_limits *limits, const uint8_t *buf, size_t len,
                     size_t *out_len);

enum rw_resp_kind {
  RW_RESP_SIMPLE = '+',
  RW_RESP_ERROR = '-',
  RW_RESP_INTEGER = ':',
  RW_RESP_BULK = '$',
  RW_RESP_ARRAY = '*',
};

/* One value of a reply: a string's bytes (simple, error, bulk), an integer, or an array's
 * element count (its elements are the values the walk gives next). redis's nil is a bulk or an
 * array marked nil ($-1, *-1), its count -1. */
typedef struct rw_resp_value {
  uint8_t kind; /* enum rw_resp_kind */
  bool nil;
  rw_span str;
  int64_t integer; /* INTEGER: the value; ARRAY: the element count */
} rw_resp_value;

/* Gives the next value of a reply that rw_resp_scan_run checked, in order, an array before its
 * elements: true, or false once `rest` is empty. */
bool rw_resp_walk(rw_span *rest, rw_resp_value *out);

#ifdef __cplusplus
}
#endif

#endif
