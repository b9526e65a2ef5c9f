#!/usr/bin/env python3
"""Keeping up: the largest steady inflow a scheduled, yielding run keeps up with.

A log table (`inflow_log`: bigint identity key, `ts timestamptz DEFAULT
now()`, about 100 bytes of payload, an index on ts) under a short policy
(`--retain` seconds, label 'inflow'), so that rows expire during the run.
For each inflow rate (rows/s), on the emptied table:
  fill     rate * (retain + interval) rows spread over that span up to now:
           the table at steady state, one interval's inflow already expired
  writers  pgbench, `--clients` clients (default 2) at `-R rate / k`
           transactions/s in all, each inserting k rows
           (`--rows-per-tx`, bench/inflow_writer.sql), for `--duration` s
  schedule CALL retention_run(1000, label => 'inflow') every `--interval` s,
           each as a command of its own in a new session (as pg_cron runs
           a job), sleeping only the remainder (one that overran is
           followed by the next at once), with the server's yielding
           (pg_retention.yield_ratio 30, max_lag 1 day unless configured)
  sample   after each CALL, the rows then expired (ts < now() - retain)
The run keeps up when that backlog stays bounded: the mean of the last third
of the samples is not above the first third's by more than one interval's
inflow (as inserted). Each rate is also run with yield_ratio = 0 (unless
--no-reference), with `SET pg_retention.max_lag = 'Ns'` before each CALL
(--max-lag N), with no CALLs at all (--alone: the writers' own latency), and
the default once more between the largest rate it kept up with and the
smallest it did not (unless --no-bisect). After each rate a last CALL,
alone, must leave no row that was expired before it, and the rows must add
up (filled + inserted = deleted + left); otherwise the benchmark fails, as
it does on any psql or pgbench error.

  python3 bench/inflow.py [--rates 2000,5000,...] [--duration S] [--interval S]
      [--retain S] [--rows-per-tx K] [--clients N] [--no-reference] [--no-bisect]
      [--max-lag N] [--alone] [--note TEXT] [--out FILE]
  python3 bench/inflow.py --smoke     # 1,000 rows/s for 10 s, a CALL every 2 s, report
                                      # to a temporary file; fails unless it keeps up
"""
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

from run import BATCH_RE, ROOT, arg, pct, psql

DB = "inflow_bench"
LABEL = "inflow"
WARMUP = 2.0  # seconds of writers before the first CALL


def setup(retain):
    psql("postgres", f"DROP DATABASE IF EXISTS {DB}")
    psql("postgres", f"CREATE DATABASE {DB}")
    psql(DB, "CREATE EXTENSION pg_retention;"
             "CREATE TABLE inflow_log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
             " ts timestamptz NOT NULL DEFAULT now(), payload text NOT NULL);"
             "CREATE INDEX inflow_log_ts ON inflow_log (ts);"
             f"SELECT retention_add_policy('inflow_log', 'ts', '{retain} seconds', '{LABEL}');")


def fill(rate, retain, interval):
    """The table at steady state: rate * (retain + interval) rows, the
    oldest interval's worth expired; topped up to now after the vacuum and
    checkpoint, so that the writers start where the rows end."""
    span = retain + interval
    n = int(rate * span)
    psql(DB, "TRUNCATE inflow_log;"
             "INSERT INTO inflow_log (ts, payload) SELECT now() - interval '1 second' * "
             f"({span} * ({n} - g)::float8 / {n}), repeat(md5(random()::text), 3) FROM generate_series(1, {n}) g;"
             "VACUUM ANALYZE inflow_log; CHECKPOINT;")
    psql(DB, "INSERT INTO inflow_log (ts, payload) SELECT t, repeat(md5(random()::text), 3)"
             f" FROM (SELECT max(ts) AS m FROM inflow_log) x, generate_series(x.m, now(), interval '1 second' / {rate}) t"
             " WHERE t > x.m;")
    return int(psql(DB, "SELECT count(*) FROM inflow_log")[1])


