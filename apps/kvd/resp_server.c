/* kvd's RESP connection and server commands: AUTH, HELLO (RESP2 only), RESET, QUIT, TIME,
 * CLIENT and COMMAND, with redis 7.0's replies and error texts. */
#include <stdio.h>
#include <time.h>

#include "resp_cmd.h"

static const rw_span WRONGPASS = S("WRONGPASS invalid username-password pair or user is disabled.");

int kvd_reply_noauth(rw_conn *c)
{
  return resp_reply_error(c, S("NOAUTH Authentication required."));
}

/* A user and password: the connection is authenticated when they are right (a wrong pair leaves
 * it as it was, as in redis). */
static bool authenticate(rw_conn *c, rw_span user, rw_span pass)
{
  if (!kvd_auth_check(user, pass))
    return false;
  ((struct kvd_conn *)rw_conn_user(c))->authed = true;
  kvd_resp_gate_input(c, true);
  return true;
}

int kvd_on_auth(rw_conn *c, const rw_list *a)
{
  kvd_client_seen(c, "auth");
  if (a->count > 3)
    return resp_reply_error(c, KVD_SYNTAX);
  if (a->count == 2 && !kvd_auth_required())
    return resp_reply_error(c, S("ERR AUTH <password> called without any password configured for the default "
                                 "user. Are you sure your configuration is correct?"));
  rw_span user = a->count == 3 ? a->item[1] : S("default");
  return authenticate(c, user, rw_list_at(a, a->count - 1)) ? resp_reply_ok(c)
                                                            : resp_reply_error(c, WRONGPASS);
}

/* CLIENT SETNAME's check and copy: 0, or 1 after replying with redis's error (-EIO when the
 * reply failed). */
static int set_name(rw_conn *c, rw_span name)
{
  const char *bad = NULL;
  for (size_t i = 0; i < name.len && !bad; i++)
    if (name.p[i] < '!' || name.p[i] > '~')
      bad = "ERR Client names cannot contain spaces, newlines or special characters.";
  if (!bad && name.len > KVD_NAME_MAX)
    bad = "ERR Client name too long (kvd keeps 128 bytes)";
  if (bad)
    return resp_reply_error(c, (rw_span){(const uint8_t *)bad, strlen(bad)}) < 0 ? -EIO : 1;
  kvd_client_set_name(c, name);
  return 0;
}

/* HELLO's reply: redis's map, as RESP2 writes one (an array of pairs). */
static int hello_reply(rw_conn *c)
{
  int rc = resp_reply_array(c, 14);
  static const char *const head[] = {"server", "redis", "version", "7.0.15", "proto"};
  for (size_t i = 0; i < 5 && rc >= 0; i++)
    rc = resp_reply_bulk(c, (rw_span){(const uint8_t *)head[i], strlen(head[i])});
  if (rc >= 0)
    rc = resp_reply_integer(c, 2);
  if (rc >= 0)
    rc = resp_reply_bulk(c, S("id"));
  if (rc >= 0)
    rc = resp_reply_integer(c, (int64_t)kvd_client_id(c));
  static const char *const tail[] = {"mode", "standalone", "role", "master", "modules"};
  for (size_t i = 0; i < 5 && rc >= 0; i++)
    rc = resp_reply_bulk(c, (rw_span){(const uint8_t *)tail[i], strlen(tail[i])});
  return rc >= 0 ? resp_reply_array(c, 0) : rc;
}

/* HELLO [protover [AUTH user pass] [SETNAME name]]: kvd speaks RESP2, so protocol 3 gets the
 * error redis gives a version it does not know. Options apply in order, as in redis. */
