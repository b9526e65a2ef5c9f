#!/usr/bin/env python3
"""pg_retention benchmark, driven through psql and pgbench (see bench/run.sh).

On identical fresh copies of the sports-odds data it runs:
  A  CALL retention_run(1000)                 (commit per batch)
  B  SELECT retention_execute(1000)           (one transaction)
  C  one plain DELETE per table in FK order   (one transaction: the practical limit)
  D  the DBA loop: DELETE ... WHERE id IN (SELECT id ... LIMIT 1000) + COMMIT, per table
and reports rows/s, ratios to C, per-batch durations (A, D), writer TPS with
and without A, the time of retention_stats() / retention_preview(), the 10x
scaling (--scaling), and a pg_stat_statements profile of one more C and A.
Ratios are measured in the same invocation; absolute times are context only.
"""
import os
import re
import shutil
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
         # Autovacuum starts once a minute: inside one timed run and not the
         # next, and during A (whose batches commit dead rows as it goes) but
         # never during C. The vacuum after a mass delete is the same work
         # whichever method deleted; it is left out of every timing.
         "DO $$ DECLARE r record; BEGIN FOR r IN SELECT relname FROM pg_class"
         " WHERE relkind = 'r' AND relname ~ '^(competitor_)?(market_odds|odds_snapshots|events|tournaments)$' LOOP"
         " EXECUTE format('ALTER TABLE %I SET (autovacuum_enabled = off)', r.relname); END LOOP; END $$;"
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


BATCH_RE = re.compile(r"batch \d+ deleted (\d+) rows in ([0-9.]+) ms; yields ([0-9.]+) ms")
LOOP_RE = re.compile(r"NOTICE:  batch ([0-9.]+) ms")


def run_a(db, settings=""):
    """CALL retention_run(1000) after `settings`: seconds, per-batch
    durations and the milliseconds it yielded to other sessions."""
    t, _, err = psql(db, f"{settings} SET client_min_messages = debug1; CALL retention_run(1000);")
    batches = BATCH_RE.findall(err)
    return t, [float(ms) for _, ms, _ in batches], sum(float(y) for _, _, y in batches)


def run_a_full_speed(db):
    """Run A that never yields (pg_retention.yield_ratio = 0)."""
    return run_a(db, "SET pg_retention.yield_ratio = 0;")


FULL_SPEED_LABEL = "A, `pg_retention.yield_ratio = 0`"


def method_a(db):
    t, batches, yielded = run_a(db)
    # Alone on the server, a run must not yield (pg_retention.yield_ratio):
    # a sleep here would be timed as deleting.
    if yielded > 0:
        sys.exit(f"run A yielded {yielded:.1f} ms with no other session running a statement")
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


def start_pgbench(db, clients, seconds, live_events, log_dir, script):
    """pgbench clients running bench/`script` with a per-transaction log
    (completion times)."""
    for f in os.listdir(log_dir):
        os.remove(os.path.join(log_dir, f))
    return subprocess.Popen(
        ["pgbench", "-n", "-c", str(clients), "-j", str(clients), "-T", str(seconds),
         "-D", f"live_events={live_events}", "-l", "--log-prefix", os.path.join(log_dir, "tx"),
         "-f", os.path.join(ROOT, "bench", script), db],
        text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish_pgbench(proc, log_dir, windows):
    """Transactions completed in each (start, end) window (epoch seconds)
    with the seconds of it pgbench covered, and the run's failed
    transactions."""
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"pgbench failed:\n{out}\n{err}")
    done = [0] * len(windows)
    last = 0.0
    for name in os.listdir(log_dir):
        with open(os.path.join(log_dir, name)) as f:
            for line in f:
                fields = line.split()
                t = int(fields[4]) + int(fields[5]) / 1e6
                last = max(last, t)
                for i, (start, end) in enumerate(windows):
                    if start <= t < end:
                        done[i] += 1
    # A window pgbench did not live to the end of counts up to its last
    # transaction.
    spans = [max(min(end, last) - start, 1e-9) for start, end in windows]
    failed = re.search(r"number of failed transactions: (\d+)", out)
    return list(zip(done, spans)), int(failed.group(1)) if failed else 0


