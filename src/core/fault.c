/* Fault injection for the drivers, compiled into the sanitizer (test) builds only
 * (-DRW_FAULT_INJECTION): the optimised build has none of this, not even a branch.
 *
 * $RW_FAULTS lists what to inject, "SITE=WHAT/N,...": every N-th call at that site gets WHAT
 * (short sends: one in N at random, cut at a random length).
 *   accept=EMFILE/N   accept=ENFILE/N      an accepted connection is dropped as if out of files
 *   recv=ECONNRESET/N                      a receive fails as if the peer reset
 *   send=EPIPE/N      send=ECONNRESET/N    a send fails mid-stream
 *   send=short/N                           a send is cut to a random shorter length
 *   send=EAGAIN/N                          epoll: the socket says "try later" (io_uring never does)
 *   file=EIO/N        file=ENOSPC/N        a file operation (rw_file_*) completes with that error
 *   pidfd=ENOSYS/N                         rw_spawn: pidfd_open fails as on a kernel before 5.3
 *   cq=ENTRIES                             io_uring: a completion queue this small (overflows)
 * Random choices come from a per-thread generator seeded from $RW_FAULTS_SEED (default 1). */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "log.h"

#ifdef RW_FAULT_INJECTION

struct rule {
  int site;
  int err; /* -errno, or 1 for "short" */
  uint32_t one_in;
  _Atomic uint32_t calls; /* errors hit every one_in-th call: the same count on every run */
};

static struct rule rules[16];
static unsigned nrules;
static uint32_t cq_entries;
static bool loaded; /* rw_fault_init() runs before any worker starts: read-only after */

static const struct {
  const char *name;
  int err;
} errs[] = {{"EMFILE", -EMFILE}, {"ENFILE", -ENFILE}, {"ECONNRESET", -ECONNRESET},
            {"EPIPE", -EPIPE},   {"EAGAIN", -EAGAIN}, {"EIO", -EIO},
            {"ENOSPC", -ENOSPC}, {"ENOSYS", -ENOSYS}, {"short", 1}};

void rw_fault_init(void)
{
  if (loaded)
    return;
  loaded = true;
  const char *spec = getenv("RW_FAULTS");
  if (!spec)
    return;
  char buf[512];
  snprintf(buf, sizeof buf, "%s", spec);
  for (char *save, *tok = strtok_r(buf, ",", &save); tok && nrules < 16; tok = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(tok, '='), *slash = eq ? strchr(eq, '/') : NULL;
    if (eq && !strncmp(tok, "cq", 2)) {
      cq_entries = (uint32_t)atoi(eq + 1);
      continue;
    }
    if (!eq || !slash)
      continue;
    *eq = *slash = 0;
    int site = !strcmp(tok, "accept")  ? RW_FAULT_ACCEPT
               : !strcmp(tok, "recv")  ? RW_FAULT_RECV
               : !strcmp(tok, "send")  ? RW_FAULT_SEND
               : !strcmp(tok, "file")  ? RW_FAULT_FILE
               : !strcmp(tok, "pidfd") ? RW_FAULT_PIDFD
                                       : -1;
    for (size_t i = 0; site >= 0 && i < sizeof errs / sizeof *errs; i++)
      if (!strcmp(eq + 1, errs[i].name))
        rules[nrules++] = (struct rule){site, errs[i].err, (uint32_t)atoi(slash + 1), 0};
  }
  rw_log("fault injection: %s", spec);
}

static uint32_t draw(void)
{
  static _Thread_local uint64_t state;
  if (!state) {
    const char *s = getenv("RW_FAULTS_SEED");
    state = (s ? strtoull(s, NULL, 10) : 1) * 0x9e3779b97f4a7c15ull | 1;
  }
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return (uint32_t)(state >> 32);
}

int rw_fault(enum rw_fault_site site, int res)
{
  if (res < 0)
    return res;
  for (unsigned i = 0; i < nrules; i++)
    if (rules[i].site == (int)site && rules[i].err < 0 && rules[i].one_in &&
        (atomic_fetch_add_explicit(&rules[i].calls, 1, memory_order_relaxed) + 1) % rules[i].one_in == 0)
      return rules[i].err;
  return res;
}

size_t rw_fault_short(size_t len)
{
  for (unsigned i = 0; i < nrules; i++)
    if (rules[i].site == RW_FAULT_SEND && rules[i].err == 1 && rules[i].one_in && len > 1 &&
        draw() % rules[i].one_in == 0)
      return 1 + draw() % (len - 1);
  return len;
}

uint32_t rw_fault_cq_entries(void)
{
  return cq_entries;
}

#endif
