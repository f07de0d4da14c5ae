/* LD_PRELOAD interposer for the zero-allocation test: counts every malloc-family call of the
 * process and prints the count to stderr on SIGUSR2 ("malloc-count N"). It forwards to glibc's
 * own entry points (__libc_malloc, ...), which need no dlsym and so no allocation to start. */
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static atomic_ulong calls;

void *malloc(size_t n)
{
  atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
  return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
  atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
  return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
  atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
  return __libc_realloc(p, n);
}

void free(void *p)
{
  if (p)
    atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
  __libc_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
  atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
  *out = __libc_memalign(align, n);
  return *out ? 0 : 12;
}

void *aligned_alloc(size_t align, size_t n)
{
  atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
  return __libc_memalign(align, n);
}

static void report(int sig)
{
  (void)sig;
  char line[64];
  unsigned long n = atomic_load(&calls);
  /* async-signal-safe formatting */
  char digits[24];
  int k = 0;
  do {
    digits[k++] = (char)('0' + n % 10);
    n /= 10;
  } while (n);
  size_t len = 0;
  memcpy(line, "malloc-count ", 13);
  len = 13;
  while (k)
    line[len++] = digits[--k];
  line[len++] = '\n';
  ssize_t rc = write(2, line, len);
  (void)rc;
}

__attribute__((constructor)) static void install(void)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = report;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR2, &sa, NULL);
}