int kvd_on_hello(rw_conn *c, const rw_list *a)
{
  kvd_client_seen(c, "hello");
  int64_t ver;
  if (a->count >= 2 && kvd_parse_i64(a->item[1], &ver) < 0)
    return resp_reply_error(c, S("ERR Protocol version is not an integer or out of range"));
  if (a->count >= 2 && ver != 2)
    return resp_reply_error(c, S("NOPROTO unsupported protocol version"));
  rw_list_iter it;
  rw_span opt, user, pass, name;
  kvd_list_from(a, &it, 2);
  while (!rw_list_next(a, &it, &opt)) {
    uint32_t more = a->count - it.i;
    if (kvd_eq(opt, "auth") && more >= 2) {
      rw_list_next(a, &it, &user);
      rw_list_next(a, &it, &pass);
      if (!authenticate(c, user, pass))
        return resp_reply_error(c, WRONGPASS);
    } else if (kvd_eq(opt, "setname") && more) {
      rw_list_next(a, &it, &name);
      int rc = set_name(c, name);
      if (rc)
        return rc < 0 ? rc : 0;
    } else { /* redis prints the option as a C string: up to its first NUL */
      const void *nul = memchr(opt.p, 0, opt.len);
      int len = nul ? (int)((const uint8_t *)nul - opt.p) : (int)opt.len;
      return kvd_reply_errorf(c, "ERR Syntax error in HELLO option '%.*s'", len > 256 ? 256 : len,
                              (const char *)opt.p);
    }
  }
  if (!kvd_authed(c))
    return resp_reply_error(c,
                            S("NOAUTH HELLO must be called with the client already authenticated, otherwise "
                              "the HELLO AUTH <user> <pass> option can be used to authenticate the client "
                              "and select the RESP protocol version at the same time"));
  return hello_reply(c);
}

/* RESET: the connection as new (no name; not authenticated when a password is set). */
int kvd_on_reset(rw_conn *c, const rw_list *a)
{
  kvd_client_seen(c, "reset");
  (void)a;
  struct kvd_conn *kc = rw_conn_user(c);
  kvd_client_set_name(c, (rw_span){0});
  kc->authed = false;
  kvd_resp_gate_input(c, false);
  return resp_reply_simple(c, S("RESET"));
}

int kvd_on_quit(rw_conn *c, const rw_list *a)
{
  kvd_client_seen(c, "quit");
  (void)a;
  int rc = resp_reply_ok(c);
  rw_conn_close(c);
  return rc;
}

/* TIME: Unix seconds and microseconds, as two bulk strings. */
int kvd_on_time(rw_conn *c, const rw_list *a)
{
  (void)a;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  char s[24], us[24];
  int rc = resp_reply_array(c, 2);
  if (rc >= 0)
    rc = resp_reply_bulk(c, (rw_span){(const uint8_t *)s, rw_fmt_i64(s, ts.tv_sec)});
  return rc >= 0 ? resp_reply_bulk(c, (rw_span){(const uint8_t *)us, rw_fmt_i64(us, ts.tv_nsec / 1000)}) : rc;
}

int kvd_on_client(rw_conn *c, const rw_list *a)
{
  struct kvd_conn *kc = rw_conn_user(c);
  rw_span sub = a->item[1];
  /* cmd= in CLIENT LIST: redis 7.0 names the subcommand */
  static const char *const subs[] = {"client|setname", "client|getname", "client|id"};
  for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
    if (kvd_eq(sub, subs[i] + 7))
      atomic_store_explicit(&kc->last_cmd, subs[i], memory_order_relaxed);
  if (kvd_eq(sub, "setname")) {
    if (a->count != 3)
      return resp_reply_wrong_args(c, S("client|setname"));
    int rc = set_name(c, a->item[2]);
    return rc ? (rc < 0 ? rc : 0) : resp_reply_ok(c);
  }
  if (kvd_eq(sub, "getname")) {
    if (a->count != 2)
      return resp_reply_wrong_args(c, S("client|getname"));
    return kc->name_len ? resp_reply_bulk(c, (rw_span){(const uint8_t *)kc->name, kc->name_len})
                        : resp_reply_null(c);
  }
  if (kvd_eq(sub, "id"))
    return a->count == 2 ? resp_reply_integer(c, (int64_t)kvd_client_id(c))
                         : resp_reply_wrong_args(c, S("client|id"));
  if (kvd_eq(sub, "list") || kvd_eq(sub, "info") || kvd_eq(sub, "kill"))
    return kvd_client_command(c, a, sub);
  return kvd_reply_errorf(c, "ERR unknown subcommand '%.*s'. Try CLIENT HELP.",
                          (int)(sub.len > 40 ? 40 : sub.len), (const char *)sub.p);
}

