-- The schema zoo: shapes the engine was not written for, each in a schema
-- of its own, with its policies (label = shape) and its plain-DELETE
-- baseline. Written from the descriptions in issue 17, not from any one
-- schema. Deterministic: pseudo-random values come from hashint4.
--
--   SELECT zoo_create(scale);   -- scale 1: about 2.5 million rows
--   SELECT * FROM zoo_shapes;   -- shape, plain DELETEs, single table for pg-batch
--
-- Times are relative to now(): every shape expires about half its rows, and
-- no row is within 12 hours of its cutoff, so that methods run minutes
-- apart delete the same rows.

CREATE TABLE IF NOT EXISTS zoo_shapes (
    shape         text PRIMARY KEY,
    description   text NOT NULL,
    -- the plain DELETEs that remove exactly what the policies remove,
    -- children first, run in one transaction
    plain_deletes text NOT NULL,
    -- the tables of the shape, for counting what is left
    tables        text[] NOT NULL,
    -- a single table with an integer key `id`, for pg-batch (method E)
    single_table  text,
    -- the WHERE clause pg-batch deletes by
    single_where  text
);

-- A pseudo-random fraction in [0, 1) from an integer.
CREATE OR REPLACE FUNCTION zoo_frac(i bigint, salt int) RETURNS float8
LANGUAGE sql IMMUTABLE AS $$ SELECT ((hashint8(i + salt::bigint * 1000003) & 2147483647)::float8 / 2147483648) $$;

-- A time f of the way from 100 days ago to now, moved 12 hours away from
-- the cutoff `cutoff_days` ago (older if it expires, younger if not).
CREATE OR REPLACE FUNCTION zoo_time(f float8, cutoff_days int) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
  SELECT now() - interval '100 days' + f * interval '100 days'
         + CASE WHEN f * 100 < 100 - cutoff_days THEN interval '-12 hours' ELSE interval '12 hours' END
$$;

