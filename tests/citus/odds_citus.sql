-- The odds schema (bench/odds_schema.sql) made distributed, as a Citus user
-- shards it: tournaments a reference table; events, their snapshots and
-- market odds hash-distributed by event and co-located. Citus wants every
-- primary and foreign key between distributed tables to hold the
-- distribution column, so snapshots and market odds get (event_id, id) keys
-- and market odds an event_id. `market_action` is the foreign key action of
-- market odds to their snapshot (CASCADE in the odds schema, NO ACTION in
-- the variant).
CREATE FUNCTION odds_distribute(prefix text, market_action text, shards integer)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %I ADD COLUMN event_id bigint', prefix || 'market_odds');
    EXECUTE format('UPDATE %I m SET event_id = s.event_id FROM %I s WHERE s.id = m.snapshot_id',
                   prefix || 'market_odds', prefix || 'odds_snapshots');
    EXECUTE format('ALTER TABLE %I ALTER event_id SET NOT NULL, DROP CONSTRAINT %I, DROP CONSTRAINT %I,
                    ADD PRIMARY KEY (event_id, id)',
                   prefix || 'market_odds', prefix || 'market_odds_snapshot_id_fkey', prefix || 'market_odds_pkey');
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I, DROP CONSTRAINT %I, ADD PRIMARY KEY (event_id, id)',
                   prefix || 'odds_snapshots', prefix || 'odds_snapshots_pkey', prefix || 'odds_snapshots_event_id_fkey');
    EXECUTE format('CREATE INDEX ON %I (event_id, snapshot_id)', prefix || 'market_odds');
    PERFORM create_reference_table(prefix || 'tournaments');
    PERFORM create_distributed_table(prefix || 'events', 'id', shard_count => shards);
    PERFORM create_distributed_table(prefix || 'odds_snapshots', 'event_id', colocate_with => prefix || 'events');
    PERFORM create_distributed_table(prefix || 'market_odds', 'event_id', colocate_with => prefix || 'events');
    EXECUTE format('ALTER TABLE %I ADD FOREIGN KEY (event_id) REFERENCES %I (id)',
                   prefix || 'odds_snapshots', prefix || 'events');
    EXECUTE format('ALTER TABLE %I ADD FOREIGN KEY (event_id, snapshot_id) REFERENCES %I (event_id, id) ON DELETE %s',
                   prefix || 'market_odds', prefix || 'odds_snapshots', market_action);
    PERFORM truncate_local_data_after_distributing_table(prefix || t)
    FROM unnest(ARRAY['tournaments', 'events', 'odds_snapshots', 'market_odds']) t;
END
$$;
