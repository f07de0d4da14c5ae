/* kvd: values too long to copy into the send chain at once (up to 512 MiB) go out from the
 * item itself, pinned, as much per loop turn as the connection has room for. The item stays
 * readable however the keyspace changes meanwhile (a pinned item that is overwritten or deleted
 * keeps its memory until the last pin goes), and its bytes never change: kvd replaces values,
 * it never edits them in place. */
#include <errno.h>
#include <string.h>

#include "kvd.h"

static int stream_more(rw_conn *c, void *data, size_t room)
{
  struct kvd_conn *kc = data;
  kv_item *it = kc->stream_it;
  int rc = 0;
  if (room) {
    size_t left = kc->stream_end - kc->stream_off, tail = kc->stream_crlf ? 2 : 0;
    if (left + tail > room) { /* the value's end and its CRLF next time */
      size_t n = left < room ? left : room;
      rc = rw_conn_write(c, kv_value(it) + kc->stream_off, n);
      kc->stream_off += (uint32_t)n;
      if (!rc)
        return 1;
    } else {
      struct iovec iov[2] = {{kv_value(it) + kc->stream_off, left}, {(void *)"\r\n", tail}};
      rc = rw_conn_writev(c, iov, 2);
    }
  }
  kv_release(&kvd.store, it);
  kc->stream_it = NULL;
  return rc;
}

int kvd_stream_range(rw_conn *c, kv_shard *sh, kv_item *it, uint32_t off, uint32_t len, bool crlf)
{
  struct kvd_conn *kc = rw_conn_user(c);
  kc->stream_crlf = crlf;
  kv_pin(sh, it);
  kc->stream_it = it;
  kc->stream_off = off;
  kc->stream_end = off + len;
  rw_conn_stream(c, stream_more, kc);
  return 1;
}

int kvd_stream_value(rw_conn *c, kv_shard *sh, kv_item *it, bool crlf)
{
  return kvd_stream_range(c, sh, it, 0, it->vlen, crlf);
}

/* Room for a value copied whole (shorter than KVD_STREAM_MIN), its header and CRLF. */
#define REPLY_ROOM (KVD_STREAM_MIN + 64)

bool kvd_reply_full(rw_conn *c, size_t request_len)
{
  size_t budget = request_len > KVD_REPLY_MIN ? request_len : KVD_REPLY_MIN;
  return rw_conn_queued(c) >= budget || rw_conn_room(c) < REPLY_ROOM;
}

/* Done (the command goes on) once the room is back, or once everything queued has gone: a
 * handler takes at least one key per dispatch, so a slab that never frees that much room still
 * sees the command through. */
static int room_back(rw_conn *c, void *data, size_t room)
{
  (void)data;
  return room && room < REPLY_ROOM && rw_conn_queued(c) ? 1 : 0;
}

int kvd_wait_room(rw_conn *c)
{
  rw_conn_stream(c, room_back, NULL);
  return -EAGAIN;
}
