/* Internal: name lookups (dns.c), in slots of the worker's. */
#ifndef RW_DNS_H
#define RW_DNS_H

#include <stddef.h>

struct rw_worker;

struct rw_dns_slot;
int rw_dns_init(struct rw_worker *w);
void rw_dns_fini(struct rw_worker *w);
size_t rw_dns_budget(const struct rw_worker *w);
void rw_dns_stop(struct rw_worker *w); /* a stopping worker fails its lookups with -ECANCELED */

#endif
