/* libFuzzer target for one generated parser, chosen at build time: FUZZ_PROTO, FUZZ_DESCRIBE,
 * FUZZ_ERRORS_CLOSE (whether the spec closes on every error), FUZZ_BAD_DATA_CLOSES (on bad_data
 * alone) and, for a protocol whose refusals keep the connection, FUZZ_FRAMES (an oracle of where
 * its frames may end). Each input is parsed twice: whole, and cut into pieces whose sizes come
 * from its first byte; both runs must report the same messages, every field's bytes are read (so
 * a span outside the buffer is a sanitizer report), and the feeder's invariants must hold. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../feed.h"

extern const rw_proto FUZZ_PROTO;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  uint32_t seed = data[0] | 1u;
  data++;
  size--;
  struct feeder whole, split;
  if (feeder_init(&whole, &FUZZ_PROTO, FUZZ_DESCRIBE, size + 1) ||
      feeder_init(&split, &FUZZ_PROTO, FUZZ_DESCRIBE, size + 1))
    abort();
  whole.errors_close = split.errors_close = FUZZ_ERRORS_CLOSE;
#ifdef FUZZ_CLOSES_ON
  whole.closes_on = split.closes_on = FUZZ_CLOSES_ON;
#endif
#ifdef FUZZ_FRAMES
  /* The smuggling check: no message or error may come from bytes inside a data block that a
   * line declared, refused or not (an oracle written apart from the parser says where). */
  uint8_t *ends = malloc(size + 1);
  if (!ends)
    abort();
  FUZZ_FRAMES(data, size, ends);
  whole.frame_ends = split.frame_ends = ends;
#endif
  if (!feed(&whole, data, size)) {
    fprintf(stderr, "whole: %s\n", whole.fault);
    abort();
  }
  for (size_t off = 0; off < size;) {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    size_t n = 1 + seed % 9;
    if (n > size - off)
      n = size - off;
    if (!feed(&split, data + off, n)) {
      fprintf(stderr, "split: %s\n", split.fault);
      abort();
    }
    off += n;
  }
  if (strcmp(whole.log, split.log) != 0) {
    fprintf(stderr, "whole and split disagree:\n--- whole\n%s--- split\n%s", whole.log, split.log);
    abort();
  }
  feeder_fini(&whole);
  feeder_fini(&split);
#ifdef FUZZ_FRAMES
  free(ends);
#endif
  return 0;
}
