#!/usr/bin/env node
// docs/clients.md's node-postgres examples, run against a test cluster.
//
// The blocks between `// [doc:NAME]` and `// [/doc:NAME]` are quoted in
// docs/clients.md word for word (tests/clients/doc_blocks.py checks it).
// Connects with libpq's environment (PGHOST, PGPORT, PGUSER: `eval "$(bash
// scripts/cluster.sh env test 55432)"`; node-postgres reads the same
// variables), makes its own database clients_node, and exits non-zero on the
// first claim that does not hold.
//
//     node tests/clients/node_pg.js     (after `npm ci` in tests/clients)
'use strict';

const assert = require('node:assert/strict');
const { Client } = require('pg');

const DB = 'clients_node';
const NAME = 'node_pg.js';

function expect(actual, expected, what) {
  assert.deepStrictEqual(actual, expected, what);
  console.log(`${NAME}: ok: ${what} = ${JSON.stringify(actual)}`);
}

async function scalar(client, sql) {
  const { rows } = await client.query({ text: sql, rowMode: 'array' });
  return rows[0][0];
}

async function addRows(client, table, first, n, age) {
  await client.query(
    `INSERT INTO ${table} (id, created_at)
     SELECT g, now() - $1::interval FROM generate_series($2::bigint, $3::bigint) g`,
    [age, first, first + n - 1],
  );
}

