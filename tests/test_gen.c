/* Generator unit tests: the spec language as rwgen's passes see it (lexer, parser, checks,
 * emitters), and rwgen's command line. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../gen/spec.h"

struct result {
  int rc;
  struct spec spec;
  char *err; /* the diagnostics, as the user would see them */
  int nerrors;
};

static struct result compile(const char *text)
{
  struct result r = {0};
  size_t errlen;
  FILE *err = open_memstream(&r.err, &errlen);
  /* The spec keeps a pointer to its source: it must outlive this function. */
  struct source *src = malloc(sizeof *src);
  *src = (struct source){.path = "t.rw", .stem = "t", .text = text, .len = strlen(text), .err = err};
  r.rc = spec_parse(src, &r.spec);
  if (r.rc == 0)
    r.rc = spec_check(&r.spec);
  fclose(err);
  r.spec.src->err = NULL;
  r.nerrors = src->nerrors;
  return r;
}

static void done(struct result *r)
{
  free(r->spec.src);
  spec_free(&r->spec);
  free(r->err);
}

static void expect_error(const char *text, const char *where_what)
{
  struct result r = compile(text);
  cr_expect_eq(r.rc, -1, "spec should be rejected:\n%s", text);
  cr_expect(strstr(r.err, where_what) != NULL, "expected \"%s\" in:\n%s", where_what, r.err);
  done(&r);
}

#define PING_LIKE                   \
  "protocol p;\nlimit line 1KiB;\n" \
  "reply ok = \"+OK\\r\\n\";\n"

Test(spec, shipped_ping_shape)
{
  struct result r =
      compile("protocol ping;\nlimit line 64KiB;\ntoken blank = [ \\t]*;\n"
              "command ping = blank (\"PING\" | \"ping\") blank \"\\r\"? \"\\n\" -> reply pong;\n"
              "reply pong = \"+PONG\\r\\n\";\notherwise -> reply pong;\n"
              "on overlong -> reply pong, close;\n");
  cr_assert_eq(r.rc, 0, "%s", r.err);
  cr_expect_str_eq(r.spec.protocol, "ping");
  cr_expect_eq(r.spec.limit_line, 65536);
  cr_expect_eq(r.spec.ntokens, 1);
  cr_expect_eq(r.spec.ncommands, 1);
  cr_expect_eq(r.spec.nreplies, 1);
  cr_assert_eq(r.spec.replies[0].nparts, 1);
  cr_expect_eq(r.spec.replies[0].parts[0].len, 7);
  cr_expect_eq(memcmp(r.spec.replies[0].parts[0].bytes, "+PONG\r\n", 7), 0);
  cr_expect(r.spec.commands[0].action.present);
  cr_expect(!r.spec.commands[0].action.close);
  cr_expect(r.spec.overlong.close);
  done(&r);
}

Test(spec, sizes_and_captures)
{
  struct result r = compile("protocol kv;\nlimit line 1MiB;\ntoken key = [a-z]{1,250};\n"
                            "command get = \"get \" k:key \" \" v:([0-9]+) \"\\r\\n\";\n");
  cr_assert_eq(r.rc, 0, "%s", r.err);
  cr_expect_eq(r.spec.limit_line, 1 << 20);
  cr_assert_eq(r.spec.commands[0].nfields, 2);
  cr_expect_str_eq(r.spec.commands[0].fields[0].name, "k");
  cr_expect_str_eq(r.spec.commands[0].fields[1].name, "v");
  done(&r);
}

Test(spec, raw_protocol)
{
  struct result r = compile("# comment\nprotocol echo;\nraw data;\n");
  cr_assert_eq(r.rc, 0, "%s", r.err);
  cr_expect_str_eq(r.spec.raw_name, "data");
  done(&r);
}

Test(spec_errors, positions_are_file_line_col_with_the_line_quoted)
{
  struct result r = compile("protocol p\nlimit line 64;\n");
  cr_expect_eq(r.rc, -1);
  cr_expect_str_eq(r.err, "t.rw:2:1: error: expected ';', found a name\n  limit line 64;\n  ^\n");
  done(&r);
}

Test(spec_errors, lexical)
{
  expect_error("protocol p;\nreply x = \"abc;\n", "t.rw:2:11: error: unterminated string");
  expect_error("protocol p;\nreply x = \"a\\qb\";\n", "t.rw:2:13: error: unknown escape '\\q'");
  expect_error("protocol p;\nreply x = \"\\x4\";\n", "t.rw:2:12: error: \\x needs two hex digits");
  expect_error("protocol p;\nlimit line 64KB;\n", "t.rw:2:14: error: unknown size suffix 'KB'");
  expect_error("protocol p;\nlimit line 99999999999999999999;\n", "t.rw:2:12: error: number too large");
  expect_error("protocol p;\n  @\n", "t.rw:2:3: error: unexpected character '@'");
  expect_error("protocol p;\ntoken t = [a-z;\n", "t.rw:2:11: error: unterminated character class");
  expect_error("protocol p;\nreply x = \"\";\n", "t.rw:2:11: error: empty string");
}

