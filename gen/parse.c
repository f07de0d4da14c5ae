/* The spec parser: recursive descent over the lexer's tokens, one token of lookahead.
 * On a syntax error it reports file:line:col and skips to the next ';' so that one run reports
 * every independent error in the file.
 *
 *   spec    := decl* EOF
 *   decl    := 'protocol' IDENT ';'
 *            | 'limit' 'line' NUMBER ';'
 *            | 'raw' IDENT ';'
 *            | 'limit' 'data' NUMBER ';'
 *            | 'token' IDENT '=' alt ('max' NUMBER)? action? ';'
 *            | 'number' TYPE IDENT '=' alt 'wrap'? action? ';'  TYPE := u32 | u64 | i64
 *            | 'command' IDENT '=' alt ('quiet' IDENT)? action? ';'
 *            | 'reply' IDENT params? '=' part+ ';'
 *            | 'otherwise' action ';'
 *            | 'frame' ('binary' | 'lines' | 'resp2') ';'    before any command
 *            | 'role' ('client' | 'server') ';'   | 'expect' 'head' ';'
 *            | 'limit' 'depth' NUMBER ';'          (resp2: arrays inside arrays)
 *   binary command items (after `frame binary;`):
 *            STRING | NUMBER (one byte) | IDENT ':' INT | IDENT ':' 'bytes' '(' term (('+'|'-') term)* ')'
 *            INT := u8 | u16be | u16le | u24be | u24le | u32be | u32le | u64be | u64le
 *   binary reply parts: INT '(' IDENT | 'len' '(' IDENT ')' ')' and NUMBER (one byte), too
 *            | 'on' EVENT action ';'     EVENT := overlong | too_large | bad_number | bad_data
 *   params  := '(' IDENT (':' TYPE)? (',' IDENT (':' TYPE)?)* ')'
 *   part    := STRING | IDENT | 'len' '(' IDENT ')'
 *   action  := '->' ( 'reply' IDENT (',' 'close')? | 'close' )
 *   alt     := seq ('|' seq)*
 *   seq     := item+
 *   item    := atom quant*
 *   atom    := STRING | ISTRING | CLASS | '.' | IDENT (':' atom)? | '(' alt ')'
 *            | IDENT ':' 'bytes' '(' IDENT ')'
 *   quant   := '*' | '+' | '?' | '{' NUMBER (',' NUMBER?)? '}'
 */
#include <stdlib.h>
#include <string.h>

#include "construct.h"
#include "parser.h"

void *xcalloc(size_t n, size_t size)
{
  void *p = calloc(n ? n : 1, size);
  if (!p) {
    perror("rwgen");
    exit(1);
  }
  return p;
}

void *xgrow(void *p, size_t n, size_t size)
{
  p = realloc(p, (n + 1) * size);
  if (!p) {
    perror("rwgen");
    exit(1);
  }
  memset((char *)p + n * size, 0, size);
  return p;
}

char *tok_str(const struct token *t)
{
  char *s = xcalloc(t->len + 1, 1);
  memcpy(s, t->start, t->len);
  return s;
}

int next(struct parser *ps)
{
  return lex_next(&ps->lx, &ps->tok);
}

bool is_punct(const struct parser *ps, char c)
{
  return ps->tok.kind == T_PUNCT && ps->tok.start[0] == c;
}

bool is_word(const struct parser *ps, const char *w)
{
  return ps->tok.kind == T_IDENT && ps->tok.len == strlen(w) && !memcmp(ps->tok.start, w, ps->tok.len);
}

static const char *describe(const struct token *t)
{
  switch (t->kind) {
  case T_EOF: return "end of file";
  case T_IDENT: return "a name";
  case T_NUMBER: return "a number";
  case T_STRING:
  case T_ISTRING: return "a string";
  case T_CLASS: return "a character class";
  case T_ARROW: return "'->'";
  case T_PUNCT: break;
  }
  static char buf[8];
  snprintf(buf, sizeof buf, "'%c'", t->start[0]);
  return buf;
}

int expected(struct parser *ps, const char *what)
{
  diag_error(ps->spec->src, ps->tok.pos, "expected %s, found %s", what, describe(&ps->tok));
  return -1;
}

int expect_punct(struct parser *ps, char c)
{
  char what[4] = {'\'', c, '\'', 0};
  if (!is_punct(ps, c))
    return expected(ps, what);
  return next(ps);
}

