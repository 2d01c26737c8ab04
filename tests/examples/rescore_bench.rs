//! Rescoring benchmark: the real `churn-rescore` binary, under
//! `/usr/bin/time -v`, rescoring an N-row snapshot (default 1,000,000) into
//! SQLite (default) or DynamoDB on moto_server, through the Runtime API
//! emulator with an EventBridge scheduled event. Then a second process
//! rescoring the unchanged snapshot: the fraction of items rewritten.
//!
//! ```sh
//! cargo run --release -p churn-e2e --example rescore_bench -- [rows] [sqlite|dynamodb|dynamodb-batch]
//! ```
//! Prints rows/s, peak RSS of each process, and the rerun's written fraction.
//! On DynamoDB (`dynamodb-batch`: `CHURN_FLAG_WRITES=batch`) the function
//! talks to moto through a counting proxy, and each run also prints what a
//! user pays for: requests per operation and write capacity units per 1,000
//! changed rows. WCUs follow DynamoDB's billing: each item written costs
//! ceil(item size / 1 KB), sizes computed from the stored items by DynamoDB's
//! item-size rules (attribute names + values); a conditional put costs the
//! same as an unconditional one. Reads: BatchGetItem, strongly consistent,
//! ceil(size / 4 KB) each, on the whole item (attributes, acknowledgement and
//! history included).

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use churn_e2e::binaries::function_binary;
use churn_e2e::function::{aws_env, lambda_command, scheduled_event};
use churn_e2e::runtime_api::RuntimeApi;
use churn_model::{generate, SyntheticConfig};
use churn_service::features::write_table;
use churn_service::features::FeatureSources;
use churn_service::flag_store::{DynamoFlagStore, FlagStore};
use churn_service::handlers::train::{handle_train, Gate, TrainOptions, TrainRequest};
use churn_service::model_store::DirModelStore;
use churn_service::test_support::{FaultProxy, MotoServer};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// One rescore process: (summary, wall seconds of the invocation, peak RSS in MiB).
async fn run(
    bin: &Path,
    env: &[(&str, String)],
    time_out: &Path,
) -> anyhow::Result<(Value, f64, f64)> {
    let api = RuntimeApi::start().await?;
    let mut cmd = lambda_command(Path::new("/usr/bin/time"), "churn-rescore", &api, env);
    cmd.arg("-v").arg("-o").arg(time_out).arg(bin);
    let mut child = cmd.spawn().context("running /usr/bin/time")?;
    let t0 = Instant::now();
    let out = api
        .invoke(&scheduled_event(), Duration::from_secs(3600))
        .await;
    let secs = t0.elapsed().as_secs_f64();
    // Killing `time` would lose its report: end the function (its child, by
    // pid); `time` then writes the report and exits.
    let pid = child.id();
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    for grandchild in children.split_whitespace() {
        let _ = std::process::Command::new("kill").arg(grandchild).status();
    }
    let _ = child.wait();
    let summary = out?.json()?;
    let report = std::fs::read_to_string(time_out)?;
    let kb: f64 = report
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .context("no max RSS in the time report")?
        .trim()
        .parse()?;
    Ok((summary, secs, kb / 1024.0))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let backend = args.next().unwrap_or_else(|| "sqlite".into());
    let bin = function_binary("churn-rescore", "churn-rescore")?;
    let dir = tempfile::tempdir()?;

    let t = Instant::now();
    let snapshot = dir.path().join("snapshot.csv");
    write_table(
        &generate(&SyntheticConfig {
            customers: rows,
            seed: 11,
        }),
        &snapshot,
    )?;
    let size = std::fs::metadata(&snapshot)?.len() as f64 / 1e6;
    eprintln!(
        "snapshot: {rows} rows, {size:.0} MB ({:.1} s to generate)",
        t.elapsed().as_secs_f64()
    );

    let models_dir = dir.path().join("models");
    let train_csv = dir.path().join("train.csv");
    write_table(
        &generate(&SyntheticConfig {
            customers: 20_000,
            seed: 12,
        }),
        &train_csv,
    )?;
    let request = TrainRequest {
        features: train_csv.display().to_string(),
        id_column: None,
        label_column: None,
        schema: None,
        options: TrainOptions::default(),
    };
    let store = DirModelStore::new(&models_dir);
    let gate = Gate {
        min_auc: 0.5,
        max_auc_drop: 1.0,
    };
    anyhow::ensure!(
        handle_train(&request, &store, &FeatureSources::new(), gate)
            .await?
            .promoted
    );

    let mut env = vec![
        ("CHURN_MODELS", models_dir.display().to_string()),
        ("CHURN_SNAPSHOT", snapshot.display().to_string()),
    ];
    let mut dynamo = None;
    if backend.starts_with("dynamodb") {
        let moto = MotoServer::start().await?;
        let proxy = FaultProxy::start(moto.addr()).await?;
        let clients = moto.clients().await;
        DynamoFlagStore::new(clients.dynamodb.clone(), "bench-flags", 8)
            .create_table_if_missing()
            .await?;
        env.extend(aws_env(&proxy.endpoint_url()));
        env.push(("CHURN_FLAGS", "dynamodb://bench-flags".into()));
        if backend == "dynamodb-batch" {
            env.push(("CHURN_FLAG_WRITES", "batch".into()));
        }
        dynamo = Some((moto, proxy, clients.dynamodb));
    } else {
        env.push((
            "CHURN_FLAGS",
            format!("sqlite://{}", dir.path().join("flags.db").display()),
        ));
    }

    let time_out = dir.path().join("time.txt");
    let (first, secs, rss) = run(&bin, &env, &time_out).await?;
    println!(
        "first run:  {} rows scored, {} written in {secs:.2} s = {:.0} rows/s; peak RSS {rss:.1} MiB",
        first["scored"],
        first["written"],
        first["rows"].as_f64().unwrap_or(0.0) / secs
    );
    let mut seen = HashMap::new();
    if let Some((_, proxy, client)) = &dynamo {
        seen = report_costs("first run", proxy, client, &first, &seen).await?;
    }
    let (again, secs, rss) = run(&bin, &env, &time_out).await?;
    let written = again["written"].as_f64().unwrap_or(f64::NAN);
    let scored = again["scored"].as_f64().unwrap_or(f64::NAN);
    println!(
        "rerun:      {} rows scored, {} written ({:.3} % of items), {} skipped unchanged, in {secs:.2} s = {:.0} rows/s; peak RSS {rss:.1} MiB",
        again["scored"],
        again["written"],
        100.0 * written / scored,
        again["skipped_unchanged"],
        again["rows"].as_f64().unwrap_or(0.0) / secs
    );
    if let Some((_, proxy, client)) = &dynamo {
        report_costs("rerun", proxy, client, &again, &seen).await?;
    }
    Ok(())
}