Test(spec_errors, syntax)
{
  expect_error("protokol p;\n", "t.rw:1:1: error: expected a declaration");
  expect_error(PING_LIKE "command c = ;\n", "t.rw:4:13: error: expected a pattern");
  expect_error(PING_LIKE "command c = (\"a\" ;\n", "t.rw:4:18: error: expected ')'");
  expect_error(PING_LIKE "command c = \"a\"{3,1};\n",
               "t.rw:4:16: error: repeat {3,1}: maximum below minimum");
  expect_error(PING_LIKE "command c = \"a\" -> shout;\n",
               "t.rw:4:20: error: expected 'reply', 'close', 'ignore' or 'refuse'");
  expect_error(PING_LIKE "limit page 5;\n",
               "t.rw:4:7: error: expected a limit name ('line', 'data', 'items', 'fields' or 'depth')");
  expect_error(PING_LIKE "on timeout -> close;\n", "t.rw:4:4: error: expected an event name");
  expect_error(
      PING_LIKE "reply y = 'ci';\n",
      "t.rw:4:11: error: expected a \"string\", a parameter, len(parameter), count(list) or each(list: ...)");
}

Test(spec_errors, every_independent_error_is_reported)
{
  struct result r = compile("protocol p;\nlimit line 1KiB;\ncommand a = ;\ncommand b = \"x\" -> reply nope;\n"
                            "command c = undefined_tok;\n");
  cr_expect_eq(r.rc, -1);
  cr_expect_eq(r.nerrors, 1, "the parse error stops before checks:\n%s", r.err);
  done(&r);
  r = compile(
      "protocol p;\nlimit line 1KiB;\ncommand b = \"x\" -> reply nope;\ncommand c = undefined_tok;\n");
  cr_expect_eq(r.nerrors, 2, "%s", r.err);
  cr_expect(strstr(r.err, "t.rw:3:26: error: unknown reply 'nope'"), "%s", r.err);
  cr_expect(strstr(r.err, "t.rw:4:13: error: unknown token 'undefined_tok'"), "%s", r.err);
  done(&r);
}

Test(spec_errors, semantics)
{
  expect_error("limit line 1KiB;\ncommand a = \"a\";\n", "t.rw:1:1: error: missing 'protocol NAME;'");
  expect_error("protocol p;\ncommand a = \"a\";\n", "t.rw:1:1: error: missing 'limit line N;'");
  expect_error("protocol p;\nlimit line 8;\ncommand a = \"a\";\n",
               "t.rw:2:12: error: limit line must be between");
  expect_error("protocol p;\nlimit line 1KiB;\n", "t.rw:1:1: error: no commands");
  expect_error("protocol P;\nraw data;\n", "t.rw:1:10: error: protocol name 'P' must be lowercase");
  expect_error("protocol p;\nraw int;\n", "t.rw:2:5: error: raw handler name 'int' is a C keyword");
  expect_error("protocol p;\nraw data;\ncommand a = \"a\";\n",
               "t.rw:2:5: error: a raw protocol has no framing");
  expect_error(PING_LIKE "command a = \"a\";\ncommand a = \"b\";\n",
               "t.rw:5:9: error: command 'a' declared twice");
  expect_error(PING_LIKE "reply ok = \"x\";\ncommand a = \"a\";\n",
               "t.rw:4:7: error: reply 'ok' declared twice");
  expect_error(PING_LIKE "token t = u;\ntoken u = \"u\";\ncommand a = t;\n",
               "t.rw:4:11: error: token 'u' is used before its declaration");
  expect_error(PING_LIKE "token t = x:\"a\";\ncommand a = t;\n",
               "t.rw:4:11: error: captures belong in commands, not in tokens");
  expect_error(PING_LIKE "command a = (k:\"a\")+;\n",
               "t.rw:4:14: error: capture 'k' inside a repetition is not supported");
  expect_error(PING_LIKE "command a = k:\"a\" k:\"b\";\n", "t.rw:4:19: error: field 'k' captured twice");
  expect_error(PING_LIKE "otherwise -> reply missing;\n", "t.rw:4:20: error: unknown reply 'missing'");
  expect_error(PING_LIKE "otherwise -> close;\notherwise -> close;\n",
               "t.rw:5:11: error: otherwise declared twice");
}