int expect_ident(struct parser *ps, char **out_name, struct pos *out_pos)
{
  if (ps->tok.kind != T_IDENT)
    return expected(ps, "a name");
  *out_name = tok_str(&ps->tok);
  *out_pos = ps->tok.pos;
  return next(ps);
}

static struct rx *rx_new(enum rx_kind kind, struct pos pos)
{
  struct rx *r = xcalloc(1, sizeof *r);
  r->kind = kind;
  r->pos = pos;
  return r;
}

static void rx_add(struct rx *parent, struct rx *kid)
{
  parent->kids = xgrow(parent->kids, parent->nkids, sizeof kid);
  parent->kids[parent->nkids++] = kid;
}

static void rx_free(struct rx *r)
{
  if (!r)
    return;
  for (size_t i = 0; i < r->nkids; i++)
    rx_free(r->kids[i]);
  free(r->kids);
  free(r->text);
  free(r->arg);
  free(r->lit[0]);
  free(r->lit[1]);
  free(r->status);
  free(r);
}

static struct rx *parse_alt(struct parser *ps);

/* `name:KIND(IDENT, "s1", ..., options...)` with KIND current and `name` in *t; options only
 * where the part's module reads them. */
static struct rx *parse_capture_fn(struct parser *ps, const struct token *t, enum rx_kind kind, int nlits,
                                   const struct part_ops *part)
{
  struct rx *r = rx_new(kind, t->pos);
  r->text = tok_str(t);
  struct pos at;
  if (next(ps) < 0 || expect_punct(ps, '(') < 0 || expect_ident(ps, &r->arg, &at) < 0)
    goto bad;
  for (int k = 0; k < nlits; k++) {
    if (expect_punct(ps, ',') < 0)
      goto bad;
    if (ps->tok.kind != T_STRING) {
      expected(ps, "a \"string\"");
      goto bad;
    }
    r->lit[k] = xcalloc(ps->tok.len, 1);
    r->litlen[k] = lex_unescape(&ps->tok, r->lit[k]);
    if (next(ps) < 0)
      goto bad;
  }
  while (part && part->parse_opt && is_punct(ps, ',')) {
    if (next(ps) < 0 || part->parse_opt(ps, r) < 0)
      goto bad;
  }
  if (expect_punct(ps, ')') == 0)
    return r;
bad:
  rx_free(r);
  return NULL;
}

static struct rx *parse_atom(struct parser *ps)
{
  struct token t = ps->tok;
  struct rx *r;
  switch (t.kind) {
  case T_STRING:
  case T_ISTRING: r = rx_new(RX_STR, t.pos); break;
  case T_CLASS: r = rx_new(RX_CLASS, t.pos); break;
  case T_IDENT:
    if (next(ps) < 0)
      return NULL;
    if (!is_punct(ps, ':')) {
      r = rx_new(RX_REF, t.pos);
      r->text = tok_str(&t);
      return r;
    }
    if (next(ps) < 0)
      return NULL;
    /* Captures that are not patterns, `field:KIND(IDENT, "s1"...)`: a continuation's part
     * (its module says how many strings follow), or a first line's words(). */
    if (ps->tok.kind == T_IDENT) {
      const struct part_ops *part = part_of_keyword(ps->tok.start, ps->tok.len);
      if (part)
        return parse_capture_fn(ps, &t, part->rx, part->nlits, part);
    }
    if (is_word(ps, "words"))
      return parse_capture_fn(ps, &t, RX_WORDS, 0, NULL);
    if (ps->tok.kind == T_IDENT &&
        (varint_form_of(ps->tok.start, ps->tok.len) || is_word(ps, "bits") || is_word(ps, "rest") ||
         int_type(ps->tok.start, ps->tok.len, &(bool){0}))) {
      diag_error(ps->spec->src, ps->tok.pos,
                 "'%.*s' is a field of binary frames (declare 'frame binary;' first)", (int)ps->tok.len,
                 ps->tok.start);
      return NULL;
    }
    r = rx_new(RX_CAPTURE, t.pos);
    r->text = tok_str(&t);
    struct rx *kid = parse_atom(ps);
    if (!kid) {
      rx_free(r);
      return NULL;
    }
    rx_add(r, kid);
    return r;
  case T_PUNCT:
    if (t.start[0] == '.') {
      r = rx_new(RX_ANY, t.pos);
      break;
    }
    if (t.start[0] == '(') {
      if (++ps->depth > 64) {
        diag_error(ps->spec->src, t.pos, "pattern nested too deeply");
        return NULL;
      }
      if (next(ps) < 0)
        return NULL;
      r = parse_alt(ps);
      ps->depth--;
      if (r && expect_punct(ps, ')') < 0) {
        rx_free(r);
        return NULL;
      }
      return r;
    }
    /* fall through */
  default: expected(ps, "a pattern (string, class, token name or '(')"); return NULL;
  }
  r->text = tok_str(&t);
  if (next(ps) < 0) {
    rx_free(r);
    return NULL;
  }
  return r;
}

