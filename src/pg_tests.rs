//! In-database tests (`cargo pgrx test`): each runs in one transaction that
//! is rolled back. Commits, concurrency and the demo schema are covered by
//! the integration tests in `tests/`.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn execute_deletes_expired_rows_children_first() {
        Spi::run(
            "CREATE TABLE parent (id int PRIMARY KEY, ts timestamptz NOT NULL);
             CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent);
             INSERT INTO parent SELECT g, now() - g * interval '1 day' FROM generate_series(1, 10) g;
             INSERT INTO child SELECT g, (g % 10) + 1 FROM generate_series(1, 50) g;
             SELECT retention_add_policy('parent', 'ts', '5 days 12 hours');",
        )
        .unwrap();
        let total = Spi::get_one::<i64>("SELECT total_deleted FROM retention_execute(3)").unwrap();
        // parents 6..10 expire, with their 5 children each.
        assert_eq!(total, Some(5 + 25));
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM parent").unwrap(),
            Some(5)
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM child").unwrap(),
            Some(25)
        );
    }
}
