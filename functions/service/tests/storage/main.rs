//! Storage ports and adapters: one contract suite per port run against every
//! adapter (SQLite and DynamoDB-on-moto flag stores, directory and
//! S3-on-moto model stores; SQLite, directory and S3-on-moto run stores), the model cache, and the DynamoDB retry and
//! chunking paths through the fault-injecting proxy.
//!
//! Needs `moto_server` (scripts/dev-env.sh installs it into `.venv`).

mod account_contract;
mod dynamo_faults;
mod flag_contract;
mod model_cache;
mod model_contract;
mod run_contract;