static int parse_count(struct parser *ps, int *out)
{
  if (ps->tok.kind != T_NUMBER || ps->tok.value > 100000 ||
      ps->tok.len != strspn(ps->tok.start, "0123456789"))
    return expected(ps, "a repeat count (0..100000)");
  *out = (int)ps->tok.value;
  return next(ps);
}

/* '{' N (',' M?)? '}' with '{' already current. */
static int parse_braces(struct parser *ps, struct rx *rep)
{
  if (next(ps) < 0 || parse_count(ps, &rep->min) < 0)
    return -1;
  rep->max = rep->min;
  if (is_punct(ps, ',')) {
    if (next(ps) < 0)
      return -1;
    rep->max = -1;
    if (ps->tok.kind == T_NUMBER && parse_count(ps, &rep->max) < 0)
      return -1;
  }
  if (rep->max >= 0 && rep->max < rep->min) {
    diag_error(ps->spec->src, rep->pos, "repeat {%d,%d}: maximum below minimum", rep->min, rep->max);
    return -1;
  }
  return expect_punct(ps, '}');
}

static struct rx *parse_item(struct parser *ps)
{
  struct rx *r = parse_atom(ps);
  while (r && ps->tok.kind == T_PUNCT && strchr("*+?{", ps->tok.start[0])) {
    struct rx *rep = rx_new(RX_REPEAT, ps->tok.pos);
    rx_add(rep, r);
    r = rep;
    char q = ps->tok.start[0];
    if (q == '{') {
      if (parse_braces(ps, rep) < 0)
        goto fail;
      continue;
    }
    rep->min = q == '+';
    rep->max = q == '?' ? 1 : -1;
    if (next(ps) < 0)
      goto fail;
  }
  return r;
fail:
  rx_free(r);
  return NULL;
}

static bool starts_atom(const struct parser *ps)
{
  switch (ps->tok.kind) {
  case T_STRING:
  case T_ISTRING:
  case T_CLASS: return true;
  case T_IDENT:
    /* Keywords after a pattern (`max N`, `wrap`, `quiet FIELD`), never token references. */
    return !is_word(ps, "max") && !is_word(ps, "wrap") && !is_word(ps, "quiet");
  case T_PUNCT: return ps->tok.start[0] == '(' || ps->tok.start[0] == '.';
  default: return false;
  }
}

static struct rx *parse_seq(struct parser *ps)
{
  struct rx *seq = rx_new(RX_SEQ, ps->tok.pos);
  do {
    struct rx *item = parse_item(ps);
    if (!item) {
      rx_free(seq);
      return NULL;
    }
    rx_add(seq, item);
  } while (starts_atom(ps));
  return seq;
}

static struct rx *parse_alt(struct parser *ps)
{
  struct rx *alt = rx_new(RX_ALT, ps->tok.pos);
  for (;;) {
    struct rx *seq = parse_seq(ps);
    if (!seq) {
      rx_free(alt);
      return NULL;
    }
    rx_add(alt, seq);
    if (!is_punct(ps, '|'))
      return alt;
    if (next(ps) < 0) {
      rx_free(alt);
      return NULL;
    }
  }
}

static int parse_action_body(struct parser *ps, struct action *a);

static int parse_action(struct parser *ps, struct action *a)
{
  if (ps->tok.kind != T_ARROW)
    return expected(ps, "'->'");
  if (next(ps) < 0)
    return -1;
  return parse_action_body(ps, a);
}

/* What follows '->'. */
static int parse_action_body(struct parser *ps, struct action *a)
{
  a->present = true;
  a->pos = ps->tok.pos;
  if (is_word(ps, "close")) {
    a->close = true;
    return next(ps);
  }
  if (is_word(ps, "ignore"))
    return next(ps);
  if (is_word(ps, "refuse")) {
    a->refuse = true;
    if (next(ps) < 0)
      return -1;
  } else if (!is_word(ps, "reply")) {
    return expected(ps, "'reply', 'close', 'ignore' or 'refuse'");
  } else if (next(ps) < 0 || expect_ident(ps, &a->reply_name, &a->reply_pos) < 0) {
    return -1;
  }
  if (!is_punct(ps, ','))
    return 0;
  if (next(ps) < 0)
    return -1;
  if (!is_word(ps, "close"))
    return expected(ps, "'close'");
  a->close = true;
  return next(ps);
}

