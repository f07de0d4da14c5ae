/* Internal: send chains (sendq.c): each connection's queued output, a list of chunks from its
 * worker's slab. */
#ifndef RW_SENDQ_H
#define RW_SENDQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct rw_worker;
struct rw_conn;

int rw_sendq_append(struct rw_worker *w, struct rw_conn *c, const void *data, size_t len);
/* The same for several pieces, in order. */
int rw_sendq_appendv(struct rw_worker *w, struct rw_conn *c, const struct iovec *iov, int n);
/* Copies the pieces back to back from `at` on, passing over empty ones (whose base may be
 * NULL). */
void rw_iov_gather(uint8_t *at, const struct iovec *iov, int n);
/* Links a whole chunk holding `len` bytes at the end of the chain (copied behind a partly
 * filled tail instead). */
/* The free bytes at the chain's tail, at least `want` (<= a chunk) of them: a fresh chunk when
 * the tail has less (it keeps what it holds). NULL if the slab is exhausted. To be filled in
 * place and then counted with rw_sendq_commit. */
uint8_t *rw_sendq_reserve(struct rw_worker *w, struct rw_conn *c, size_t want, size_t *out_room);
void rw_sendq_commit(struct rw_worker *w, struct rw_conn *c, size_t n);
void rw_sendq_append_chunk(struct rw_worker *w, struct rw_conn *c, uint32_t chunk, size_t len);
/* Fills up to `max` iovecs with the queued bytes, oldest first; returns how many. */
int rw_sendq_iov(const struct rw_worker *w, const struct rw_conn *c, struct iovec *iov, int max);
/* n bytes were accepted by the kernel: release what they covered. */
void rw_sendq_consume(struct rw_worker *w, struct rw_conn *c, size_t n);
void rw_sendq_drop(struct rw_worker *w, struct rw_conn *c);

#endif
