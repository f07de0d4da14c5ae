/* The generator's model of a protocol spec: tokens from the lexer, the syntax tree the parser
 * builds, and the entry points of each pass (lex -> parse -> check -> emit). */
#ifndef RWGEN_SPEC_H
#define RWGEN_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "writer.h"

/* A position in the spec source; line and col count from 1, col in bytes. */
struct pos {
  int line, col;
};

/* The source being compiled: diagnostics quote its lines. */
struct source {
  const char *path;
  const char *stem; /* file name without directory and .rw: names the outputs */
  const char *text;
  size_t len;
  FILE *err; /* where diagnostics go; NULL: stderr */
  int nerrors;
};

void diag_error(struct source *src, struct pos at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

enum tok_kind {
  T_EOF,
  T_IDENT,
  T_NUMBER,  /* digits with an optional size suffix: 64KiB, 1MiB, 100 */
  T_STRING,  /* "..." case-sensitive literal */
  T_ISTRING, /* '...' case-insensitive literal */
  T_CLASS,   /* [...] byte class */
  T_ARROW,   /* -> */
  T_PUNCT,   /* one of ; = ( ) | * + ? { } , : . - */
};

struct token {
  enum tok_kind kind;
  struct pos pos;
  const char *start; /* into source text */
  size_t len;
  uint64_t value; /* T_NUMBER: the value with its suffix applied */
};

struct lexer {
  struct source *src;
  size_t off;
  struct pos pos;
};

void lex_init(struct lexer *lx, struct source *src);
/* Returns 0 and the next token, or -1 after reporting a lexical error. */
int lex_next(struct lexer *lx, struct token *out_tok);

/* Decodes the escapes of a T_STRING/T_ISTRING token into bytes; returns the length. `out` must
 * hold tok->len bytes. Escapes were validated by the lexer. */
size_t lex_unescape(const struct token *tok, uint8_t *out);

/* Regular expressions (re2c syntax, validated and re-emitted). */
/* RX_BYTES is not a regular expression: `name:bytes(field)` is a data block whose length is
 * the numeric field captured earlier; it and what follows it form a command's continuation. */
enum rx_kind {
  RX_STR,
  RX_CLASS,
  RX_ANY,
  RX_REF,
  RX_ALT,
  RX_SEQ,
  RX_REPEAT,
  RX_CAPTURE,
  RX_BYTES,
  RX_WORDS,  /* name:words(token): blank-separated tokens, captured as a list */
  RX_ARRAY,  /* name:array(count, "prefix", "sep"): length-prefixed items (continuation only) */
  RX_FIELDS, /* name:fields(token): "name: value" lines up to an empty line (continuation only) */
  RX_BODY,   /* name:body(fields, "length-field", "coding-field"): a message body (continuation) */
  RX_STREAM, /* name:stream(fields, "length-field", "coding-field", options): a streamed body */
};

/* Numeric tokens: captures of them are parsed in place, with overflow checks. */
enum num_type { NUM_NONE, NUM_U32, NUM_U64, NUM_I64, NUM_U8, NUM_U16 };

struct rx {
  enum rx_kind kind;
  struct pos pos;
  char *text;      /* STR/CLASS: as written; REF: token name; CAPTURE/BYTES: field name */
  char *arg;       /* BYTES: the length field; WORDS: the token; ARRAY: the count field */
  uint8_t *lit[2]; /* ARRAY: prefix and separator bytes */
  size_t litlen[2];
  struct rx **kids;
  size_t nkids;
  int min, max; /* REPEAT: max < 0 means unbounded */
  char *status; /* STREAM: `status: FIELD`, the number whose 1xx, 204, 304 have no body */
  struct pos status_pos;
  bool until_close; /* STREAM: with no length, the body runs to the close */
  struct pos until_pos;
};

struct action {
  bool present;
  struct pos pos;
  char *reply_name;
  struct pos reply_pos;
  bool close;
  bool refuse; /* `-> refuse`: the spec's `refused` handler gets the frame's header (binary) */
};

struct token_decl {
  char *name;
  struct pos pos;
  struct rx *rx;
  enum num_type num;
  uint64_t max_len;       /* `max N`: longer captures are refused (0: no limit) */
  bool wrap;              /* `wrap`: read as 64 bits, then cut to the type (as C's casts do) */
  struct action overflow; /* a number out of range or a capture past max_len gets this */
};

enum param_type { PARAM_SPAN, PARAM_U64, PARAM_I64, PARAM_SPANS };

struct reply_param {
  char *name;
  struct pos pos;
  enum param_type type;
  unsigned max; /* PARAM_SPANS: the most spans one call may pass */
};

/* A varint's form: how many bytes it may take and the range of its value. */
enum varint_form { VARINT_NONE, VARINT_LEB64, VARINT_LEB32, VARINT_MQTT };

/* A reply template is a sequence of literal bytes, parameters and len(parameter). */
/* PART_COUNT: count(list), the decimal number of its spans; PART_EACH: each(list: parts), the
 * parts once per span, where `it` is the span. */
enum part_kind { PART_BYTES, PART_PARAM, PART_LEN, PART_INT, PART_COUNT, PART_EACH };

struct reply_part {
  enum part_kind kind;
  struct pos pos;
  uint8_t *bytes; /* PART_BYTES */
  size_t len;
  char *param;    /* PART_PARAM, PART_LEN, PART_INT */
  unsigned width; /* PART_INT: u8(x), u16be(x), ...: bytes, and their order */
  bool le;
  bool of_len;            /* PART_INT of len(param) or of len(param, more...): the lengths' sum */
  enum varint_form vform; /* PART_INT written as a varint (width: its most bytes) */
  char *more[3];
  struct reply_part *sub; /* PART_EACH */
  size_t nsub;
};

struct reply_decl {
  char *name;
  struct pos pos;
  struct reply_param *params;
  size_t nparams;
  struct reply_part *parts;
  size_t nparts;
};

/* A field of a command's message, in order of appearance. */
enum field_kind { FIELD_SPAN, FIELD_NUM, FIELD_BYTES, FIELD_LIST, FIELD_STREAM /* rw_body */ };

struct field {
  char *name;
  enum field_kind kind;
  enum num_type num; /* FIELD_NUM */
  int token;         /* the captured token's index, or -1 (a pattern) */
  int slot;          /* index in the parser's saved offsets (spans) or numbers */
};

/* After the first line, a command may continue with data blocks and literals. */
enum step_kind { STEP_BYTES, STEP_LITERAL, STEP_ARRAY, STEP_FIELDS, STEP_BODY, STEP_STREAM };

struct step {
  enum step_kind kind;
  int field;              /* STEP_BYTES/ARRAY: the field receiving the data */
  int len_field;          /* STEP_BYTES: the numeric field giving its length; ARRAY: the count */
  uint8_t *bytes;         /* STEP_LITERAL; ARRAY: prefix then separator */
  size_t len;             /* STEP_LITERAL; ARRAY: prefix length (the separator follows it in bytes) */
  size_t seplen;          /* ARRAY; BODY: length of the coding field's name (after the length field's) */
  uint8_t name_class[32]; /* FIELDS: the bytes a field name may hold */
  int status_field;       /* STREAM: the number field of `status:`, or -1 */
  bool until_close;       /* STREAM */
};

/* Binary frames (`frame binary;`): a command is a fixed-size header of literal bytes and
 * integers, then parts whose sizes are sums and differences of those integers. */
enum bin_kind {
  BIN_LIT,
  BIN_INT,
  BIN_BYTES,
  BIN_VARINT, /* gen/part_varint.c: LEB128 or MQTT's remaining length, 1..10 bytes */
  BIN_BITS,   /* gen/part_flags.c: bits(field, shift, width), no bytes of its own */
  BIN_REST,   /* rest(length): up to where an earlier length field says the frame ends */
};

#define BIN_TERMS 8
#define BIN_CONDS 6

/* `if (a || b == 3)`: an item present when one of its atoms holds (a field not zero, or equal
 * to a constant). */
struct bin_cond {
  int item; /* the integer item it reads */
  bool eq;
  uint64_t value;
  struct pos pos;
  char *name;
};

struct bin_term {
  int item;       /* the integer item it reads, or -1: a constant */
  uint64_t value; /* the constant */
  bool neg;
  struct pos pos;
  char *name; /* as written, until checked */
};

struct bin_item {
  enum bin_kind kind;
  struct pos pos;
  char *name;   /* INT, BYTES: the field */
  uint8_t *lit; /* LIT */
  size_t len;   /* LIT: bytes; INT: width (1, 2, 3, 4 or 8) */
  bool le;      /* INT: little-endian */
  size_t off;   /* LIT, INT: where in the header */
  int field;    /* INT, BYTES: index in the command's fields */
  struct bin_term terms[BIN_TERMS];
  size_t nterms;          /* BYTES: the length is the sum of its terms; REST: terms[0] */
  enum varint_form vform; /* VARINT */
  unsigned shift, bits;   /* BITS: terms[0] names the source; (src >> shift) & (2^bits - 1) */
  struct bin_cond conds[BIN_CONDS];
  size_t nconds; /* 0: always present */
};

/* A dispatch table: commands named by the first item of a list, case-insensitively. */
struct table_entry {
  char *name;
  struct pos pos;
  unsigned arity; /* binary specs: the dispatch field's value that picks this entry */
  bool at_least;  /* `3+`: at least arity items, the name included */
};

/* struct action (above): what the spec itself does for a message: a reply, then maybe close. */

struct command_decl {
  char *name;
  struct pos pos;
  struct rx *rx;
  struct action action; /* when present the command needs no handler */
  char *dispatch_field; /* `-> dispatch FIELD`: the table picks the handler by this list */
  char *quiet;          /* `quiet FIELD`: when FIELD captured bytes, the spec's own replies to
                          * this frame (its refusals included) are not sent */
  struct pos quiet_pos;
  int quiet_field; /* its index in fields, or -1 */
  struct pos dispatch_pos;
  struct field *fields;
  size_t nfields;
  struct step *steps; /* the continuation after the first line (data blocks, literals) */
  size_t nsteps;
  int nspans, nnums;    /* saved-offset and number slots its continuation needs */
  struct rx *cont;      /* the continuation's items, detached from rx */
  struct bin_item *bin; /* binary specs: the frame, in order */
  size_t nbin;
  size_t header; /* binary: bytes before the first part (the longest header when seq) */
  bool seq;      /* binary: read item after item (varints, bits, conditions, rest) */
};

struct spec {
  struct source *src;
  char *protocol;
  struct pos protocol_pos;
  uint64_t limit_line; /* 0: not declared */
  struct pos limit_pos;
  char *raw_name; /* `raw NAME;`: unframed protocol, every chunk goes to NAME */
  struct pos raw_pos;
  char *head_name; /* `head CMD;`: CMD's head goes to handler CMD_head before its body is awaited */
  struct pos head_pos;
  bool client; /* `role client;`: what a client receives (responses) */
  struct pos role_pos;
  bool expect_head; /* `expect head;`: the client says when a response answers a HEAD */
  struct pos expect_pos;
  struct token_decl *tokens;
  size_t ntokens;
  struct command_decl *commands;
  size_t ncommands;
  struct reply_decl *replies;
  size_t nreplies;
  uint64_t limit_data; /* the largest data block; 0: no data blocks allowed */
  struct pos limit_data_pos;
  struct action otherwise;  /* a complete line no command matched */
  struct action overlong;   /* a frame past `limit line` */
  struct action too_large;  /* a data block past `limit data` (it is skipped, unbuffered) */
  struct action bad_number; /* a numeric field that overflows its type */
  struct action bad_data;   /* a data block not followed by what the command expects */
  int max_spans, max_nums;  /* over all commands' continuations */
  uint64_t limit_items;     /* the longest array (count field) a frame may announce */
  uint64_t limit_fields;    /* the largest field section (headers, trailers) */
  struct action fields_too_large;
  struct table_entry *table; /* `table { ... }` */
  size_t ntable;
  struct pos table_pos;
  struct action arity;  /* a table command with the wrong number of items */
  bool binary;          /* `frame binary;`: header-first frames, no lines */
  bool resp2;           /* `frame resp2;`: RESP2 replies, nested arrays (gen/frame_resp2.c) */
  uint64_t limit_depth; /* resp2: arrays inside arrays */
  struct pos binary_pos;
};

/* Parses the whole source; returns 0, or -1 with diagnostics printed (src->nerrors > 0). */
int spec_parse(struct source *src, struct spec *out_spec);
/* Semantic checks (names, references, captures, limits); 0 or -1 with diagnostics. */
int spec_check(struct spec *spec);
/* Adds field `name` to command `c`: its index, or -1 after reporting a field named twice. */
int command_add_field(struct source *src, struct command_decl *c, const char *name, struct pos at,
                      enum field_kind kind, enum num_type num, int token);
void spec_free(struct spec *spec);

/* Emitters: the public header and the re2c input of the generated protocol; 0 or -errno. */
int emit_header(const struct spec *spec, FILE *out);
int emit_re(const struct spec *spec, FILE *out);
/* A Graphviz digraph of the protocol's machine (rwgen --dot). */
int emit_dot(const struct spec *spec, FILE *out);
/* gen/emit.c's helpers the modules share: a number's C type, a command's enum name. */
const char *num_ctype(enum num_type t);
void emit_cmd_enum(const struct spec *spec, const char *cmd, struct writer *out);

const struct token_decl *spec_find_token(const struct spec *spec, const char *name);
/* The bytes a class `[...]` (as written) stands for, one bit each. */
void class_bitmap(const char *text, uint8_t out[32]);
/* `r` without the one-child groups and sequences that parentheses leave around it. */
const struct rx *rx_unwrap(const struct rx *r);
const struct reply_decl *spec_find_reply(const struct spec *spec, const char *name);
/* `name` as the generated code spells it where it stands alone as an identifier (a struct
 * member, a handler, a reply parameter): with a trailing '_' when C++ or C23 reserve it. */
const char *spec_member(const char *name);

#endif
