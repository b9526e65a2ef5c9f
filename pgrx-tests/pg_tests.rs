//! In-database tests (`cargo pgrx test`): each runs in one transaction that
//! is rolled back. Commits, concurrency and the demo schema are covered by
//! the integration tests in `tests/`.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn count(sql: &str) -> i64 {
        Spi::get_one::<i64>(sql).unwrap().unwrap_or_default()
    }

    /// parent(10 rows, one a day back) <- child(5 per parent) <- grandchild(2 per child)
    fn chain() {
        Spi::run(
            "CREATE TABLE parent (id int PRIMARY KEY, ts timestamptz NOT NULL);
             CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent);
             CREATE TABLE grandchild (id int PRIMARY KEY, child_id int NOT NULL REFERENCES child ON DELETE CASCADE);
             INSERT INTO parent SELECT g, now() - g * interval '1 day' - interval '1 hour' FROM generate_series(1, 10) g;
             INSERT INTO child SELECT g, (g % 10) + 1 FROM generate_series(1, 50) g;
             INSERT INTO grandchild SELECT g, (g % 50) + 1 FROM generate_series(1, 100) g;",
        )
        .unwrap();
    }

    #[pg_test]
    fn execute_deletes_expired_rows_children_first() {
        chain();
        Spi::run("SELECT retention_add_policy('parent', 'ts', '5 days')").unwrap();
        // Parents 5..10 expire, with their 5 children each and 2 grandchildren per child.
        assert_eq!(
            count("SELECT total_deleted FROM retention_execute(3)"),
            6 + 30 + 60
        );
        assert_eq!(count("SELECT count(*) FROM parent"), 4);
        assert_eq!(count("SELECT count(*) FROM child"), 20);
        assert_eq!(count("SELECT count(*) FROM grandchild"), 40);
        assert_eq!(count("SELECT count(*) FROM child c LEFT JOIN parent p ON p.id = c.parent_id WHERE p.id IS NULL"), 0);
    }

    #[pg_test]
    fn preview_lists_the_run_order_and_counts() {
        chain();
        Spi::run("SELECT retention_add_policy('parent', 'ts', '5 days')").unwrap();
        let order = Spi::get_one::<String>(
            "SELECT string_agg(relation::text || '=' || rows_to_delete, ',' ORDER BY step) FROM retention_preview()",
        )
        .unwrap();
        assert_eq!(order.as_deref(), Some("grandchild=60,child=30,parent=6"));
        let reason =
            Spi::get_one::<String>("SELECT reason FROM retention_preview() WHERE step = 2")
                .unwrap();
        assert_eq!(
            reason.as_deref(),
            Some("references an expiring row of public.parent")
        );
    }

    #[pg_test]
    fn history_row_is_complete() {
        chain();
        Spi::run("SELECT retention_add_policy('parent', 'ts', '5 days', 'lbl')").unwrap();
        Spi::run("SELECT retention_execute(4, 'lbl')").unwrap();
        let row = Spi::get_one::<String>(
            "SELECT format('%s|%s|%s|%s|%s', status, total_deleted, batch_size, label, jsonb_array_length(tables)) FROM cleanup_runs",
        )
        .unwrap();
        assert_eq!(row.as_deref(), Some("succeeded|96|4|lbl|3"));
        let parent = Spi::get_one::<String>(
            "SELECT t->>'deleted' FROM cleanup_runs, jsonb_array_elements(tables) t WHERE t->>'relation' = 'public.parent'",
        )
        .unwrap();
        assert_eq!(parent.as_deref(), Some("6"));
    }

    #[pg_test(error = "batch_size must be a positive number of rows, not 0")]
    fn zero_batch_size_is_refused() {
        Spi::run("SELECT retention_execute(0)").unwrap();
    }

    #[pg_test(error = "column \"missing\" of relation public.parent does not exist")]
    fn unknown_column_is_refused() {
        chain();
        Spi::run("SELECT retention_add_policy('parent', 'missing', '1 day')").unwrap();
    }
}
