/* Log files written off the loop: lines go into a bounded buffer of the worker that logs them
 * (two halves: one fills while the other is written through rw_file_write), so logging never
 * blocks a worker and never allocates. When the disk cannot keep up and both halves are full, a
 * line is dropped and counted. A half is written when it fills, or RW_LOGFILE_FLUSH_MS after
 * its first line, whichever comes first. rw_logfile_reopen() (on SIGHUP: rw_server_on_hup)
 * reopens the file by its name, for log rotation. */
#ifndef RINGWRIGHT_LOGFILE_H
#define RINGWRIGHT_LOGFILE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rw_worker rw_worker;
typedef struct rw_server rw_server;
typedef struct rw_logfile rw_logfile;

#define RW_LOGFILE_FLUSH_MS 50

/* Opens `path` for appending (created 0644 less the umask) and sets aside two halves of
 * `half_size` bytes for each of the server's workers; call it after rw_server_create (or
 * rw_cli_server) and before rw_server_run. 0, or -errno (the file cannot be opened: said at
 * once, not at the first line). */
int rw_logfile_open(rw_server *s, const char *path, size_t half_size, rw_logfile **out_lf);
/* Room for one line of `len` bytes in worker `w`'s buffer (call on `w`'s thread), or NULL: the
 * line is dropped and counted (both halves are full, or `len` is longer than a half). Follow a
 * non-NULL answer with rw_logfile_commit(). */
char *rw_logfile_reserve(rw_logfile *lf, rw_worker *w, size_t len);
/* The line reserved last on `w` is complete: its first `len` bytes (at most what was
 * reserved) are written with the next batch. */
void rw_logfile_commit(rw_logfile *lf, rw_worker *w, size_t len);
/* Asks every worker to reopen the file by its name once the write it has in flight is done
 * (from a worker's thread, `from`; or NULL from another thread). Lines go on being buffered
 * meanwhile. A file that cannot be reopened is said in the log; the old one is kept. */
void rw_logfile_reopen(rw_logfile *lf, rw_worker *from);
/* Lines written, and lines dropped (no room, or a write that failed), all workers together:
 * readable from any thread at any time. */
uint64_t rw_logfile_written(const rw_logfile *lf);
uint64_t rw_logfile_dropped(const rw_logfile *lf);
/* After rw_server_run has returned: writes what the buffers still hold (blocking), so that
 * the counts above are final. */
void rw_logfile_drain(rw_logfile *lf);
/* Drains (above), closes the file and frees the buffers. NULL is allowed. */
void rw_logfile_close(rw_logfile *lf);

#ifdef __cplusplus
}
#endif

#endif
