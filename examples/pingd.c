/* pingd: the ping protocol (spec/ping.rw). The spec answers every command itself, so this
 * appliance is nothing but start-up: no handler code at all. */
#include <ringwright/ringwright.h>

#include "ping.gen.h"

static const struct ping_handlers handlers = {0};

int main(int argc, char **argv)
{
  rw_cli cli;
  int rc = rw_cli_parse(argc, argv, "Answers PING with +PONG (spec/ping.rw).", "127.0.0.1:7001", &cli);
  if (rc)
    return rc > 0 ? 0 : 2;
  return rw_cli_serve(&cli, &ping_proto, &handlers);
}