Test(spec_errors, data_blocks_numbers_and_reply_templates)
{
#define DATA_LIKE "protocol p;\nlimit line 1KiB;\nlimit data 1MiB;\nnumber u32 n = [0-9]+;\n"
  expect_error(DATA_LIKE "command c = \"c \" len:n \"\\r\\n\" d:bytes(nope) \"\\r\\n\";\n",
               "t.rw:5:31: error: unknown length field 'nope' (capture it earlier in the command)");
  expect_error(DATA_LIKE "command c = \"c \" k:([a-z]+) \"\\r\\n\" d:bytes(k) \"\\r\\n\";\n",
               "t.rw:5:36: error: the length of 'd' must be an unsigned number field");
  expect_error(DATA_LIKE "command c = \"c \" len:n (\"\\r\\n\" d:bytes(len));\n",
               "t.rw:5:32: error: a data block belongs at the top level of a command");
  expect_error(DATA_LIKE "command c = d:bytes(len) \"\\r\\n\";\n",
               "t.rw:5:13: error: a data block must follow the line that gives its length");
  expect_error(DATA_LIKE "command c = \"c \" len:n \"\\r\\n\" d:bytes(len) [\\r\\n]+;\n",
               "t.rw:5:50: error: after a data block only \"literal\" strings");
  expect_error("protocol p;\nlimit line 1KiB;\nnumber u32 n = [0-9]+;\n"
               "command c = \"c \" len:n \"\\r\\n\" d:bytes(len) \"\\r\\n\";\n",
               "t.rw:4:9: error: command 'c' has a data block: declare 'limit data N;'");
  expect_error(DATA_LIKE "number u16 m = [0-9]+;\n",
               "t.rw:5:8: error: expected a number type (u32, u64 or i64)");
  expect_error(DATA_LIKE "command c = \"c\";\nreply r(a) = \"x\" b;\n",
               "t.rw:6:18: error: unknown parameter 'b' in reply 'r'");
  expect_error(DATA_LIKE "command c = \"c\";\nreply r(a: u64) = len(a);\n",
               "t.rw:6:19: error: len() takes a span parameter, and 'a' is a number");
  expect_error(DATA_LIKE "command c = \"c\";\nreply r(a, a) = a;\n",
               "t.rw:6:12: error: parameter 'a' declared twice");
  expect_error(DATA_LIKE "command c = \"c\" -> reply r;\nreply r(a) = a;\n",
               "t.rw:5:26: error: reply 'r' takes parameters: call it from a handler");
  expect_error(DATA_LIKE "token t = [a-z]+ max 0;\n", "t.rw:5:22: error: expected a maximum length");
  expect_error(DATA_LIKE "on timeout -> close;\n", "t.rw:5:4: error: expected an event name");
}

Test(spec, data_block_continuation_is_split_off)
{
  struct result r = compile(DATA_LIKE "command c = \"c \" len:n \"\\r\\n\" d:bytes(len) \"\\r\\n\";\n");
  cr_assert_eq(r.rc, 0, "%s", r.err);
  const struct command_decl *c = &r.spec.commands[0];
  cr_assert_eq(c->nfields, 2);
  cr_expect_eq(c->fields[0].kind, FIELD_NUM);
  cr_expect_eq(c->fields[1].kind, FIELD_BYTES);
  cr_assert_eq(c->nsteps, 2);
  cr_expect_eq(c->steps[0].kind, STEP_BYTES);
  cr_expect_eq(c->steps[0].len_field, 0);
  cr_expect_eq(c->steps[1].kind, STEP_LITERAL);
  cr_expect_eq(c->steps[1].len, 2);
  cr_expect_eq(c->rx->kids[0]->nkids, 3, "the pattern keeps only the first line");
  done(&r);
}

Test(spec, quiet_wrap_and_answered_data)
{
  struct result r =
      compile(DATA_LIKE "number u32 w = [0-9]+ wrap;\ntoken q = (\" q\")?;\n"
                        "command c = \"c \" len:w hush:q \"\\r\\n\" d:bytes(len) \"\\r\\n\" quiet hush;\n"
                        "command no = \"no \" len:n \"\\r\\n\" d:bytes(len) \"\\r\\n\" -> ignore;\n");
  cr_assert_eq(r.rc, 0, "%s", r.err);
  cr_expect(r.spec.tokens[1].wrap);
  cr_expect(!r.spec.tokens[0].wrap);
  cr_expect_eq(r.spec.commands[0].quiet_field, 1, "the quiet field is the second");
  cr_expect_eq(r.spec.commands[1].quiet_field, -1);
  cr_expect_eq(r.spec.commands[1].nsteps, 2, "an answered command keeps its blocks, to skip them");
  done(&r);
}

Test(spec_errors, binary_frames)
{
  expect_error(DATA_LIKE "number u32 len = [\\x00-\\xff]{4};\n",
               "t.rw:5:18: error: number 'len' matches byte 0x00, which no decimal number holds");
#define BIN_LIKE "protocol b;\nframe binary;\nlimit data 1KiB;\n"
  expect_error(BIN_LIKE "command c = 0x80 n:u32be d:bytes(m);\n",
               "t.rw:4:34: error: unknown length field 'm' (an integer of the header)");
  expect_error(
      BIN_LIKE "command c = n:u16be d:bytes(n) k:u8;\n",
      "t.rw:4:21: error: fields follow this part: a frame refused as too large here has no known end");
  expect_error(BIN_LIKE "command c = n:u16 d:bytes(n);\n", "t.rw:4:15: error: expected an integer type");
  expect_error(BIN_LIKE "command c = 0x100 n:u8;\n", "t.rw:4:13: error: a byte is 0..255");
  expect_error(BIN_LIKE "command c = op:u8 -> dispatch op;\ntable { a 1; b 256; };\n",
               "t.rw:5:14: error: 256 does not fit 'op' (1 bytes)");
  expect_error(BIN_LIKE "command c = op:u8 -> dispatch op;\ntable { a 1; b 1; };\n",
               "error: 'a' and 'b' have the same value 1");
  expect_error(BIN_LIKE "command c = n:u8 d:bytes(n - 1);\non bad_data -> refuse;\n",
               "t.rw:5:16: error: on bad_data must close in a binary spec");
  expect_error(BIN_LIKE "command c = n:u8;\ncommand d = m:u8;\n",
               "t.rw:5:9: error: a binary spec has one frame command");
  expect_error("protocol p;\nlimit line 1KiB;\ncommand c = \"c\\n\" -> refuse;\n",
               "t.rw:3:22: error: refuse answers a parse error or a binary frame: use 'reply' here");
  expect_error("protocol p;\nlimit line 1KiB;\ncommand c = \"c\\n\";\nframe binary;\n",
               "t.rw:4:7: error: frame must be declared before the commands");
}