/* COMMAND: described from the spec's own table; key positions are kvd's knowledge. */
static bool named(const char *name, const char *const *list)
{
  for (; *list; list++)
    if (!strcmp(name, *list))
      return true;
  return false;
}

static void key_spec(const char *name, int64_t out[3])
{
  static const char *const keyless[] = {"ping",  "echo",    "dbsize",    "flushall", "flushdb", "select",
                                        "info",  "command", "client",    "quit",     "time",    "auth",
                                        "hello", "reset",   "randomkey", "keys",     "scan",    NULL};
  static const char *const all_keys[] = {"mget", "del", "unlink", "exists", "touch", NULL};
  static const char *const pairs[] = {"mset", "msetnx", NULL};
  static const char *const two_keys[] = {"rename", "renamenx", "copy", NULL};
  out[0] = out[1] = out[2] = 1;
  if (named(name, keyless))
    out[0] = out[1] = out[2] = 0;
  if (named(name, all_keys) || named(name, pairs))
    out[1] = -1;
  if (named(name, pairs))
    out[2] = 2;
  if (named(name, two_keys))
    out[1] = 2;
}

static int reply_command(rw_conn *c, const rw_command *e)
{
  int64_t keys[3];
  key_spec(e->name, keys);
  int rc = resp_reply_array(c, 6);
  if (rc >= 0)
    rc = resp_reply_bulk(c, (rw_span){(const uint8_t *)e->name, e->len});
  if (rc >= 0)
    rc = resp_reply_integer(c, e->at_least ? -(int64_t)e->arity : e->arity);
  if (rc >= 0)
    rc = resp_reply_array(c, 0);
  for (int i = 0; i < 3 && rc >= 0; i++)
    rc = resp_reply_integer(c, keys[i]);
  return rc;
}

int kvd_on_command(rw_conn *c, const rw_list *a)
{
  int rc = 0;
  if (a->count == 1) {
    rc = resp_reply_array(c, resp_ncommands);
    for (size_t i = 0; i < resp_ncommands && rc >= 0; i++)
      rc = reply_command(c, &resp_commands[i]);
    return rc;
  }
  rw_span sub = a->item[1];
  if (kvd_eq(sub, "count") && a->count == 2)
    return resp_reply_integer(c, (int64_t)resp_ncommands);
  if (kvd_eq(sub, "docs")) /* no documentation to offer: an empty map */
    return resp_reply_array(c, 0);
  if (kvd_eq(sub, "list") && a->count == 2) {
    rc = resp_reply_array(c, resp_ncommands);
    for (size_t i = 0; i < resp_ncommands && rc >= 0; i++)
      rc = resp_reply_bulk(c, (rw_span){(const uint8_t *)resp_commands[i].name, resp_commands[i].len});
    return rc;
  }
  if (kvd_eq(sub, "info")) { /* a reply per name: it stops when the send queue is full, as MGET */
    rw_list_iter it;
    rw_span name;
    rc = kvd_resumed(c) ? 0 : resp_reply_array(c, a->count - 2);
    kvd_resume_start(c, a, &it, 2);
    while (rc >= 0 && !rw_list_next(a, &it, &name)) {
      const rw_command *e = resp_command(name);
      rc = e ? reply_command(c, e) : resp_reply_null(c); /* redis too: a null bulk */
      if (rc >= 0 && it.i < a->count && kvd_reply_full(c, a->region.len)) {
        kvd_resume_stop(c, a, &it, 0);
        return kvd_wait_room(c);
      }
    }
    kvd_resume_done(c);
    return rc;
  }
  char msg[96];
  int len = snprintf(msg, sizeof msg, "ERR unknown subcommand '%.*s'. Try COMMAND HELP.",
                     (int)(sub.len > 40 ? 40 : sub.len), (const char *)sub.p);
  return resp_reply_error(c, (rw_span){(const uint8_t *)msg, (size_t)len});
}
