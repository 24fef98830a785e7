#!/usr/bin/env bash
# Reproduces the figures of BENCHMARKS.md on one machine: a private Redis,
# hongbao (one or two instances), Centrifugo and the load tool together.
#
#   bench/run.sh [outdir]                 # everything, REPS=3 times each
#   SECTIONS="ceiling hot" bench/run.sh   # only some sections
#   QUICK=1 bench/run.sh                  # small N, one repetition: a smoke run
#
# Sections (in this order): ceiling hot watchmulti spread fanout rain two scale settled
# hot and rain run with settlement on (a PostgreSQL ledger) and off (wallets in
# Redis); settled measures what 100 000 settled packets leave in Redis.
# scale: SCALE_N viewers in one room over SCALE_INSTANCES instances on a
# 3-master Redis Cluster, from SCALE_PROCS load processes, a packet every
# SCALE_EVERY (SCALE_DROPS of them); then a rain that SCALE_RAIN_N viewers grab.
# Its instances cut a viewer after SCALE_WRITE_TIMEOUT of a stalled write
# or SCALE_PONG_TIMEOUT past a ping interval of silence (60s each; the
# server's defaults are 10s): here the viewers are load processes starved by
# the instances on the same cores, not stuck clients. Each instance's cut and
# eviction counters land in raw/<run>-cuts-<port>.txt.
#
# Ports (all on 127.0.0.1): RPORT (6390) the Redis; HB_PORT and HB_PORT+1
# (8080, 8081) hongbao; 8000 Centrifugo (bench/centrifugo.json); CPORT..CPORT+2
# (7000) the cluster's masters, their bus ports +10000; SCALE_PORT.. (8100) the
# scale instances. Each hongbao's pprof listens on its port − 2000.
# Needs: go, redis-server, redis-benchmark, redis-cli, python3, psql and a
# PostgreSQL that PGURL can create databases on (default
# postgres://postgres@127.0.0.1:5432/postgres); for the
# Centrifugo comparison, centrifugo v6 on PATH or in $CENTRIFUGO:
#   go install github.com/centrifugal/centrifugo/v6@v6.9.1
# Every process it starts is bounded by `timeout` and killed on exit.
# Each run's JSON lands in <outdir>/*.json; bench/summarize.py prints medians.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-/tmp/hongbao-bench-$(date -u +%Y%m%dT%H%M%S)}
REPS=${REPS:-3}
RPORT=${RPORT:-6390}
SECTIONS=${SECTIONS:-"ceiling hot watchmulti spread fanout rain two scale settled"}
HB1=${HB_PORT:-8080}; HB2=$((HB1 + 1))
export HB_URL=http://127.0.0.1:$HB1 # the load tool's default -url
CPORT=${CPORT:-7000} SCALE_PORT=${SCALE_PORT:-8100}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/postgres}
CENTRIFUGO=${CENTRIFUGO:-$(command -v centrifugo || echo "$(go env GOPATH)/bin/centrifugo")}
SECRET=bench-secret-0123456789abcdef012345 ADMIN=bench-admin-0123456789abcdef0123456 APIKEY=benchapikey
if [[ -n "${QUICK:-}" ]]; then
  REPS=1 CEIL_N=50000 HOT_N=200 HOT_S=100 HOT_R=5 WM_K=200 WM_R=2 SPREAD_N=200 RAIN_N=1000 RAIN_P=3 RAIN_D=3s FAN_NS="500 1000" FAN_B=5 TWO_FAN_N=1000 SETTLED_N=2000
  # 250-500 viewers an instance: progress frames from 100, as the full run's
  # 8 000-17 000 an instance get them at the default 1 000.
  SCALE_N=3000 SCALE_RAIN_N=1500 SCALE_DROPS=3 SCALE_PROCS=3 SCALE_RAIN_P=3 SCALE_RAIN_D=3s SCALE_PROGRESS_ABOVE=100
