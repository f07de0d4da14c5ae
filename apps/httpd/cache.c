/* httpd's per-worker file cache: small files' bytes in one arena, found by path through an
 * open-addressed table, both sized at start. A file is reopened beneath the root (openat2,
 * RESOLVE_BENEATH: no "..", no absolute symlink, no symlink that leaves the root) whenever its
 * entry is more than a second old, so a changed file is seen within a second and a file swapped
 * for a symlink out of the root stops being served. When the arena or the table is full the
 * whole cache is emptied and refills: simple, bounded, and a hot set that fits stays hot.
 * Lookups that may remember an absence (precompressed siblings, asked for on every request for
 * a file) keep a path-only entry, revalidated like the others, so a missing sibling costs no
 * system call. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "httpd.h"

#define REVALIDATE_MS 1000

struct entry {
  uint32_t hash, path_len;
  uint64_t path_off, data_off, size;
  struct httpd_identity id;
  int64_t checked_ms;
  bool absent; /* the path names no regular file */
};

struct httpd_cache {
  uint8_t *arena;
  uint64_t arena_size, used;
  struct entry *table;
  uint32_t mask, count;
};

int httpd_cache_create(uint64_t bytes, struct httpd_cache **out_cache)
{
  struct httpd_cache *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  /* One slot per 4 KiB of arena, at most half full. */
  uint32_t slots = 64;
  while (slots < bytes / 2048)
    slots *= 2;
  c->arena_size = bytes;
  c->arena = bytes ? malloc(bytes) : NULL;
  c->table = calloc(slots, sizeof *c->table);
  c->mask = slots - 1;
  if ((bytes && !c->arena) || !c->table) {
    free(c->arena);
    free(c->table);
    free(c);
    return -ENOMEM;
  }
  *out_cache = c;
  return 0;
}

static uint32_t hash_path(const char *p, size_t n)
{
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (uint8_t)p[i]) * 16777619u;
  return h | 1; /* 0 marks an empty slot */
}

static int open_beneath(const char *path)
{
  struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY,
                         .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
  int fd = (int)syscall(SYS_openat2, httpd.root_fd, path, &how, sizeof how);
  if (fd >= 0)
    return fd;
  /* Outside the root (EXDEV), missing, or a directory in the way: all "not found". */
  return errno == EACCES || errno == EPERM ? -EACCES : -ENOENT;
}

static struct entry *lookup(struct httpd_cache *c, const char *path, size_t n, uint32_t h)
{
  for (uint32_t i = h & c->mask;; i = (i + 1) & c->mask) {
    struct entry *e = &c->table[i];
    if (!e->hash)
      return NULL;
    if (e->hash == h && e->path_len == n && !memcmp(c->arena + e->path_off, path, n))
      return e;
  }
}

static void cache_clear(struct httpd_cache *c)
{
  memset(c->table, 0, ((size_t)c->mask + 1) * sizeof *c->table);
  c->used = 0;
  c->count = 0;
}

/* Reads `fd` into the cache under `path`; NULL if it does not fit (or changed size meanwhile). */
static struct httpd_identity identity(const struct stat *st)
{
  return (struct httpd_identity){.dev = (uint64_t)st->st_dev,
                                 .ino = (uint64_t)st->st_ino,
                                 .mtime = st->st_mtim.tv_sec,
                                 .mtime_ns = (uint32_t)st->st_mtim.tv_nsec};
}

/* Reads `fd` into the cache under `path` (with st NULL: remembers that the path is absent);
 * NULL if it does not fit (or changed size meanwhile). */
static struct entry *insert(struct httpd_cache *c, const char *path, size_t n, uint32_t h, int fd,
                            const struct stat *st, int64_t now_ms)
{
  uint64_t size = st ? (uint64_t)st->st_size : 0, need = n + size;
  if (need > c->arena_size)
    return NULL;
  if (c->used + need > c->arena_size || c->count + 1 > (c->mask + 1) / 2)
    cache_clear(c);
  uint8_t *at = c->arena + c->used;
  if (st && pread(fd, at + n, (size_t)size, 0) != (ssize_t)size)
    return NULL;
  memcpy(at, path, n);
  uint32_t i = h & c->mask;
  while (c->table[i].hash)
    i = (i + 1) & c->mask;
  struct entry *e = &c->table[i];
  *e = (struct entry){.hash = h,
                      .path_len = (uint32_t)n,
                      .path_off = c->used,
                      .data_off = c->used + n,
                      .size = size,
                      .id = st ? identity(st) : (struct httpd_identity){0},
                      .checked_ms = now_ms,
                      .absent = !st};
  c->used += need;
  c->count++;
  return e;
}

static void from_entry(const struct httpd_cache *c, const struct entry *e, struct httpd_file *out)
{
  *out = (struct httpd_file){.fd = -1, .data = c->arena + e->data_off, .size = e->size, .id = e->id};
}

static bool same_file(const struct entry *e, const struct stat *st)
{
  struct httpd_identity id = identity(st);
  return !e->absent && e->size == (uint64_t)st->st_size && !memcmp(&e->id, &id, sizeof id);
}

int httpd_open(struct httpd_cache *c, const char *path, int64_t now_ms, bool remember_absent,
               struct httpd_file *out)
{
  size_t n = strlen(path);
  uint32_t h = hash_path(path, n);
  struct entry *e = lookup(c, path, n, h);
  if (e && now_ms - e->checked_ms < REVALIDATE_MS) {
    if (e->absent)
      return -ENOENT;
    from_entry(c, e, out);
    return 0;
  }
  int fd = open_beneath(path);
  struct stat st;
  if (fd >= 0) {
    int kind = fstat(fd, &st) < 0    ? -ENOENT
               : S_ISREG(st.st_mode) ? 0
               : S_ISDIR(st.st_mode) ? -EISDIR
                                     : -ENOENT;
    if (kind) {
      close(fd);
      fd = kind;
    }
  }
  if (fd < 0) {
    if (e && e->absent)
      e->checked_ms = now_ms;
    else if (remember_absent && fd == -ENOENT)
      insert(c, path, n, h, -1, NULL, now_ms);
    /* (a stale entry of a file stays until the cache is cleared: it is unreachable meanwhile) */
    return fd;
  }
  if (e && same_file(e, &st)) {
    e->checked_ms = now_ms;
  } else if ((uint64_t)st.st_size <= httpd.cache_file_max) {
    if (e)
      cache_clear(c); /* the old bytes are stale: simplest is to start over */
    e = insert(c, path, n, h, fd, &st, now_ms);
  } else {
    e = NULL;
  }
  if (e) {
    close(fd);
    from_entry(c, e, out);
  } else {
    *out = (struct httpd_file){.fd = fd, .size = (uint64_t)st.st_size, .id = identity(&st)};
  }
  return 0;
}
