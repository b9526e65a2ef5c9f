#!/usr/bin/env python3
"""The schema zoo benchmark (see bench/zoo.sql for the shapes).

On fresh copies of one zoo database it runs, shape by shape:
  C  the shape's plain DELETEs, children first, in one transaction
  A  CALL retention_run(1000, label => shape), pg_retention.yield_ratio = 0
  E  pg-batch 1.1.1 (PyPI: keyset on the primary key, DELETE ... WHERE id IN
     (<1000 literals>) + COMMIT, no FK awareness), single-table shapes only
and writes a per-shape table: seconds for C, A and E, A/C, batches and the
p50/p99 batch time of A. It fails when the methods leave different rows.
Rounds alternate the order of C and A; the report takes per-shape medians.
A is timed without its per-batch DEBUG1 lines; one more run of A, with
them, gives the batches and their times.

  python3 bench/zoo.py [--scale S] [--rounds R] [--out FILE]
"""
import os
import shutil
import statistics
import subprocess
import sys
import time

from run import BATCH_RE, ROOT, arg, fresh_copy, pct, psql


def make_template(name, scale):
    psql("postgres", f"DROP DATABASE IF EXISTS {name}")
    psql("postgres", f"CREATE DATABASE {name}")
    with open(os.path.join(ROOT, "bench", "zoo.sql")) as f:
        psql(name, "CREATE EXTENSION pg_retention;" + f.read())
    psql(name, f"SELECT zoo_create({scale});"
         # Autovacuum would run during some timed methods and not others.
         "DO $$ DECLARE r record; BEGIN FOR r IN SELECT c.oid::regclass AS t FROM pg_class c"
         " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname LIKE 'z\\_%' LOOP"
         " EXECUTE format('ALTER TABLE %s SET (autovacuum_enabled = off)', r.t); END LOOP; END $$;"
         "VACUUM ANALYZE;")
    out = psql(name, "SELECT shape, single_table, coalesce(single_where, ''), array_to_string(tables, ',') FROM zoo_shapes ORDER BY shape")[1]
    shapes = []
    for line in out.strip().splitlines():
        shape, single, where, tables = line.split("|")
        plain = psql(name, f"SELECT plain_deletes FROM zoo_shapes WHERE shape = '{shape}'")[1]
        shapes.append({"shape": shape, "single": single or None, "where": where,
                       "tables": tables.split(","), "plain": plain})
    return shapes


def left(db, shape):
    sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in shape["tables"])
    return "\n".join(sorted(psql(db, sql + ";")[1].strip().splitlines()))


def method_c(db, shape):
    t, _, _ = psql(db, "BEGIN;" + shape["plain"] + "COMMIT;")
    return t, []


def method_a(db, shape, batch_lines=False):
    # Timed without the per-batch DEBUG1 lines: sending each to the client
    # costs about 0.05 ms a batch, which a scheduled run does not pay.
    lines = " SET client_min_messages = debug1;" if batch_lines else ""
    t, _, err = psql(db, f"SET pg_retention.yield_ratio = 0;{lines}"
                         f"CALL retention_run(1000, label => '{shape['shape']}');")
    return t, [float(ms) for _, ms, _ in BATCH_RE.findall(err)]


def method_e(db, shape):
    cmd = ["pg_batch", "-H", os.environ["PGHOST"], "-P", os.environ["PGPORT"], "-U", os.environ.get("PGUSER", "postgres"),
           "-d", db, "-t", shape["single"], "-w", shape["where"], "-a", "delete", "-wbz", "1000", "-n"]
    start = time.perf_counter()
    p = subprocess.run(cmd, text=True, capture_output=True)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"pg_batch failed on {shape['shape']}:\n{p.stderr[-2000:]}")
    return elapsed, []


def main():
    scale = arg("--scale", 1.0)
    rounds = arg("--rounds", 3)
    out = arg("--out", os.path.join(ROOT, "docs", "bench", "zoo.md"))
    have_e = shutil.which("pg_batch") is not None
    shapes = make_template("zoo_tpl", scale)
    methods = [("C", method_c), ("A", method_a)] + ([("E", method_e)] if have_e else [])
    times = {(s["shape"], m): [] for s in shapes for m, _ in methods}
    batches = {s["shape"]: [] for s in shapes}
    results = {}
    for r in range(rounds):
        order = methods if r % 2 == 0 else [methods[1], methods[0]] + methods[2:]
        for name, method in order:
            db = f"zoo_{name.lower()}"
            fresh_copy("zoo_tpl", db)
            for shape in shapes:
                if name == "E" and not shape["single"]:
                    continue
                t, _ = method(db, shape)
                times[(shape["shape"], name)].append(t)
                state = left(db, shape)
                results.setdefault(shape["shape"], {})[name] = state
                print(f"round {r + 1} {name} {shape['shape']}: {t:.3f} s", flush=True)
    # The batches' count and times: one more run of A, with its DEBUG1 lines.
    fresh_copy("zoo_tpl", "zoo_a")
    for shape in shapes:
        _, batches[shape["shape"]] = method_a("zoo_a", shape, batch_lines=True)
        results[shape["shape"]]["A with batch lines"] = left("zoo_a", shape)
    deleted = {}
    for shape in shapes:
        states = results[shape["shape"]]
        if len(set(states.values())) != 1:
            sys.exit(f"{shape['shape']}: the methods left different rows: {states}")
        before = left("zoo_tpl", shape)
        deleted[shape["shape"]] = sum(int(b.split("|")[1]) - int(a.split("|")[1])
                                      for b, a in zip(before.splitlines(), states["C"].splitlines()))

    med = {k: statistics.median(v) for k, v in times.items() if v}
    lines = [
        f"# Schema zoo: scale {scale}, {rounds} rounds, medians",
        "",
        "Generated by `python3 bench/zoo.py` (through `bash bench/run.sh --zoo`); shapes in",
        "`bench/zoo.sql`. C: the shape's plain DELETEs in one transaction. A: `CALL",
        "retention_run(1000, label => shape)` with `yield_ratio = 0`, timed without its",
        "per-batch DEBUG1 lines; batches, p50 and p99 from one more run of A with them.",
        "E: pg-batch 1.1.1",
        "(`-wbz 1000`), single tables only." + ("" if have_e else " pg_batch was not installed: no E."),
        "Targets (issue 17): A within 1.5x C per shape, 1.2x over the zoo, batch p99 under 100 ms.",
        "",
        "| shape | rows deleted | C s | A s | A/C | batches | p50 ms | p99 ms | E s | A/E |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    total_c = total_a = 0.0
    for shape in shapes:
        s = shape["shape"]
        c, a = med[(s, "C")], med[(s, "A")]
        total_c += c
        total_a += a
        e = med.get((s, "E"))
        b = batches[s]
        lines.append(
            f"| {s} | {deleted[s]:,} | {c:.3f} | {a:.3f} | {a / c:.2f} | {len(b)} | "
            f"{pct(b, 0.50):.1f} | {pct(b, 0.99):.1f} | {'' if e is None else f'{e:.3f}'} | "
            f"{'' if e is None else f'{a / e:.2f}'} |")
    lines += ["", f"Whole zoo: C {total_c:.2f} s, A {total_a:.2f} s, A/C {total_a / total_c:.2f}.", ""]
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
