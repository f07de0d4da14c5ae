/* The constructs of the spec language, one module each behind a small table of operations.
 *
 * rwgen runs lex -> parse -> check -> emit. The passes themselves (gen/parse.c, gen/check.c,
 * gen/emit.c) know the shape every spec shares: names, tokens, commands, replies, the events
 * and the generated header's skeleton. What a construct means is asked of its module through
 * its table, so a new construct is one new file and one table entry:
 *
 *   frame kinds (struct frame_ops): how frames are delimited and parsed, picked by `frame KIND;`
 *     (or `raw NAME;`): frame_text.c (line-first, re2c), frame_binary.c (header-first), and
 *     frame_raw.c (unframed). A frame kind checks its commands, writes the parser (struct
 *     P_parser, P_parser_init, P_next and what they call), its dispatch by table, its handlers'
 *     part of the header, the longest frame it may hold and its picture.
 *   parts (struct part_ops): what follows a text frame's first line, parsed from
 *     `name:KEYWORD(ARG, "lit"..., options...)`: part_bytes.c, part_literal.c, part_array.c,
 *     part_fields.c, part_body.c, part_stream.c. A part checks itself into a step, declares the parser state
 *     it needs, writes its step of the continuation and the message field it fills.
 *   replies (gen/reply.c), the text dispatch table (gen/table.c), events and actions
 *     (gen/event.c) and the fast first-line path (gen/fast_line.c) are modules with plain
 *     functions: each has one implementation.
 *
 * Needs: a module says what its generated code relies on (NEED_*); the emitter includes a
 * runtime header or emits shared parser state only when some construct of the spec needs it.
 *
 * Where the next constructs go:
 *   - a response side (what a client receives) is either a frame kind of its own
 *     (frame_resp2.c, `frame resp2;`) or a text frame under `role client;`: an HTTP response
 *     is the text frame's first line, the fields part and the stream part (part_stream.c),
 *     whose `status:`, `until_close` and the spec's `expect head;` say when a body is absent
 *     or runs to the close;
 *   - an array walked without a slot per item (redis's 1024*1024 arguments) is a part,
 *     part_walk.c: NEED_ITEMS left out of its needs, its state a count and a position, its
 *     emit_fill a list whose items the runtime's iterator finds in the region;
 *   - the binary frame's items (struct bin_item) that are not at fixed offsets: varints
 *     (part_varint.c), bits of a captured field and conditions (part_flags.c), and the
 *     cursor-driven parser that reads them (frame_binary_seq.c), which frame_binary.c picks
 *     when a command has any of them; a frame of fixed fields keeps the fixed-offset parser. */
#ifndef RWGEN_CONSTRUCT_H
#define RWGEN_CONSTRUCT_H

#include "spec.h"

enum need {
  NEED_SCAN = 1u << 0,   /* <ringwright/scan.h>: numbers from digits, word runs, field sections */
  NEED_ITEMS = 1u << 1,  /* the parser's item table: arrays and chunked bodies */
  NEED_FIELDS = 1u << 2, /* the parser's field section state and name class tables */
  NEED_RESP = 1u << 3,   /* <ringwright/resp.h>: the RESP2 reply scanner */
  NEED_BODY = 1u << 4,   /* <ringwright/body.h>: streamed bodies */
};

struct parser;

struct frame_ops {
  const char *keyword; /* `frame KEYWORD;` ("lines", "binary"); NULL: not declared that way */
  /* A command's frame after `command NAME =`, up to its action; NULL: a pattern (re2c). */
  int (*parse_command)(struct parser *ps, struct command_decl *d);
  /* Its own checks, after the common ones (names, replies, events). 0 or -1 with diagnostics. */
  int (*check)(struct spec *s);
  unsigned (*needs)(const struct spec *s);
  /* The header: the handlers the frame adds to struct P_handlers (table entries, refused). */
  void (*emit_handlers)(const struct spec *s, struct writer *w);
  /* The .re file: the parser and everything it calls. */
  void (*emit_parser)(const struct spec *s, struct writer *w);
  /* P_table_dispatch, for a spec with a table. */
  void (*emit_table)(const struct spec *s, struct writer *w);
  /* The longest frame a connection may have to hold (rw_proto.max_frame). */
  unsigned long long (*max_frame)(const struct spec *s);
  /* The digraph after its start node, closing brace included. */
  int (*emit_dot)(const struct spec *s, struct writer *w);
};