static int parse_protocol(struct parser *ps)
{
  struct spec *s = ps->spec;
  if (s->protocol) {
    diag_error(s->src, ps->tok.pos, "protocol already named '%s'", s->protocol);
    return -1;
  }
  s->protocol_pos = ps->tok.pos;
  return expect_ident(ps, &s->protocol, &s->protocol_pos);
}

/* `limit depth N;`: how deep a resp2 reply's arrays may nest. */
static int parse_limit_depth(struct parser *ps)
{
  struct spec *s = ps->spec;
  struct pos at = ps->tok.pos;
  if (next(ps) < 0)
    return -1;
  if (ps->tok.kind != T_NUMBER)
    return expected(ps, "a depth such as 8");
  if (s->limit_depth) {
    diag_error(s->src, at, "limit depth declared twice");
    return -1;
  }
  if (!s->resp2) {
    diag_error(s->src, at, "limit depth bounds nested replies: it needs 'frame resp2;' first");
    return -1;
  }
  s->limit_depth = ps->tok.value;
  return next(ps);
}

static int parse_limit(struct parser *ps)
{
  struct spec *s = ps->spec;
  bool line = is_word(ps, "line"), items = is_word(ps, "items"), fields = is_word(ps, "fields");
  if (is_word(ps, "depth"))
    return parse_limit_depth(ps);
  if (!line && !items && !fields && !is_word(ps, "data"))
    return expected(ps, "a limit name ('line', 'data', 'items', 'fields' or 'depth')");
  struct pos at = ps->tok.pos;
  if (next(ps) < 0)
    return -1;
  if (ps->tok.kind != T_NUMBER)
    return expected(ps, "a size such as 2048 or 64KiB");
  uint64_t *value = line     ? &s->limit_line
                    : items  ? &s->limit_items
                    : fields ? &s->limit_fields
                             : &s->limit_data;
  if (*value) {
    diag_error(s->src, at, "limit %s declared twice",
               line     ? "line"
               : items  ? "items"
               : fields ? "fields"
                        : "data");
    return -1;
  }
  *value = ps->tok.value;
  if (!items && !fields)
    *(line ? &s->limit_pos : &s->limit_data_pos) = ps->tok.pos;
  return next(ps);
}

static int parse_raw(struct parser *ps)
{
  struct spec *s = ps->spec;
  if (s->raw_name) {
    diag_error(s->src, ps->tok.pos, "raw already declared");
    return -1;
  }
  return expect_ident(ps, &s->raw_name, &s->raw_pos);
}

static int parse_head(struct parser *ps)
{
  struct spec *s = ps->spec;
  if (s->head_name) {
    diag_error(s->src, ps->tok.pos, "head already declared");
    return -1;
  }
  return expect_ident(ps, &s->head_name, &s->head_pos);
}

/* `role client;`: the spec describes what a client receives. */
static int parse_role(struct parser *ps)
{
  struct spec *s = ps->spec;
  s->role_pos = ps->tok.pos;
  if (is_word(ps, "client"))
    s->client = true;
  else if (!is_word(ps, "server"))
    return expected(ps, "a role ('client' or 'server')");
  return next(ps);
}

/* `expect head;`: the client tells the parser that a response answers a HEAD. */
static int parse_expect(struct parser *ps)
{
  struct spec *s = ps->spec;
  if (!is_word(ps, "head"))
    return expected(ps, "'head' (expect head;)");
  if (s->expect_head) {
    diag_error(s->src, ps->tok.pos, "expect head already declared");
    return -1;
  }
  s->expect_head = true;
  s->expect_pos = ps->tok.pos;
  return next(ps);
}

static int parse_action(struct parser *ps, struct action *a);

static int parse_token_body(struct parser *ps)
{
  struct spec *s = ps->spec;
  s->tokens = xgrow(s->tokens, s->ntokens, sizeof *s->tokens);
  struct token_decl *d = &s->tokens[s->ntokens++];
  if (expect_ident(ps, &d->name, &d->pos) < 0 || expect_punct(ps, '=') < 0)
    return -1;
  d->rx = parse_alt(ps);
  return d->rx ? 0 : -1;
}

