/* httpd's per-worker file cache: small files' bytes in one arena, found by path through an
 * open-addressed table, both sized at start. A file is reopened beneath the root (openat2,
 * RESOLVE_BENEATH: no "..", no absolute symlink, no symlink that leaves the root) whenever its
 * entry is more than a second old, so a changed file is seen within a second and a file swapped
 * for a symlink out of the root stops being served. When the arena or the table is full the
 * whole cache is emptied and refills: simple, bounded, and a hot set that fits stays hot. */
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
  time_t mtime;
  int64_t checked_ms;
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
static struct entry *insert(struct httpd_cache *c, const char *path, size_t n, uint32_t h, int fd,
                            const struct stat *st, int64_t now_ms)
{
  uint64_t need = n + (uint64_t)st->st_size;
  if (need > c->arena_size)
    return NULL;
  if (c->used + need > c->arena_size || c->count + 1 > (c->mask + 1) / 2)
    cache_clear(c);
  uint8_t *at = c->arena + c->used;
  ssize_t got = pread(fd, at + n, (size_t)st->st_size, 0);
  if (got != st->st_size)
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
                      .size = (uint64_t)st->st_size,
                      .mtime = st->st_mtime,
                      .checked_ms = now_ms};
  c->used += need;
  c->count++;
  return e;
}

int httpd_open(struct httpd_cache *c, const char *path, int64_t now_ms, struct httpd_file *out)
{
  size_t n = strlen(path);
  uint32_t h = hash_path(path, n);
  struct entry *e = lookup(c, path, n, h);
  if (e && now_ms - e->checked_ms < REVALIDATE_MS) {
    *out = (struct httpd_file){.fd = -1, .data = c->arena + e->data_off, .size = e->size, .mtime = e->mtime};
    return 0;
  }
  int fd = open_beneath(path);
  if (fd < 0)
    return fd; /* a stale entry stays until the cache is cleared: it is unreachable meanwhile */
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return -ENOENT;
  }
  if (e && e->size == (uint64_t)st.st_size && e->mtime == st.st_mtime) {
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
    *out = (struct httpd_file){.fd = -1, .data = c->arena + e->data_off, .size = e->size, .mtime = e->mtime};
  } else {
    *out = (struct httpd_file){.fd = fd, .size = (uint64_t)st.st_size, .mtime = st.st_mtime};
  }
  return 0;
}