Test(spec_errors, varints_flags_and_conditions)
{
  /* Varints and bits are fields of binary frames: a text frame refuses them where they stand. */
  expect_error("protocol p;\nlimit line 1KiB;\ncommand c = \"c \" n:varint \"\\n\";\n",
               "t.rw:3:20: error: 'varint' is a field of binary frames (declare 'frame binary;' first)");
  expect_error("protocol p;\nlimit line 1KiB;\ncommand c = \"c \" n:bits(a, 1, 1) \"\\n\";\n",
               "t.rw:3:20: error: 'bits' is a field of binary frames");
  /* A flag test on a field that is not captured, or not yet. */
  expect_error(BIN_LIKE "command c = b0:u8 t:bits(b1, 4, 4);\n",
               "t.rw:4:26: error: bits() of 'b1', which is not an integer field before it");
  expect_error(BIN_LIKE "command c = t:bits(b0, 4, 4) b0:u8;\n",
               "t.rw:4:20: error: bits() of 'b0', which is not an integer field before it");
  expect_error(BIN_LIKE "command c = b0:u8 t:bits(b0, 4, 0);\n",
               "t.rw:4:19: error: bits(field, shift, width) takes 1..63 bits within 64");
  /* A condition on a later field, or on a part. */
  expect_error(BIN_LIKE "command c = b0:u8 if (x) id:u16be x:u8;\n",
               "t.rw:4:23: error: a condition reads 'x', which is not an integer field before the item");
  expect_error(BIN_LIKE "command c = n:u8 d:bytes(n) if (d) x:u8;\n",
               "t.rw:4:33: error: a condition reads 'd'");
  expect_error(BIN_LIKE "command c = b0:u8 if (b0 = 1) x:u8;\n", "t.rw:4:28: error: expected '='");
  expect_error(BIN_LIKE "command c = b0:u8 if (b0) 0x80;\n", "t.rw:4:27: error: expected a field after");
  /* rest(): last, from a field that is always there. */
  expect_error(BIN_LIKE "command c = n:varint d:rest(n) x:u8;\n",
               "t.rw:4:22: error: rest() is the frame's last item");
  expect_error(BIN_LIKE "command c = b:u8 if (b) n:varint d:rest(n);\n",
               "t.rw:4:25: error: rest() reads its length from a field that is always there");
  expect_error(BIN_LIKE "command c = n:mqttlen d:rest(m);\n", "t.rw:4:30: error: unknown length field 'm'");
  /* A part with fields after it, unbounded: a too-large frame there has no known end. */
  expect_error(
      BIN_LIKE "command c = n:varint d:bytes(n) m:varint e:bytes(m);\non bad_data -> close;\n",
      "t.rw:4:22: error: fields follow this part: a frame refused as too large here has no known end");
  /* A dispatch by a bits field: the values must fit its width. */
  expect_error(BIN_LIKE "command c = b0:u8 t:bits(b0, 4, 4) -> dispatch t;\ntable { a 1; b 16; };\n",
               "t.rw:5:14: error: 16 does not fit 't' (4 bits)");
}

#define RESP2_LIKE "protocol r;\nframe resp2;\nlimit line 1KiB;\nlimit data 1MiB;\nlimit items 100;\n"

Test(spec_errors, resp2_frames)
{
  expect_error(RESP2_LIKE "command c = v:value;\n",
               "t.rw:2:7: error: a resp2 frame needs 'limit depth N;' with N from 1 to 32");
  expect_error(RESP2_LIKE "limit depth 33;\ncommand c = v:value;\n",
               "t.rw:2:7: error: a resp2 frame needs 'limit depth N;'");
  expect_error(RESP2_LIKE "limit depth 2;\ncommand c = v:bulk;\n", "t.rw:7:15: error: expected 'value'");
  expect_error(RESP2_LIKE "limit depth 2;\ncommand c = v:value;\ncommand d = w:value;\n",
               "t.rw:8:9: error: a resp2 frame has exactly one command: the reply");
  expect_error(RESP2_LIKE "limit depth 2;\ncommand c = v:value -> close;\n",
               "t.rw:7:9: error: the reply 'c' goes to its handler: no action, dispatch or quiet");
  expect_error(RESP2_LIKE "limit depth 2;\ncommand c = v:value;\notherwise -> close;\n",
               "t.rw:2:7: error: a resp2 frame has no table, head, otherwise");
  expect_error("protocol r;\nlimit depth 2;\n",
               "t.rw:2:7: error: limit depth bounds nested replies: it needs 'frame resp2;' first");
}

#define LIST_LIKE "protocol p;\nlimit line 1KiB;\ncommand c = \"c\\n\";\n"

