#!/usr/bin/env python3
"""pg_retention benchmark, driven through psql and pgbench (see bench/run.sh).

On identical fresh copies of the sports-odds data it runs:
  A  CALL retention_run(1000)                 (commit per batch)
  B  SELECT retention_execute(1000)           (one transaction)
  C  one plain DELETE per table in FK order   (one transaction: the practical limit)
  D  the DBA loop: DELETE ... WHERE id IN (SELECT id ... LIMIT 1000) + COMMIT, per table
and reports rows/s, ratios to C, per-batch durations (A, D), writer TPS with
and without A, and the time of retention_stats() / retention_preview().
Ratios are measured in the same invocation; absolute times are context only.
"""
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "docs", "bench")
CHAINS = ["", "competitor_"]


def psql(db, sql, capture_notices=False):
    """Runs sql in db; returns (seconds, stdout, stderr)."""
    cmd = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db]
    start = time.perf_counter()
    p = subprocess.run(cmd, input=sql, text=True, capture_output=True)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"psql failed in {db}:\n{sql[:500]}\n{p.stderr}")
    return elapsed, p.stdout, p.stderr


def scalar(db, sql):
    return psql(db, sql)[1].strip()


POLICIES = """
SELECT retention_add_policy('{p}odds_snapshots', 'captured_at', '60 days', '{label}');
SELECT retention_add_policy('{p}events', 'kickoff', '60 days', '{label}');
SELECT retention_add_orphan_policy('{p}tournaments', 'created_at', '1 day', '{label}');
"""


def make_template(name, scale):
    psql("postgres", f"DROP DATABASE IF EXISTS {name}; ")
    psql("postgres", f"CREATE DATABASE {name}")
    with open(os.path.join(ROOT, "bench", "odds_schema.sql")) as f:
        psql(name, f.read())
    psql(name, "CREATE EXTENSION pg_retention;"
         "SELECT odds_create_schema(), odds_create_schema('competitor_');"
         f"SELECT odds_generate({scale}), odds_generate({scale}, 'competitor_');"
         + POLICIES.format(p="", label="own") + POLICIES.format(p="competitor_", label="competitor")
         + "CREATE SEQUENCE bench_ids START 1000000000000;"
         "CREATE TABLE bench_live_events AS SELECT row_number() OVER (ORDER BY id) AS n, id AS event_id"
         " FROM events WHERE kickoff > now() - interval '20 days';"
         "VACUUM ANALYZE;")
    rows = int(scalar(name, "SELECT sum(n_live_tup) FROM pg_stat_user_tables WHERE relname NOT LIKE 'bench%'"))
    return rows