fi
HOT_N=${HOT_N:-1000} HOT_S=${HOT_S:-500} HOT_R=${HOT_R:-20}
WM_K=${WM_K:-1000} WM_R=${WM_R:-3}
SPREAD_N=${SPREAD_N:-1000}
RAIN_N=${RAIN_N:-10000} RAIN_P=${RAIN_P:-20} RAIN_D=${RAIN_D:-20s}
FAN_NS=${FAN_NS:-"1000 5000 10000 19000"} FAN_B=${FAN_B:-10}
TWO_FAN_N=${TWO_FAN_N:-10000}
SETTLED_N=${SETTLED_N:-100000}
SCALE_N=${SCALE_N:-100000} SCALE_RAIN_N=${SCALE_RAIN_N:-50000} SCALE_PROCS=${SCALE_PROCS:-6} SCALE_INSTANCES=${SCALE_INSTANCES:-6}
SCALE_DROPS=${SCALE_DROPS:-12} SCALE_EVERY=${SCALE_EVERY:-5s} SCALE_RAIN_P=${SCALE_RAIN_P:-$RAIN_P} SCALE_RAIN_D=${SCALE_RAIN_D:-$RAIN_D}
SCALE_MINUTES=${SCALE_MINUTES:-15} SCALE_PROGRESS_ABOVE=${SCALE_PROGRESS_ABOVE:-1000} SCALE_WRITE_TIMEOUT=${SCALE_WRITE_TIMEOUT:-60s} SCALE_PONG_TIMEOUT=${SCALE_PONG_TIMEOUT:-60s}
SOURCES=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5

# Every process started here may hold as many files as the hard limit allows
# (20 000 here): a server instance holds one per connection.
ulimit -n "$(ulimit -Hn)"
mkdir -p "$OUT/bin"
echo "results in $OUT"
# Every process started here is recorded in $OUT/pids and killed on exit.
: >"$OUT/pids"
cleanup() {
  while read -r p; do kill "$p" 2>/dev/null || true; done <"$OUT/pids"
  wait 2>/dev/null || true
}
trap cleanup EXIT

