#!/usr/bin/env python3
"""Medians of a bench/run.sh output directory, as Markdown tables.

    python3 bench/summarize.py /tmp/hongbao-bench-...

Every figure is the median over the repetitions found; a ratio is the median
of the per-repetition ratios where both sides ran back to back in the same
repetition, else the ratio of the medians.
"""
import glob
import json
import os
import re
import statistics
import sys

out = sys.argv[1]


def load(pattern):
    runs = []
    for f in sorted(glob.glob(os.path.join(out, pattern))):
        try:
            with open(f) as fh:
                runs.append(json.load(fh))
        except (OSError, ValueError):
            print(f"<!-- unreadable: {os.path.basename(f)} -->")
    return runs


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=0):
    if x is None:
        return "n/m"
    return f"{x:,.{nd}f}"


def ceiling():
    ev, lp, us, ref, cpu = [], [], [], [], {"reference": [], "evalsha": []}
    for f in sorted(glob.glob(os.path.join(out, "ceiling-P1-*.txt"))):
        for line in open(f):
            m = re.match(r"(reference|evalsha|lpop) ([0-9.]+)", line)
            if m:
                {"reference": ref, "evalsha": ev, "lpop": lp}[m.group(1)].append(float(m.group(2)))
                c = re.search(r"([0-9.]+) usec of Redis process CPU per call", line)
                if c:
                    cpu[m.group(1)].append(float(c.group(1)))
            m = re.search(r"([0-9.]+) usec per call", line)
            if m:
                us.append(float(m.group(1)))
    return ev, lp, us, ref, cpu


ev, lp, us, ref, cpu = ceiling()
print("## Redis ceiling (redis-benchmark, 50 clients, -P 1)\n")
print("| | median ops/s | runs | Redis process CPU per call (µs, median) |")
print("|---|---:|---|---:|")
if ref:
    print(f"| reference: the standard one-script grab (bench/reference_grab.lua) | {fmt(med(ref))} | {', '.join(fmt(x) for x in ref)} | {fmt(med(cpu['reference']), 1)} |")
print(f"| EVALSHA grabmany.lua, one grab per call | {fmt(med(ev))} | {', '.join(fmt(x) for x in ev)} | {fmt(med(cpu['evalsha']), 1) if cpu['evalsha'] else ''} |")
print(f"| LPOP (raw ceiling) | {fmt(med(lp))} | {', '.join(fmt(x) for x in lp)} | |")
print(f"\nRedis time inside one EVALSHA of the one-grab script (INFO commandstats usec_per_call): median {fmt(med(us), 2)} µs")


def grabrow(label, runs):
    if not runs:
        print(f"| {label} | not measured | | | | | | | | |")
        return
    g = [r.get("grabs") or {} for r in runs]
    rd = [r.get("redis") or {} for r in runs]
    sv = [r.get("server") or {} for r in runs]
    ok = med([x.get("ok_per_s") for x in g])
    ans = med([x.get("attempts_per_s") for x in g])
    p50 = med([x.get("latency", {}).get("p50_ms") for x in g])
    p99 = med([x.get("latency", {}).get("p99_ms") for x in g])
    rscr = med([x.get("script_usec_per_grab") for x in rd])
    rcpu = med([x.get("cpu_usec_per_grab") for x in rd])
    scpu = med([x.get("cpu_per_grab_us") for x in sv])
    ccpu = med([x.get("client_cpu_per_grab_us") for x in g])
    drops = sum(sum((r.get("disconnects") or {}).values()) for r in runs)
    audits = all((r.get("audit") or {}).get("ok") for r in runs)
    print(f"| {label} | {fmt(ok)} ({', '.join(fmt(x.get('ok_per_s')) for x in g)}) | {fmt(ans)} | {fmt(p50,1)} / {fmt(p99,1)} | "
          f"{fmt(rscr,1)} | {fmt(rcpu,1)} | {fmt(scpu,1)} | {fmt(ccpu,1)} | {drops} | {'ok' if audits else 'FAILED'} ×{len(runs)} |")


print("\n## Grabs\n")
print("| scenario | ok grabs/s, median (runs) | answered/s | latency p50 / p99 ms | Redis µs in scripts per ok grab | Redis process µs per ok grab | server CPU µs per answered grab | load tool CPU µs per answered grab | dropped conns | audit |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for label, pattern in (
    ("hot, settlement on (ledger), coalescing on", "hot-ledger-*.json"),
    ("hot, coalescing on", "hot-on-*.json"),
    ("hot, coalescing off", "hot-off-*.json"),
    ("spread", "spread-*.json"),
    ("rain, settlement off", "rain-[0-9]*.json"),
    ("rain, settlement on (ledger)", "rainledger-*.json"),
    ("hot, two instances (PROGRESS_ABOVE=500 each)", "two-hot-*.json"),
    ("spread, two instances", "two-spread-*.json"),
):
    grabrow(label, load(pattern))