def pgbench_around(template, script, clients, live, seconds, log_dir, action, window, then=None, allowance=0):
    """On a fresh copy of `template`, in one pgbench session of `clients`
    running bench/`script`: the transactions over `window` seconds right
    before `action` (at most `seconds` long), during it and over `window`
    seconds right after it; with `then` (at most `allowance` seconds, run
    after those), also over `window` seconds after that. Returns
    (transactions, seconds) per window, the failed transactions and the
    action's duration."""
    fresh_copy(template, "bench_w")
    windows_after = 2 if then else 1
    proc = start_pgbench("bench_w", clients, int(3 + (1 + windows_after) * window + seconds + allowance) + 3,
                         live, log_dir, script)
    time.sleep(3)
    before = time.time()
    time.sleep(window)
    start = time.time()
    action("bench_w")
    end = time.time()
    time.sleep(window)
    after = time.time()
    windows = [(before, start), (start, end), (end, after)]
    if then:
        then("bench_w")
        done = time.time()
        if done - after > allowance:
            sys.exit(f"{script}: the step after the run took {done - after:.0f} s, more than {allowance} s")
        time.sleep(window)
        windows.append((done, done + window))
    counted, failed = finish_pgbench(proc, log_dir, windows)
    return counted, failed, end - start


WRITER_WINDOW = 10.0
# Reads right after a mass delete are measured before vacuum catches up.
READER_WINDOW = 3.0


def writers_during(template, clients, live, seconds, log_dir, action, repeats=3):
    """Writer TPS (bench/writer.sql) during `action` and alone. Each of
    `repeats` times, on a fresh copy and in one pgbench session: the window
    in which the action runs, and `WRITER_WINDOW` seconds right before and
    right after it with nothing else running (this machine's speed drifts from one
    minute to the next, and one writer's TPS by 15% from one second to the
    next: the baseline is measured around each run and everything pooled;
    with 3 s windows, writers beside a 33 s sleep instead of a run "kept"
    97%). Returns
    TPS alone, TPS during the action, failed transactions and the action's
    median duration."""
    quiet = [0.0, 0.0]  # transactions, seconds
    busy = [0.0, 0.0]
    failed = 0
    durations = []
    for _ in range(repeats):
        counted, f, took = pgbench_around(template, "writer.sql", clients, live, seconds, log_dir, action, WRITER_WINDOW)
        for (n, span), bucket in zip(counted, [quiet, busy, quiet]):
            bucket[0] += n
            bucket[1] += span
        failed += f
        durations.append(took)
    return quiet[0] / quiet[1], busy[0] / busy[1], failed, statistics.median(durations)


def readers_around(template, clients, live, seconds, log_dir, action):
    """Reader TPS (bench/reader.sql) before, during and right after
    `action`, and after a VACUUM of the database that follows: once per
    row, the windows apart, for a mass delete leaves dead index entries that
    reads pay for until vacuum removes them, whoever deleted. Returns the
    four TPS figures, failed transactions and the action's duration."""
    counted, failed, took = pgbench_around(template, "reader.sql", clients, live, seconds, log_dir, action,
                                           READER_WINDOW, then=lambda db: psql(db, "VACUUM;"), allowance=30)
    return [n / span for n, span in counted], failed, took


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


