/* Everything an appliance needs. */
#ifndef RINGWRIGHT_H
#define RINGWRIGHT_H

#include "body.h"
#include "buf.h"
#include "cli.h"
#include "conn.h"
#include "dns.h"
#include "file.h"
#include "fmt.h"
#include "histogram.h"
#include "list.h"
#include "logfile.h"
#include "metrics.h"
#include "msg.h"
#include "proto.h"
#include "resp.h"
#include "scan.h"
#include "server.h"
#include "spawn.h"
#include "stats.h"
#include "task.h"
#include "timer.h"
#include "tls.h"
#include "udp.h"
#include "upstream.h"

#endif
