#!/usr/bin/env bash
# The Redis ceiling: redis-benchmark against the same Redis hongbao uses.
#
#   bench/ceiling.sh <redis-port> [requests] [pipeline]
#
# Prints three lines, "reference <rps>", "evalsha <rps>" and "lpop <rps>",
# each with the Redis process CPU (INFO cpu, user + sys) per call:
#   reference  EVALSHA of bench/reference_grab.lua, the field's standard
#            one-script grab (dedup, pop a share, record the claim, append to
#            the packet's stream), every call a successful grab. It stays
#            fixed while hongbao's scripts change: the reference for ratios.
#   evalsha  EVALSHA of packet/lua/grabmany.lua with one user (the one-grab
#            script hongbao runs for a lone grab), every call a successful grab:
#            a packet with enough shares, a fresh random user id per call.
#            OUTBOX=1 (the default) appends each claim to the settlement
#            outbox as the ledger mode does; OUTBOX=0 does not (Redis-only).
#   lpop     redis-benchmark's own LPOP test: the raw ceiling of one command.
# 50 clients (redis-benchmark's default), -P <pipeline> (default 1).
# Uses keys under bench:ceil:* and deletes them afterwards.
set -euo pipefail
PORT=${1:?redis port}
N=${2:-500000}
P=${3:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cli() { redis-cli -p "$PORT" "$@"; }

# cpu prints the Redis process's CPU seconds so far (user + sys).
cpu() { cli INFO cpu | tr -d '\r' | awk -F: '/^used_cpu_(user|sys):/ { s += $2 } END { printf "%.6f", s }'; }
# perCall prints the CPU microseconds per call between two cpu readings.
perCall() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }'; }

# The reference: the standard one-script grab.
REF=$(cli SCRIPT LOAD "$(cat "$ROOT/bench/reference_grab.lua")")
RCLAIMS='bench:ceil:{p:0}:claims' RSHARES='bench:ceil:{p:0}:shares' RSTREAM='bench:ceil:{p:0}:stream'
cli DEL "$RCLAIMS" "$RSHARES" "$RSTREAM" >/dev/null
cli EVAL "local n=tonumber(ARGV[1]) local t={} for i=1,1000 do t[i]='7' end for i=1,n,1000 do redis.call('RPUSH',KEYS[1],unpack(t)) end return redis.call('LLEN',KEYS[1])" 1 "$RSHARES" "$((N + N / 10))" >/dev/null
before=$(cli LLEN "$RSHARES")
c0=$(cpu)
out=$(redis-benchmark -p "$PORT" -n "$N" -P "$P" -r 1000000000 -q EVALSHA "$REF" 3 "$RCLAIMS" "$RSHARES" "$RSTREAM" user:__rand_int__ 2>&1 | tr '\r' '\n' | grep -E 'requests per second' | tail -1)
c1=$(cpu)
popped=$((before - $(cli LLEN "$RSHARES")))
if (( popped < N * 99 / 100 )); then
  echo "ceiling: only $popped of $N reference calls took a share" >&2
  exit 1
fi
echo "reference $(echo "$out" | sed -E 's/.*: ([0-9.]+) requests per second.*/\1/') (shares taken $popped of $N; $(perCall "$c0" "$c1" "$N") usec of Redis process CPU per call)"
cli DEL "$RCLAIMS" "$RSHARES" "$RSTREAM" >/dev/null

SHA=$(cli SCRIPT LOAD "$(cat "$ROOT/packet/lua/grabmany.lua")")
OUTBOX=${OUTBOX:-1}
META='bench:ceil:{p:1}:meta' SHARES='bench:ceil:{p:1}:shares' CLAIMS='bench:ceil:{p:1}:claims' BOX='bench:ceil:{p:1}:outbox' TO='bench:ceil:{p:1}:to'
cli DEL "$META" "$SHARES" "$CLAIMS" "$BOX" "$TO" >/dev/null
SHARECOUNT=$((N + N / 10))
cli HSET "$META" status active visible_at 0 expires_at 99999999999999 count "$SHARECOUNT" left_count "$SHARECOUNT" room ceiling >/dev/null
# Fill the shares list in chunks of 1000 inside Redis.
cli EVAL "local n=tonumber(ARGV[1]) local t={} for i=1,1000 do t[i]='7:7' end for i=1,n,1000 do redis.call('RPUSH',KEYS[1],unpack(t)) end return redis.call('LLEN',KEYS[1])" 1 "$SHARES" "$SHARECOUNT" >/dev/null
before=$(cli LLEN "$SHARES")
cli CONFIG RESETSTAT >/dev/null
c0=$(cpu)
out=$(redis-benchmark -p "$PORT" -n "$N" -P "$P" -r 1000000000 -q EVALSHA "$SHA" 5 "$META" "$SHARES" "$CLAIMS" "$BOX" "$TO" "$OUTBOX" token user:__rand_int__ name "" 2>&1 | tr '\r' '\n' | grep -E 'requests per second' | tail -1)
c1=$(cpu)
after=$(cli LLEN "$SHARES")
popped=$((before - after))
# Every call must have been a real grab (a repeated random id is refused as
# already_grabbed: allow a handful).
if (( popped < N * 99 / 100 )); then
  echo "ceiling: only $popped of $N EVALSHA calls took a share" >&2
  exit 1
fi
usec=$(cli INFO commandstats | tr -d '\r' | grep '^cmdstat_evalsha:' | sed -E 's/.*usec_per_call=([0-9.]+).*/\1/')
echo "evalsha $(echo "$out" | sed -E 's/.*: ([0-9.]+) requests per second.*/\1/') (shares taken $popped of $N; ${usec} usec per call inside Redis; $(perCall "$c0" "$c1" "$N") usec of Redis process CPU per call)"
cli DEL "$META" "$SHARES" "$CLAIMS" "$BOX" "$TO" >/dev/null
out=$(redis-benchmark -p "$PORT" -n "$N" -P "$P" -q -t lpush,lpop 2>&1 | tr '\r' '\n' | grep -E '^LPOP' | tail -1)
echo "lpop $(echo "$out" | sed -E 's/.*: ([0-9.]+) requests per second.*/\1/')"
cli DEL mylist >/dev/null