static int parse_token(struct parser *ps)
{
  if (parse_token_body(ps) < 0)
    return -1;
  struct token_decl *d = &ps->spec->tokens[ps->spec->ntokens - 1];
  if (is_word(ps, "max")) {
    if (next(ps) < 0)
      return -1;
    if (ps->tok.kind != T_NUMBER || !ps->tok.value)
      return expected(ps, "a maximum length");
    d->max_len = ps->tok.value;
    if (next(ps) < 0)
      return -1;
  }
  return ps->tok.kind == T_ARROW ? parse_action(ps, &d->overflow) : 0;
}

static int parse_type(struct parser *ps, enum num_type *out)
{
  static const struct {
    const char *name;
    enum num_type t;
  } types[] = {{"u32", NUM_U32}, {"u64", NUM_U64}, {"i64", NUM_I64}};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    if (is_word(ps, types[i].name)) {
      *out = types[i].t;
      return next(ps);
    }
  }
  return expected(ps, "a number type (u32, u64 or i64)");
}

static int parse_number(struct parser *ps)
{
  enum num_type t;
  if (parse_type(ps, &t) < 0 || parse_token_body(ps) < 0)
    return -1;
  struct token_decl *d = &ps->spec->tokens[ps->spec->ntokens - 1];
  d->num = t;
  if (is_word(ps, "wrap")) {
    d->wrap = true;
    if (next(ps) < 0)
      return -1;
  }
  return ps->tok.kind == T_ARROW ? parse_action(ps, &d->overflow) : 0;
}

/* An integer type of a binary frame: width in bytes and byte order; 0 if `name` is none. */
unsigned int_type(const char *name, size_t n, bool *out_le)
{
  static const struct {
    const char *name;
    unsigned width;
    bool le;
  } types[] = {{"u8", 1, false},    {"u16be", 2, false}, {"u16le", 2, true},
               {"u24be", 3, false}, {"u24le", 3, true},  {"u32be", 4, false},
               {"u32le", 4, true},  {"u64be", 8, false}, {"u64le", 8, true}};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    if (strlen(types[i].name) == n && !memcmp(types[i].name, name, n)) {
      *out_le = types[i].le;
      return types[i].width;
    }
  }
  return 0;
}

static int parse_command(struct parser *ps)
{
  struct spec *s = ps->spec;
  s->commands = xgrow(s->commands, s->ncommands, sizeof *s->commands);
  struct command_decl *d = &s->commands[s->ncommands++];
  if (expect_ident(ps, &d->name, &d->pos) < 0 || expect_punct(ps, '=') < 0)
    return -1;
  const struct frame_ops *frame = spec_frame(s);
  if (frame->parse_command) { /* a frame kind with a syntax of its own */
    if (frame->parse_command(ps, d) < 0)
      return -1;
  } else if (!(d->rx = parse_alt(ps))) {
    return -1;
  }
  if (is_word(ps, "quiet")) {
    if (next(ps) < 0 || expect_ident(ps, &d->quiet, &d->quiet_pos) < 0)
      return -1;
  }
  if (ps->tok.kind != T_ARROW)
    return 0;
  if (next(ps) < 0)
    return -1;
  if (is_word(ps, "dispatch")) {
    if (next(ps) < 0)
      return -1;
    return expect_ident(ps, &d->dispatch_field, &d->dispatch_pos);
  }
  return parse_action_body(ps, &d->action);
}

static int parse_param(struct parser *ps, struct reply_decl *d)
{
  d->params = xgrow(d->params, d->nparams, sizeof *d->params);
  struct reply_param *p = &d->params[d->nparams++];
  if (expect_ident(ps, &p->name, &p->pos) < 0)
    return -1;
  if (!is_punct(ps, ':'))
    return 0;
  if (next(ps) < 0)
    return -1;
  enum num_type t;
  if (is_word(ps, "span")) {
    p->type = PARAM_SPAN;
    return next(ps);
  }
  if (is_word(ps, "spans")) { /* spans(N): up to N spans in one call */
    p->type = PARAM_SPANS;
    if (next(ps) < 0 || expect_punct(ps, '(') < 0)
      return -1;
    if (ps->tok.kind != T_NUMBER || !ps->tok.value || ps->tok.value > 256)
      return expected(ps, "the most spans a call may pass, 1 to 256");
    p->max = (unsigned)ps->tok.value;
    if (next(ps) < 0)
      return -1;
    return expect_punct(ps, ')');
  }
  if (parse_type(ps, &t) < 0)
    return -1;
  p->type = t == NUM_I64 ? PARAM_I64 : PARAM_U64;
  return 0;
}

