//! Cold-start benchmark: process start to first scored response of the
//! `churn-score` binary (model fetched from S3 on moto_server), against a
//! Python handler importing boto3, pandas and scikit-learn that fetches a
//! pickled model from the same S3 — both behind the same Runtime API
//! emulator, with the same Function URL event, alternated A B A B.
//!
//! ```sh
//! cargo run --release -p churn-e2e --example cold_start -- [runs] [python]
//! ```
//! `python` defaults to `/tmp/bench-venv/bin/python` (numpy, pandas,
//! scikit-learn, boto3). Prints every run and the medians.

use anyhow::Context;
use churn_e2e::binaries::{function_binary, workspace_root};
use churn_e2e::function::{aws_env, function_url_event, http_response, spawn_function};
use churn_e2e::runtime_api::RuntimeApi;
use churn_model::{generate, SyntheticConfig};
use churn_service::features::write_table;
use churn_service::features::FeatureSources;
use churn_service::handlers::train::{handle_train, Gate, TrainOptions, TrainRequest};
use churn_service::model_store::S3ModelStore;
use churn_service::test_support::MotoServer;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BUCKET: &str = "coldstart";

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Spawns `cmd`-like function, invokes once, returns (ms to first poll, ms to response).
async fn one_run(
    spawn: impl FnOnce(&RuntimeApi) -> anyhow::Result<std::process::Child>,
) -> anyhow::Result<(f64, f64)> {
    let api = RuntimeApi::start().await?;
    let body = json!({"customers": [{"customer_id": "c1", "features": {
        "logins_30d": 2, "active_days_30d": 1, "sessions_30d": 3, "tenure_months": 5,
        "support_tickets_90d": 4, "days_since_last_login": 20}}]})
    .to_string();
    let event = function_url_event("POST", "/v1/score", "", Some(&body));
    let t0 = Instant::now();
    let mut child = spawn(&api)?;
    let out = api.invoke(&event, Duration::from_secs(60)).await;
    let total = t0.elapsed().as_secs_f64() * 1e3;
    let init = api
        .first_poll()
        .map_or(f64::NAN, |t| (t - t0).as_secs_f64() * 1e3);
    let _ = child.kill();
    let _ = child.wait();
    let (status, v) = http_response(&out?.json()?)?;
    anyhow::ensure!(status == 200, "status {status}: {v}");
    anyhow::ensure!(
        v["scores"][0]["churn_probability"].is_number(),
        "no score in {v}"
    );
    Ok((init, total))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().map_or(Ok(7), |s| s.parse())?;
    let python = args
        .next()
        .unwrap_or_else(|| "/tmp/bench-venv/bin/python".into());
    let score_bin = function_binary("churn-score", "churn-score")?;
    let moto = MotoServer::start().await?;
    let clients = moto.clients().await;
    clients.s3.create_bucket().bucket(BUCKET).send().await?;

    // The Rust side's model, trained and promoted with the train handler.
    let dir = tempfile::tempdir()?;
    let csv = dir.path().join("train.csv");
    write_table(
        &generate(&SyntheticConfig {
            customers: 5000,
            seed: 1,
        }),
        &csv,
    )?;
    let store = S3ModelStore::new(clients.s3.clone(), BUCKET, "models");
    let request = TrainRequest {
        features: csv.display().to_string(),
        id_column: None,
        label_column: None,
        schema: None,
        options: TrainOptions::default(),
    };
    let trained = handle_train(
        &request,
        &store,
        &FeatureSources::new(),
        Gate {
            min_auc: 0.5,
            max_auc_drop: 1.0,
        },
    )
    .await?;
    anyhow::ensure!(trained.promoted, "{}", trained.reason);

    // The Python side's model: a pickled scikit-learn logistic regression.
    let env = aws_env(&moto.endpoint_url());
    let bench = workspace_root().join("tests/bench");
    let status = Command::new(&python)
        .arg(bench.join("python_model.py"))
        .args([BUCKET, "py/model.pkl"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .status()
        .with_context(|| format!("running {python}"))?;
    anyhow::ensure!(status.success(), "python_model.py failed");

    let mut rust_env = env.clone();
    rust_env.push(("CHURN_MODELS", format!("s3://{BUCKET}/models")));
    rust_env.push(("CHURN_FLAGS", "dynamodb://unused-at-cold-start".into()));
    let (mut rust, mut rust_init, mut py, mut py_init) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let (ri, rt) = one_run(|api| {
            Ok(spawn_function(&score_bin, "churn-score", api, &rust_env)?.into_child())
        })
        .await?;
        let (pi, pt) = one_run(|api| {
            Ok(Command::new(&python)
                .arg(bench.join("python_handler.py"))
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .env("AWS_LAMBDA_RUNTIME_API", api.endpoint())
                .env("MODEL_BUCKET", BUCKET)
                .env("MODEL_KEY", "py/model.pkl")
                .stdout(Stdio::null())
                .spawn()?)
        })
        .await?;
        println!("run {run}: rust {rt:7.1} ms (loop up {ri:6.1} ms)   python {pt:7.1} ms (loop up {pi:6.1} ms)");
        rust.push(rt);
        rust_init.push(ri);
        py.push(pt);
        py_init.push(pi);
    }
    let (r, p) = (median(&mut rust), median(&mut py));
    println!(
        "median over {runs} runs: rust {r:.1} ms (runtime loop up after {:.1} ms), python {p:.1} ms (loop up after {:.1} ms); python/rust = {:.1}x",
        median(&mut rust_init),
        median(&mut py_init),
        p / r
    );
    Ok(())
}