/// Prints the requests of one run (the proxy's counts since `before`) and
/// the write capacity per 1,000 changed rows; returns the counts so far.
async fn report_costs(
    run: &str,
    proxy: &FaultProxy,
    client: &aws_sdk_dynamodb::Client,
    summary: &Value,
    before: &HashMap<String, usize>,
) -> anyhow::Result<HashMap<String, usize>> {
    let now = proxy.stats().requests;
    let written = summary["written"].as_f64().unwrap_or(0.0);
    let per_k = |n: usize| {
        if written > 0.0 {
            n as f64 * 1000.0 / written
        } else {
            f64::NAN
        }
    };
    let mut ops: Vec<_> = now.iter().collect();
    ops.sort();
    for (op, n) in ops {
        let n = n - before.get(op).copied().unwrap_or(0);
        if n > 0 {
            println!(
                "  {run}: {op} {n} requests ({:.1} per 1,000 changed rows)",
                per_k(n)
            );
        }
    }
    if written > 0.0 {
        let (items, bytes, wcu) = table_sizes(client).await?;
        println!(
            "  {run}: stored items average {:.0} bytes, so {:.0} WCU per 1,000 changed rows \
             (1 KB units); reads: one strongly consistent item read (1 RCU, under 4 KB) per row scored",
            bytes as f64 / items.max(1) as f64,
            1000.0 * wcu as f64 / items.max(1) as f64
        );
    }
    Ok(now)
}

/// Items in the flag table, their total size and the WCUs writing each once costs.
async fn table_sizes(client: &aws_sdk_dynamodb::Client) -> anyhow::Result<(usize, usize, usize)> {
    let mut pages = client
        .scan()
        .table_name("bench-flags")
        .into_paginator()
        .items()
        .send();
    let (mut items, mut bytes, mut wcu) = (0, 0, 0);
    while let Some(item) = pages.next().await {
        let size = item_size(&item?);
        items += 1;
        bytes += size;
        wcu += size.div_ceil(1024);
    }
    Ok((items, bytes, wcu))
}

/// An item's size by DynamoDB's rules: each attribute's name plus its value
/// (strings and binaries their bytes; numbers about one byte per two digits
/// plus one; lists and maps 3 bytes plus their elements, one byte each).
fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.trim_start_matches('-').replace('.', "").len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_size(e))
                .sum::<usize>()
        }
        AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
        _ => 0,
    }
}