async function freshDatabase() {
  const admin = new Client({ database: 'postgres' });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${DB}`);
  await admin.end();
  const client = new Client({ database: DB });
  await client.connect();
  await client.query('CREATE EXTENSION pg_retention');
  for (const table of ['app_events', 'app_sessions']) {
    await client.query(`CREATE TABLE ${table} (id bigint PRIMARY KEY, created_at timestamptz NOT NULL)`);
    await client.query(`CREATE INDEX ON ${table} (created_at)`);
  }
  // 250 rows 40 days old (expired under a 30-day window), 20 of today.
  await addRows(client, 'app_events', 1, 250, '40 days');
  await addRows(client, 'app_events', 1001, 20, '1 hour');
  // 90 expired and 10 young rows for the wrong-way examples.
  await addRows(client, 'app_sessions', 1, 90, '40 days');
  await addRows(client, 'app_sessions', 1001, 10, '1 hour');
  await client.end();
}

async function checkLastRun(client, status, total, relation, what) {
  const { rows } = await client.query(
    'SELECT status, total_deleted, tables FROM cleanup_runs ORDER BY id DESC LIMIT 1',
  );
  expect(rows[0].status, status, `${what}: cleanup_runs.status`);
  expect(rows[0].total_deleted, String(total), `${what}: cleanup_runs.total_deleted`);
  const deleted = Object.fromEntries(rows[0].tables.map((t) => [t.relation, t.deleted]));
  expect(deleted, { [relation]: total }, `${what}: cleanup_runs.tables (deleted per relation)`);
}

async function main() {
  await freshDatabase();

  // [doc:node-call]
  const client = new Client({ database: DB }); // host, port, user: PGHOST, PGPORT, PGUSER
  await client.connect();
  await client.query("SELECT retention_add_policy('app_events', 'created_at', '30 days')");
  await client.query("SET pg_retention.batch_pause = '10ms'"); // a setting: a statement of its own
  await client.query('CALL retention_run($1)', [100]); // outside BEGIN, alone: it may commit
  const { rows } = await client.query(
    'SELECT status, total_deleted FROM cleanup_runs ORDER BY id DESC LIMIT 1',
  );
  console.log(rows[0]); // { status: 'succeeded', total_deleted: '250' } (bigint comes as a string)
  // [/doc:node-call]
  expect(rows[0], { status: 'succeeded', total_deleted: '250' }, 'CALL retention_run($1) outside BEGIN');
  await checkLastRun(client, 'succeeded', 250, 'public.app_events', 'CALL outside BEGIN');
  expect(await scalar(client, 'SELECT count(*)::int FROM cleanup_runs'), 1, 'history rows after one CALL');
  expect(await scalar(client, 'SELECT count(*)::int FROM app_events'), 20, 'app_events rows left');

  // [doc:node-begin]
  await client.query('BEGIN');
  await client.query("SELECT retention_add_policy('app_sessions', 'created_at', '30 days')");
  const inBegin = await client.query('CALL retention_run($1)', [1000]).catch((err) => err);
  console.log(inBegin.code, inBegin.hint); // 25001 Send CALL retention_run(...) as a command of its own ...
  await client.query('ROLLBACK'); // rolls back the retention_add_policy above as well
  // [/doc:node-begin]
  assert.ok(inBegin instanceof Error, 'CALL retention_run after BEGIN did not fail');
  expect(inBegin.code, '25001', 'CALL after BEGIN: SQLSTATE');
  assert.match(inBegin.hint ?? '', /autocommit/, 'the 25001 hint does not mention autocommit');
  console.log(`${NAME}: ok: the 25001 hint mentions autocommit`);
  expect(
    await scalar(client, "SELECT count(*)::int FROM retention_policies WHERE relation = 'app_sessions'::regclass"),
    0,
    'policies on app_sessions after the ROLLBACK (the retention_add_policy was undone)',
  );

  // [doc:node-multi]
  const multi = await client.query('SELECT 1; CALL retention_run()').catch((err) => err);
  console.log(multi.code); // 25001: one query string is one transaction
  // [/doc:node-multi]
  assert.ok(multi instanceof Error, "'SELECT 1; CALL retention_run()' did not fail");
  expect(multi.code, '25001', "'SELECT 1; CALL retention_run()': SQLSTATE");

  // The same with a policy added in the string: it is rolled back with it.
  const withPolicy = await client
    .query("SELECT retention_add_policy('app_sessions', 'created_at', '30 days'); CALL retention_run()")
    .catch((err) => err);
  expect(withPolicy.code, '25001', 'retention_add_policy and CALL in one string: SQLSTATE');
  expect(
    await scalar(client, "SELECT count(*)::int FROM retention_policies WHERE relation = 'app_sessions'::regclass"),
    0,
    'policies on app_sessions after the failed string',
  );
  expect(await scalar(client, 'SELECT count(*)::int FROM cleanup_runs'), 1, 'history rows after the refused CALLs');
  expect(await scalar(client, 'SELECT count(*)::int FROM app_sessions'), 100, 'app_sessions rows after the refused CALLs');

  // The session is usable afterwards, and the CALL alone works.
  await client.query("SELECT retention_add_policy('app_sessions', 'created_at', '30 days')");
  await client.query('CALL retention_run($1)', [1000]);
  await checkLastRun(client, 'succeeded', 90, 'public.app_sessions', 'CALL alone after the refusals');

  await addRows(client, 'app_events', 2001, 70, '40 days');
  // [doc:node-execute]
  await client.query('BEGIN');
  const execute = await client.query('SELECT status, total_deleted FROM retention_execute(1000)');
  await client.query('COMMIT'); // the deletes and the history row commit together
  // [/doc:node-execute]
  expect(execute.rows[0], { status: 'succeeded', total_deleted: '70' }, 'retention_execute inside BEGIN');
  await checkLastRun(client, 'succeeded', 70, 'public.app_events', 'retention_execute inside BEGIN');
  expect(await scalar(client, 'SELECT count(*)::int FROM app_events'), 20, 'app_events rows left');
  await client.end();

  const admin = new Client({ database: 'postgres' });
  await admin.connect();
  await admin.query(`DROP DATABASE ${DB} WITH (FORCE)`);
  await admin.end();
  console.log(`${NAME}: passed`);
}

main().catch((err) => {
  console.error(`${NAME}: FAIL: ${err.code ? `SQLSTATE ${err.code}: ` : ''}${err.message}`);
  process.exit(1);
});
