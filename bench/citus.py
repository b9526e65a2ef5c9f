#!/usr/bin/env python3
"""pg_retention on Citus against hand-written Citus DELETEs (bench/run.sh --citus).

On a coordinator and two workers (scripts/citus.sh), the odds schema's two
chains distributed and co-located as tests/citus/odds_citus.sql does it
(market odds CASCADE in the own chain, NO ACTION in the competitor's), the
same data is built twice per round, and
  C  one hand-written DELETE per table, children first, each its own
     transaction (Citus refuses DML on the reference table after parallel
     DML on distributed tables in one transaction); the reference table's
     with citus.multi_shard_modify_mode = 'sequential', as Citus's hint says
  A  CALL retention_run(1000)
  A10  CALL retention_run(10000), for context: Citus's cost per statement
     is paid once per batch
delete the same rows (checked per table). Rounds alternate C and A; the
report takes medians. Absolute times are context only.
"""
import os
import statistics
import subprocess
import sys

from run import BATCH_RE, ROOT, arg, pct, psql

COORDINATOR, *WORKERS = subprocess.run(
    ["bash", os.path.join(ROOT, "scripts", "citus.sh"), "ports"], capture_output=True, text=True, check=True
).stdout.split()
TABLES = ["market_odds", "odds_snapshots", "events", "tournaments"]
CHAINS = [("", "own", "30 days", "60 days", "CASCADE"), ("competitor_", "competitor", "14 days", "45 days", "NO ACTION")]


def on_node(port, db, sql):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", port, "-d", db, "-c", sql],
                   check=True, capture_output=True, text=True)


