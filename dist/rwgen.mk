# GNU make rules for ringwright specs: rwgen writes NAME.gen.h and NAME.gen.re from NAME.rw, and
# re2c turns NAME.gen.re into NAME.gen.c, which make's built-in rule compiles. Include this file
# where pkg-config says it is, then name what you build from the outputs:
#
#   include $(shell pkg-config --variable=rwgen_mk ringwright)
#   CFLAGS += $(shell pkg-config --cflags ringwright)
#   LDLIBS += $(shell pkg-config --libs ringwright)
#   counter: main.o counter.gen.o
#   main.o: counter.gen.h
#
# The outputs are written beside the spec; with `vpath %.rw DIR` a spec in DIR is found and
# they are written in the current directory. RWGEN and RE2C name the programs (from PATH).

RWGEN ?= rwgen
RE2C ?= re2c
RWGEN_RE2CFLAGS ?= -W -Wno-nondeterministic-tags -f --no-generation-date --no-version

# One rwgen run writes both: a grouped pattern rule.
%.gen.h %.gen.re: %.rw
	$(RWGEN) -o $(dir $@) $<

%.gen.c: %.gen.re
	$(RE2C) $(RWGEN_RE2CFLAGS) -o $@ $<

# Kept after the build, not deleted as intermediate files: they are worth reading.
.PRECIOUS: %.gen.h %.gen.re %.gen.c