def arg(name, default):
    return type(default)(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def timed(db, sql, times=3):
    """Median seconds of `times` runs of a read-only statement."""
    return statistics.median(psql(db, sql)[0] for _ in range(times))


def cpu_times():
    """The machine's CPU time by kind (/proc/stat: user, nice, system, idle,
    iowait, irq, softirq, steal), in clock ticks."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:9]]


def run_method(name, template):
    """Runs method `name` on a fresh copy of `template`; returns seconds, rows
    deleted and per-batch durations."""
    db = f"bench_{name.lower()}"
    fresh_copy(template, db)
    before = table_rows(db)
    cpu_before = cpu_times()
    t, batches = METHODS[name](db)
    cpu = [b - a for a, b in zip(cpu_before, cpu_times())]
    deleted = before - table_rows(db)
    psql("postgres", f"DROP DATABASE {db}")
    # Progress only: whether a slow run had the cores busy, idle (waiting)
    # or stolen.
    user, nice, system, idle, iowait, _, _, steal = (100 * x / max(sum(cpu), 1) for x in cpu[:8])
    print(f"{name}: {deleted} rows in {t:.2f} s (cpus: user {user + nice:.0f}%, system {system:.0f}%, "
          f"idle {idle:.0f}%, iowait {iowait:.0f}%, steal {steal:.0f}%)", flush=True)
    return {"seconds": t, "deleted": deleted, "batches": batches}


METHODS = {"A": method_a, "B": method_b, "C": method_c, "D": method_d}

PROFILE_SQL = r"""
SELECT pg_catalog.round(s.total_exec_time::numeric), s.calls, s.rows,
       pg_catalog.regexp_replace(pg_catalog.left(s.query, 120), '\s+', ' ', 'g')
  FROM pg_stat_statements s
 WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = pg_catalog.current_database())
   AND s.query !~* '^(VACUUM|CHECKPOINT|SELECT \(SELECT count|CREATE EXTENSION|SELECT pg_stat_statements_reset)'
 ORDER BY s.total_exec_time DESC LIMIT 10"""


def restart_server():
    port = os.environ["PGPORT"]
    for action in (["stop", "bench"], ["start", "bench", port]):
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "cluster.sh"), *action], check=True,
                       capture_output=True)


def profiles(names):
    """One run of each method with pg_stat_statements (nested statements
    included): its statements by total time, as markdown table lines. The
    library is loaded for this only, after the timed runs."""
    psql("postgres", "ALTER SYSTEM SET shared_preload_libraries = pg_cron, pg_stat_statements")
    restart_server()
    psql("postgres", "ALTER SYSTEM SET pg_stat_statements.track = 'all'; SELECT pg_reload_conf();")
    out = {}
    try:
        for name in names:
            db = f"bench_{name.lower()}"
            fresh_copy("bench_template", db)
            psql(db, "CREATE EXTENSION pg_stat_statements; SELECT pg_stat_statements_reset();")
            t, _ = METHODS[name](db)
            rows = [line.split("|", 3) for line in psql(db, PROFILE_SQL)[1].splitlines() if line]
            out[name] = [f"| {ms} | {calls} | {n} | `{q.replace('|', '/')}` |" for ms, calls, n, q in rows]
            out[name].insert(0, f"{t:.2f} s in all (with pg_stat_statements loaded):")
            psql("postgres", f"DROP DATABASE {db}")
    finally:
        psql("postgres", "ALTER SYSTEM RESET pg_stat_statements.track; ALTER SYSTEM RESET shared_preload_libraries;")
        restart_server()
    return out


# A server sized like a tuned production one rather than Postgres's defaults
# (shared_buffers = 128MB, max_wal_size = 1GB): with those, a 10x run dirtied
# more pages than shared_buffers holds, so its backend wrote evicted buffers
# itself (5.7 writes per batch, none at 1x), and its 1.2 GB of WAL forced
# checkpoints mid-run. Every method runs with the same settings.
RAM_MB = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
SERVER_SETTINGS = {"shared_buffers": f"{RAM_MB // 4}MB", "max_wal_size": "8GB"}


def configure_server(settings):
    for name, value in settings.items():
        psql("postgres", f"ALTER SYSTEM SET {name} = '{value}'")
    restart_server()


def reset_server(settings):
    for name in settings:
        psql("postgres", f"ALTER SYSTEM RESET {name}")
    restart_server()


def main():
    configure_server(SERVER_SETTINGS)
    try:
        benchmark()
    finally:
        reset_server(SERVER_SETTINGS)


def benchmark():
    scale = arg("--scale", 36)
    rounds = arg("--rounds", 5)
    scaling = "--scaling" in sys.argv
    out = arg("--out", OUT)
    os.makedirs(out, exist_ok=True)

    print(f"generating the odds data at scale {scale} ...", flush=True)
    rows = make_template("bench_template", scale)
    live = int(scalar("bench_template", "SELECT count(*) FROM bench_live_events"))

    # C, A and B alternate over the rounds (this machine's speed drifts by
    # tens of percent from one minute to the next), C before A in one round
    # and after it in the next, so that a drift does not always favour the
    # same one; D, slow, runs once.
    runs = {name: [] for name in METHODS}
    for i in range(rounds):
        for name in ["C", "A", "B"] if i % 2 == 0 else ["B", "A", "C"]:
            runs[name].append(run_method(name, "bench_template"))
    runs["D"].append(run_method("D", "bench_template"))
    expected = runs["C"][0]["deleted"]
    for name, rs in runs.items():
        for r in rs:
            if r["deleted"] != expected:
                sys.exit(f"method {name} deleted {r['deleted']} rows, C deleted {expected}: the methods disagree")
    seconds = {name: statistics.median(r["seconds"] for r in rs) for name, rs in runs.items()}
    batches = {name: [b for r in rs for b in r["batches"]] for name, rs in runs.items()}
    # A against the C run next to it, round by round: the target's measure.
    a_over_c = [a["seconds"] / c["seconds"] for a, c in zip(runs["A"], runs["C"])]

    # stats and preview, on a fresh copy (before any run)
    fresh_copy("bench_template", "bench_r")
    t_stats = timed("bench_r", "SELECT * FROM retention_stats();")
    t_preview = timed("bench_r", "SELECT * FROM retention_preview();")

    # live writers: during run A, and right before and after it
    log_dir = os.path.join("/tmp", f"pg_retention_bench_{os.getpid()}")
    os.makedirs(log_dir, exist_ok=True)
    writers = []
    # Bounds on A's duration with the writers running: it yields up to
    # yield_ratio times each batch, and the writers slow its batches too.
    yield_ratio = float(scalar("bench_template", "LOAD 'pg_retention'; SHOW pg_retention.yield_ratio"))
    for clients in (1, 2):
        for label, action, bound in (("A", run_a, (1 + yield_ratio) * 1.5 * seconds["A"] + 5),
                                     (FULL_SPEED_LABEL, run_a_full_speed, 2 * seconds["A"] + 5)):
            alone_tps, busy_tps, failed, window = writers_during("bench_template", clients, live, bound,
                                                                 log_dir, action)
            writers.append((clients, label, alone_tps, busy_tps, failed, window))
    # Readers: two clients filling both cores, beside A, A at full speed and
    # C (which shows what any mass delete leaves behind).
    readers = []
    for label, action, bound in (("A", run_a, (1 + yield_ratio) * 3 * seconds["A"] + 5),
                                 (FULL_SPEED_LABEL, run_a_full_speed, 2 * seconds["A"] + 5),
                                 ("C", method_c, 2 * seconds["C"] + 5)):
        tps, failed, took = readers_around("bench_template", 2, live, bound, log_dir, action)
        readers.append((label, tps, failed, took))
    shutil.rmtree(log_dir)

    profile = profiles(["C", "A"])

    scaling_lines = []
    if scaling:
        print(f"generating 10x (scale {scale * 10}) ...", flush=True)
        rows10 = make_template("bench_template10", scale * 10)
        # 1x, 10x, 1x in a row, and the reports alternating between a 1x and
        # a 10x copy: this machine's speed drifts over minutes, so each 10x
        # figure is set against 1x figures measured beside it.
        near = [run_method("A", "bench_template")]
        a10 = run_method("A", "bench_template10")
        near.append(run_method("A", "bench_template"))
        near_batches = [b for r in near for b in r["batches"]]
        fresh_copy("bench_template10", "bench_r10")
        reports = {}
        for fn in ("retention_stats", "retention_preview"):
            one, ten = [], []
            for _ in range(3):
                one.append(psql("bench_r", f"SELECT * FROM {fn}();")[0])
                ten.append(psql("bench_r10", f"SELECT * FROM {fn}();")[0])
            reports[fn] = (statistics.median(one), statistics.median(ten))
        p50_1, p50_10 = pct(near_batches, 0.5), pct(a10["batches"], 0.5)
        p99_1, p99_10 = pct(near_batches, 0.99), pct(a10["batches"], 0.99)
        (s1, s10), (v1, v10) = reports["retention_stats"], reports["retention_preview"]
        scaling_lines = [
            "## Scaling (10x)",
            "",
            f"Scale {scale * 10}: {rows10:,} rows, {a10['deleted']:,} deleted by run A in {a10['seconds']:.2f} s "
            f"({len(a10['batches'])} batches). The 1x figures here come from runs right before and after it "
            "(and the reports alternate between a 1x and a 10x copy), not from the table above.",
            "",
            "| measure | 1x | 10x | 10x / 1x | target |",
            "|---|---:|---:|---:|---|",
            f"| run A per-batch p50 (ms) | {p50_1:.2f} | {p50_10:.2f} | **{p50_10 / p50_1:.2f}** | <= 1.2 |",
            f"| run A per-batch p99 (ms) | {p99_1:.2f} | {p99_10:.2f} | {p99_10 / p99_1:.2f} | |",
            f"| `retention_stats()` (ms) | {s1 * 1000:.0f} | {s10 * 1000:.0f} | **{s10 / s1:.2f}** | <= 2 |",
            f"| `retention_preview()` (ms) | {v1 * 1000:.0f} | {v10 * 1000:.0f} | "
            f"{v10 / v1:.2f} | <= run A at 10x ({a10['seconds'] * 1000:.0f} ms) |",
            "",
        ]
        for db in ["bench_template10", "bench_r10"]:
            psql("postgres", f"DROP DATABASE IF EXISTS {db}")

    c = seconds["C"]
    lines = [
        "# pg_retention benchmark",
        "",
        f"Command: `bash bench/run.sh --scale {scale} --rounds {rounds}{' --scaling' if scaling else ''}`. "
        f"Machine: {os.cpu_count()} cores, {RAM_MB // 1024} GiB, PostgreSQL 15 (Debian), default settings except "
        + ", ".join(f"`{k} = {v}`" for k, v in SERVER_SETTINGS.items())
        + " (a quarter of RAM, and room for a 10x run's WAL between checkpoints: see `SERVER_SETTINGS` in bench/run.py) "
        "and autovacuum off on the benchmark's tables (it would start inside some timed runs and not others); "
        "the extension built with `--release`.",
        f"Data: the sports-odds schema of SPEC.md, both chains, {rows:,} rows; every method deletes the same "
        f"{expected:,} rows (odds and matches kept 60 days, orphaned tournaments after a day) from a fresh copy.",
        f"Seconds are the median of {rounds} rounds in which C, A and B alternate (C, A, B, then B, A, C; "
        "D: one run); the per-batch figures pool every batch of every run.",
        "Schemas of other shapes: [zoo.md](zoo.md), one row per shape (`bash bench/run.sh --zoo`).",
        "",
        "| method | seconds | rows/s | time / C | batches per run | batch p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    labels = {"A": "A `CALL retention_run(1000)`", "B": "B `SELECT retention_execute(1000)`",
              "C": "C plain DELETE per table, one transaction", "D": "D DBA loop, `id IN (... LIMIT 1000)` + COMMIT"}
    for name in ["A", "B", "C", "D"]:
        b = batches[name]
        per_run = len(b) // len(runs[name])
        lines.append(
            f"| {labels[name]} | {seconds[name]:.2f} | {expected / seconds[name]:,.0f} | **{seconds[name] / c:.2f}** | "
            f"{per_run or ''} | {'%.2f' % pct(b, .5) if b else ''} | {'%.2f' % pct(b, .99) if b else ''} | "
            f"{'%.2f' % max(b) if b else ''} |")
    lines += [
        "",
        f"**A / C, median of the rounds: {statistics.median(a_over_c):.2f}** (each round's A against the C run "
        f"beside it: {', '.join('%.2f' % r for r in a_over_c)}). A's per-batch p50 in each round (ms): "
        f"{', '.join('%.2f' % pct(r['batches'], .5) for r in runs['A'])} (a round whose batches are all slower "
        "points at the machine, not at a few long batches). Targets: A <= 1.2x C, and A faster than D.",
        "",
        "## Live writers",
        "",
        "pgbench, each transaction a new snapshot with 8 market odds for a live event, at full speed. "
        "Per row, three times on a fresh copy in one pgbench session: TPS over the window in which the run "
        f"runs, and over {WRITER_WINDOW:g} s windows right before and right after it with nothing else running ('alone'); "
        "pooled over the three. A yields to sessions running statements (after each batch it sleeps "
        f"`pg_retention.yield_ratio` = {yield_ratio:g} times the batch's duration while any runs); "
        "the second row of each count is the same run at full speed:",
        "",
        "| writer clients | run | TPS alone | TPS during the run | kept | failed transactions | run took (median) |",
        "|---:|---|---:|---:|---:|---:|---:|",
        *[f"| {n} | {label} | {alone:.0f} | {busy:.0f} | **{100 * busy / alone:.0f}%** | {failed} | {w:.2f} s |"
          for n, label, alone, busy, failed, w in writers],
        "",
        "Target: writers keep >= 90% of their TPS during A, with zero errors.",
        "",
        "Readers (no target): two pgbench clients, each transaction reading a live event's latest snapshot "
        "with its market odds (bench/reader.sql), at full speed, once per row on a fresh copy: TPS over "
        f"{READER_WINDOW:g} s before the run, during it, over {READER_WINDOW:g} s right after it, and over "
        f"{READER_WINDOW:g} s after a `VACUUM` that follows "
        "(percentages of 'before'). Reads are CPU-bound, so a run at full speed takes a share of the cores; "
        "and after any mass delete (C too) each read pays for the dead index entries until vacuum removes "
        "them: the planner's probes of index endpoints step over them (docs/operations.md, 'Autovacuum after "
        "mass deletes').",
        "",
        "| reader clients | run | TPS before | during the run | right after | after VACUUM | failed | run took |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
        *[f"| 2 | {label} | {b:.0f} | {d:.0f} ({100 * d / b:.0f}%) | {a:.0f} ({100 * a / b:.0f}%) | "
          f"{v:.0f} ({100 * v / b:.0f}%) | {failed} | {took:.2f} s |"
          for label, (b, d, a, v), failed, took in readers],
        "",
        "## Reports",
        "",
        f"`retention_stats()` {t_stats * 1000:.0f} ms, `retention_preview()` {t_preview * 1000:.0f} ms "
        f"(median of 3; run A: {seconds['A'] * 1000:.0f} ms).",
        "",
        *scaling_lines,
        "## Where the time goes",
        "",
        "One more run of C and of A with pg_stat_statements (`track = all`: statements run by triggers "
        "and by the extension are listed themselves, and also counted in the statement that ran them).",
        "",
    ]
    for name in ["C", "A"]:
        lines += [f"{labels[name]}: {profile[name][0]}", "",
                  "| ms | calls | rows | statement |", "|---:|---:|---:|---|", *profile[name][1:], ""]
    lines += [
        "![per-batch durations](batches.svg)",
        "",
    ]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines))
    svg({"A retention_run": runs["A"][0]["batches"], "D DBA loop": runs["D"][0]["batches"]},
        os.path.join(out, "batches.svg"))
    for db in ["bench_r", "bench_w", "bench_template"]:
        psql("postgres", f"DROP DATABASE IF EXISTS {db}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
