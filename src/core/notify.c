/* systemd's notify protocol, the part a server needs: one datagram to $NOTIFY_SOCKET once the
 * listeners are up, so that `Type=notify` units count as started only when they accept (and
 * units after them start then). libsystemd would add a dependency for 40 lines. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

/* The address $NOTIFY_SOCKET names, and its length; 0 when it names none we can use. */
static socklen_t notify_addr(const char *path, struct sockaddr_un *sa)
{
  size_t n = strlen(path);
  if ((path[0] != '/' && path[0] != '@') || n < 2 || n >= sizeof sa->sun_path)
    return 0;
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  memcpy(sa->sun_path, path, n);
  if (path[0] == '@')
    sa->sun_path[0] = '\0'; /* abstract: no terminating NUL, the length says where it ends */
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

int rw_notify(const char *state)
{
  const char *path = getenv("NOTIFY_SOCKET");
  if (!path || !*path)
    return 0;
  struct sockaddr_un sa;
  socklen_t len = notify_addr(path, &sa);
  int rc = len ? 0 : -EINVAL;
  int fd = rc ? -1 : socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (!rc && fd < 0)
    rc = -errno;
  if (!rc && sendto(fd, state, strlen(state), MSG_NOSIGNAL, (const struct sockaddr *)&sa, len) < 0)
    rc = -errno;
  if (fd >= 0)
    close(fd);
  if (rc)
    rw_log("cannot notify the service manager at NOTIFY_SOCKET=%s: %s", path, strerror(-rc));
  return rc;
}