Test(spec_errors, templates_with_lists)
{
  expect_error(LIST_LIKE "reply r(a: spans(4)) = a;\n",
               "t.rw:4:24: error: 'a' is a list: write it with count() and each()");
  expect_error(LIST_LIKE "reply r(a: span) = count(a);\n",
               "t.rw:4:20: error: count() and each() take a spans(N) parameter, and 'a' is not one");
  expect_error(LIST_LIKE "reply r(a: spans(4)) = each(a: \"x\" b);\n",
               "t.rw:4:36: error: each(a: ...) holds strings, it and len(it)");
  expect_error(LIST_LIKE "reply r(a: spans(0)) = \"x\";\n",
               "t.rw:4:18: error: expected the most spans a call may pass, 1 to 256");
  expect_error(LIST_LIKE "reply r(a: spans(4)) = each(a: each(a: it));\n",
               "t.rw:4:37: error: each() holds no each()");
  expect_error(LIST_LIKE "reply r(a: spans(4), n_a: span) = count(a) n_a;\n",
               "t.rw:4:22: error: 'n_a' is the count of the list 'a': name it otherwise");
}

#define HTTP_LIKE "protocol h;\nlimit line 1KiB;\nlimit data 1KiB;\nlimit fields 1KiB;\ntoken t = [a-z]+;\n"

Test(spec_errors, head_and_text_refusals)
{
  expect_error(HTTP_LIKE "command r = m:t \"\\r\\n\" f:fields(t) b:body(f, \"l\", \"c\");\nhead x;\n",
               "t.rw:7:6: error: head names no command: 'x'");
  expect_error(HTTP_LIKE "command r = m:t \"\\r\\n\" f:fields(t);\nhead r;\n",
               "t.rw:7:6: error: head needs a command with a handler whose last field is a body()");
  expect_error(HTTP_LIKE
               "command r = m:t \"\\r\\n\" f:fields(t) b:body(f, \"l\", \"c\");\nhead r;\nhead r;\n",
               "t.rw:8:6: error: head already declared");
}

/* A streamed body: its options, `role client;` and `expect head;`, each misuse at its place. */
#define STREAM_LIKE \
  "protocol h;\nlimit line 1KiB;\nlimit fields 1KiB;\ntoken t = [a-z]+;\nnumber u32 n = [0-9]+;\n"
#define STREAM_CMD(opts) \
  "command r = m:t \" \" s:n \"\\r\\n\" f:fields(t) b:stream(f, \"l\", \"c\"" opts ");\n"

Test(spec_errors, stream_role_and_expect_head)
{
  struct result ok =
      compile(STREAM_LIKE "role client;\n" STREAM_CMD(", status: s, until_close") "expect head;\n");
  cr_expect_eq(ok.rc, 0, "%s", ok.err);
  cr_expect(ok.spec.client && ok.spec.expect_head);
  done(&ok);
  struct result req = compile(STREAM_LIKE STREAM_CMD(""));
  cr_expect_eq(req.rc, 0, "a request streams its body without role client: %s", req.err);
  done(&req);
  expect_error(STREAM_LIKE STREAM_CMD(", status: s"),
               "t.rw:6:66: error: status: describes a response: declare 'role client;'");
  expect_error(STREAM_LIKE STREAM_CMD(", until_close"),
               "t.rw:6:66: error: until_close describes a response: declare 'role client;'");
  expect_error(STREAM_LIKE "role client;\n" STREAM_CMD(", status: m"),
               "t.rw:7:66: error: status: needs a number field of the first line, not 'm'");
  expect_error(STREAM_LIKE "role client;\n" STREAM_CMD(", until_close, until_close"),
               "t.rw:7:79: error: until_close given twice");
  expect_error(
      STREAM_LIKE "role client;\n" STREAM_CMD(", colour"),
      "t.rw:7:66: error: expected a stream() option ('status: FIELD' or 'until_close'), found a name");
  expect_error(STREAM_LIKE "command r = m:t \"\\r\\n\" f:fields(t) b:stream(m, \"l\", \"c\");\n",
               "t.rw:6:36: error: stream() needs a fields() list of this command, not 'm'");
  expect_error(STREAM_LIKE "command r = m:t \"\\r\\n\" f:fields(t) b:stream(f, \"l\", \"c\") \"x\";\n",
               "t.rw:6:9: error: command 'r': stream() must be its last part");
  expect_error(STREAM_LIKE STREAM_CMD("") "expect head;\n",
               "t.rw:7:8: error: expect head is a client's: declare 'role client;'");
  expect_error(STREAM_LIKE "role client;\ncommand r = m:t \"\\r\\n\";\nexpect head;\n",
               "t.rw:8:8: error: expect head needs a command with a stream() body");
  expect_error(STREAM_LIKE "role client;\n" STREAM_CMD("") "expect head;\nexpect head;\n",
               "t.rw:9:8: error: expect head already declared");
  expect_error(STREAM_LIKE "expect tail;\n", "t.rw:6:8: error: expected 'head' (expect head;), found a name");
  expect_error(STREAM_LIKE "role proxy;\n",
               "t.rw:6:6: error: expected a role ('client' or 'server'), found a name");
}

Test(spec, binary_frame_offsets_and_fields)
{
  struct result r =
      compile(BIN_LIKE "command c = \"RW\" op:u8 n:u32le d:bytes(n - 2 + 1) e:bytes(2) -> dispatch op;\n"
                       "table { a 0; b 0xff; };\nreply r(x: u64, d) = 0x81 u16be(x) u32le(len(d, d)) d;\n");
  cr_assert_eq(r.rc, 0, "%s", r.err);
  const struct command_decl *c = &r.spec.commands[0];
  cr_expect_eq(c->header, 7, "two magic bytes, a u8, a u32");
  cr_assert_eq(c->nfields, 4);
  cr_expect_eq(c->fields[0].num, NUM_U8);
  cr_expect_eq(c->fields[1].num, NUM_U32);
  cr_expect_eq(c->fields[2].kind, FIELD_BYTES);
  cr_expect_eq(c->bin[3].nterms, 3);
  cr_expect(c->bin[3].terms[1].neg);
  cr_expect_eq(r.spec.table[1].arity, 0xff);
  cr_expect_eq(r.spec.replies[0].parts[1].kind, PART_INT);
  cr_expect_eq(r.spec.replies[0].parts[2].width, 4);
  cr_expect(r.spec.replies[0].parts[2].le);
  done(&r);
}

