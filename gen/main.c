/* rwgen: compiles a protocol spec into C (via re2c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spec.h"

#define SPEC_MAX_BYTES (4 * 1024 * 1024)

static const char usage[] =
    "usage: rwgen [-o OUTDIR] SPEC.rw\n"
    "       rwgen --dot SPEC.rw > machine.dot\n"
    "\n"
    "Compiles a ringwright protocol spec into C. For SPEC named NAME.rw it writes\n"
    "  OUTDIR/NAME.gen.h   commands, message structs, handler table, reply writers, NAME_proto\n"
    "  OUTDIR/NAME.gen.re  the resumable parser and dispatch table; run `re2c -f` on it\n"
    "Errors are reported as file:line:col: message, with the line quoted; exit status 1.\n"
    "\n"
    "options:\n"
    "  -o OUTDIR   where to write (default: the current directory)\n"
    "  --dot       print a Graphviz digraph of the protocol's machine instead\n"
    "  --help      this text\n"
    "\n"
    "The spec language is described in ringwright-spec(5) and docs/spec-language.md.\n";

static int read_file(const char *path, char **out_text, size_t *out_len)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return -errno;
  char *buf = malloc(SPEC_MAX_BYTES + 1);
  size_t n = buf ? fread(buf, 1, SPEC_MAX_BYTES + 1, f) : 0;
  int err = !buf ? -ENOMEM : ferror(f) ? -EIO : n > SPEC_MAX_BYTES ? -EFBIG : 0;
  fclose(f);
  if (err) {
    free(buf);
    return err;
  }
  if (memchr(buf, 0, n)) {
    free(buf);
    return -EILSEQ;
  }
  buf[n] = 0;
  *out_text = buf;
  *out_len = n;
  return 0;
}

/* Writes through a temporary file and renames, so a failed run never leaves half a file that a
 * later ninja run would take as up to date. */
static int write_output(const char *dir, const char *stem, const char *ext, const struct spec *s,
                        int (*emit)(const struct spec *, FILE *))
{
  char path[4096], tmp[4200];
  snprintf(path, sizeof path, "%s/%s%s", dir, stem, ext);
  snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
  FILE *f = fopen(tmp, "w");
  if (!f)
    return -errno;
  int rc = emit(s, f);
  if (fclose(f) != 0 && rc == 0)
    rc = -errno;
  if (rc == 0 && rename(tmp, path) != 0)
    rc = -errno;
  if (rc) {
    unlink(tmp);
    fprintf(stderr, "rwgen: %s: %s\n", path, strerror(-rc));
  }
  return rc;
}

static char *stem_of(const char *path)
{
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  char *stem = strdup(base);
  if (!stem)
    return NULL;
  size_t n = strlen(stem);
  if (n > 3 && !strcmp(stem + n - 3, ".rw"))
    stem[n - 3] = 0;
  return stem;
}

int main(int argc, char **argv)
{
  const char *outdir = ".", *path = NULL;
  bool dot = false;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      fputs(usage, stdout);
      return 0;
    } else if (!strcmp(argv[i], "--dot")) {
      dot = true;
    } else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
      outdir = argv[++i];
    } else if (argv[i][0] == '-' || path) {
      fprintf(stderr, "rwgen: unexpected argument '%s'\n%s", argv[i], usage);
      return 2;
    } else {
      path = argv[i];
    }
  }
  if (!path) {
    fputs(usage, stderr);
    return 2;
  }
  struct source src = {.path = path};
  char *text = NULL;
  int rc = read_file(path, &text, &src.len);
  if (rc) {
    fprintf(stderr, "rwgen: %s: %s\n", path, rc == -EILSEQ ? "contains a NUL byte" : strerror(-rc));
    return 1;
  }
  src.text = text;
  char *stem = stem_of(path);
  src.stem = stem;
  struct spec spec = {0};
  rc = stem ? 0 : -ENOMEM;
  if (!rc)
    rc = spec_parse(&src, &spec) < 0 || spec_check(&spec) < 0 ? 1 : 0;
  if (!rc && dot) {
    rc = emit_dot(&spec, stdout) ? 1 : 0;
  } else if (!rc) {
    rc = write_output(outdir, stem, ".gen.h", &spec, emit_header) ||
         write_output(outdir, stem, ".gen.re", &spec, emit_re);
  }
  if (src.nerrors)
    fprintf(stderr, "rwgen: %d error%s in %s\n", src.nerrors, src.nerrors == 1 ? "" : "s", path);
  spec_free(&spec);
  free(stem);
  free(text);
  return rc ? 1 : 0;
}
