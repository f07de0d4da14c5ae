/* redis's glob patterns (util.c's stringmatchlen, redis 7.0), behaviour for behaviour: KEYS and
 * SCAN MATCH must select the keys redis would, hostile patterns included. `*` any run, `?` one
 * byte, `[abc]`, `[^x]`, `[a-z]` (ends in either order), `\` escapes. Where redis reads the byte
 * after the pattern (its strings end in a NUL), this reads 0; bytes compare as signed chars, as
 * redis's do in ranges. Recursion stops at a depth of 1000 (no match), and once the rest of a
 * pattern after a `*` failed everywhere, the earlier `*`s are not retried: as in redis, a pattern
 * of many stars costs time linear in its stars, not exponential. */
#include "kvd.h"

struct glob {
  rw_span pat;
  bool give_up; /* the rest after some `*` matched nowhere: no longer prefix can help */
};

static int pc(const struct glob *g, size_t i)
{
  return i < g->pat.len ? (signed char)g->pat.p[i] : 0;
}

/* Whether [...] starting at *pi matches byte c; *pi left on its closing `]` (or the end). */
static bool glob_class(const struct glob *g, size_t *pi, int c)
{
  size_t i = *pi + 1;
  bool negate = pc(g, i) == '^', hit = false;
  i += negate;
  for (;; i++) {
    size_t left = g->pat.len - i;
    if (pc(g, i) == '\\' && left >= 2) {
      i++;
      hit |= pc(g, i) == c;
    } else if (pc(g, i) == ']') {
      break;
    } else if (!left) {
      i--;
      break;
    } else if (left >= 3 && pc(g, i + 1) == '-') {
      int lo = pc(g, i), hi = pc(g, i + 2);
      hit |= c >= (lo < hi ? lo : hi) && c <= (lo < hi ? hi : lo);
      i += 2;
    } else {
      hit |= pc(g, i) == c;
    }
  }
  *pi = i;
  return hit != negate;
}

static bool glob_from(struct glob *g, size_t pi, const uint8_t *s, size_t slen, int depth)
{
  if (depth > 1000)
    return false;
  while (pi < g->pat.len && slen) {
    int c = (signed char)s[0];
    switch (pc(g, pi)) {
    case '*':
      while (pi < g->pat.len && pc(g, pi + 1) == '*')
        pi++;
      if (pi + 1 == g->pat.len)
        return true;
      for (; slen; s++, slen--) {
        if (glob_from(g, pi + 1, s, slen, depth + 1))
          return true;
        if (g->give_up)
          return false;
      }
      g->give_up = true;
      return false;
    case '?': break;
    case '[':
      if (!glob_class(g, &pi, c))
        return false;
      break;
    case '\\':
      if (g->pat.len - pi >= 2)
        pi++;
      /* fall through */
    default:
      if (pc(g, pi) != c)
        return false;
    }
    s++, slen--, pi++;
    if (!slen) {
      while (pc(g, pi) == '*')
        pi++;
      break;
    }
  }
  return pi == g->pat.len && !slen;
}

bool kvd_glob(rw_span pattern, rw_span s)
{
  struct glob g = {.pat = pattern};
  return glob_from(&g, 0, s.p, s.len, 0);
}
