#!/usr/bin/env bash
# Server CPU per request: utime + stime of a running server's processes (the pid and its direct
# children, e.g. nginx's workers) read from /proc around one wrk run, divided by the requests
# wrk made. Steadier than req/s on a shared machine, and what the figures in bench/README.md
# ("~15.5 µs per 1 KiB request") were measured with. Compare builds by alternating them.
#
#   bash bench/cpu-per-request.sh PID URL [CONNECTIONS=64] [SECONDS=4] [WRK_THREADS=2]
set -euo pipefail
pid=$1 url=$2 conns=${3:-64} secs=${4:-4} threads=${5:-2}
pids="$pid $(pgrep -P "$pid" | tr '\n' ' ' || true)"
ticks() { local sum=0 t; for p in $pids; do t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0); sum=$((sum + t)); done; echo "$sum"; }
before=$(ticks)
out=$(wrk -t"$threads" -c"$conns" -d"${secs}s" "$url")
after=$(ticks)
requests=$(awk '/requests in/ {print $1}' <<<"$out")
awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" -v rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
  'BEGIN { printf "requests %d  req/s %s  server CPU %.2f us/request\n", n, rps, t * 1e6 / hz / n }'
