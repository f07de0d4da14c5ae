/* libFuzzer target for httpd's reader of upstream responses (apps/httpd/response.c): each input
 * (its first byte: HEAD or not, and the seed of the cuts) is read whole, and cut into pieces of
 * 1-9 bytes with some body pieces refused once with -EAGAIN; both must log the same heads, body
 * bytes, ends and error, and no invariant may break (tests/response_feed.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../apps/httpd/response.c"
#include "../response_feed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct rfeed whole, split;
  static size_t cuts[4096];
  if (size < 1 || size > sizeof cuts / sizeof *cuts)
    return 0;
  bool head = data[0] & 1;
  uint32_t seed = data[0] | 1u;
  data++;
  size--;
  int ncuts = 0;
  for (size_t off = 0; off < size;) {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    off += 1 + seed % 9;
    if (off < size)
      cuts[ncuts++] = off;
  }
  rfeed_run(data, size, NULL, 0, head, 0, &whole);
  rfeed_run(data, size, cuts, ncuts, head, (int)(seed % 4), &split);
  if (whole.fault || split.fault || whole.loglen != split.loglen ||
      memcmp(whole.log, split.log, whole.loglen)) {
    fprintf(stderr, "whole and split disagree:\n--- whole\n%s\n--- split\n%s\n", whole.log, split.log);
    abort();
  }
  return 0;
}
