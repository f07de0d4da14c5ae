/* kvd's RESP handlers, split by family (resp.c: strings and the table; resp_strings.c: the
 * range and float commands; resp_keys.c: the keyspace; resp_server.c: connection and server
 * commands): what they share. */
#ifndef KVD_RESP_CMD_H
#define KVD_RESP_CMD_H

#include <errno.h>
#include <string.h>

#include "kvd.h"

#define S(lit) ((rw_span){(const uint8_t *)(lit), sizeof(lit) - 1})

/* Every error reply of a handler is counted (INFO errorstats, failed calls): the generated
 * writers are reached through these (info.c). */
int kvd_resp_error(rw_conn *c, rw_span msg);
int kvd_resp_wrong_args(rw_conn *c, rw_span name);
#define resp_reply_error(...) kvd_resp_error(__VA_ARGS__)
#define resp_reply_wrong_args(...) kvd_resp_wrong_args(__VA_ARGS__)
/* "NOAUTH Authentication required." */
int kvd_reply_noauth(rw_conn *c);

/* Command counts (resp.c), for INFO commandstats. */
struct kvd_cmd_counts {
  const char *name;
  uint64_t calls, failed, rejected;
};
int kvd_resp_init(unsigned workers);
size_t kvd_resp_ncounted(void);
struct kvd_cmd_counts kvd_resp_counts(size_t i);
/* Names kvd_resp_counts' commands for the runtime (rw_server_command_names). */
int kvd_resp_count_names(rw_server *s);
void kvd_resp_error_seen(void); /* (this worker wrote an error reply) */

#define ADMIT(c) KVD_ADMIT(c, kvd_reply_misconf(c))
int kvd_reply_misconf(rw_conn *c);
/* A write the store refused: -EAGAIN goes back to the runtime, the rest are error replies
 * (-EPIPE: the log refuses writes, MISCONF). */
int kvd_reply_store_error(rw_conn *c, int err);
/* An error reply from a printf format (truncated at 512 bytes, line breaks made spaces). */
int kvd_reply_errorf(rw_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An iterator at item `first` of `a` (options after a command's fixed arguments): a loop over
 * a request's items iterates, since rw_list_at() walks from the start past the 16th. */
void kvd_list_from(const rw_list *a, rw_list_iter *it, uint32_t first);

/* A command over many of its request's items (MGET, MSET, DEL, COMMAND INFO) may stop before
 * the last and be dispatched again with the same frame (conn.h, -EAGAIN): kvd_conn's next_*
 * say where it goes on, by offset, so that a million items are walked once, not from the
 * start at each stop. kvd_resume_start: `it` at item `first`, or where the command stopped. */
void kvd_resume_start(rw_conn *c, const rw_list *a, rw_list_iter *it, uint32_t first);
/* Stops with `it` at the next item to take, having counted `n` so far: -EAGAIN. */
int kvd_resume_stop(rw_conn *c, const rw_list *a, const rw_list_iter *it, int64_t n);
bool kvd_resumed(rw_conn *c);         /* dispatched again after a stop */
int64_t kvd_resume_count(rw_conn *c); /* what it had counted (0 at its start) */
void kvd_resume_done(rw_conn *c);

/* The shard of `key`, locked, and the live item there (or NULL). */
struct locked {
  kv_shard *sh;
  kv_item *it;
  uint32_t hash;
};
struct locked kvd_lookup(rw_conn *c, rw_span key);
/* A bulk reply with the item's value (or null): 0, 1 when it goes out as a stream, or -errno. */
int kvd_reply_value(rw_conn *c, kv_shard *sh, kv_item *it);
/* Counts a read as a hit or a miss. */
void kvd_count_get(rw_conn *c, bool hit);
/* A deadline argument as SET and SETEX take it: see resp.c. */
int kvd_parse_expire(rw_conn *c, rw_span v, int64_t unit_ms, bool absolute, const char *cmd, int64_t *out_ms);
/* SET's and GETEX's expiry options: EX, PX, EXAT, PXAT. */
struct kvd_expiry_opt {
  const char *name;
  int64_t unit_ms;
  bool absolute; /* a Unix time, else from now */
};
const struct kvd_expiry_opt *kvd_expiry_opt(rw_span opt); /* NULL: not one */
/* "ERR invalid expire time in '<cmd>' command". */
int kvd_reply_bad_expire(rw_conn *c, const char *cmd);
/* n units (unit_ms) from `unix_now`, or from the epoch when `absolute`, as Unix ms in *out;
 * -ERANGE when that does not fit 64 bits. */
int kvd_unix_deadline(int64_t n, int64_t unit_ms, bool absolute, int64_t unix_now, int64_t *out);
/* A Unix-ms deadline after `unix_now` on the worker's clock, which the store keeps. */
int64_t kvd_worker_deadline(rw_conn *c, int64_t at, int64_t unix_now);

/* Handlers outside resp.c. */
int kvd_on_getdel(rw_conn *c, const rw_list *a);
int kvd_on_getex(rw_conn *c, const rw_list *a);
int kvd_on_getrange(rw_conn *c, const rw_list *a);
int kvd_on_setrange(rw_conn *c, const rw_list *a);
int kvd_on_incrbyfloat(rw_conn *c, const rw_list *a);
int kvd_on_expire(rw_conn *c, const rw_list *a);
int kvd_on_pexpire(rw_conn *c, const rw_list *a);
int kvd_on_expireat(rw_conn *c, const rw_list *a);
int kvd_on_pexpireat(rw_conn *c, const rw_list *a);
int kvd_on_expiretime(rw_conn *c, const rw_list *a);
int kvd_on_pexpiretime(rw_conn *c, const rw_list *a);
int kvd_on_rename(rw_conn *c, const rw_list *a);
int kvd_on_renamenx(rw_conn *c, const rw_list *a);
int kvd_on_copy(rw_conn *c, const rw_list *a);
int kvd_on_type(rw_conn *c, const rw_list *a);
int kvd_on_info(rw_conn *c, const rw_list *a);
int kvd_on_auth(rw_conn *c, const rw_list *a);
int kvd_on_hello(rw_conn *c, const rw_list *a);
int kvd_on_reset(rw_conn *c, const rw_list *a);
int kvd_on_quit(rw_conn *c, const rw_list *a);
int kvd_on_time(rw_conn *c, const rw_list *a);
int kvd_on_client(rw_conn *c, const rw_list *a);
int kvd_on_command(rw_conn *c, const rw_list *a);
int kvd_on_inline(rw_conn *c, const struct resp_inline_cmd *m);
/* resp_fault.c: redis's protocol errors. The spec's refusal (status: RW_PARSE_OVERLONG, ...) and
 * its array header with no plain count, each answered by the fault redis names (an empty request
 * for a count below 1), closing; and an inline line that starts as an array's header. */
int kvd_resp_refused(rw_conn *c, int status);
int kvd_resp_odd_count(rw_conn *c, const struct resp_odd_count *m);
int kvd_resp_odd_inline(rw_conn *c, rw_span line);
/* Dispatches a request kvd split itself through the spec's table (arity, then the handler). */
int kvd_resp_dispatch(rw_conn *c, const rw_list *a);
int kvd_inline_init(unsigned workers);

#endif