(cd "$ROOT" && go build -o "$OUT/bin/hb" ./server && go build -o "$OUT/bin/load" ./bench/load && go build -o "$OUT/bin/watchmulti" ./bench/watchmulti/cmd && go build -o "$OUT/bin/settled" ./bench/settled)
{
  echo "date: $(date -u +%FT%TZ)"; echo "uname: $(uname -srm)"; echo "cpus: $(nproc)"
  grep -m1 'model name' /proc/cpuinfo || true
  echo "mem: $(free -g | awk '/Mem:/{print $2}') GiB"; echo "nofile hard: $(ulimit -Hn)"
  go version; redis-server --version
  [[ -x "$CENTRIFUGO" ]] && echo "centrifugo: $CENTRIFUGO (v6.9.1 via go install)"
  echo "git: $(cd "$ROOT" && git rev-parse --short HEAD) + uncommitted: $(cd "$ROOT" && git status --short | wc -l) paths, diff sha256 $(cd "$ROOT" && git diff | sha256sum | cut -c1-12)"
  echo "uncommitted in server/hub/packet/web: $(cd "$ROOT" && git status --short -- server hub packet web | awk '{print $2}' | tr '\n' ' ')"
  echo "uptime: $(uptime)"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"

# ---------------------------------------------------------------- processes
# has <section...>: whether any of them is to run.
has() { local s; for s in "$@"; do [[ " $SECTIONS " == *" $s "* ]] && return 0; done; return 1; }
ports=("$RPORT")
if has hot spread fanout rain two; then ports+=("$HB1" "$HB2" $((HB1 - 2000)) $((HB2 - 2000))); fi
if has fanout; then ports+=(8000); fi
if has scale; then
  for i in 0 1 2; do ports+=($((CPORT + i)) $((CPORT + 10000 + i))); done
  for i in $(seq 0 $((SCALE_INSTANCES - 1))); do ports+=($((SCALE_PORT + i)) $((SCALE_PORT + i - 2000))); done
fi
for port in "${ports[@]}"; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "port $port is in use: stop what listens there first (or set RPORT, HB_PORT, CPORT, SCALE_PORT)" >&2; exit 1
  fi
done
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$OUT" --logfile "$OUT/redis.log" &
echo $! >>"$OUT/pids"
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS_URL="redis://127.0.0.1:$RPORT/0"

# start_hb <port> [VAR=value ...]: starts one instance, prints its pid.
start_hb() {
  local port=$1; shift
  env REDIS_URL="$REDIS_URL" HONGBAO_ADDR="127.0.0.1:$port" HONGBAO_SECRET=$SECRET HONGBAO_ADMIN_TOKEN=$ADMIN \
    HONGBAO_SESSION_RATE=100000 HONGBAO_SESSION_BURST=100000 HONGBAO_GRAB_RATE=1000 HONGBAO_GRAB_BURST=1000 \
    HONGBAO_FRAME_RATE=1000 HONGBAO_FRAME_BURST=1000 HONGBAO_MAX_CONNS_PER_IP=1000000 HONGBAO_NEW_ROOMS_PER_IP=1000000 \
    HONGBAO_ROOM_PACKETS_PER_MINUTE=-1 HONGBAO_DAILY_SEND_COUNT=-1 HONGBAO_DAILY_SEND_TOTAL=-1 HONGBAO_ALLOWED_ORIGINS='*' HONGBAO_LOG_LEVEL=warn HONGBAO_DRAIN_DELAY=0s HONGBAO_PPROF_ADDR="127.0.0.1:$((port - 2000))" "$@" \
    timeout 1h "$OUT/bin/hb" >>"$OUT/hb-$port.log" 2>&1 &
  local w=$!; echo "$w" >>"$OUT/pids"
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  pgrep -P "$w" -x hb
}

# start_cluster: a Redis Cluster of three masters, no replicas, on
# CPORT..CPORT+2; sets CLUSTER (the seeds, host:port,...).
start_cluster() {
  local i port addrs=()
  for i in 0 1 2; do
    port=$((CPORT + i))
    redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes --cluster-port $((CPORT + 10000 + i)) \
      --cluster-config-file "$OUT/nodes-$port.conf" --cluster-node-timeout 5000 \
      --save "" --appendonly no --dir "$OUT" --logfile "$OUT/redis-$port.log" &
    echo $! >>"$OUT/pids"
    addrs+=("127.0.0.1:$port")
  done
  for i in 0 1 2; do
    for _ in $(seq 50); do redis-cli -p $((CPORT + i)) ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$OUT/cluster-create.log"
  for i in 0 1 2; do
    for _ in $(seq 100); do
      redis-cli -p $((CPORT + i)) cluster info | grep -q '^cluster_state:ok' && break; sleep 0.1
    done
  done
  CLUSTER=$(IFS=,; echo "${addrs[*]}")
}
fresh_cluster() { local i; for i in 0 1 2; do redis-cli -p $((CPORT + i)) FLUSHALL >/dev/null; done; }
stop_pid() { kill "$1" 2>/dev/null || true; for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; kill -9 "$1" 2>/dev/null || true; }
fresh() { redis-cli -p "$RPORT" FLUSHALL >/dev/null; }
# fresh_db <name>: a new, empty PostgreSQL database; prints its URL.
fresh_db() {
  local name="hbbench_$1_$$"
  psql -q "$PGURL" -c "drop database if exists $name" -c "create database $name" >/dev/null
  echo "${PGURL%/*}/$name"
}
# lag <port> <file>: the settlement-lag histogram of the instance on port.
# It waits until the settler has been quiet for a second, so that every
# claim of the run is counted.
lag() {
  local before=-1 now
  for _ in $(seq 30); do
    now=$(curl -sf -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:$1/metrics" | awk '/^hongbao_settlement_lag_seconds_count/{print $2}')
    [[ "$now" == "$before" ]] && break
    before=$now; sleep 1
  done
  curl -sf -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:$1/metrics" | grep '^hongbao_settlement_lag_seconds' >"$2" || true
}
load() { timeout 5m "$OUT/bin/load" -timeout 4m -secret $SECRET -admin-token $ADMIN -api-key $APIKEY -q -json "$@"; }
cf_start() {
  timeout 1h "$CENTRIFUGO" -c "$ROOT/bench/centrifugo.json" >>"$OUT/centrifugo.log" 2>&1 &
  local w=$!; echo "$w" >>"$OUT/pids"
  for _ in $(seq 100); do curl -sf http://127.0.0.1:8000/health >/dev/null && break; sleep 0.1; done
  pgrep -P "$w" -x centrifugo
}

# section <name>: whether to run it; logs the time and machine load as it starts.
section() {
  [[ " $SECTIONS " == *" $1 "* ]] || return 1
  echo "$(date -u +%T) $1: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load.txt" >&2
}

# ---------------------------------------------------------------- sections
if section ceiling; then
  for r in $(seq "$REPS"); do
    fresh
    "$ROOT/bench/ceiling.sh" "$RPORT" "${CEIL_N:-300000}" 1 | tee "$OUT/ceiling-P1-$r.txt" || echo "ceiling-$r FAILED"
  done
fi

if section hot; then
  # ledger: settlement on (coalescing on); on / off: wallets in Redis, coalescing on / off.
  for mode in ledger on off; do
    for r in $(seq "$REPS"); do
      fresh
      case $mode in
        ledger) pid=$(start_hb $HB1 HONGBAO_DATABASE_URL="$(fresh_db "hot$r")") ;;
        on) pid=$(start_hb $HB1) ;;
        off) pid=$(start_hb $HB1 HONGBAO_COALESCE_GRABS=false) ;;
      esac
      load -scenario hot -n "$HOT_N" -shares "$HOT_S" -rounds "$HOT_R" -pids "$pid" -redis "$REDIS_URL" >"$OUT/hot-$mode-$r.json" || echo "hot-$mode-$r FAILED"
      [[ $mode == ledger ]] && lag $HB1 "$OUT/hot-ledger-$r.lag"
      stop_pid "$pid"
    done
  done
