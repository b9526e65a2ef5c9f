#!/usr/bin/env python3
"""docs/clients.md's psycopg 3 examples, run against a test cluster.

The blocks between `# [doc:NAME]` and `# [/doc:NAME]` are quoted in
docs/clients.md word for word (tests/clients/doc_blocks.py checks it).
Connects with libpq's environment (PGHOST, PGPORT, PGUSER: `eval "$(bash
scripts/cluster.sh env test 55432)"`), makes its own database
clients_psycopg, and exits non-zero on the first claim that does not hold.

    python3 tests/clients/python_psycopg.py
"""

import sys
from datetime import timedelta

import psycopg

DB = "clients_psycopg"
NAME = "python_psycopg.py"


def fail(message):
    print(f"{NAME}: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def expect(actual, expected, what):
    if actual != expected:
        fail(f"{what}: expected {expected!r}, got {actual!r}")
    print(f"{NAME}: ok: {what} = {actual!r}")


def scalar(conn, sql):
    return conn.execute(sql).fetchone()[0]


def add_rows(conn, table, first, n, age):
    conn.execute(
        f"INSERT INTO {table} (id, created_at) "
        "SELECT g, now() - %s::interval FROM generate_series(%s::bigint, %s::bigint) g",
        [age, first, first + n - 1],
    )


def fresh_database():
    with psycopg.connect(dbname="postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB}")
    with psycopg.connect(dbname=DB, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_retention")
        for table in ("app_events", "app_sessions"):
            conn.execute(
                f"CREATE TABLE {table} (id bigint PRIMARY KEY, created_at timestamptz NOT NULL)"
            )
            conn.execute(f"CREATE INDEX ON {table} (created_at)")
        # 250 rows 40 days old (expired under a 30-day window), 20 of today.
        add_rows(conn, "app_events", 1, 250, "40 days")
        add_rows(conn, "app_events", 1001, 20, "1 hour")
        # 90 expired and 10 young rows for the wrong-way examples.
        add_rows(conn, "app_sessions", 1, 90, "40 days")
        add_rows(conn, "app_sessions", 1001, 10, "1 hour")


def check_last_run(conn, status, total, relation, what):
    row = conn.execute(
        "SELECT status, total_deleted, tables FROM cleanup_runs ORDER BY id DESC LIMIT 1"
    ).fetchone()
    expect(row[0], status, f"{what}: cleanup_runs.status")
    expect(row[1], total, f"{what}: cleanup_runs.total_deleted")
    deleted = {t["relation"]: t["deleted"] for t in row[2]}
    expect(deleted, {relation: total}, f"{what}: cleanup_runs.tables (deleted per relation)")


def right_way():
    # [doc:psycopg-autocommit]
    with psycopg.connect(dbname=DB, autocommit=True) as conn:
        conn.execute("SELECT retention_add_policy('app_events', 'created_at', '30 days')")
        conn.execute("SET pg_retention.batch_pause = '10ms'")  # a setting: a statement of its own
        conn.execute(
            "CALL retention_run(batch_size => %s, max_duration => %s, lock_timeout => %s)",
            [100, timedelta(minutes=10), timedelta(seconds=1)],
        )
        run = conn.execute(
            "SELECT status, total_deleted FROM cleanup_runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
        print(run)  # ('succeeded', 250)
    # [/doc:psycopg-autocommit]
    expect(run, ("succeeded", 250), "CALL retention_run on an autocommit=True connection")
    with psycopg.connect(dbname=DB, autocommit=True) as conn:
        check_last_run(conn, "succeeded", 250, "public.app_events", "autocommit CALL")
        expect(scalar(conn, "SELECT count(*) FROM cleanup_runs"), 1, "history rows after one CALL")
        expect(scalar(conn, "SELECT count(*) FROM app_events"), 20, "app_events rows left")
        expect(
            scalar(conn, "SELECT count(*) FROM app_events WHERE created_at < now() - interval '30 days'"),
            0,
            "expired app_events rows left",
        )


def default_connection():
    # [doc:psycopg-default]
    conn = psycopg.connect(dbname=DB)  # autocommit off (the default): the first statement opens a transaction
    conn.execute("SELECT retention_add_policy('app_sessions', 'created_at', '30 days')")
    refused = None
    try:
        conn.execute("CALL retention_run(1000)")
    except psycopg.errors.ActiveSqlTransaction as err:  # SQLSTATE 25001
        refused = err
        print(err.diag.message_hint)  # Send CALL retention_run(...) as a command of its own with autocommit on: ...
        conn.rollback()  # rolls back the retention_add_policy above as well
    # [/doc:psycopg-default]
    if refused is None:
        fail("CALL retention_run on a default (non-autocommit) connection did not fail")
    expect(refused.sqlstate, "25001", "CALL in psycopg's implicit transaction: SQLSTATE")
    hint = refused.diag.message_hint or ""
    if "autocommit" not in hint:
        fail(f"the 25001 hint does not mention autocommit: {hint!r}")
    print(f"{NAME}: ok: the 25001 hint mentions autocommit")
    expect(
        scalar(conn, "SELECT count(*) FROM retention_policies WHERE relation = 'app_sessions'::regclass"),
        0,
        "policies on app_sessions after the rollback (the retention_add_policy was undone)",
    )
    expect(scalar(conn, "SELECT count(*) FROM cleanup_runs"), 1, "history rows after the refused CALL")
    expect(scalar(conn, "SELECT count(*) FROM app_sessions"), 100, "app_sessions rows after the refused CALL")
    conn.rollback()

    # [doc:psycopg-switch]
    conn.autocommit = True  # allowed while no transaction is open (after commit() or rollback())
    conn.execute("SELECT retention_add_policy('app_sessions', 'created_at', '30 days')")
    conn.execute("CALL retention_run(1000)")
    # [/doc:psycopg-switch]
    check_last_run(conn, "succeeded", 90, "public.app_sessions", "CALL after conn.autocommit = True")
    expect(scalar(conn, "SELECT count(*) FROM app_sessions"), 10, "app_sessions rows left")

    # Even with autocommit on, a query string of two statements is one
    # transaction (psycopg sends a string without parameters as it is).
    try:
        conn.execute("SET pg_retention.batch_pause = '10ms'; CALL retention_run(1000)")
        fail("'SET ...; CALL retention_run(1000)' in one execute() did not fail")
    except psycopg.errors.ActiveSqlTransaction as err:
        expect(err.sqlstate, "25001", "'SET ...; CALL ...' in one execute() with autocommit on: SQLSTATE")
    expect(scalar(conn, "SELECT count(*) FROM cleanup_runs"), 2, "history rows after the refused string")
    conn.close()


def in_transaction():
    with psycopg.connect(dbname=DB, autocommit=True) as conn:
        add_rows(conn, "app_events", 2001, 70, "40 days")
    # [doc:psycopg-execute]
    with psycopg.connect(dbname=DB) as conn:  # default: statements run in a transaction
        conn.execute("INSERT INTO app_events VALUES (5000, now())")
        run = conn.execute(
            "SELECT id, status, total_deleted FROM retention_execute(1000)"
        ).fetchone()
        print(run)  # (3, 'succeeded', 70): the history row, committed with the rest
    # leaving the with block commits
    # [/doc:psycopg-execute]
    expect(run[1:], ("succeeded", 70), "retention_execute inside psycopg's transaction")
    with psycopg.connect(dbname=DB, autocommit=True) as conn:
        expect(
            scalar(conn, f"SELECT status || ' ' || total_deleted FROM cleanup_runs WHERE id = {run[0]}"),
            "succeeded 70",
            "the committed history row of retention_execute",
        )
        check_last_run(conn, "succeeded", 70, "public.app_events", "retention_execute")
        expect(scalar(conn, "SELECT count(*) FROM app_events"), 21, "app_events rows left")


def main():
    try:
        fresh_database()
        right_way()
        default_connection()
        in_transaction()
        with psycopg.connect(dbname="postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {DB} WITH (FORCE)")
    except psycopg.Error as err:
        fail(f"unexpected error {err.sqlstate}: {err}")
    print(f"{NAME}: passed")


if __name__ == "__main__":
    main()