-- n log rows in 21 imports, each stamped with one time (a job's now()), the
-- first 100 days ago and a new one every 5 days; keys uncorrelated with time.
CREATE OR REPLACE FUNCTION zoo_import_rows(n bigint) RETURNS TABLE (id bigint, ts timestamptz, payload text)
LANGUAGE sql STABLE AS $$
  SELECT (i * 2654435761) % 4294967311,
         now() - interval '100 days 12 hours' + ((i - 1) * 21 / n) * interval '5 days', 'line ' || i
    FROM generate_series(1, n) i
$$;

CREATE OR REPLACE FUNCTION zoo_create(scale float8 DEFAULT 1) RETURNS void
LANGUAGE plpgsql AS $zoo$
DECLARE
    n bigint;
BEGIN
    TRUNCATE zoo_shapes;

    -- 1. Append-only log: ids and times rise together.
    n := greatest(100, (300000 * scale)::bigint);
    DROP SCHEMA IF EXISTS z_append CASCADE; CREATE SCHEMA z_append;
    CREATE TABLE z_append.log (id bigint PRIMARY KEY, ts timestamptz NOT NULL, payload text NOT NULL);
    INSERT INTO z_append.log SELECT i, zoo_time(i::float8 / n, 50), 'line ' || i
      FROM generate_series(1, n) i;
    CREATE INDEX ON z_append.log (ts);
    PERFORM retention_add_policy('z_append.log', 'ts', '50 days', 'append_log');
    INSERT INTO zoo_shapes VALUES ('append_log', 'log table, keys rise with time, index on time',
      $$DELETE FROM z_append.log WHERE ts < now() - interval '50 days';$$, '{z_append.log}',
      'z_append.log', $$ts < now() - interval '50 days'$$);

    -- 1b. The daily run of a long window: an append-only log of which 3%
    -- has expired (the index finds them; most of the table stays).
    DROP SCHEMA IF EXISTS z_daily CASCADE; CREATE SCHEMA z_daily;
    CREATE TABLE z_daily.log (id bigint PRIMARY KEY, ts timestamptz NOT NULL, payload text NOT NULL);
    INSERT INTO z_daily.log SELECT i, zoo_time(i::float8 / n, 97), 'line ' || i
      FROM generate_series(1, n) i;
    CREATE INDEX ON z_daily.log (ts);
    PERFORM retention_add_policy('z_daily.log', 'ts', '97 days', 'daily_log');
    INSERT INTO zoo_shapes VALUES ('daily_log', 'log table, keys rise with time, 3% expired (a daily run)',
      $$DELETE FROM z_daily.log WHERE ts < now() - interval '97 days';$$, '{z_daily.log}',
      'z_daily.log', $$ts < now() - interval '97 days'$$);

    -- 2. Keys uncorrelated with time (a random bigint per row).
    DROP SCHEMA IF EXISTS z_shuffled CASCADE; CREATE SCHEMA z_shuffled;
    CREATE TABLE z_shuffled.log (id bigint PRIMARY KEY, ts timestamptz NOT NULL, payload text NOT NULL);
    INSERT INTO z_shuffled.log SELECT (i * 2654435761) % 4294967311, zoo_time(i::float8 / n, 50), 'line ' || i
      FROM generate_series(1, n) i;
    CREATE INDEX ON z_shuffled.log (ts);
    PERFORM retention_add_policy('z_shuffled.log', 'ts', '50 days', 'shuffled_log');
    INSERT INTO zoo_shapes VALUES ('shuffled_log', 'log table, keys uncorrelated with time, index on time',
      $$DELETE FROM z_shuffled.log WHERE ts < now() - interval '50 days';$$, '{z_shuffled.log}',
      'z_shuffled.log', $$ts < now() - interval '50 days'$$);

    -- 3. Large groups of identical times: a job stamps each import with one
    -- now(); 21 imports, keys uncorrelated with time.
    DROP SCHEMA IF EXISTS z_groups CASCADE; CREATE SCHEMA z_groups;
    CREATE TABLE z_groups.log (id bigint PRIMARY KEY, ts timestamptz NOT NULL, payload text NOT NULL);
    INSERT INTO z_groups.log SELECT * FROM zoo_import_rows(n);
    CREATE INDEX ON z_groups.log (ts);
    PERFORM retention_add_policy('z_groups.log', 'ts', '50 days', 'import_groups');
    INSERT INTO zoo_shapes VALUES ('import_groups', 'log table, 21 groups of identical times, keys uncorrelated',
      $$DELETE FROM z_groups.log WHERE ts < now() - interval '50 days';$$, '{z_groups.log}',
      'z_groups.log', $$ts < now() - interval '50 days'$$);

    -- 4. Expired rows spread over every page: times random, ids in insert order.
    DROP SCHEMA IF EXISTS z_scattered CASCADE; CREATE SCHEMA z_scattered;
    CREATE TABLE z_scattered.log (id bigint PRIMARY KEY, ts timestamptz NOT NULL, payload text NOT NULL);
    INSERT INTO z_scattered.log SELECT i, zoo_time(zoo_frac(i, 4), 50), 'line ' || i
      FROM generate_series(1, n) i;
    CREATE INDEX ON z_scattered.log (ts);
    PERFORM retention_add_policy('z_scattered.log', 'ts', '50 days', 'scattered');
    INSERT INTO zoo_shapes VALUES ('scattered', 'log table, expired rows on every page',
      $$DELETE FROM z_scattered.log WHERE ts < now() - interval '50 days';$$, '{z_scattered.log}',
      'z_scattered.log', $$ts < now() - interval '50 days'$$);

    -- 5. Composite key (region, id) parent; a NO ACTION child (3 per parent)
    -- with a grandchild each; a RESTRICT child in another schema for a third
    -- of the parents.
    n := greatest(30, (100000 * scale)::bigint);
    DROP SCHEMA IF EXISTS z_comp CASCADE; CREATE SCHEMA z_comp;
    DROP SCHEMA IF EXISTS z_comp_other CASCADE; CREATE SCHEMA z_comp_other;
    CREATE TABLE z_comp.account (region int NOT NULL, id bigint NOT NULL, ts timestamptz NOT NULL, PRIMARY KEY (region, id));
    CREATE TABLE z_comp.invoice (id bigint PRIMARY KEY, region int NOT NULL, account_id bigint NOT NULL,
      FOREIGN KEY (region, account_id) REFERENCES z_comp.account);
    CREATE TABLE z_comp.line (id bigint PRIMARY KEY, invoice_id bigint NOT NULL REFERENCES z_comp.invoice);
    CREATE TABLE z_comp_other.hold (id bigint PRIMARY KEY, region int NOT NULL, account_id bigint NOT NULL,
      FOREIGN KEY (region, account_id) REFERENCES z_comp.account ON DELETE RESTRICT);
    INSERT INTO z_comp.account SELECT i % 7, i, zoo_time(zoo_frac(i, 5), 50) FROM generate_series(1, n) i;
    INSERT INTO z_comp.invoice SELECT i, (i / 3) % 7, i / 3 FROM generate_series(3, 3 * n + 2) i;
    INSERT INTO z_comp.line SELECT i, i FROM generate_series(3, 3 * n + 2) i;
    INSERT INTO z_comp_other.hold SELECT i, i % 7, i FROM generate_series(1, n, 3) i;
    CREATE INDEX ON z_comp.account (ts);
    CREATE INDEX ON z_comp.invoice (region, account_id);
    CREATE INDEX ON z_comp.line (invoice_id);
    CREATE INDEX ON z_comp_other.hold (region, account_id);
    PERFORM retention_add_policy('z_comp.account', 'ts', '50 days', 'composite_tree');
    INSERT INTO zoo_shapes VALUES ('composite_tree', 'composite-key parent, NO ACTION child with grandchild, RESTRICT child in another schema',
      $$CREATE TEMP TABLE gone ON COMMIT DROP AS SELECT region, id FROM z_comp.account WHERE ts < now() - interval '50 days';
        DELETE FROM z_comp.line l USING z_comp.invoice v, gone g WHERE l.invoice_id = v.id AND (v.region, v.account_id) = (g.region, g.id);
        DELETE FROM z_comp.invoice v USING gone g WHERE (v.region, v.account_id) = (g.region, g.id);
        DELETE FROM z_comp_other.hold h USING gone g WHERE (h.region, h.account_id) = (g.region, g.id);
        DELETE FROM z_comp.account a USING gone g WHERE (a.region, a.id) = (g.region, g.id);$$,
      '{z_comp.account,z_comp.invoice,z_comp.line,z_comp_other.hold}', NULL, NULL);

    -- 6. Wide fan-out: 1,500 CASCADE children per parent.
    n := greatest(4, (200 * scale)::bigint);
    DROP SCHEMA IF EXISTS z_wide CASCADE; CREATE SCHEMA z_wide;
    CREATE TABLE z_wide.upload (id bigint PRIMARY KEY, ts timestamptz NOT NULL);
    CREATE TABLE z_wide.record (id bigint PRIMARY KEY, upload_id bigint NOT NULL REFERENCES z_wide.upload ON DELETE CASCADE, v text);
    INSERT INTO z_wide.upload SELECT i, zoo_time(1 - i::float8 / n, 50) FROM generate_series(1, n) i;
    INSERT INTO z_wide.record SELECT i, 1 + i % n, 'v' || i FROM generate_series(1, 1500 * n) i;
    CREATE INDEX ON z_wide.record (upload_id);
    CREATE INDEX ON z_wide.upload (ts);
    PERFORM retention_add_policy('z_wide.upload', 'ts', '50 days', 'wide_fanout');
    INSERT INTO zoo_shapes VALUES ('wide_fanout', '1,500 CASCADE children per parent',
      $$DELETE FROM z_wide.upload WHERE ts < now() - interval '50 days';$$,
      '{z_wide.upload,z_wide.record}', NULL, NULL);

    -- 7. Narrow fan-out, depth 3, mixed actions: a <- b (CASCADE, 1-2 per a)
    -- <- c (NO ACTION, 1 per b) <- d (RESTRICT, 1 per c).
    n := greatest(50, (60000 * scale)::bigint);
    DROP SCHEMA IF EXISTS z_narrow CASCADE; CREATE SCHEMA z_narrow;
    CREATE TABLE z_narrow.a (id bigint PRIMARY KEY, ts timestamptz NOT NULL);
    CREATE TABLE z_narrow.b (id bigint PRIMARY KEY, a_id bigint NOT NULL REFERENCES z_narrow.a ON DELETE CASCADE);
    CREATE TABLE z_narrow.c (id bigint PRIMARY KEY, b_id bigint NOT NULL REFERENCES z_narrow.b);
    CREATE TABLE z_narrow.d (id bigint PRIMARY KEY, c_id bigint NOT NULL REFERENCES z_narrow.c ON DELETE RESTRICT);
    INSERT INTO z_narrow.a SELECT i, zoo_time(i::float8 / n, 50) FROM generate_series(1, n) i;
    INSERT INTO z_narrow.b SELECT i, 1 + (i * 2 / 3) % n FROM generate_series(1, n * 3 / 2) i;
    INSERT INTO z_narrow.c SELECT i, i FROM generate_series(1, n * 3 / 2) i;
    INSERT INTO z_narrow.d SELECT i, i FROM generate_series(1, n * 3 / 2) i;
    CREATE INDEX ON z_narrow.a (ts);
    CREATE INDEX ON z_narrow.b (a_id);
    CREATE INDEX ON z_narrow.c (b_id);
    CREATE INDEX ON z_narrow.d (c_id);
    PERFORM retention_add_policy('z_narrow.a', 'ts', '50 days', 'narrow_mixed');
    INSERT INTO zoo_shapes VALUES ('narrow_mixed', 'depth 3, 1-2 children per row, CASCADE / NO ACTION / RESTRICT',
      $$CREATE TEMP TABLE gone ON COMMIT DROP AS SELECT b.id FROM z_narrow.b b JOIN z_narrow.a a ON a.id = b.a_id WHERE a.ts < now() - interval '50 days';
        DELETE FROM z_narrow.d WHERE c_id IN (SELECT c.id FROM z_narrow.c c WHERE c.b_id IN (SELECT id FROM gone));
        DELETE FROM z_narrow.c WHERE b_id IN (SELECT id FROM gone);
        DELETE FROM z_narrow.a WHERE ts < now() - interval '50 days';$$,
      '{z_narrow.a,z_narrow.b,z_narrow.c,z_narrow.d}', NULL, NULL);

    -- 8. An unindexed foreign-key column (NO ACTION).
    n := greatest(20, (4000 * scale)::bigint);
    DROP SCHEMA IF EXISTS z_unindexed CASCADE; CREATE SCHEMA z_unindexed;
    CREATE TABLE z_unindexed.parent (id bigint PRIMARY KEY, ts timestamptz NOT NULL);
    CREATE TABLE z_unindexed.child (id bigint PRIMARY KEY, parent_id bigint NOT NULL REFERENCES z_unindexed.parent);
    INSERT INTO z_unindexed.parent SELECT i, zoo_time(i::float8 / n, 50) FROM generate_series(1, n) i;
    INSERT INTO z_unindexed.child SELECT i, 1 + i % n FROM generate_series(1, 5 * n) i;
    CREATE INDEX ON z_unindexed.parent (ts);
    PERFORM retention_add_policy('z_unindexed.parent', 'ts', '50 days', 'unindexed_fk');
    INSERT INTO zoo_shapes VALUES ('unindexed_fk', 'NO ACTION child whose foreign-key column has no index',
      $$DELETE FROM z_unindexed.child WHERE parent_id IN (SELECT id FROM z_unindexed.parent WHERE ts < now() - interval '50 days');
        DELETE FROM z_unindexed.parent WHERE ts < now() - interval '50 days';$$,
      '{z_unindexed.parent,z_unindexed.child}', NULL, NULL);

    -- 9. uuid and text keys: a uuid parent, a text-keyed CASCADE child.
    n := greatest(50, (80000 * scale)::bigint);
    DROP SCHEMA IF EXISTS z_uuid CASCADE; CREATE SCHEMA z_uuid;
    CREATE TABLE z_uuid.device (id uuid PRIMARY KEY, ts timestamptz NOT NULL);
    CREATE TABLE z_uuid.reading (code text PRIMARY KEY, device_id uuid NOT NULL REFERENCES z_uuid.device ON DELETE CASCADE);
    INSERT INTO z_uuid.device SELECT md5(i::text)::uuid, zoo_time(zoo_frac(i, 9), 50) FROM generate_series(1, n) i;
    INSERT INTO z_uuid.reading SELECT 'r-' || md5('r' || i), md5((1 + i % n)::text)::uuid FROM generate_series(1, 2 * n) i;
    CREATE INDEX ON z_uuid.device (ts);
    CREATE INDEX ON z_uuid.reading (device_id);
    PERFORM retention_add_policy('z_uuid.device', 'ts', '50 days', 'uuid_text');
    INSERT INTO zoo_shapes VALUES ('uuid_text', 'uuid-keyed parent, text-keyed CASCADE child',
      $$DELETE FROM z_uuid.device WHERE ts < now() - interval '50 days';$$,
      '{z_uuid.device,z_uuid.reading}', NULL, NULL);

    -- 11. Groups of identical times in a table that cannot be swept: a log
    -- partitioned by HASH of its key (not by time, so no partition goes
    -- whole), each import stamped with one now(); 21 imports, keys
    -- uncorrelated with time.
    n := greatest(100, (150000 * scale)::bigint);
    DROP SCHEMA IF EXISTS z_pgroups CASCADE; CREATE SCHEMA z_pgroups;
    CREATE TABLE z_pgroups.log (id bigint PRIMARY KEY, ts timestamptz NOT NULL, payload text NOT NULL)
      PARTITION BY HASH (id);
    CREATE TABLE z_pgroups.log_0 PARTITION OF z_pgroups.log FOR VALUES WITH (MODULUS 3, REMAINDER 0);
    CREATE TABLE z_pgroups.log_1 PARTITION OF z_pgroups.log FOR VALUES WITH (MODULUS 3, REMAINDER 1);
    CREATE TABLE z_pgroups.log_2 PARTITION OF z_pgroups.log FOR VALUES WITH (MODULUS 3, REMAINDER 2);
    INSERT INTO z_pgroups.log SELECT * FROM zoo_import_rows(n);
    CREATE INDEX ON z_pgroups.log (ts);
    PERFORM retention_add_policy('z_pgroups.log', 'ts', '50 days', 'partitioned_groups');
    INSERT INTO zoo_shapes VALUES ('partitioned_groups', 'log hash-partitioned by key, 21 groups of identical times',
      $$DELETE FROM z_pgroups.log WHERE ts < now() - interval '50 days';$$, '{z_pgroups.log}', NULL, NULL);

    -- 10. Orphans: posts expire; tags referenced by no remaining post go.
    n := greatest(100, (200000 * scale)::bigint);
    DROP SCHEMA IF EXISTS z_orphan CASCADE; CREATE SCHEMA z_orphan;
    CREATE TABLE z_orphan.tag (id bigint PRIMARY KEY, created timestamptz NOT NULL);
    CREATE TABLE z_orphan.post (id bigint PRIMARY KEY, tag_id bigint REFERENCES z_orphan.tag, ts timestamptz NOT NULL);
    INSERT INTO z_orphan.tag SELECT i, now() - interval '200 days' FROM generate_series(1, n / 10) i;
    INSERT INTO z_orphan.post SELECT i, 1 + (hashint8(i) & 2147483647) % (n / 10 - n / 100), zoo_time(i::float8 / n, 97)
      FROM generate_series(1, n) i;
    CREATE INDEX ON z_orphan.post (ts);
    CREATE INDEX ON z_orphan.post (tag_id);
    PERFORM retention_add_policy('z_orphan.post', 'ts', '97 days', 'orphans');
    PERFORM retention_add_orphan_policy('z_orphan.tag', 'created', '1 day', 'orphans');
    INSERT INTO zoo_shapes VALUES ('orphans', 'expired posts, then tags no post references',
      $$DELETE FROM z_orphan.post WHERE ts < now() - interval '97 days';
        DELETE FROM z_orphan.tag t WHERE created < now() - interval '1 day' AND NOT EXISTS (SELECT 1 FROM z_orphan.post p WHERE p.tag_id = t.id);$$,
      '{z_orphan.tag,z_orphan.post}', NULL, NULL);
END
$zoo$;