static struct reply_part *add_part(struct reply_decl *d, enum part_kind kind, struct pos at)
{
  d->parts = xgrow(d->parts, d->nparts, sizeof *d->parts);
  struct reply_part *p = &d->parts[d->nparts++];
  p->kind = kind;
  p->pos = at;
  return p;
}

/* u16be(param) or u32be(len(param)); a parameter named like a type, alone, is a parameter. */
static int parse_int_part(struct parser *ps, struct reply_decl *d, struct pos at)
{
  bool le = false;
  unsigned width = int_type(ps->tok.start, ps->tok.len, &le);
  enum varint_form vform = varint_form_of(ps->tok.start, ps->tok.len);
  char *word;
  if (expect_ident(ps, &word, &at) < 0)
    return -1;
  if (!is_punct(ps, '(')) {
    add_part(d, PART_PARAM, at)->param = word;
    return 0;
  }
  free(word);
  struct reply_part *p = add_part(d, PART_INT, at);
  p->width = vform ? varint_max_bytes(vform) : width;
  p->le = le;
  p->vform = vform;
  if (next(ps) < 0)
    return -1;
  if (is_word(ps, "len")) {
    p->of_len = true;
    if (next(ps) < 0 || expect_punct(ps, '(') < 0 || expect_ident(ps, &p->param, &at) < 0)
      return -1;
    for (size_t k = 0; is_punct(ps, ','); k++) {
      if (k == sizeof p->more / sizeof p->more[0]) {
        diag_error(ps->spec->src, ps->tok.pos, "len() sums at most %zu spans", k + 1);
        return -1;
      }
      if (next(ps) < 0 || expect_ident(ps, &p->more[k], &at) < 0)
        return -1;
    }
    if (expect_punct(ps, ')') < 0)
      return -1;
  } else if (expect_ident(ps, &p->param, &at) < 0) {
    return -1;
  }
  return expect_punct(ps, ')');
}

static int parse_reply_parts(struct parser *ps, struct reply_decl *d, char stop);

static int parse_reply(struct parser *ps)
{
  struct spec *s = ps->spec;
  s->replies = xgrow(s->replies, s->nreplies, sizeof *s->replies);
  struct reply_decl *d = &s->replies[s->nreplies++];
  if (expect_ident(ps, &d->name, &d->pos) < 0)
    return -1;
  if (is_punct(ps, '(')) {
    do {
      if (next(ps) < 0 || parse_param(ps, d) < 0)
        return -1;
    } while (is_punct(ps, ','));
    if (expect_punct(ps, ')') < 0)
      return -1;
  }
  if (expect_punct(ps, '=') < 0)
    return -1;
  return parse_reply_parts(ps, d, ';');
}

static int parse_list_part(struct parser *ps, struct reply_decl *d, struct pos at);

/* A template's parts up to `stop` (';', or ')' inside each()). */
static int parse_reply_parts(struct parser *ps, struct reply_decl *d, char stop)
{
  do {
    struct pos at = ps->tok.pos;
    if (ps->tok.kind == T_STRING) {
      struct reply_part *p = add_part(d, PART_BYTES, at);
      p->bytes = xcalloc(ps->tok.len, 1);
      p->len = lex_unescape(&ps->tok, p->bytes);
      if (next(ps) < 0)
        return -1;
    } else if (ps->tok.kind == T_NUMBER) {
      if (ps->tok.value > 255) {
        diag_error(ps->spec->src, at, "a byte is 0..255 (0x00..0xff)");
        return -1;
      }
      struct reply_part *p = add_part(d, PART_BYTES, at);
      p->bytes = xcalloc(1, 1);
      p->bytes[0] = (uint8_t)ps->tok.value;
      p->len = 1;
      if (next(ps) < 0)
        return -1;
    } else if (ps->tok.kind == T_IDENT && (int_type(ps->tok.start, ps->tok.len, &(bool){0}) ||
                                           varint_form_of(ps->tok.start, ps->tok.len))) {
      if (parse_int_part(ps, d, at) < 0)
        return -1;
    } else if (is_word(ps, "count") || is_word(ps, "each")) {
      if (parse_list_part(ps, d, at) < 0)
        return -1;
    } else if (is_word(ps, "len")) {
      struct reply_part *p = add_part(d, PART_LEN, at);
      if (next(ps) < 0 || expect_punct(ps, '(') < 0 || expect_ident(ps, &p->param, &at) < 0 ||
          expect_punct(ps, ')') < 0)
        return -1;
    } else if (ps->tok.kind == T_IDENT) {
      struct reply_part *p = add_part(d, PART_PARAM, at);
      if (expect_ident(ps, &p->param, &at) < 0)
        return -1;
    } else {
      return expected(ps, "a \"string\", a parameter, len(parameter), count(list) or each(list: ...)");
    }
  } while (!is_punct(ps, stop) && ps->tok.kind != T_EOF);
  return 0;
}

