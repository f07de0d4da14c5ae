/* counterd: the smallest appliance built on an installed ringwright. The spec (counter.rw)
 * frames the lines and answers what it can itself; these two handlers do the rest. */
#include <stdatomic.h>

#include <ringwright/ringwright.h>

#include "counter.gen.h"

/* Shared by every worker thread: atomic, so that no increment is lost. */
static _Atomic int64_t total;

static int on_incr(rw_conn *c, const struct counter_incr *msg)
{
  /* The atomic add wraps on overflow; the new value is worked out the same way, unsigned,
   * because a signed overflow would be undefined. */
  int64_t before = atomic_fetch_add(&total, msg->by);
  return counter_reply_value(c, (int64_t)((uint64_t)before + (uint64_t)msg->by));
}

static int on_get(rw_conn *c, const struct counter_get *msg)
{
  (void)msg;
  return counter_reply_value(c, atomic_load(&total));
}

static const struct counter_handlers handlers = {.incr = on_incr, .get = on_get};

int main(int argc, char **argv)
{
  rw_cli cli;
  int rc = rw_cli_parse(argc, argv, "A shared counter: incr N, get, quit.", "127.0.0.1:7100", &cli);
  if (rc)
    return rc > 0 ? 0 : 2;
  return rw_cli_serve(&cli, &counter_proto, &handlers);
}
