/* Internal: outbound connections (connect.c): to a host name they wait for its lookup in a
 * dial. */
#ifndef RW_CONNECT_H
#define RW_CONNECT_H

#include <stddef.h>

struct rw_worker;

struct rw_dial;
int rw_dial_init(struct rw_worker *w);
void rw_dial_fini(struct rw_worker *w);
size_t rw_dial_budget(const struct rw_worker *w);

#endif
