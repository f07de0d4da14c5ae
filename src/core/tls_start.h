/* Internal: how the core starts TLS on a connection without linking it. libringwright-tls
 * installs its entry whenever it makes a context (rw_tls_server_new, rw_tls_client_new): a
 * connection is TLS only once a context of theirs started it, so the entry is there whenever
 * one is, and a program without TLS links the core alone, with no BoringSSL. Only the files
 * that start connections on a context include this (worker.c, connect.c), and transport.c,
 * which holds the entry. */
#ifndef RW_TLS_START_H
#define RW_TLS_START_H

#include <stdatomic.h>

struct rw_conn;
struct rw_tls;

struct rw_tls_ops {
  /* Puts the connection on the TLS transport with a session of context `t`. 0 or -errno. */
  int (*conn_start)(struct rw_conn *c, struct rw_tls *t, const char *server_name);
};
/* Atomic: contexts may be made on several threads at once (each stores the same table). */
extern _Atomic(const struct rw_tls_ops *) rw_tls_table;
static inline const struct rw_tls_ops *rw_tls_calls(void)
{
  return atomic_load_explicit(&rw_tls_table, memory_order_acquire);
}

#endif