extern const struct frame_ops frame_text, frame_binary, frame_raw, frame_resp2;
/* The spec's frame kind. */
const struct frame_ops *spec_frame(const struct spec *s);

struct part_ops {
  const char *keyword; /* name:KEYWORD(...) */
  enum rx_kind rx;     /* the parse node it becomes */
  int nlits;           /* string arguments after its first (identifier) argument */
  enum step_kind step;
  unsigned needs;
  bool skippable; /* its length is known from the first line: a refused frame is skipped */
  /* An option after its strings (`, word` or `, word: IDENT`), the current token; NULL: none. */
  int (*parse_opt)(struct parser *ps, struct rx *r);
  /* From its parse node to a field and a step of command c. 0 or -1 with diagnostics. */
  int (*check)(struct spec *s, struct command_decl *c, const struct rx *r);
  /* The continuation's case for this step, inside `case K: { ... }`. */
  void (*emit_step)(const struct spec *s, const struct command_decl *c, const struct step *st,
                    struct writer *w);
  /* The frame's completion when the step is the last (after the message is filled), instead of
   * the default (the whole frame consumed, a new one next). NULL: the default. */
  void (*emit_done)(const struct spec *s, const struct command_decl *c, const struct step *st,
                    struct writer *w);
  /* The message field the step filled, from the parser's offsets (`head`: the body not yet
   * there). NULL: a span of offsets, the default. */
  void (*emit_fill)(const struct spec *s, const struct command_decl *c, const struct field *f,
                    const struct step *st, bool head, struct writer *w);
  /* The most bytes it adds to a frame. */
  unsigned long long (*max_len)(const struct spec *s, const struct step *st);
  /* Its node's label in the picture. */
  void (*dot_label)(const struct command_decl *c, const struct step *st, struct writer *w);
};

extern const struct part_ops part_bytes, part_literal, part_array, part_fields, part_body, part_stream;
/* The part of a step kind, of a parse node (NULL: none), of a keyword (NULL: none). */
const struct part_ops *part_of_step(enum step_kind kind);
const struct part_ops *part_of_rx(enum rx_kind kind);
const struct part_ops *part_of_keyword(const char *word, size_t len);

/* What the spec's constructs need, together. */
unsigned spec_needs(const struct spec *s);

/* --- shared by the modules ----------------------------------------------------------------- */

bool in_cls(const uint8_t cls[32], unsigned b);
/* A class bitmap as the initializer of a byte-per-entry table: one load per byte tested. */
void emit_cls_table(const uint8_t cls[32], struct writer *w);
bool spec_has_step(const struct spec *s, enum step_kind kind);
bool spec_has_steps(const struct spec *s);
/* The step of c of `kind` that fills field f, or NULL. */
const struct step *list_step(const struct command_decl *c, size_t f, enum step_kind kind);
/* The body step framed by fields list f, if any: its field names are noted during the scan. */
const struct step *body_notes(const struct command_decl *c, int f);
/* The sum of a refused frame's remaining steps into `total` (saturating). */
void emit_skip_total(const struct command_decl *c, size_t from, struct writer *w);
/* A refusal after the first line: a quiet frame sends nothing. */
void emit_cont_status(const struct command_decl *c, const char *status, struct writer *w);
const struct field *find_field(const struct command_decl *c, const char *name, int *out_i);
int check_name(struct source *src, const char *kind, const char *name, struct pos at);
/* Adds a list or bytes field named by node r to c: its index, or -1. */
int part_add_field(struct spec *s, struct command_decl *c, const struct rx *r, enum field_kind kind);
void add_step(struct command_decl *c, struct step st);
/* A step of `kind` holding node r's two strings back to back, the first's length in st.len
 * (array, body). */
void add_lit_step(struct command_decl *c, enum step_kind kind, int field, int len_field, const struct rx *r);