Test(spec_errors, quiet_and_answered_data)
{
  expect_error(DATA_LIKE "command c = \"c \" len:n \"\\r\\n\" quiet len;\n",
               "t.rw:5:37: error: quiet needs a span field of 'c''s first line, not 'len'");
  expect_error(DATA_LIKE "command c = \"c\" q:(\"q\"?) \"\\n\" quiet nope;\n",
               "error: quiet needs a span field of 'c''s first line, not 'nope'");
  expect_error(DATA_LIKE "reply r = \"r\";\ncommand c = \"c\" q:\"q\" \"\\n\" quiet q -> reply r, close;\n",
               "error: a command that closes cannot be quiet");
  expect_error(DATA_LIKE
               "limit items 8;\ncommand c = \"*\" k:n \"\\r\\n\" a:array(k, \"$\", \"\\r\\n\") -> ignore;\n",
               "error: command 'c' is answered by the spec, so its data is skipped");
}

Test(spec_errors, names_the_generated_code_already_uses)
{
  expect_error(PING_LIKE "command msg = \"m\";\n",
               "t.rw:4:9: error: 'msg' would name struct p_msg, which rwgen generates for itself");
  expect_error(PING_LIKE "command handlers = \"h\";\n",
               "t.rw:4:9: error: 'handlers' would name struct p_handlers");
  expect_error(PING_LIKE "command parser = \"p\";\n", "t.rw:4:9: error: 'parser' would name struct p_parser");
  expect_error(PING_LIKE "command cmd = \"c\";\n", "t.rw:4:9: error: 'cmd' would name struct p_cmd");
  expect_error("protocol p;\nraw msg;\n", "t.rw:2:5: error: 'msg' would name struct p_msg");
#define TABLE_LIKE                                                                            \
  "protocol p;\nlimit line 1KiB;\nlimit data 1KiB;\nlimit items 8;\nnumber u32 n = [0-9]+;\n" \
  "command args = \"*\" k:n \"\\r\\n\" a:array(k, \"$\", \"\\r\\n\") -> dispatch a;\n"
  expect_error(TABLE_LIKE "table { get 2; unknown 1; };\n",
               "t.rw:7:16: error: 'unknown' is the handler rwgen generates for names not in the table");
  expect_error(TABLE_LIKE "table { get 2; };\ncommand unknown = \"u\";\n",
               "t.rw:8:9: error: 'unknown' is the handler rwgen generates for names not in the table");
  static const char *const params[] = {"c", "iov", "lit0", "num3", "lit12", "rw_fmt_u64", "uint64_t"};
  for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
    char text[256], want[256];
    snprintf(text, sizeof text, PING_LIKE "reply r(a, %s) = a;\n", params[i]);
    snprintf(want, sizeof want, "t.rw:4:12: error: parameter name '%s' is taken by the reply writer",
             params[i]);
    expect_error(text, want);
  }
  expect_error(PING_LIKE
               "token w = [a-z]+;\ncommand a_b = \"x \" c:w \"\\n\";\ncommand a = \"y \" b_c:w \"\\n\";\n",
               "t.rw:6:18: error: field 'b_c' of command 'a' and field 'c' of command 'a_b' both name the "
               "parser's capture a_b_c: rename one");
  /* Near misses are names like any other. */
  struct result r = compile(PING_LIKE "reply r(lit, numx, cc, count, iovec, rw, t) = lit numx cc count;\n"
                                      "command msgs = \"m\";\ncommand unknown = \"u\";\n");
  cr_expect_eq(r.rc, 0, "%s", r.err);
  done(&r);
}

static char *emit_to_string(const char *text, int (*emit)(const struct spec *, FILE *))
{
  struct result r = compile(text);
  cr_assert_eq(r.rc, 0, "%s", r.err);
  char *out;
  size_t len;
  FILE *f = open_memstream(&out, &len);
  cr_assert_eq(emit(&r.spec, f), 0);
  fclose(f);
  done(&r);
  return out;
}

