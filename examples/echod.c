/* echod: the echo protocol (spec/echo.rw): every byte received is sent back. The one handler
 * queues each received chunk on the connection's send chain. */
#include <ringwright/ringwright.h>

#include "echo.gen.h"

static int on_data(rw_conn *c, const struct echo_data *msg)
{
  return rw_conn_write(c, msg->data.p, msg->data.len);
}

static const struct echo_handlers handlers = {.data = on_data};

int main(int argc, char **argv)
{
  rw_cli cli;
  int rc = rw_cli_parse(argc, argv, "Sends back every byte it receives (spec/echo.rw).", "127.0.0.1:7000", &cli);
  if (rc)
    return rc > 0 ? 0 : 2;
  return rw_cli_serve(&cli, &echo_proto, &handlers);
}