fi

if section watchmulti; then
  for r in $(seq "$REPS"); do
    fresh
    timeout 3m "$OUT/bin/watchmulti" -redis "$REDIS_URL" -k "$WM_K" -shares "$HOT_S" -rounds "$WM_R" -json >"$OUT/watchmulti-$r.json" || echo "watchmulti-$r FAILED"
    cat "$OUT/watchmulti-$r.json"
  done
fi

if section spread; then
  for r in $(seq "$REPS"); do
    fresh; pid=$(start_hb $HB1)
    load -scenario spread -n "$SPREAD_N" -rooms 100 -packets 5 -rounds 4 -pids "$pid" -redis "$REDIS_URL" >"$OUT/spread-$r.json" || echo "spread-$r FAILED"
    stop_pid "$pid"
  done
fi

if section fanout; then
  for r in $(seq "$REPS"); do
    for n in $FAN_NS; do
      fresh; pid=$(start_hb $HB1)
      load -scenario fanout -n "$n" -packets "$FAN_B" -interval 1s,200ms -pids "$pid" -source-ips $SOURCES >"$OUT/fanout-hongbao-$n-$r.json" || echo "fanout-hongbao-$n-$r FAILED"
      stop_pid "$pid"
      if [[ -x "$CENTRIFUGO" ]]; then
        pid=$(cf_start)
        load -target centrifugo -url http://127.0.0.1:8000 -scenario fanout -n "$n" -packets "$FAN_B" -interval 1s,200ms -pids "$pid" -source-ips $SOURCES >"$OUT/fanout-centrifugo-$n-$r.json" || echo "fanout-centrifugo-$n-$r FAILED"
        stop_pid "$pid"
      fi
    done
  done
fi

if section rain; then
  for r in $(seq "$REPS"); do
    fresh; pid=$(start_hb $HB1)
    load -scenario rain -n "$RAIN_N" -packets "$RAIN_P" -shares 500 -duration "$RAIN_D" -pids "$pid" -redis "$REDIS_URL" -source-ips $SOURCES >"$OUT/rain-$r.json" || echo "rain-$r FAILED"
    stop_pid "$pid"
    fresh; pid=$(start_hb $HB1 HONGBAO_DATABASE_URL="$(fresh_db "rain$r")")
    load -scenario rain -n "$RAIN_N" -packets "$RAIN_P" -shares 500 -duration "$RAIN_D" -pids "$pid" -redis "$REDIS_URL" -source-ips $SOURCES >"$OUT/rainledger-$r.json" || echo "rainledger-$r FAILED"
    lag $HB1 "$OUT/rainledger-$r.lag"
    stop_pid "$pid"
  done
