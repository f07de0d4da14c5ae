/* echod: the echo protocol (spec/echo.rw): every byte received is sent back. The one handler
 * queues each received chunk on the connection's send chain. With --udp it also echoes
 * datagrams. */
#include <stdio.h>
#include <string.h>

#include <ringwright/ringwright.h>

#include "echo.gen.h"

static int on_data(rw_conn *c, const struct echo_data *msg)
{
  return rw_conn_write(c, msg->data.p, msg->data.len);
}

static const struct echo_handlers handlers = {.data = on_data};

static void on_datagram(rw_udp *u, const struct sockaddr *from, socklen_t fromlen, rw_span d, void *data)
{
  (void)data;
  rw_udp_send(u, from, fromlen, d.p, d.len); /* a full socket buffer drops it, as UDP may */
}

static int parse_udp(const char *flag, const char *val, void *data)
{
  if (strcmp(flag, "--udp"))
    return 0;
  if (!val) {
    fprintf(stderr, "echod: --udp needs HOST:PORT\n");
    return -1;
  }
  *(const char **)data = val;
  return 2;
}

int main(int argc, char **argv)
{
  const char *udp = NULL;
  const rw_cli_extra extra = {
      .usage = "  --udp HOST:PORT        also echo UDP datagrams on this address\n",
      .parse = parse_udp,
      .data = &udp,
  };
  rw_cli cli;
  int rc = rw_cli_parse_ext(argc, argv, "Sends back every byte it receives (spec/echo.rw).", "127.0.0.1:7000",
                            &extra, &cli);
  if (rc)
    return rc > 0 ? 0 : 2;
  rw_server *srv;
  if (rw_cli_server(&cli, &echo_proto, &handlers, &srv) < 0)
    return 1;
  if (udp && rw_server_udp(srv, udp, on_datagram, NULL) < 0) {
    rw_server_destroy(srv);
    return 1;
  }
  return rw_cli_run(srv);
}
