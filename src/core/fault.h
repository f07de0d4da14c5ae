/* Internal: fault injection (fault.c). */
#ifndef RW_FAULT_H
#define RW_FAULT_H

#include <stddef.h>
#include <stdint.h>

/* Fault injection (src/core/fault.c): in test builds only, the drivers ask at each site whether
 * to fail; in the optimised build these are no-ops the compiler removes. */
enum rw_fault_site { RW_FAULT_ACCEPT, RW_FAULT_RECV, RW_FAULT_SEND, RW_FAULT_FILE, RW_FAULT_PIDFD };
#ifdef RW_FAULT_INJECTION
void rw_fault_init(void);
int rw_fault(enum rw_fault_site site, int res); /* res, or the injected -errno */
size_t rw_fault_short(size_t len);              /* len, or a shorter length to send */
uint32_t rw_fault_cq_entries(void);             /* io_uring CQ size to force (0: as usual) */
#else
static inline void rw_fault_init(void)
{
}
static inline int rw_fault(enum rw_fault_site site, int res)
{
  (void)site;
  return res;
}
static inline size_t rw_fault_short(size_t len)
{
  return len;
}
static inline uint32_t rw_fault_cq_entries(void)
{
  return 0;
}
#endif

#endif