fi

if section two; then
  # Rooms switch from one grabbed frame per grab to progress frames by the
  # room's size on each instance (HONGBAO_PROGRESS_ABOVE, 1000): with two
  # instances a 1 000-member room has 500 here and 500 there. Threshold 500
  # on each instance treats the room as one instance treats it at 1 000.
  # One run at the default shows what happens without that.
  urls=http://127.0.0.1:$HB1,http://127.0.0.1:$HB2
  fresh; p1=$(start_hb $HB1); p2=$(start_hb $HB2)
  load -url $urls -scenario hot -n "$HOT_N" -shares "$HOT_S" -rounds "$HOT_R" -pids "$p1,$p2" -redis "$REDIS_URL" >"$OUT/two-default-hot-1.json" || echo "two-default-hot-1 FAILED (see disconnects)"
  stop_pid "$p1"; stop_pid "$p2"
  for r in $(seq "$REPS"); do
    fresh; p1=$(start_hb $HB1 HONGBAO_PROGRESS_ABOVE=500); p2=$(start_hb $HB2 HONGBAO_PROGRESS_ABOVE=500)
    load -url $urls -scenario hot -n "$HOT_N" -shares "$HOT_S" -rounds "$HOT_R" -pids "$p1,$p2" -redis "$REDIS_URL" >"$OUT/two-hot-$r.json" || echo "two-hot-$r FAILED"
    load -url $urls -scenario spread -n "$SPREAD_N" -rooms 100 -packets 5 -rounds 4 -pids "$p1,$p2" -redis "$REDIS_URL" >"$OUT/two-spread-$r.json" || echo "two-spread-$r FAILED"
    stop_pid "$p1"; stop_pid "$p2"
    # Fresh processes for fan-out, so the RSS delta is not hidden by a heap grown earlier.
    fresh; p1=$(start_hb $HB1 HONGBAO_PROGRESS_ABOVE=500); p2=$(start_hb $HB2 HONGBAO_PROGRESS_ABOVE=500)
    load -url $urls -scenario fanout -n "$TWO_FAN_N" -packets "$FAN_B" -interval 1s,200ms -pids "$p1,$p2" -source-ips $SOURCES >"$OUT/two-fanout-$r.json" || echo "two-fanout-$r FAILED"
    stop_pid "$p1"; stop_pid "$p2"
  done
fi

