# Shared by the benchmark scripts (sourced): pinned servers, CPU accounting, medians.
# Server on CPU 0, load generator on CPU 1; figures per server-CPU-second come from the
# server's utime+stime in /proc over the measured window.
tck=$(getconf CLK_TCK)
port=${port:-7400}

# utime+stime of a process (all its threads) and its children (nginx's workers), in ticks.
cpu_ticks() {
  local pids
  pids=$(echo "$1"; pgrep -P "$1" || true)
  for p in $pids; do cat "/proc/$p/stat" 2>/dev/null; done | awk '{ t += $14 + $15 } END { print t + 0 }'
}

# start_server CMD...: starts it pinned to CPU 0, waits for $port, sets $spid. Callers bump
# $port for each server so that no run meets the last one's socket.
start_server() {
  taskset -c 0 "$@" >/dev/null 2>/tmp/rw-bench-server.log &
  spid=$!
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return 0
    sleep 0.05
  done
  echo "server did not start: $*" >&2; cat /tmp/rw-bench-server.log >&2; exit 1
}
stop_server() { kill -TERM "$spid" 2>/dev/null; wait "$spid" 2>/dev/null || true; }

# Peak resident memory of the server so far (with its children), KiB.
server_hwm() {
  local pids
  pids=$(echo "$spid"; pgrep -P "$spid" || true)
  for p in $pids; do cat "/proc/$p/status" 2>/dev/null; done | awk '/^VmHWM/ { t += $2 } END { print t + 0 }'
}

# measure LOADCMD...: runs rwload (or a function printing its "key value" pairs, which pins
# itself) pinned to CPU 1;
# prints "rps rps_per_cpu p50_us p99_us"
measure() {
  local t0 t1 line
  t0=$(cpu_ticks "$spid")
  if declare -F "$1" >/dev/null; then line=$("$@"); else line=$(taskset -c 1 "$@"); fi
  t1=$(cpu_ticks "$spid")
  # A load that saw errors (non-2xx replies, socket errors) measured something else: stop the
  # whole run rather than print a number for it.
  if [[ " $line " == *" errors 1 "* ]]; then
    echo "bench: '$*' against the server on port ${port:-?} reported errors: results would be invalid" >&2
    kill -TERM $$
    exit 1
  fi
  awk -v l="$line" -v d="$((t1 - t0))" -v tck="$tck" 'BEGIN {
    split(l, f, " "); for (i = 1; i < length(f); i += 2) v[f[i]] = f[i + 1];
    cpu = d / tck; r = (cpu > 0 ? v["requests"] / cpu : 0)
    # (Rates under a thousand, long values per second, keep their decimals.)
    printf "%s %s %s %s\n", fmt(v["rps"]), fmt(r), v["p50_us"], v["p99_us"] }
    function fmt(x) { return x >= 1000 ? sprintf("%.0f", x) : sprintf("%.3f", x) }'
}

# redis_bench ARGS...: one redis-benchmark test (-t X -n N ...) pinned to CPU 1, printed in
# rwload's form so that measure() can read it.
redis_bench() {
  local n=0 args=("$@") csv
  for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[i]}" = -n ] && n=${args[i + 1]}; done
  csv=$(taskset -c 1 redis-benchmark "$@" --csv 2>/dev/null | tail -1 | tr -d '"')
  # "test,rps,avg_latency_ms,min_latency_ms,p50_latency_ms,p95_latency_ms,p99_latency_ms,max_latency_ms"
  awk -F, -v n="$n" -v l="$csv" 'BEGIN { split(l, f, ","); printf "requests %d rps %s p50_us %.0f p99_us %.0f\n", n, f[2], f[5] * 1000, f[7] * 1000 }'
}

# median_of ...: the run with the median rps/cpu of $reps runs of `measure ...`
median_of() {
  for _ in $(seq "$reps"); do measure "$@"; done | sort -n -k2 | awk -v r="$reps" 'NR == int((r + 1) / 2)'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }'; }