Test(emit, header_has_commands_fields_handlers_and_writers)
{
  const char *spec = "protocol kv;\nlimit line 1KiB;\ntoken key = [a-z]+;\n"
                     "command get = \"get \" key:key \"\\r\\n\";\n"
                     "command ping = \"ping\\r\\n\" -> reply pong;\nreply pong = \"+PONG\\r\\n\";\n";
  char *h = emit_to_string(spec, emit_header);
  cr_expect(strstr(h, "  KV_CMD_GET,\n  KV_CMD_PING,\n  KV_CMD__COUNT\n"), "%s", h);
  cr_expect(strstr(h, "struct kv_get {\n  rw_span key;\n};"), "%s", h);
  cr_expect(strstr(h, "int (*get)(rw_conn *c, const struct kv_get *msg);"), "%s", h);
  cr_expect(!strstr(h, "int (*ping)"), "a command the spec answers needs no handler:\n%s", h);
  cr_expect(strstr(h, "/* Writes \"+PONG\\r\\n\". */\nint kv_reply_pong(rw_conn *c);"), "%s", h);
  cr_expect(strstr(h, "extern const rw_proto kv_proto;"), "%s", h);
  free(h);
  char *re = emit_to_string(spec, emit_re);
  cr_expect(strstr(re, "\"get \" @f_get_key_s tok_key @f_get_key_e \"\\r\\n\""), "%s", re);
  cr_expect(strstr(re, "[KV_CMD_GET] = kv_do_get,"), "%s", re);
  cr_expect(strstr(re, "if (len > 1024u)\n    return RW_PARSE_OVERLONG;"), "%s", re);
  free(re);
}

/* A text spec's refusals go to `refused(c, status)`; `head` adds CMD_head, called from on_error
 * with RW_PARSE_HEAD, and the body step jumps to it the first time it waits. */
Test(emit, text_refusals_and_head)
{
  const char *spec = HTTP_LIKE "command r = m:t \"\\r\\n\" f:fields(t) b:body(f, \"l\", \"c\");\n"
                               "otherwise -> refuse, close;\non bad_data -> refuse;\nhead r;\n";
  char *h = emit_to_string(spec, emit_header);
  cr_expect(strstr(h, "  int (*r_head)(rw_conn *c, const struct h_r *msg);\n"), "%s", h);
  cr_expect(strstr(h, "  int (*refused)(rw_conn *c, int status);\n"), "%s", h);
  free(h);
  char *re = emit_to_string(spec, emit_re);
  cr_expect(strstr(re, "  if (status == RW_PARSE_HEAD)\n    return h->r_head(c, &m->r);\n"), "%s", re);
  cr_expect(strstr(re, "if (!p->b_head)\n            goto head_r;"), "%s", re);
  cr_expect(strstr(re, "head_r:\n    p->b_head = true;\n"), "%s", re);
  cr_expect(strstr(re, "RW_LIST_SINGLE, 0, (rw_span){buf + p->b_start, 0});\n    *out_used = 0;\n"
                       "    return RW_PARSE_HEAD;"),
            "%s", re);
  cr_expect(strstr(re, "  if (status == RW_PARSE_UNKNOWN) {\n  int rc = h->refused(c, status);\n"), "%s", re);
  cr_expect(strstr(re, "  if (!h->refused)\n    return -EINVAL;\n  if (!h->r_head)\n    return -EINVAL;\n"),
            "%s", re);
  free(re);
}

/* Names C++ or C23 reserve stay legal in specs (memcache's `delete`) and are spelled with a
 * trailing '_' wherever they stand alone in the generated code, in C and C++ alike. */
#define KEYWORDS_SPEC                                                                               \
  "protocol kw;\nlimit line 1KiB;\nlimit data 1KiB;\nlimit items 8;\n"                              \
  "token word = [a-z]+;\nnumber u32 n = [0-9]+;\n"                                                  \
  "command new = \"new \" class:word \" \" this:n \"\\r\\n\";\n"                                    \
  "command delete = \"del \" try:word \" \" typeof:n \"\\r\\n\" export:bytes(typeof) \"\\r\\n\";\n" \
  "command args = \"*\" count:n \"\\r\\n\" namespace:array(count, \"$\", \"\\r\\n\") -> dispatch "  \
  "namespace;\n"                                                                                    \
  "table { virtual 2; private 1+; };\n"                                                             \
  "reply errno(template, operator: u64, xor: i64) = \"x\" template len(template) operator xor;\n"   \
  "otherwise -> close;\n"