if section scale; then
  # A process holds at most the hard limit of files: one per viewer, and a few.
  for n in "$SCALE_N" "$SCALE_RAIN_N"; do
    if (( (n + SCALE_PROCS - 1) / SCALE_PROCS > $(ulimit -Hn) - 1000 )); then
      echo "scale: $n viewers in $SCALE_PROCS processes is more than $(( $(ulimit -Hn) - 1000 )) a process: raise SCALE_PROCS" >&2; exit 1
    fi
  done
  start_cluster
  masters=$CLUSTER
  mkdir -p "$OUT/raw"
  # scale_run <kind> <viewers> <rep> <dropper flags...>: fresh instances on
  # the flushed cluster, a dropper and SCALE_PROCS viewer processes, each from
  # its own loopback addresses (ephemeral ports are per source address), then
  # -merge; the merged report is scale-<rep>.json or scalerain-<rep>.json
  # (and .txt).
  scale_run() {
    local kind=$1 n=$2 r=$3; shift 3
    local tag="${kind/-/}-$r" dir="$OUT/raw/${kind/-/}-$r.barrier" per=$(( (n + SCALE_PROCS - 1) / SCALE_PROCS ))
    local i k first cnt urls=() pids=() files=() waits=() ip0
    fresh_cluster
    for i in $(seq 0 $((SCALE_INSTANCES - 1))); do
      pids+=("$(start_hb $((SCALE_PORT + i)) REDIS_URL="$CLUSTER" HONGBAO_PROGRESS_ABOVE="$SCALE_PROGRESS_ABOVE" HONGBAO_WRITE_TIMEOUT="$SCALE_WRITE_TIMEOUT" HONGBAO_PONG_TIMEOUT="$SCALE_PONG_TIMEOUT")")
      urls+=("http://127.0.0.1:$((SCALE_PORT + i))")
    done
    local U P
    U=$(IFS=,; echo "${urls[*]}"); P=$(IFS=,; echo "${pids[*]}")
    local common=(-scenario "$kind" -barrier "$dir" -url "$U" -secret $SECRET -q -json -timeout "${SCALE_MINUTES}m")
    timeout $((SCALE_MINUTES + 1))m "$OUT/bin/load" "${common[@]}" -role dropper -procs "$SCALE_PROCS" -admin-token $ADMIN \
      -pids "$P" -redis "$masters" "$@" >"$OUT/raw/$tag-dropper.json" 2>"$OUT/raw/$tag-dropper.log" &
    waits+=($!); echo $! >>"$OUT/pids"; files+=("$OUT/raw/$tag-dropper.json")
    # Loopback addresses: 127.0.<rep>.<x>, two per process, other ones for the rain.
    ip0=$([[ $kind == scale ]] && echo 10 || echo 130)
    for k in $(seq 0 $((SCALE_PROCS - 1))); do
      first=$((k * per)); cnt=$(( n - first < per ? n - first : per ))
      (( cnt > 0 )) || continue
      timeout $((SCALE_MINUTES + 1))m "$OUT/bin/load" "${common[@]}" -role viewers -n "$cnt" -first "$first" \
        -source-ips "127.0.$r.$((ip0 + 2 * k)),127.0.$r.$((ip0 + 2 * k + 1))" >"$OUT/raw/$tag-v$k.json" 2>"$OUT/raw/$tag-v$k.log" &
      waits+=($!); echo $! >>"$OUT/pids"; files+=("$OUT/raw/$tag-v$k.json")
    done
    for w in "${waits[@]}"; do wait "$w" || echo "$tag: a load process exited $? (see $OUT/raw/$tag-*.log)"; done
    local F; F=$(IFS=,; echo "${files[*]}")
    "$OUT/bin/load" -merge "$F" -json >"$OUT/$tag.json" || echo "$tag FAILED"
    "$OUT/bin/load" -merge "$F" >"$OUT/$tag.txt" 2>&1 || true
    cat "$OUT/$tag.txt"
    for i in $(seq 0 $((SCALE_INSTANCES - 1))); do
      curl -sf -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:$((SCALE_PORT + i))/metrics" |
        grep -E '^hongbao_hub_(cut_connections|slow_client_evictions)_total' >"$OUT/raw/$tag-cuts-$((SCALE_PORT + i)).txt" || true
    done
    echo "$tag: sockets cut or evicted, by reason: $(cat "$OUT"/raw/"$tag"-cuts-*.txt | awk '{n[$1]+=$2} END {for (k in n) printf "%s %d; ", k, n[k]}')"
    for p in "${pids[@]}"; do stop_pid "$p"; done
  }
  for r in $(seq "$REPS"); do
    scale_run scale "$SCALE_N" "$r" -packets "$SCALE_DROPS" -interval "$SCALE_EVERY"
    scale_run scale-rain "$SCALE_RAIN_N" "$r" -packets "$SCALE_RAIN_P" -shares 500 -duration "$SCALE_RAIN_D"
  done
fi

if section settled; then
  fresh
  timeout 70m "$OUT/bin/settled" -redis "$REDIS_URL" -db "$(fresh_db settled)" -n "$SETTLED_N" >"$OUT/settled.json" || echo "settled FAILED"
  cat "$OUT/settled.json"
fi

echo "$(date -u +%T) end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/load.txt"
python3 "$ROOT/bench/summarize.py" "$OUT" | tee "$OUT/summary.md"