/* count(list), each(list: parts); a parameter named count or each, alone, is a parameter. */
static int parse_list_part(struct parser *ps, struct reply_decl *d, struct pos at)
{
  bool each = is_word(ps, "each");
  if (next(ps) < 0)
    return -1;
  if (!is_punct(ps, '(')) {
    add_part(d, PART_PARAM, at)->param = strdup(each ? "each" : "count");
    return 0;
  }
  struct reply_part *p = add_part(d, each ? PART_EACH : PART_COUNT, at);
  if (next(ps) < 0 || expect_ident(ps, &p->param, &at) < 0)
    return -1;
  if (!each)
    return expect_punct(ps, ')');
  struct reply_decl inner = {0};
  if (expect_punct(ps, ':') < 0)
    return -1;
  if (ps->depth++ > 0) {
    diag_error(ps->spec->src, at, "each() holds no each()");
    return -1;
  }
  int rc = parse_reply_parts(ps, &inner, ')');
  ps->depth--;
  p = &d->parts[d->nparts - 1];
  p->sub = inner.parts;
  p->nsub = inner.nparts;
  if (rc < 0)
    return -1;
  return expect_punct(ps, ')');
}

static int parse_handler(struct parser *ps, struct action *a, const char *what)
{
  if (a->present) {
    diag_error(ps->spec->src, ps->tok.pos, "%s declared twice", what);
    return -1;
  }
  return parse_action(ps, a);
}

static int parse_on(struct parser *ps)
{
  struct spec *s = ps->spec;
  const struct {
    const char *name;
    struct action *a;
  } events[] = {{"overlong", &s->overlong},     {"too_large", &s->too_large},
                {"bad_number", &s->bad_number}, {"bad_data", &s->bad_data},
                {"arity", &s->arity},           {"fields_too_large", &s->fields_too_large}};
  for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
    if (is_word(ps, events[i].name)) {
      char what[32];
      snprintf(what, sizeof what, "on %s", events[i].name);
      if (next(ps) < 0)
        return -1;
      return parse_handler(ps, events[i].a, what);
    }
  }
  return expected(ps, "an event name (overlong, too_large, bad_number, bad_data, arity, "
                      "fields_too_large)");
}

/* table { NAME ARITY ('+')? ; ... } */
static int parse_table(struct parser *ps)
{
  struct spec *s = ps->spec;
  if (s->ntable) {
    diag_error(s->src, ps->tok.pos, "table declared twice");
    return -1;
  }
  s->table_pos = ps->tok.pos;
  if (expect_punct(ps, '{') < 0)
    return -1;
  while (!is_punct(ps, '}')) {
    s->table = xgrow(s->table, s->ntable, sizeof *s->table);
    struct table_entry *e = &s->table[s->ntable++];
    if (expect_ident(ps, &e->name, &e->pos) < 0)
      return -1;
    if (s->binary) { /* NAME VALUE: the dispatch field's value */
      if (ps->tok.kind != T_NUMBER || ps->tok.value > UINT32_MAX)
        return expected(ps, "the value that picks this entry (0..0xffffffff)");
      e->arity = (unsigned)ps->tok.value;
      if (next(ps) < 0 || expect_punct(ps, ';') < 0)
        return -1;
      continue;
    }
    if (ps->tok.kind != T_NUMBER || ps->tok.value < 1 || ps->tok.value > 1000)
      return expected(ps, "an arity (items with the name: 1..1000, '+' for at least)");
    e->arity = (unsigned)ps->tok.value;
    if (next(ps) < 0)
      return -1;
    if (is_punct(ps, '+')) {
      e->at_least = true;
      if (next(ps) < 0)
        return -1;
    }
    if (expect_punct(ps, ';') < 0)
      return -1;
  }
  return next(ps);
}

static int parse_frame(struct parser *ps)
{
  struct spec *s = ps->spec;
  if (s->ncommands) {
    diag_error(s->src, ps->tok.pos, "frame must be declared before the commands");
    return -1;
  }
  s->binary_pos = ps->tok.pos;
  if (is_word(ps, frame_binary.keyword))
    s->binary = true;
  else if (is_word(ps, frame_resp2.keyword))
    s->resp2 = true;
  else if (!is_word(ps, frame_text.keyword))
    return expected(ps, "a frame kind ('binary', 'lines' or 'resp2')");
  return next(ps);
}