for r in load("two-default-hot-*.json"):
    print(f"\nTwo instances at the default HONGBAO_PROGRESS_ABOVE=1000 (500 members on each): disconnects {r.get('disconnects')}; failures: {r.get('failures')}")

wm = load("watchmulti-*.json")
wmg = med([w.get("grabs_per_s") for w in wm])
wma = med([w.get("aborts_per_grab") for w in wm])
print("\n## WATCH/MULTI baseline (direct to Redis, no WebSocket)\n")
print(f"grabs/s median {fmt(wmg)} (runs {', '.join(fmt(w.get('grabs_per_s')) for w in wm)}); "
      f"aborted EXECs per successful grab {fmt(wma, 1)}; conserved: {all(w.get('conserved') for w in wm) if wm else 'n/m'}")

def rain_goals(label, rr):
    """Goal 4 per run: every grab answered, grab p99 <= 200 ms, time to empty
    p99 <= 500 ms, no eviction; and every packet event delivered once."""
    print(f"\n## Rain, {label}\n")
    print("| run | clients | packets × shares over | grabs answered / expected | grab p50 / p99 ms | time to empty p50 / p99 / max ms | emptied | packet events missing / dup | evictions | audit | goals met |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|")
    for i, r in enumerate(rr, 1):
        g = r.get("grabs") or {}
        rn = r.get("rain") or {}
        pe = rn.get("packet_events") or {}
        te = rn.get("time_to_empty") or {}
        pm = r.get("params") or {}
        ev = sum((r.get("disconnects") or {}).values())
        exp, ans = rn.get("grabs_expected"), rn.get("grabs_answered")
        p99, tp99 = (g.get("latency") or {}).get("p99_ms"), te.get("p99_ms")
        audit = (r.get("audit") or {}).get("ok")
        goals = [ans is not None and ans == exp, p99 is not None and p99 <= 200, tp99 is not None and tp99 <= 500, ev == 0]
        print(f"| {i} | {fmt(r.get('conns'))} | {pm.get('packets')} × {pm.get('shares')} over {pm.get('duration_s')} s | {fmt(ans)} / {fmt(exp)} | "
              f"{fmt((g.get('latency') or {}).get('p50_ms'), 1)} / {fmt(p99, 1)} | {fmt(te.get('p50_ms'))} / {fmt(tp99)} / {fmt(te.get('max_ms'))} | "
              f"{rn.get('emptied')} of {rn.get('packets')} | {pe.get('missing', 'n/m')} / {pe.get('duplicates', 'n/m')} | {ev} | "
              f"{'ok' if audit else 'FAILED'} | {'yes' if all(goals) else 'NO'}{'' if not r.get('failures') else ' (run failed: ' + '; '.join(r['failures'])[:200] + ')'} |")
    print("\nGoals: every grab answered; grab p99 ≤ 200 ms; time to empty p99 ≤ 500 ms; 0 evictions.")


for label, pattern in (("settlement off", "rain-[0-9]*.json"), ("settlement on", "rainledger-*.json")):
    rr = load(pattern)
    if rr:
        rain_goals(label, rr)


