/* kvd's password (--requirepass, --requirepass-file): redis's default user with a password, and
 * for memcache, memcached's text-protocol authentication (-Y: a first `set` whose data is
 * "username password"). Secrets are compared in time that does not depend on their bytes.
 * Without a password, memcache may only listen on loopback addresses: its protocols have no
 * other way to keep a network out. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "kvd.h"

#define PASS_MAX 512 /* bytes of password kept; a longer one is refused at start */

static struct {
  char pass[PASS_MAX];
  size_t len;
  bool on;
} auth;

int kvd_auth_set(const char *pass, size_t len)
{
  if (!len || len > PASS_MAX) {
    fprintf(stderr, "kvd: the password must be 1 to %d bytes, not %zu\n", PASS_MAX, len);
    return -EINVAL;
  }
  memcpy(auth.pass, pass, len);
  auth.len = len;
  auth.on = true;
  return 0;
}

int kvd_auth_load(const char *path)
{
  FILE *f = fopen(path, "r");
  if (!f) {
    int err = errno;
    fprintf(stderr, "kvd: --requirepass-file %s: %s\n", path, strerror(err));
    return -err;
  }
  char buf[PASS_MAX + 2];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  /* The first line is the password: its line break (LF or CRLF) is not part of it. */
  char *nl = memchr(buf, '\n', n);
  if (nl)
    n = (size_t)(nl - buf);
  if (n && buf[n - 1] == '\r')
    n--;
  return kvd_auth_set(buf, n);
}

bool kvd_auth_required(void)
{
  return auth.on;
}

/* Whether `given` is the password, in time that depends on its length only. */
static bool is_password(rw_span given)
{
  volatile uint8_t diff = given.len != auth.len;
  for (size_t i = 0; i < given.len; i++)
    diff |= given.p[i] ^ (uint8_t)(i < auth.len ? auth.pass[i] : 0);
  return !diff;
}

bool kvd_auth_check(rw_span user, rw_span pass)
{
  bool is_default = user.len == 7 && !memcmp(user.p, "default", 7);
  if (!auth.on) /* redis's default user without a password takes any */
    return is_default;
  /* (the password is compared whatever the name: no shortcut tells names apart) */
  return is_password(pass) & is_default;
}

/* Whether every address `host` names is a loopback one. */
static bool loopback_only(const char *host)
{
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
  if (getaddrinfo(host, NULL, &hints, &res))
    return false;
  bool only = true;
  for (ai = res; ai && only; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET)
      only = (ntohl(((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr) >> 24) == 127;
    else
      only =
          ai->ai_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr);
  }
  freeaddrinfo(res);
  return only;
}

int kvd_auth_listen_ok(const char *flag, const char *hostport)
{
  if (auth.on)
    return 0;
  char host[256];
  const char *colon = strrchr(hostport, ':');
  size_t len = colon ? (size_t)(colon - hostport) : strlen(hostport);
  if (len >= 2 && hostport[0] == '[' && hostport[len - 1] == ']') /* [::1]:port */
    hostport++, len -= 2;
  if (len && len < sizeof host) {
    memcpy(host, hostport, len);
    host[len] = 0;
    if (loopback_only(host))
      return 0;
  }
  fprintf(stderr,
          "kvd: %s %s: memcache without a password listens on loopback addresses only; set one with "
          "--requirepass or --requirepass-file (clients then authenticate as memcached -Y asks)\n",
          flag, hostport);
  return -EPERM;
}
