/* Varint fields of a binary frame and varint reply parts (gen/construct.h).
 *
 *   varint    LEB128 (protobuf's), a u64: at most 10 bytes, the 10th at most 0x01
 *   varint32  LEB128, a u32: at most 5 bytes, the 5th at most 0x0f
 *   mqttlen   MQTT 3.1.1's remaining length (§2.2.3): at most 4 bytes, so at most 268,435,455
 *
 * Seven bits a byte, least significant group first, the high bit set on every byte but the
 * last. An encoding longer than its form allows, or whose value does not fit, is bad_data. A
 * non-minimal encoding (0x80 0x00 for 0) is accepted: protobuf's decoders accept it, and MQTT
 * 3.1.1 gives the table of minimal sizes without requiring them (MQTT 5.0 §1.5.5 does). The
 * parser reads a varint again from its first byte on each call until its last byte is there:
 * at most 10 bytes, so a frame split anywhere still parses in O(total bytes). */
#include <string.h>

#include "construct.h"

static const struct {
  const char *name;
  enum varint_form form;
  unsigned max_bytes;
  unsigned last_max; /* the largest byte the longest encoding may end with */
  enum num_type num;
} forms[] = {
    {"varint", VARINT_LEB64, 10, 0x01, NUM_U64},
    {"varint32", VARINT_LEB32, 5, 0x0f, NUM_U32},
    {"mqttlen", VARINT_MQTT, 4, 0x7f, NUM_U32},
};

enum varint_form varint_form_of(const char *word, size_t n)
{
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
    if (strlen(forms[i].name) == n && !memcmp(forms[i].name, word, n))
      return forms[i].form;
  return VARINT_NONE;
}

unsigned varint_max_bytes(enum varint_form form)
{
  return forms[form - 1].max_bytes;
}

const char *varint_name(enum varint_form form)
{
  return forms[form - 1].name;
}

enum num_type varint_num(enum varint_form form)
{
  return forms[form - 1].num;
}

/* f->NAME from buf[at..], at moved past it; `bounded`: the frame's end is known (lim). */
void emit_read_varint(const struct bin_item *b, bool bounded, struct writer *w)
{
  unsigned max = varint_max_bytes(b->vform);
  w_open(w, "{\n");
  w_puts(w, "uint64_t v = 0;\nsize_t k = 0;\n");
  w_open(w, "for (;;) {\n");
  if (bounded) {
    w_open(w, "if (k == lim - at)\n");
    w_puts(w, "goto bad; /* past the frame's announced end */\n");
    w_dedent(w);
  }
  w_open(w, "if (k == len - at) {\n");
  w_puts(w, "*out_used = 0;\nreturn RW_PARSE_MORE;\n");
  w_close(w, "}\n");
  w_puts(w, "uint8_t byte = buf[at + k];\n");
  w_open(w, "if (k == %uu && byte > 0x%02xu)\n", max - 1, forms[b->vform - 1].last_max);
  w_printf(w, "goto bad; /* longer than %u bytes, or past the type's range */\n", max);
  w_dedent(w);
  w_puts(w, "v |= (uint64_t)(byte & 0x7fu) << (7 * k++);\n");
  w_open(w, "if (!(byte & 0x80u))\n");
  w_puts(w, "break;\n");
  w_dedent(w);
  w_close(w, "}\n");
  w_printf(w, "f->%s = (%s)v;\nat += k;\n", spec_member(b->name), num_ctype(varint_num(b->vform)));
  w_close(w, "}\n");
}

/* A reply's varint: its bytes into intK, their count into intK_n; MQTT's past its range is
 * -ERANGE before anything is written. The local is rw_v: reply parameters cannot be named so. */
void emit_varint_part(const struct reply_part *part, size_t k, const char *value, struct writer *w)
{
  w_printf(w, "uint8_t int%zu[%u];\nsize_t int%zu_n = 0;\n", k, varint_max_bytes(part->vform), k);
  w_open(w, "{\n");
  w_printf(w, "uint64_t rw_v = (uint64_t)(%s);\n", value);
  if (part->vform != VARINT_LEB64) {
    w_open(w, "if (rw_v > %lluu)\n", part->vform == VARINT_MQTT ? 268435455ull : 0xffffffffull);
    w_puts(w, "return -ERANGE;\n");
    w_dedent(w);
  }
  w_open(w, "do {\n");
  w_printf(w, "int%zu[int%zu_n++] = (uint8_t)((rw_v & 0x7fu) | (rw_v > 0x7fu ? 0x80u : 0u));\n", k, k);
  w_puts(w, "rw_v >>= 7;\n");
  w_close(w, "} while (rw_v);\n");
  w_close(w, "}\n");
}