def scale_section():
    """Goal 6: N viewers in one room across instances on a Redis Cluster."""
    sc, sr = load("scale-[0-9]*.json"), load("scalerain-[0-9]*.json")
    if not sc and not sr:
        return
    for label, runs in (("a packet every interval", sc), ("a rain", sr)):
        if not runs:
            continue
        s0 = runs[0].get("scale") or {}
        print(f"\n## Scale-out, {label}: {fmt(s0.get('viewers'))} viewers in one room, {len(s0.get('instances') or [])} instances, "
              f"{len(s0.get('masters') or [])} Redis masters, {s0.get('procs')} load processes\n")
        print("| run | drops | packet events delivered / expected | missing | duplicates | p50 / p99 / max delivery ms | RSS per viewer (all instances) | connect s | evictions | audit | exactly once |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        for i, r in enumerate(runs, 1):
            s = r.get("scale") or {}
            d = s.get("delivery") or {}
            lat = d.get("latency") or {}
            ev = sum((r.get("disconnects") or {}).values())
            once = d.get("missing") == 0 and d.get("duplicates") == 0 and d.get("unexpected", 0) == 0 and d.get("expected", 0) > 0
            fin = s.get("finished")
            if fin is not None:
                once = once and fin.get("missing") == 0 and fin.get("duplicates") == 0
            rss = s.get("rss_per_conn_bytes")
            print(f"| {i} | {s.get('drops')} | {fmt(d.get('delivered'))} / {fmt(d.get('expected'))} | {d.get('missing')} | {d.get('duplicates')} | "
                  f"{fmt(lat.get('p50_ms'), 1)} / {fmt(lat.get('p99_ms'), 1)} / {fmt(lat.get('max_ms'), 1)} | {fmt(rss / 1024 if rss else None, 1)} KiB | "
                  f"{fmt(s.get('connect_s'), 1)} | {ev} | {'ok' if (r.get('audit') or {}).get('ok') else 'FAILED'} | {'yes' if once and not r.get('failures') else 'NO'} |")
        for r in runs:
            for f in r.get("failures") or []:
                print(f"\nFAILURE: {f[:300]}")
        # By instance: medians over the runs (instance i is the same port in every run).
        n = len(s0.get("instances") or [])
        rain = any(r.get("rain") for r in runs)
        print(f"\nBy instance (median over {len(runs)} runs):\n")
        head = "| instance | viewers | p50 / p99 / max delivery ms | RSS before → after MiB | RSS per viewer KiB | server CPU µs per " + ("answered grab | grab p50 / p99 ms |" if rain else "delivery |")
        print(head)
        print("|---|---:|---:|---:|---:|---:|" + ("---:|" if rain else ""))
        for k in range(n):
            ins = [((r.get("scale") or {}).get("instances") or [{}] * n)[k] for r in runs]
            lat = [i.get("delivery", {}).get("latency", {}) for i in ins]
            rb, ra = med([i.get("rss_before_bytes") for i in ins]), med([i.get("rss_after_bytes") for i in ins])
            row = (f"| {ins[0].get('url')} | {ins[0].get('viewers')} | {fmt(med([x.get('p50_ms') for x in lat]), 1)} / {fmt(med([x.get('p99_ms') for x in lat]), 1)} / "
                   f"{fmt(med([x.get('max_ms') for x in lat]), 1)} | {fmt(rb / 2**20 if rb else None, 1)} → {fmt(ra / 2**20 if ra else None, 1)} | "
                   f"{fmt(med([(i.get('rss_per_conn_bytes') or 0) / 1024 for i in ins]), 1)} | ")
            if rain:
                gl = [(i.get("grabs") or {}).get("latency") or {} for i in ins]
                row += f"{fmt(med([i.get('cpu_per_grab_us') for i in ins]), 1)} | {fmt(med([x.get('p50_ms') for x in gl]), 1)} / {fmt(med([x.get('p99_ms') for x in gl]), 1)} |"
            else:
                row += f"{fmt(med([i.get('cpu_per_delivery_us') for i in ins]), 1)} |"
            print(row)
        m = len(s0.get("masters") or [])
        if m:
            print(f"\nBy Redis master (median over {len(runs)} runs; INFO cpu deltas; background from a quiet window after the drops, every viewer connected):\n")
            if rain:
                print("| master | CPU s over the phase | µs per ok grab | background µs/s |")
                print("|---|---:|---:|---:|")
            else:
                print("| master | CPU s over the phase | µs per broadcast | µs per broadcast less background | µs inside commands per broadcast | background µs/s |")
                print("|---|---:|---:|---:|---:|---:|")
            for k in range(m):
                ms = [((r.get("scale") or {}).get("masters") or [{}] * m)[k] for r in runs]
                bg = med([x.get("idle_cpu_s", 0) / x["idle_s"] * 1e6 if x.get("idle_s") else None for x in ms])
                if rain:
                    print(f"| {ms[0].get('addr')} | {fmt(med([x.get('cpu_s') for x in ms]), 3)} | {fmt(med([x.get('cpu_usec_per_ok_grab') for x in ms]), 2)} | {fmt(bg)} |")
                else:
                    print(f"| {ms[0].get('addr')} | {fmt(med([x.get('cpu_s') for x in ms]), 3)} | {fmt(med([x.get('cpu_usec_per_drop') for x in ms]))} | "
                          f"{fmt(med([x.get('net_cpu_usec_per_drop') for x in ms]))} | {fmt(med([x.get('cmd_usec_per_drop') for x in ms]))} | {fmt(bg)} |")
        if rain:
            rain_goals("across the instances (scale-rain)", runs)


scale_section()


def lag_quantiles(path):
    """p50 and p99 of a Prometheus histogram dump, as the upper bound of the
    bucket each falls in (seconds)."""
    buckets, count = [], 0
    for line in open(path):
        m = re.match(r'hongbao_settlement_lag_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
        if m:
            buckets.append((float("inf") if m.group(1) == "+Inf" else float(m.group(1)), float(m.group(2))))
        m = re.match(r"hongbao_settlement_lag_seconds_count (\S+)", line)
        if m:
            count = float(m.group(1))
    def q(p):
        for le, c in sorted(buckets):
            if count and c >= p * count:
                return le
        return None
    return q(0.5), q(0.99), count


lags = [(f, lag_quantiles(f)) for f in sorted(glob.glob(os.path.join(out, "*.lag")))]
if lags:
    print("\n## Settlement lag (grab → committed ledger row; bucket upper bounds)\n")
    print("| run | claims | p50 ≤ | p99 ≤ |")
    print("|---|---:|---:|---:|")
    for f, (p50, p99, n) in lags:
        print(f"| {os.path.basename(f)[:-4]} | {fmt(n)} | {fmt(p50 * 1000 if p50 is not None else None)} ms | {fmt(p99 * 1000 if p99 is not None else None)} ms |")

st = load("settled.json")
if st:
    s0 = st[0]
    print("\n## Settled packets in Redis\n")
    print(f"{s0['packets']:,} packets of {s0['shares_per_packet']} shares, opened in {s0['open_seconds']:.1f} s, grabbed in {s0['grab_seconds']:.1f} s, "
          f"settled and gone from Redis {s0['settle_seconds']:.1f} s later; Redis used_memory {s0['redis_used_memory_before']:,} B before, "
          f"{s0['redis_used_memory_after']:,} B after: **{s0['redis_bytes_per_settled_packet']:.2f} B per settled packet**, "
          f"{s0['redis_keys_after']} keys left; audit with that history: **{s0['audit_seconds'] * 1000:.0f} ms**, "
          f"{'clean' if s0['audit_ok'] else 'FAILED'}, {s0['audit_live_packets']} live packets")

print("\n## Fan-out\n")
print("| target | N | every | delivered / expected (worst run) | p50 ms | p99 ms | max ms | server CPU µs/delivery | load tool CPU µs/delivery | RSS B/conn | runs |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
fan = {}
for f in sorted(glob.glob(os.path.join(out, "fanout-*-*-*.json"))):
    m = re.match(r"fanout-(\w+)-(\d+)-(\d+)\.json", os.path.basename(f))
    if not m:
        continue
    try:
        r = json.load(open(f))
    except ValueError:
        continue
    fan.setdefault((m.group(1), int(m.group(2))), {})[int(m.group(3))] = r
for f in sorted(glob.glob(os.path.join(out, "two-fanout-*.json"))):
    m = re.match(r"two-fanout-(\d+)\.json", os.path.basename(f))
    try:
        r = json.load(open(f))
    except ValueError:
        continue
    fan.setdefault(("hongbao×2", r.get("conns")), {})[int(m.group(1))] = r

summary = {}
for (target, n), reps in sorted(fan.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    ivs = sorted({d["interval_ms"] for r in reps.values() for d in (r.get("delivery") or [])}, reverse=True)
    for iv in ivs:
        ds = {k: next((d for d in (r.get("delivery") or []) if d["interval_ms"] == iv), None) for k, r in reps.items()}
        ds = {k: d for k, d in ds.items() if d}
        worst = min(ds.values(), key=lambda d: d["delivered"] - d["expected"])
        p50 = med([d["latency"]["p50_ms"] for d in ds.values()])
        p99 = med([d["latency"]["p99_ms"] for d in ds.values()])
        mx = med([d["latency"]["max_ms"] for d in ds.values()])
        cpu = med([d.get("cpu_per_delivery_us") for d in ds.values()])
        ccpu = med([d.get("client_cpu_per_delivery_us") for d in ds.values()])
        rss = med([(reps[k].get("server") or {}).get("rss_per_conn_bytes") for k in ds])
        summary[(target, n, iv)] = dict(p50=p50, p99=p99, cpu=cpu, rss=rss, reps=ds, runs=reps)
        print(f"| {target} | {n:,} | {iv} ms | {worst['delivered']:,} / {worst['expected']:,} | {fmt(p50,1)} | {fmt(p99,1)} | {fmt(mx,1)} | {fmt(cpu,1)} | {fmt(ccpu,1)} | {fmt(rss)} | {len(ds)} |")


def paired(n, iv, key):
    h, c = summary.get(("hongbao", n, iv)), summary.get(("centrifugo", n, iv))
    if not h or not c:
        return None
    ratios = []
    for k, hd in h["reps"].items():
        cd = c["reps"].get(k)
        if not cd:
            continue
        if key == "p99":
            a, b = hd["latency"]["p99_ms"], cd["latency"]["p99_ms"]
        elif key == "cpu":
            a, b = hd.get("cpu_per_delivery_us"), cd.get("cpu_per_delivery_us")
        else:
            a, b = (h["runs"][k].get("server") or {}).get("rss_per_conn_bytes"), (c["runs"][k].get("server") or {}).get("rss_per_conn_bytes")
        if a is not None and b:
            ratios.append(a / b)
    return med(ratios)


def reference_cpu_by_rep():
    """Redis process CPU per call of the reference grab, by repetition."""
    refs = {}
    for f in glob.glob(os.path.join(out, "ceiling-P1-*.txt")):
        rep = re.search(r"ceiling-P1-(\d+)\.txt$", f)
        for line in open(f):
            c = re.match(r"reference .*?([0-9.]+) usec of Redis process CPU per call", line)
            if rep and c:
                refs[int(rep.group(1))] = float(c.group(1))
    return refs


def hot_ratio(mode, key):
    """Median over repetitions of hot-<mode>-<r>'s figure ÷ repetition r's
    reference CPU per call (key "redis"), or the median figure itself."""
    refs, vals = reference_cpu_by_rep(), []
    for f in glob.glob(os.path.join(out, f"hot-{mode}-*.json")):
        rep = int(re.search(r"-(\d+)\.json$", f).group(1))
        try:
            r = json.load(open(f))
        except ValueError:
            continue
        if key == "redis":
            v = (r.get("redis") or {}).get("cpu_usec_per_grab")
            vals.append(v / refs[rep] if v is not None and refs.get(rep) else None)
        else:
            vals.append((r.get("server") or {}).get("cpu_per_grab_us"))
    return med(vals)


print("\n## Issue 10's goals\n")
print("| goal | measured | target | met |")
print("|---|---:|---:|---|")


def target(label, v, goal, ok):
    met = "—" if goal.startswith("(") else "n/m" if ok is None else "yes" if ok else "NO"
    print(f"| {label} | {v} | {goal} | {met} |")


r = hot_ratio("ledger", "redis")
target("1. hot, settlement on: Redis process CPU per ok grab ÷ the reference's per call", fmt(r, 2), "≤ 0.25", None if r is None else r <= 0.25)
r = hot_ratio("on", "redis")
target("1. hot, settlement off: the same", fmt(r, 2), "(reported)", None)
v = hot_ratio("ledger", "server")
target("3. hot, settlement on: server CPU per answered grab", fmt(v, 1) + " µs", "≤ 30 µs", None if v is None else v <= 30)
for label, pattern in (("settlement off", "rain-[0-9]*.json"), ("settlement on", "rainledger-*.json")):
    rr = load(pattern)
    p99 = med([((r.get("grabs") or {}).get("latency") or {}).get("p99_ms") for r in rr])
    tte = med([((r.get("rain") or {}).get("time_to_empty") or {}).get("p99_ms") for r in rr])
    target(f"4. rain, {label}: grab p99 (median of runs)", fmt(p99) + " ms", "≤ 200 ms", None if p99 is None else p99 <= 200)
    target(f"4. rain, {label}: time to empty p99 (median of runs)", fmt(tte) + " ms", "≤ 500 ms", None if tte is None else tte <= 500)
for n in (10000, 19000):
    for iv in (1000, 200):
        r = paired(n, iv, "cpu")
        target(f"5. fan-out {n:,} every {iv} ms: CPU per delivery, hongbao ÷ Centrifugo", fmt(r, 2), "≤ 0.8", None if r is None else r <= 0.8)
        r = paired(n, iv, "p99")
        target(f"5. fan-out {n:,} every {iv} ms: p99 delivery, hongbao ÷ Centrifugo", fmt(r, 2), "≤ 0.9", None if r is None else r <= 0.9)
    h = summary.get(("hongbao", n, 1000))
    rs = h["rss"] if h else None
    target(f"5. idle RSS per connection, hongbao, {n:,}", fmt(rs / 1024 if rs else None, 1) + " KiB", "≤ 8 KiB", None if rs is None else rs <= 8192)
print("\nGoal 2 is a test (`TestFinishedCacheAnswersAsRedis`); goal 6 is the scale-out table's \"exactly once\" above.")
