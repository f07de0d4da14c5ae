/* Readiness for a service manager: systemd's notify protocol without libsystemd. */
#ifndef RW_CORE_NOTIFY_H
#define RW_CORE_NOTIFY_H

/* Sends `state` ("READY=1", ...) as one datagram to the AF_UNIX socket $NOTIFY_SOCKET names (a
 * path, or "@name" in the abstract namespace), as sd_notify(3) does; logs why on failure.
 * Returns 0, also when $NOTIFY_SOCKET is unset (not run by systemd), or a negative errno. */
int rw_notify(const char *state);

#endif