static int parse_otherwise(struct parser *ps)
{
  return parse_handler(ps, &ps->spec->otherwise, "otherwise");
}

static const struct {
  const char *word;
  int (*parse)(struct parser *ps);
} decls[] = {
    {"protocol", parse_protocol},   {"limit", parse_limit},   {"raw", parse_raw},
    {"head", parse_head},           {"token", parse_token},   {"number", parse_number},
    {"command", parse_command},     {"reply", parse_reply},   {"table", parse_table},
    {"otherwise", parse_otherwise}, {"on", parse_on},         {"frame", parse_frame},
    {"role", parse_role},           {"expect", parse_expect},
};

static int parse_decl(struct parser *ps)
{
  for (size_t i = 0; i < sizeof decls / sizeof decls[0]; i++) {
    if (is_word(ps, decls[i].word)) {
      if (next(ps) < 0 || decls[i].parse(ps) < 0)
        return -1;
      return expect_punct(ps, ';');
    }
  }
  return expected(ps, "a declaration (protocol, limit, raw, frame, token, number, command, reply, "
                      "otherwise, on, role, expect)");
}

/* After an error: skip past the next ';' so the following declaration parses afresh. */
static void recover(struct parser *ps)
{
  while (ps->tok.kind != T_EOF && !is_punct(ps, ';')) {
    if (lex_next(&ps->lx, &ps->tok) < 0)
      ps->tok.kind = T_PUNCT, ps->tok.start = "?";
  }
  if (ps->tok.kind != T_EOF)
    next(ps);
}

int spec_parse(struct source *src, struct spec *out)
{
  struct parser ps = {.spec = out};
  memset(out, 0, sizeof *out);
  out->src = src;
  lex_init(&ps.lx, src);
  while (next(&ps) < 0)
    ;
  while (ps.tok.kind != T_EOF) {
    if (parse_decl(&ps) < 0)
      recover(&ps);
  }
  return src->nerrors ? -1 : 0;
}

static void free_parts(struct reply_part *parts, size_t n)
{
  for (size_t j = 0; j < n; j++) {
    free(parts[j].bytes);
    free(parts[j].param);
    for (size_t k = 0; k < sizeof parts[j].more / sizeof parts[j].more[0]; k++)
      free(parts[j].more[k]);
    free_parts(parts[j].sub, parts[j].nsub);
  }
  free(parts);
}

void spec_free(struct spec *s)
{
  for (size_t i = 0; i < s->ntokens; i++) {
    free(s->tokens[i].name);
    free(s->tokens[i].overflow.reply_name);
    rx_free(s->tokens[i].rx);
  }
  for (size_t i = 0; i < s->ncommands; i++) {
    struct command_decl *c = &s->commands[i];
    free(c->name);
    free(c->dispatch_field);
    free(c->quiet);
    rx_free(c->rx);
    rx_free(c->cont);
    free(c->action.reply_name);
    for (size_t j = 0; j < c->nfields; j++)
      free(c->fields[j].name);
    free(c->fields);
    for (size_t j = 0; j < c->nsteps; j++)
      free(c->steps[j].bytes);
    free(c->steps);
    for (size_t j = 0; j < c->nbin; j++) {
      free(c->bin[j].name);
      free(c->bin[j].lit);
      for (size_t k = 0; k < c->bin[j].nterms; k++)
        free(c->bin[j].terms[k].name);
    }
    free(c->bin);
  }
  for (size_t i = 0; i < s->nreplies; i++) {
    struct reply_decl *r = &s->replies[i];
    free(r->name);
    for (size_t j = 0; j < r->nparams; j++)
      free(r->params[j].name);
    free_parts(r->parts, r->nparts);
    free(r->params);
  }
  free(s->tokens);
  free(s->commands);
  free(s->replies);
  free(s->otherwise.reply_name);
  free(s->overlong.reply_name);
  free(s->too_large.reply_name);
  free(s->bad_number.reply_name);
  free(s->bad_data.reply_name);
  free(s->arity.reply_name);
  free(s->fields_too_large.reply_name);
  for (size_t i = 0; i < s->ntable; i++)
    free(s->table[i].name);
  free(s->table);
  free(s->protocol);
  free(s->raw_name);
  free(s->head_name);
  memset(s, 0, sizeof *s);
}