def last_run_id():
    return int(psql(DB, f"SELECT coalesce(max(id), 0) FROM retention_history WHERE label = '{LABEL}'")[1])


def call(retain, settings, max_seconds):
    """One scheduled CALL, in a session of its own (after `settings`, each
    a command of its own); then, in it, the run's history row, the settings
    it ran with and the backlog right after."""
    _, out, err = psql(DB, f"SET client_min_messages = debug1; {settings}"
                           f"CALL retention_run(1000, label => '{LABEL}', max_duration => '{max_seconds:.3f} seconds');"
                           "SELECT status, deleted, extract(epoch FROM duration) FROM retention_history"
                           f" WHERE label = '{LABEL}' ORDER BY id DESC LIMIT 1;"
                           "SELECT current_setting('pg_retention.yield_ratio'), current_setting('pg_retention.max_lag');"
                           # A parallel count would take the writers' CPU.
                           "SET max_parallel_workers_per_gather = 0;"
                           f"SELECT count(*), coalesce(extract(epoch FROM now() - interval '{retain} seconds' - min(ts)), 0)"
                           f" FROM inflow_log WHERE ts < now() - interval '{retain} seconds';")
    history, gucs, backlog = out.strip().splitlines()
    status, deleted, seconds = history.split("|")
    expired, lag = backlog.split("|")
    batches = BATCH_RE.findall(err)
    return {
        "status": status, "deleted": int(deleted), "seconds": float(seconds),
        "gucs": "yield_ratio {}, max_lag {}".format(*gucs.split("|")),
        "batches": [float(ms) for _, ms, _ in batches],
        "batch_ms": sum(float(ms) for _, ms, _ in batches),
        "yield_ms": sum(float(y) for _, _, y in batches),
        "strategy": "sweep" if "in physical order" in err else "keyset" if "by keyset" in err else "-",
        "expired": int(expired), "lag": float(lag),
    }


def pgbench_summary(out, name, cast=float):
    m = re.search(name + r"\D*([0-9.]+)", out)
    return cast(m.group(1)) if m else None


DEFAULT = "default"
NO_YIELD = "yield_ratio = 0"
ALONE = "writers alone"


def variant_settings(variant):
    """The commands sent before each CALL of a variant (None: no CALLs)."""
    if variant == ALONE:
        return None
    if variant == NO_YIELD:
        return "SET pg_retention.yield_ratio = 0;"
    m = re.fullmatch(r"max_lag = (\d+) s", variant)
    if m:
        return f"SET pg_retention.max_lag = '{m.group(1)}s';"
    return ""


def writers_for(opts):
    """Seconds the writers run: the warm-up, the schedule and one more
    interval, which the last CALL may use; no CALL outlives them
    (max_duration)."""
    return int(WARMUP + opts["duration"] + opts["interval"] + 1)


