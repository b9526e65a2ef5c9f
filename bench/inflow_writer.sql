-- pgbench script (bench/inflow.py): a writer appending :k rows to the log
-- table in one transaction, each with about 100 bytes of payload; the time
-- column takes its default, now().
INSERT INTO inflow_log (payload) SELECT repeat(md5(random()::text), 3) FROM generate_series(1, :k);
