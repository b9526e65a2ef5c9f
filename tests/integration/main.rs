//! Integration tests against a real running cluster, several connections.
//! `scripts/test.sh` starts the cluster, installs the extension and sets
//! PGHOST/PGPORT; each test works in a database of its own.

mod broken;
mod common;
mod core;
mod crash;
mod cron;
mod declarative;
mod differential;
mod ecosystem;
mod inputs;
mod keys;
mod partitions;
mod plans;
mod progress;
mod run;
mod safety;
mod security;
mod sweep;