/* gen/event.c: what the spec does for an event or a command it answers itself. */
int check_action_at(struct spec *s, const struct action *a, bool event);
bool uses_refuse(const struct spec *s);
void emit_action(const struct spec *s, const struct action *a, struct writer *w);
void emit_on_error(const struct spec *s, struct writer *w);
void dot_action(struct writer *w, const char *from, const struct action *a, const char *edge);
const char *dot_event(const struct action *a);

/* gen/reply.c */
int check_reply(struct spec *s, const struct reply_decl *r);
void emit_reply_decl(const struct spec *s, const struct reply_decl *r, struct writer *w);
void emit_reply_writer(const struct spec *s, const struct reply_decl *r, struct writer *w);

/* gen/reply_list.c: templates with a spans(N) parameter, count() and each(). */
bool reply_has_list(const struct reply_decl *r);
int check_list_reply(struct spec *s, const struct reply_decl *r);
void emit_list_writer(const struct spec *s, const struct reply_decl *r, struct writer *w);
void emit_list_comment(const struct reply_part *p, struct writer *w);

/* gen/table.c: the text table, names looked up case-insensitively. */
int check_table(struct spec *s);
void emit_table_decl(const struct spec *s, struct writer *w);
void emit_text_table(const struct spec *s, struct writer *w);

/* gen/part_fields.c: the byte tables of field names, before the continuation. */
void emit_fields_tables(const struct spec *s, struct writer *w);
/* gen/frame_text.c: the handlers of a table and of refusals (raw specs share them). */
void text_handlers(const struct spec *s, struct writer *w);

/* gen/part_stream.c: a streamed body's handlers, dispatch, end at the close and `expect head`. */
bool is_streamed(const struct command_decl *c);
int check_stream_spec(struct spec *s);
void emit_stream_handlers(const struct spec *s, const struct command_decl *c, struct writer *w);
void emit_stream_required(const struct spec *s, struct writer *w);
void emit_stream_decls(const struct spec *s, struct writer *w);
void emit_stream_msg(const struct spec *s, struct writer *w);
void emit_stream_dispatch(const struct spec *s, const struct command_decl *c, struct writer *w);
void emit_stream_support(const struct spec *s, struct writer *w);

/* gen/fast_line.c: the greedy first-line path of a spec with one linear command. */
bool has_fast_line(const struct spec *s);
void emit_fast_line(const struct spec *s, struct writer *w);

/* gen/frame_binary.c, shared with the item-after-item reader (gen/frame_binary_seq.c). */
void emit_return(struct writer *w, const char *head, const char *used, const char *status);
void emit_length(const struct command_decl *c, const struct bin_item *b, size_t i, struct writer *w);
int seq_bound(const struct command_decl *c);
void emit_seq_body(const struct spec *s, const struct command_decl *c, struct writer *w);

/* gen/part_varint.c: varint fields and varint reply parts. */
enum varint_form varint_form_of(const char *word, size_t n);
unsigned varint_max_bytes(enum varint_form form);
const char *varint_name(enum varint_form form);
enum num_type varint_num(enum varint_form form);
void emit_read_varint(const struct bin_item *b, bool bounded, struct writer *w);
void emit_varint_part(const struct reply_part *part, size_t k, const char *value, struct writer *w);

/* gen/part_flags.c: bits(field, shift, width) and `if (...)` before an item. */
struct parser;
int parse_bits(struct parser *ps, struct bin_item *b);
int parse_cond(struct parser *ps, struct bin_cond *conds, size_t *out_n);
int check_flags(struct spec *s, struct command_decl *c, size_t i);
void emit_bits(const struct command_decl *c, const struct bin_item *b, struct writer *w);
void emit_cond_open(const struct command_decl *c, const struct bin_item *b, struct writer *w);
void dot_cond(const struct command_decl *c, const struct bin_item *b, struct writer *w);

/* gen/check.c: limits every text frame shares. */
#define LIMIT_LINE_MIN 16
#define LIMIT_LINE_MAX (64ULL * 1024 * 1024)

#endif