def measure(rate, variant, opts):
    """One rate, one variant: the writers and the schedule side by side."""
    retain, interval, duration, k, clients = (opts[x] for x in ("retain", "interval", "duration", "k", "clients"))
    settings = variant_settings(variant)
    filled = fill(rate, retain, interval)
    first_id = last_run_id()
    writer_seconds = writers_for(opts)
    tps = rate / k
    proc = subprocess.Popen(
        ["pgbench", "-n", "-c", str(clients), "-j", str(clients), "-T", str(writer_seconds), "-R", f"{tps:.3f}",
         "-D", f"k={k}", "-f", os.path.join(ROOT, "bench", "inflow_writer.sql"), DB],
        text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        writers_end = time.time() + writer_seconds
        time.sleep(WARMUP)
        t0 = time.time()
        calls = []
        start = t0
        while settings is not None and start < t0 + duration:
            time.sleep(max(0.0, start - time.time()))
            begun = time.time()
            c = call(retain, settings, max(0.5, writers_end - begun - 0.5))
            c["at"] = begun - t0
            calls.append(c)
            if proc.poll() is not None:
                break
            start = max(begun + interval, time.time())
        span = time.time() - t0 if calls else duration
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait()
    if proc.returncode != 0:
        sys.exit(f"pgbench failed at {rate} rows/s:\n{out}\n{err}")
    processed = pgbench_summary(out, "number of transactions actually processed", int)
    failed = pgbench_summary(out, "number of failed transactions", int) or 0
    if processed is None:
        sys.exit(f"no transaction count in pgbench's output:\n{out}")
    if failed:
        sys.exit(f"{failed} writer transactions failed at {rate} rows/s:\n{out}")

    # Alone, a last CALL must leave nothing that was expired before it, and
    # every row inserted is either deleted (by the runs' own count) or left.
    before = psql(DB, "SELECT now()")[1].strip()
    psql(DB, f"SET pg_retention.yield_ratio = 0; CALL retention_run(1000, label => '{LABEL}');")
    stale = int(psql(DB, f"SELECT count(*) FROM inflow_log WHERE ts < '{before}'::timestamptz - interval '{retain} seconds'")[1])
    if stale:
        sys.exit(f"{stale} rows expired before the last CALL are left at {rate} rows/s")
    deleted_all = int(psql(DB, f"SELECT coalesce(sum(deleted), 0) FROM retention_history WHERE label = '{LABEL}' AND id > {first_id}")[1])
    left = int(psql(DB, "SELECT count(*) FROM inflow_log")[1])
    if filled + processed * k != deleted_all + left:
        sys.exit(f"at {rate} rows/s: {filled} filled + {processed * k} inserted != {deleted_all} deleted + {left} left")
    failures = [c["status"] for c in calls if c["status"] not in ("succeeded", "stopped")]
    if failures:
        sys.exit(f"runs ended {failures} at {rate} rows/s")

    inserted = processed * k / writer_seconds
    samples = [c["expired"] for c in calls]
    third = max(1, len(samples) // 3)
    first = statistics.mean(samples[:third]) if samples else None
    last = statistics.mean(samples[-third:]) if samples else None
    kept = None if settings is None else len(samples) >= 3 and last <= first + inserted * interval
    batches = [b for c in calls for b in c["batches"]]
    r = {
        "rate": rate, "variant": variant, "inserted": inserted, "calls": calls,
        "deleted": sum(c["deleted"] for c in calls),
        "busy": sum(c["seconds"] for c in calls), "span": span,
        "yield_s": sum(c["yield_ms"] for c in calls) / 1000,
        "batch_s": sum(c["batch_ms"] for c in calls) / 1000,
        "p50": pct(batches, .5), "p99": pct(batches, .99),
        "longest": max((c["seconds"] for c in calls), default=0.0),
        "first": first, "last": last, "kept": kept,
        "writer_tps": processed / writer_seconds,
        "latency": pgbench_summary(out, "latency average ="),
        "sched_lag": pgbench_summary(out, "rate limit schedule lag: avg"),
        "stopped": sum(c["status"] == "stopped" for c in calls),
    }
    print(f"{rate} rows/s, {variant}: inserted {inserted:.0f}/s, {len(calls)} CALLs, deleted {r['deleted']}, "
          f"busy {r['busy']:.1f}/{span:.1f} s (yields {r['yield_s']:.1f} s, batches {r['batch_s']:.2f} s, "
          f"p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms), writers {r['latency']} ms lag {r['sched_lag']} ms, expired after CALLs {samples}, "
          f"kept up: {KEPT[kept]}", flush=True)
    return r


KEPT = {True: "yes", False: "no", None: "-"}


def largest_kept(results, interval=None):
    """The largest rate kept up below the smallest one not, and that one;
    with `interval`, kept up only if every CALL was done within it."""
    def ok(r):
        return r["kept"] and (interval is None or r["longest"] <= interval)
    rates = sorted(results, key=lambda r: r["rate"])
    lost = next((r["rate"] for r in rates if not ok(r)), None)
    kept = [r["rate"] for r in rates if ok(r) and (lost is None or r["rate"] < lost)]
    return (kept[-1] if kept else None), lost


def kept_mark(r, interval):
    if not r["kept"]:
        return "no"
    # Bounded, but the CALLs ran back to back: the schedule slipped.
    return "**yes**" if r["longest"] <= interval else "yes, CALLs back to back"


def fmt_rate(x):
    return "none measured" if x is None else f"{x:,} rows/s"


def report(results, opts, command, machine, gucs):
    interval = opts["interval"]
    variants = []
    for r in results:
        if r["variant"] not in variants:
            variants.append(r["variant"])
    ordered = sorted(results, key=lambda r: (variants.index(r["variant"]), r["rate"]))
    via = " (through `bash bench/run.sh --inflow`)" if os.environ.get("PG_RETENTION_VIA_RUN_SH") else ""
    lines = [
        "# Keeping up: steady inflow against a scheduled, yielding run",
        "",
        f"Generated by `{command}`{via}.",
        f"Machine: {machine}.{(' ' + opts['note']) if opts['note'] else ''}",
        "",
        f"A log table (bigint identity key, `ts timestamptz DEFAULT now()` with an index, about 100 bytes of "
        f"payload) under a {opts['retain']} s policy. Per rate, on the emptied table: {opts['retain'] + interval:g} s "
        f"of rows at that rate (the table at steady state, one interval's inflow expired); {opts['clients']} pgbench "
        f"clients inserting {opts['k']} rows per transaction at `-R rate / {opts['k']}` "
        f"(`bench/inflow_writer.sql`): {WARMUP:g} s, then {opts['duration']:g} s beside the schedule, then "
        f"{writers_for(opts) - WARMUP - opts['duration']:g} s more, which the last CALL may use. The schedule: "
        f"`CALL retention_run(1000, label => 'inflow')` every {interval:g} s, "
        "each in a new session as pg_cron runs a job, sleeping only the remainder (a CALL that overran is "
        "followed by the next at once; `max_duration` ends the last with the writers). "
        + "; ".join([f"`{DEFAULT}`: the server's settings ({gucs})"]
                    + [f"`{NO_YIELD}`: the same CALLs never yielding" for v in variants if v == NO_YIELD]
                    + [f"`{v}`: the same after `{variant_settings(v)[:-1]}`" for v in variants if v.startswith("max_lag")]
                    + [f"`{ALONE}`: no CALLs, for the writers' latency" for v in variants if v == ALONE]) + ".",
        "",
        "Expired: the rows with `ts < now() - retain` right after each CALL, mean of the first and of the last "
        "third of the CALLs. **Kept up**: the last third's mean is not above the first third's by more than one "
        f"interval's inflow ({interval:g} s at the inserted rate); 'CALLs back to back': kept up, but some CALL took "
        "longer than the interval, so the next started late (the run was busy all the time). Busy: the CALLs' time (from `retention_history`) "
        "over the schedule's; yields: what they slept giving way to the writers, and batches: the batches' own "
        "time (both from the DEBUG1 line per batch). Writers: transactions/s, latency average and pgbench's "
        "rate-limit schedule lag (how late transactions started, on average).",
        "",
        "| run | target rows/s | inserted rows/s | deleted | CALLs | longest CALL s | busy s / total s | yields s | batches s | batch p50 / p99 ms | expired first / last | oldest expired, last (s) | writers tx/s | latency ms | schedule lag ms | kept up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in ordered:
        w = f"{r['writer_tps']:.0f} | {r['latency'] or 0:.1f} | {r['sched_lag'] or 0:.1f}"
        if not r["calls"]:
            lines.append(f"| {r['variant']} | {r['rate']:,} | {r['inserted']:,.0f} | | | | | | | | | | {w} | - |")
            continue
        stopped = f" ({r['stopped']} stopped)" if r["stopped"] else ""
        lines.append(
            f"| {r['variant']} | {r['rate']:,} | {r['inserted']:,.0f} | {r['deleted']:,} | {len(r['calls'])}{stopped} | "
            f"{r['longest']:.1f} | {r['busy']:.1f} / {r['span']:.1f} | {r['yield_s']:.1f} | {r['batch_s']:.2f} | "
            f"{r['p50']:.1f} / {r['p99']:.1f} | {r['first']:,.0f} / {r['last']:,.0f} | {r['calls'][-1]['lag']:.1f} | {w} | "
            f"{kept_mark(r, interval)} |")
    lines.append("")
    for v in variants:
        if v == ALONE:
            continue
        runs = [r for r in results if r["variant"] == v]
        best, lost = largest_kept(runs)
        on_time, _ = largest_kept(runs, interval)
        lines.append(f"- {v}: **largest rate kept up: {fmt_rate(best)}**"
                     + (f"; not kept up at {fmt_rate(lost)}" if lost else "; every rate measured kept up")
                     + ("" if on_time == best else f"; with every CALL done within its {interval:g} s: {fmt_rate(on_time)}")
                     + ".")
    lines += [
        "",
        "Per CALL (its start in s from the schedule's start: seconds, rows deleted → expired rows right after), "
        "and how its batches found their rows (docs/design.md, \"Heap sweeps\"):",
        "",
    ]
    for r in ordered:
        if not r["calls"]:
            continue
        per = ", ".join(f"{c['at']:.0f}: {c['seconds']:.1f} s {c['deleted']:,} → {c['expired']:,}" for c in r["calls"])
        strategies = "/".join(sorted({c["strategy"] for c in r["calls"]}))
        lines.append(f"- {r['rate']:,} rows/s, {r['variant']} ({strategies}): {per}")
    lines.append("")
    return lines


def main():
    smoke = "--smoke" in sys.argv
    opts = {
        "duration": arg("--duration", 10.0 if smoke else 60.0),
        "interval": arg("--interval", 2.0 if smoke else 5.0),
        "retain": arg("--retain", 20),
        "k": arg("--rows-per-tx", 100),
        "clients": arg("--clients", 2),
        "note": arg("--note", ""),
    }
    rates = [int(x) for x in arg("--rates", "1000" if smoke else "2000,5000,10000,20000,40000").split(",")]
    variants = [DEFAULT]
    if not smoke and "--no-reference" not in sys.argv:
        variants.append(NO_YIELD)
    if "--max-lag" in sys.argv:
        variants.append(f"max_lag = {arg('--max-lag', 0)} s")
    if "--alone" in sys.argv:
        variants.append(ALONE)
    bisect = not smoke and "--no-bisect" not in sys.argv
    out = arg("--out", "" if smoke else os.path.join(ROOT, "docs", "bench", "inflow.md"))
    if not out:
        fd, out = tempfile.mkstemp(suffix=".md", prefix="inflow_")
        os.close(fd)
    if opts["duration"] < 3 * opts["interval"]:
        sys.exit("--duration must hold at least three intervals (the backlog's trend needs three CALLs)")
    command = " ".join(["python3 bench/inflow.py"] + [shlex.quote(a) for a in sys.argv[1:]])
    version = psql("postgres", "SHOW server_version")[1].strip()
    machine = f"{os.cpu_count()} cores, PostgreSQL {version}"

    setup(opts["retain"])
    results = []
    for i, rate in enumerate(rates):
        # Alternate the order: this machine's speed drifts.
        for variant in variants if i % 2 == 0 else list(reversed(variants)):
            results.append(measure(rate, variant, opts))
    if bisect:
        best, lost = largest_kept([r for r in results if r["variant"] == DEFAULT])
        if best and lost:
            mid = int(round((best * lost) ** 0.5, -2))
            if best < mid < lost:
                results.append(measure(mid, DEFAULT, opts))
    gucs = next(r for r in results if r["variant"] == DEFAULT)["calls"][0]["gucs"]
    lines = report(results, opts, command, machine, gucs)
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    print(f"written to {out}")
    psql("postgres", f"DROP DATABASE IF EXISTS {DB}")
    if smoke and not all(r["kept"] for r in results if r["variant"] == DEFAULT):
        sys.exit(f"smoke: the default run did not keep up with {rates} rows/s")


if __name__ == "__main__":
    main()