def make_db(name, scale, shards):
    for port in WORKERS + [COORDINATOR]:
        on_node(port, "postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        on_node(port, "postgres", f"CREATE DATABASE {name}")
        on_node(port, name, "SET client_min_messages = warning; CREATE EXTENSION citus")
    sql = [f"SELECT citus_set_coordinator_host('127.0.0.1', {COORDINATOR});"]
    sql += [f"SELECT citus_add_node('127.0.0.1', {w});" for w in WORKERS]
    sql += ["SET client_min_messages = warning;"]
    for f in ("bench/odds_schema.sql", "tests/citus/odds_citus.sql"):
        with open(os.path.join(ROOT, f)) as fh:
            sql.append(fh.read())
    sql.append("CREATE EXTENSION pg_retention;")
    for p, label, snapshots, events, action in CHAINS:
        sql.append(f"SELECT odds_create_schema('{p}'); SELECT odds_generate({scale}, '{p}');"
                   f"SELECT odds_distribute('{p}', '{action}', {shards});"
                   f"SELECT retention_add_policy('{p}odds_snapshots', 'captured_at', '{snapshots}', '{label}');"
                   f"SELECT retention_add_policy('{p}events', 'kickoff', '{events}', '{label}');"
                   f"SELECT retention_add_orphan_policy('{p}tournaments', 'created_at', '1 day', '{label}');")
    sql.append("VACUUM ANALYZE;")
    psql(name, "\n".join(sql))


def rows_left(db):
    return [int(psql(db, f"SELECT count(*) FROM {p}{t}")[1]) for p, *_ in CHAINS for t in TABLES]


def hand_written(p, snapshots, events):
    doomed = (f"(s.captured_at < now() - interval '{snapshots}'"
              f" OR s.event_id IN (SELECT id FROM {p}events WHERE kickoff < now() - interval '{events}'))")
    return [
        f"DELETE FROM {p}market_odds m USING {p}odds_snapshots s"
        f" WHERE m.event_id = s.event_id AND m.snapshot_id = s.id AND {doomed};",
        f"DELETE FROM {p}odds_snapshots s WHERE {doomed};",
        f"DELETE FROM {p}events WHERE kickoff < now() - interval '{events}';",
        # An uncorrelated NOT IN: Citus plans no correlated subquery over a
        # reference table; and reads the distributed table on one connection
        # per node in a statement that modifies a reference table (its hint).
        "BEGIN; SET LOCAL citus.multi_shard_modify_mode TO 'sequential';"
        f" DELETE FROM {p}tournaments WHERE created_at < now() - interval '1 day'"
        f" AND id NOT IN (SELECT tournament_id FROM {p}events); COMMIT;",
    ]


def method_c(db):
    return psql(db, "\n".join(s for p, _, snap, ev, _ in CHAINS for s in hand_written(p, snap, ev)))[0]


def method_a(db, batch_size):
    t, _, err = psql(db, f"SET client_min_messages = debug1; CALL retention_run({batch_size});")
    batches = BATCH_RE.findall(err)
    # Alone on the cluster, a run must not yield (pg_retention.yield_ratio):
    # a sleep would be timed as deleting.
    yielded = sum(float(y) for _, _, y in batches)
    if yielded > 0:
        sys.exit(f"retention_run({batch_size}) yielded {yielded:.1f} ms with no other session running a statement")
    return t, [float(ms) for _, ms, _ in batches]


def main():
    scale = arg("--scale", 10)
    rounds = arg("--rounds", 3)
    shards = arg("--shards", 8)
    out = arg("--out", os.path.join(ROOT, "docs", "bench", "citus.md"))
    os.environ["PGHOST"], os.environ["PGPORT"] = "127.0.0.1", COORDINATOR
    methods = {"C": None, "A": 1000, "A10": 10000}
    times = {m: [] for m in methods}
    batches = {m: [] for m in methods}
    total_rows = deleted = 0
    for r in range(rounds):
        left = {}
        for method in (list(methods) if r % 2 == 0 else list(reversed(methods))):
            db = f"bench_citus_{method.lower()}"
            make_db(db, scale, shards)
            before = rows_left(db)
            total_rows = sum(before)
            if method == "C":
                t = method_c(db)
            else:
                t, b = method_a(db, methods[method])
                batches[method] += b
            times[method].append(t)
            left[method] = rows_left(db)
            deleted = total_rows - sum(left[method])
            print(f"round {r + 1} {method}: {t:.2f} s, {deleted} of {total_rows} rows deleted", flush=True)
        for method in methods:
            if left[method] != left["C"]:
                sys.exit(f"{method} and C left different rows per table: {left[method]} and {left['C']}")
    c = statistics.median(times["C"])
    label = {"C": "C: one hand-written DELETE per table, children first",
             "A": "A: `CALL retention_run(1000)`", "A10": "A10: `CALL retention_run(10000)`"}
    rows = "\n".join(
        f"| {label[m]} | {statistics.median(times[m]):.2f} | {statistics.median(times[m]) / c:.2f} | "
        f"{', '.join(f'{t:.2f}' for t in times[m])} | "
        + (f"{len(batches[m]) // rounds}, p50 {pct(batches[m], 0.5):.1f} ms, p99 {pct(batches[m], 0.99):.1f} ms |"
           if m != "C" else "|")
        for m in methods)
    report = f"""# pg_retention on Citus: `CALL retention_run` against hand-written DELETEs

Command: `bash bench/run.sh --citus --scale {scale} --rounds {rounds} --shards {shards}`
(a coordinator and two workers on this machine, PostgreSQL 15, Citus 13.2.2;
the odds schema's two chains distributed by event and co-located over
{shards} shards, tournaments a reference table; {total_rows:,} rows, {deleted:,}
deleted). Each round builds the data anew for each method; the order of the
methods alternates. All leave the same rows in every table (checked every round).

| method | median s | ratio to C | rounds (s) | batches per run, p50, p99 |
|---|---:|---:|---|---|
{rows}

Citus pays a fixed cost per statement over several shards (planning, one
task per shard over the coordinator's connections), and a batch is a few statements (select the batch,
count and delete each child table's rows, delete the batch): short batches
multiply it, where one hand-written DELETE per table pays it once and runs
on every shard in parallel. Batches hold fewer rows than `batch_size` when
the policy has children: a step deletes about `batch_size` rows with them.
"""
    with open(out, "w") as f:
        f.write(report)
    print(report)


if __name__ == "__main__":
    main()