def fresh_copy(template, name):
    # FILE_COPY: the copy is not written to the WAL, and the checkpoint after
    # VACUUM starts every method from the same state (no checkpoint of an
    # earlier copy running during a timed method).
    psql("postgres", f"DROP DATABASE IF EXISTS {name}")
    psql("postgres", f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
    psql(name, "VACUUM ANALYZE")
    psql(name, "CHECKPOINT")


def table_rows(db):
    return int(scalar(db, "SELECT (SELECT count(*) FROM market_odds) + (SELECT count(*) FROM odds_snapshots)"
                          " + (SELECT count(*) FROM events) + (SELECT count(*) FROM tournaments)"
                          " + (SELECT count(*) FROM competitor_market_odds) + (SELECT count(*) FROM competitor_odds_snapshots)"
                          " + (SELECT count(*) FROM competitor_events) + (SELECT count(*) FROM competitor_tournaments)"))


BATCH_RE = re.compile(r"batch \d+ deleted (\d+) rows in ([0-9.]+) ms")
LOOP_RE = re.compile(r"NOTICE:  batch ([0-9.]+) ms")


def method_a(db):
    t, _, err = psql(db, "SET client_min_messages = debug1; CALL retention_run(1000);")
    batches = [float(ms) for _, ms in BATCH_RE.findall(err)]
    return t, batches


def method_b(db):
    t, _, _ = psql(db, "SELECT retention_execute(1000);")
    return t, []


def plain_deletes(p):
    return f"""
DELETE FROM {p}market_odds m USING {p}odds_snapshots s
 WHERE m.snapshot_id = s.id
   AND (s.captured_at < now() - interval '60 days'
        OR s.event_id IN (SELECT id FROM {p}events WHERE kickoff < now() - interval '60 days'));
DELETE FROM {p}odds_snapshots s
 WHERE s.captured_at < now() - interval '60 days'
    OR s.event_id IN (SELECT id FROM {p}events WHERE kickoff < now() - interval '60 days');
DELETE FROM {p}events WHERE kickoff < now() - interval '60 days';
DELETE FROM {p}tournaments t WHERE created_at < now() - interval '1 day'
   AND NOT EXISTS (SELECT 1 FROM {p}events e WHERE e.tournament_id = t.id);
"""


def method_c(db):
    t, _, _ = psql(db, "BEGIN;" + "".join(plain_deletes(p) for p in CHAINS) + "COMMIT;")
    return t, []


def dba_loop(p):
    step = """
    LOOP
        t0 := clock_timestamp();
        {stmt}
        GET DIAGNOSTICS n = ROW_COUNT;
        COMMIT;
        RAISE NOTICE 'batch % ms', extract(epoch FROM clock_timestamp() - t0) * 1000;
        EXIT WHEN n = 0;
    END LOOP;"""
    stmts = [
        f"DELETE FROM {p}market_odds WHERE id IN (SELECT m.id FROM {p}market_odds m JOIN {p}odds_snapshots s ON s.id = m.snapshot_id"
        f" WHERE s.captured_at < c_odds OR s.event_id IN (SELECT id FROM {p}events WHERE kickoff < c_match) LIMIT 1000);",
        f"DELETE FROM {p}odds_snapshots WHERE id IN (SELECT id FROM {p}odds_snapshots"
        f" WHERE captured_at < c_odds OR event_id IN (SELECT id FROM {p}events WHERE kickoff < c_match) LIMIT 1000);",
        f"DELETE FROM {p}events WHERE id IN (SELECT id FROM {p}events WHERE kickoff < c_match LIMIT 1000);",
        f"DELETE FROM {p}tournaments WHERE id IN (SELECT id FROM {p}tournaments t WHERE created_at < c_grace"
        f" AND NOT EXISTS (SELECT 1 FROM {p}events e WHERE e.tournament_id = t.id) LIMIT 1000);",
    ]
    return "".join(step.format(stmt=s) for s in stmts)


def method_d(db):
    body = "".join(dba_loop(p) for p in CHAINS)
    sql = f"""SET client_min_messages = notice;
DO $$
DECLARE
    n bigint; t0 timestamptz;
    c_odds timestamptz := now() - interval '60 days';
    c_match timestamptz := now() - interval '60 days';
    c_grace timestamptz := now() - interval '1 day';
BEGIN {body}
END $$;"""
    t, _, err = psql(db, sql)
    return t, [float(ms) for ms in LOOP_RE.findall(err)]


def pct(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def pgbench(db, seconds, live_events):
    p = subprocess.run(
        ["pgbench", "-n", "-c", "2", "-j", "2", "-T", str(seconds), "-D", f"live_events={live_events}",
         "-f", os.path.join(ROOT, "bench", "writer.sql"), db],
        text=True, capture_output=True)
    tps = re.search(r"tps = ([0-9.]+)", p.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", p.stdout)
    errors = int(failed.group(1)) if failed else (0 if p.returncode == 0 else -1)
    return (float(tps.group(1)) if tps else 0.0), errors, p.returncode


def svg(series, path):
    """Per-batch durations, one polyline per series, log-free and dependency-free."""
    width, height, pad = 900, 360, 50
    top = max(max(v) for v in series.values() if v)
    longest = max(len(v) for v in series.values())
    colors = ["#1f77b4", "#d62728", "#2ca02c"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{pad}" y="20">Per-batch duration (ms), in batch order</text>',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - 10}" y2="{height - pad}" stroke="black"/>',
             f'<line x1="{pad}" y1="30" x2="{pad}" y2="{height - pad}" stroke="black"/>',
             f'<text x="5" y="40">{top:.0f}</text><text x="5" y="{height - pad}">0</text>',
             f'<text x="{width - 120}" y="{height - 20}">batch ({longest})</text>']
    for i, (name, values) in enumerate(series.items()):
        if not values:
            continue
        pts = " ".join(
            f"{pad + (width - pad - 10) * j / max(1, len(values) - 1):.1f},{height - pad - (height - pad - 30) * v / top:.1f}"
            for j, v in enumerate(values))
        parts.append(f'<polyline fill="none" stroke="{colors[i % 3]}" stroke-width="1" points="{pts}"/>')
        parts.append(f'<text x="{width - 260}" y="{45 + 16 * i}" fill="{colors[i % 3]}">{name}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts))


def main():
    scale = 36
    scaling = "--scaling" in sys.argv
    if "--scale" in sys.argv:
        scale = int(sys.argv[sys.argv.index("--scale") + 1])
    out = OUT
    if "--out" in sys.argv:
        out = sys.argv[sys.argv.index("--out") + 1]
    os.makedirs(out, exist_ok=True)

    print(f"generating the odds data at scale {scale} ...", flush=True)
    rows = make_template("bench_template", scale)
    live = int(scalar("bench_template", "SELECT count(*) FROM bench_live_events"))

    results = {}
    for name, fn in [("C", method_c), ("A", method_a), ("B", method_b), ("D", method_d)]:
        db = f"bench_{name.lower()}"
        fresh_copy("bench_template", db)
        before = table_rows(db)
        t, batches = fn(db)
        deleted = before - table_rows(db)
        results[name] = {"seconds": t, "deleted": deleted, "batches": batches}
        print(f"{name}: {deleted} rows in {t:.2f} s", flush=True)
    expected = results["C"]["deleted"]
    for name, r in results.items():
        if r["deleted"] != expected:
            sys.exit(f"method {name} deleted {r['deleted']} rows, C deleted {expected}: the methods disagree")

    # stats and preview, on a fresh copy (before any run)
    fresh_copy("bench_template", "bench_r")
    t_stats = psql("bench_r", "SELECT * FROM retention_stats();")[0]
    t_preview = psql("bench_r", "SELECT * FROM retention_preview();")[0]

    # live writers: alone, then during run A
    span = max(10, int(round(results["A"]["seconds"])))
    fresh_copy("bench_template", "bench_w")
    tps_alone, err_alone, _ = pgbench("bench_w", span, live)
    fresh_copy("bench_template", "bench_w")
    writer = subprocess.Popen(
        ["pgbench", "-n", "-c", "2", "-j", "2", "-T", str(span), "-D", f"live_events={live}",
         "-f", os.path.join(ROOT, "bench", "writer.sql"), "bench_w"], text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1)
    t_a_busy, _ = method_a("bench_w")
    writer_out, _ = writer.communicate()
    tps_busy = float(re.search(r"tps = ([0-9.]+)", writer_out).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", writer_out)
    err_busy = int(failed.group(1)) if failed else (0 if writer.returncode == 0 else -1)

    scaling_line = ""
    if scaling:
        print(f"generating 10x (scale {scale * 10}) ...", flush=True)
        make_template("bench_template10", scale * 10)
        fresh_copy("bench_template10", "bench_a10")
        _, b10 = method_a("bench_a10")
        p50_1, p50_10 = pct(results["A"]["batches"], 0.5), pct(b10, 0.5)
        scaling_line = (f"\n## Scaling\n\nretention_run per-batch p50 at 10x data: {p50_10:.2f} ms, at 1x: {p50_1:.2f} ms, "
                        f"ratio **{p50_10 / p50_1:.2f}** (target <= 1.2).\n")
        fresh_copy("bench_template10", "bench_r10")
        t_stats10 = psql("bench_r10", "SELECT * FROM retention_stats();")[0]
        t_preview10 = psql("bench_r10", "SELECT * FROM retention_preview();")[0]
        scaling_line += (f"\nretention_stats(): {t_stats10 / t_stats:.2f}x the 1x time; "
                         f"retention_preview(): {t_preview10 / t_preview:.2f}x.\n")
        for db in ["bench_template10", "bench_a10", "bench_r10"]:
            psql("postgres", f"DROP DATABASE IF EXISTS {db}")

    c = results["C"]["seconds"]
    lines = [
        "# pg_retention benchmark",
        "",
        f"Command: `bash bench/run.sh --scale {scale}{' --scaling' if scaling else ''}`. "
        f"Machine: {os.cpu_count()} cores, PostgreSQL 15 (Debian), default settings, the extension built with `--release`.",
        f"Data: the sports-odds schema of SPEC.md, both chains, {rows:,} rows; every method deletes the same "
        f"{expected:,} rows (odds and matches kept 60 days, orphaned tournaments after a day) from a fresh copy.",
        "",
        "| method | seconds | rows/s | time / C | batches | batch p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    labels = {"A": "A `CALL retention_run(1000)`", "B": "B `SELECT retention_execute(1000)`",
              "C": "C plain DELETE per table, one transaction", "D": "D DBA loop, `id IN (... LIMIT 1000)` + COMMIT"}
    for name in ["A", "B", "C", "D"]:
        r = results[name]
        b = r["batches"]
        lines.append(
            f"| {labels[name]} | {r['seconds']:.2f} | {r['deleted'] / r['seconds']:,.0f} | **{r['seconds'] / c:.2f}** | "
            f"{len(b) or ''} | {'%.2f' % pct(b, .5) if b else ''} | {'%.2f' % pct(b, .99) if b else ''} | "
            f"{'%.2f' % max(b) if b else ''} |")
    lines += [
        "",
        "Targets: A <= 1.2x C, and A faster than D.",
        "",
        "## Live writers",
        "",
        f"pgbench, 2 clients, each transaction a new snapshot with 8 market odds for a live event, {span} s:",
        f"alone {tps_alone:.0f} TPS ({err_alone} failed); during run A {tps_busy:.0f} TPS ({err_busy} failed): "
        f"**{100 * tps_busy / tps_alone:.0f}%** of their throughput (target >= 90%). "
        f"Run A took {t_a_busy:.2f} s with the writers, {results['A']['seconds']:.2f} s alone.",
        "",
        "## Reports",
        "",
        f"`retention_stats()` {t_stats * 1000:.0f} ms, `retention_preview()` {t_preview * 1000:.0f} ms "
        f"(run A: {results['A']['seconds'] * 1000:.0f} ms).",
        scaling_line,
        "![per-batch durations](batches.svg)",
        "",
    ]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines))
    svg({"A retention_run": results["A"]["batches"], "D DBA loop": results["D"]["batches"]},
        os.path.join(out, "batches.svg"))
    for db in ["bench_a", "bench_b", "bench_c", "bench_d", "bench_r", "bench_w", "bench_template"]:
        psql("postgres", f"DROP DATABASE IF EXISTS {db}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