Test(emit, cxx_and_c23_keywords_get_a_trailing_underscore)
{
  cr_expect_str_eq(spec_member("delete"), "delete_");
  cr_expect_str_eq(spec_member("new"), "new_");
  cr_expect_str_eq(spec_member("typeof_unqual"), "typeof_unqual_");
  cr_expect_str_eq(spec_member("errno"), "errno_");
  cr_expect_str_eq(spec_member("delet"), "delet");
  cr_expect_str_eq(spec_member("deletes"), "deletes");
  cr_expect_str_eq(spec_member("get"), "get");
  char *h = emit_to_string(KEYWORDS_SPEC, emit_header);
  cr_expect(strstr(h, "struct kw_new {\n  rw_span class_;\n  uint32_t this_;\n};"), "%s", h);
  cr_expect(strstr(h, "struct kw_delete {\n  rw_span try_;\n  uint32_t typeof_;\n  rw_span export_;\n};"),
            "%s", h);
  cr_expect(strstr(h, "  rw_list namespace_;\n"), "%s", h);
  cr_expect(strstr(h, "  struct kw_delete delete_;\n"), "%s", h);
  cr_expect(strstr(h, "  int (*delete_)(rw_conn *c, const struct kw_delete *msg);\n"), "%s", h);
  cr_expect(strstr(h, "  int (*virtual_)(rw_conn *c, const rw_list *args);"), "%s", h);
  cr_expect(strstr(h, "int kw_reply_errno(rw_conn *c, rw_span template_, uint64_t operator_, int64_t xor_);"),
            "%s", h);
  cr_expect(strstr(h, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n"), "%s", h);
  free(h);
  char *re = emit_to_string(KEYWORDS_SPEC, emit_re);
  cr_expect(strstr(re, "m->delete_.try_ = "), "%s", re);
  cr_expect(strstr(re, "return h->delete_(c, &m->delete_);"), "%s", re);
  cr_expect(strstr(re, "return h->private_(c, args);"), "%s", re);
  cr_expect(strstr(re, "&m->args.namespace_"), "%s", re);
  cr_expect(strstr(re, "{(void *)template_.p, template_.len},"), "%s", re);
  free(re);
}

static int run(const char *cmd)
{
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(cli, rwgen_help_usage_and_errors)
{
  cr_expect_eq(run("build/bin/rwgen --help | grep -q 'usage: rwgen'"), 0);
  cr_expect_eq(run("build/bin/rwgen --bogus 2>/dev/null"), 2);
  cr_expect_eq(run("build/bin/rwgen 2>/dev/null"), 2);
  cr_expect_eq(run("build/bin/rwgen /nonexistent.rw 2>/dev/null"), 1);
  cr_expect_eq(
      run("d=$(mktemp -d) && printf 'protocol p;\\nlimit line 1KiB;\\ncommand c = nope;\\n' > $d/bad.rw && "
          "build/bin/rwgen -o $d $d/bad.rw 2> $d/err; rc=$?; "
          "grep -q \"^$d/bad.rw:3:13: error: unknown token 'nope'$\" $d/err && test ! -e $d/bad.gen.h && "
          "exit $rc"),
      1);
  cr_expect_eq(run("d=$(mktemp -d) && build/bin/rwgen -o $d spec/ping.rw && test -s $d/ping.gen.h && "
                   "re2c -W -f -o $d/ping.gen.c $d/ping.gen.re 2>&1 | (! grep -q .) && "
                   "gcc -std=c11 -Wall -Wextra -Werror -Iinclude -c $d/ping.gen.c -o $d/ping.o"),
               0);
  /* Generated code compiles as C, and its header as C++ too, with keywords for names. */
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "d=$(mktemp -d) && printf '%%s' '%s' > $d/kw.rw && build/bin/rwgen -o $d $d/kw.rw && "
           "re2c -W -Wno-nondeterministic-tags -f -o $d/kw.gen.c $d/kw.gen.re && "
           "gcc -std=c11 -pedantic -Wall -Wextra -Werror -Iinclude -c $d/kw.gen.c -o $d/kw.o && "
           "printf '#include \"kw.gen.h\"\\n' > $d/kw.cc && "
           "g++ -std=c++17 -pedantic -Wall -Wextra -Werror -Iinclude -I$d -fsyntax-only $d/kw.cc",
           KEYWORDS_SPEC);
  cr_expect_eq(run(cmd), 0, "%s", cmd);
}

/* Binary frames that mix fixed and variable items compile without warnings: a magic before a
 * varint and a literal after it, conditions and bits, a field after a part. */
#define MIXED_SPEC                                                                          \
  "protocol mix;\nframe binary;\nlimit data 1KiB;\n"                                        \
  "command c = 0x80 \"RW\" n:varint 0x01 b0:u8 t:bits(b0, 4, 4) if (t == 2) x:u32le "       \
  "if (t || b0 == 7) y:varint32 d:bytes(n) k:u8 if (k) e:bytes(k - 1) m:mqttlen r:rest(m) " \
  "-> dispatch t;\ntable { a 1; b 2; };\n"                                                  \
  "reply out(x, v: u64) = varint(len(x)) varint32(v) mqttlen(v) x;\n"                       \
  "on too_large -> close;\non bad_data -> close;\n"

Test(cli, mixed_binary_items_compile)
{
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "d=$(mktemp -d) && printf '%%s' '%s' > $d/mix.rw && build/bin/rwgen -o $d $d/mix.rw && "
           "re2c -W -f -o $d/mix.gen.c $d/mix.gen.re && "
           "gcc -std=c11 -pedantic -Wall -Wextra -Werror -Iinclude -c $d/mix.gen.c -o $d/mix.o",
           MIXED_SPEC);
  cr_expect_eq(run(cmd), 0, "%s", cmd);
}

/* The generator's output is deterministic and reviewed: any change to it shows up here, and
 * tests/golden/update (after reading the diff) accepts it. */
Test(golden, shipped_specs_generate_exactly_the_reviewed_output)
{
  /* The shipped specs, and the test specs that are the binary frame's worked examples. */
  static const char *const specs[] = {"spec/ping",        "spec/echo",          "spec/memcache",
                                      "spec/resp",        "spec/http1",         "spec/memcache_binary",
                                      "tests/specs/mqtt", "tests/specs/pbdelim"};
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
    const char *n = strrchr(specs[i], '/') + 1;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "d=$(mktemp -d) && build/bin/rwgen -o $d %s.rw && build/bin/rwgen --dot %s.rw > $d/%s.dot && "
             "diff -u tests/golden/%s.gen.h $d/%s.gen.h && diff -u tests/golden/%s.gen.re $d/%s.gen.re && "
             "diff -u tests/golden/%s.dot $d/%s.dot",
             specs[i], specs[i], n, n, n, n, n, n, n);
    cr_expect_eq(run(cmd), 0, "%s: generated output differs from tests/golden (see the diff above)",
                 specs[i]);
  }
}
