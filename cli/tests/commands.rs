//! Every `churn` command driven through the built binary: the happy paths
//! against a small `churn demo` (3,000 customers) and the error cases a new
//! user runs into (missing file, wrong column, empty model store, bad schema
//! file, unknown model id, no flag store).

use assert_cmd::Command;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

#[path = "support/cli.rs"]
mod cli;
use cli::{churn, data_csv, demo, demo_copy, http, json, run, Server, CUSTOMERS};

/// A user error: exit 1 and exactly one sentence on stderr, no backtrace.
fn assert_user_error(cmd: &mut Command, needle: &str) -> String {
    let (code, stdout, stderr) = run(cmd.arg("--quiet"));
    assert_eq!(
        code, 1,
        "expected exit 1; stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected: {stderr}"
    );
    assert!(
        !stderr.contains("backtrace") && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(
        stderr.contains(needle),
        "stderr does not mention {needle:?}: {stderr}"
    );
    stderr
}

// ---------------------------------------------------------------- demo

#[test]
fn demo_trains_rescores_and_shows_the_high_risk_list_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) =
        run(churn(dir.path()).args(["demo", "--customers", "2000", "--seed", "7", "--dir", "out"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("promoted  yes"), "{stdout}");
    assert!(stdout.contains("ROC AUC"));
    assert!(stdout.contains("== Rescored 2000 customers"), "{stdout}");
    let list = stdout
        .split("high-risk list ==")
        .nth(1)
        .expect("risk list section");
    let rows: Vec<&str> = list
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|n| n.parse::<usize>().is_ok())
        })
        .collect();
    assert_eq!(rows.len(), 20, "{list}");
    for row in &rows {
        assert!(row.contains(" high "), "{row}");
        assert!(row.contains("(typical "), "no reasons: {row}");
    }
    // A non-default --dir is spelled out in the suggested next commands.
    assert!(stdout.contains("--flags sqlite://out/flags.db"), "{stdout}");
    for file in [
        "out/customers.csv",
        "out/flags.db",
        "out/models/current.json",
    ] {
        assert!(dir.path().join(file).exists(), "{file} missing");
    }
    // Progress went to stderr as plain lines (not a terminal).
    assert!(stderr.contains("training on"), "{stderr}");

    // Again on the same --dir: the same data retrained later is the same
    // model (same id, created_at aside); the stored artifact is kept and
    // stays the promoted one, its sha256 in current.json.
    let pointer = |dir: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/models/current.json")).unwrap())
            .unwrap()
    };
    let first = pointer(dir.path());
    let id = first["model_id"].as_str().unwrap().to_string();
    let artifact_path = dir.path().join("out/models").join(&id).join("model.json");
    let artifact = std::fs::read(&artifact_path).unwrap();
    let created_at = json(std::str::from_utf8(&artifact).unwrap())["created_at"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!created_at.starts_with("1970"), "{created_at}");
    let (code, stdout, stderr) =
        run(churn(dir.path()).args(["demo", "--customers", "2000", "--seed", "7", "--dir", "out"]));
    assert_eq!(code, 0, "second demo failed: {stderr}");
    assert!(stdout.contains("promoted  yes"), "{stdout}");
    let second = pointer(dir.path());
    assert_eq!(second["model_id"], first["model_id"]);
    assert_eq!(
        std::fs::read(&artifact_path).unwrap(),
        artifact,
        "never overwritten"
    );
    assert_eq!(
        second["sha256"].as_str().unwrap(),
        churn_service::model_store::sha256_hex(&artifact)
    );
}

#[test]
fn demo_is_quiet_with_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) =
        run(churn(dir.path()).args(["--quiet", "demo", "--customers", "1500", "--dir", "d"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr, "");
    assert!(stdout.contains("high-risk list"));
    assert_user_error(
        churn(dir.path()).args(["demo", "--customers", "100", "--dir", "t"]),
        "at least 1000",
    );
}

// ---------------------------------------------------------------- generate

#[test]
fn generate_writes_seeded_csv_and_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, seed) in [("a.csv", "5"), ("b.csv", "5"), ("c.csv", "6")] {
        let (code, _, stderr) = run(churn(d).args([
            "generate",
            "--customers",
            "500",
            "--seed",
            seed,
            "--out",
            name,
        ]));
        assert_eq!(code, 0, "{stderr}");
    }
    let a = std::fs::read_to_string(d.join("a.csv")).unwrap();
    assert_eq!(a.lines().count(), 501);
    let header: Vec<&str> = a.lines().next().unwrap().split(',').collect();
    for col in [
        "customer_id",
        "logins_30d",
        "plan",
        "region",
        "nps",
        "churned",
    ] {
        assert!(header.contains(&col), "{col} missing from {header:?}");
    }
    assert_eq!(
        a,
        std::fs::read_to_string(d.join("b.csv")).unwrap(),
        "same seed, same table"
    );
    assert_ne!(a, std::fs::read_to_string(d.join("c.csv")).unwrap());

    let (code, _, stderr) =
        run(churn(d).args(["generate", "--customers", "500", "--out", "sub/x.parquet"]));
    assert_eq!(code, 0, "{stderr}");
    let bytes = std::fs::read(d.join("sub/x.parquet")).unwrap();
    assert_eq!(&bytes[..4], b"PAR1");

    assert_user_error(
        churn(d).args(["generate", "--customers", "5", "--out", "x.txt"]),
        ".csv or .parquet",
    );
    let (code, _, stderr) = run(churn(d).args(["generate", "--customers", "0", "--out", "x.csv"]));
    assert_eq!(code, 2, "a value clap refuses is a usage error");
    assert!(
        stderr.starts_with("error: invalid value '0' for '--customers"),
        "{stderr}"
    );
    assert!(stderr.contains("at least 1"), "{stderr}");
}

// ---------------------------------------------------------------- train

#[test]
fn train_json_reports_model_metrics_and_promotion() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = data_csv();
    let (code, stdout, stderr) = run(churn(d).args([
        "train",
        "--data",
        data.to_str().unwrap(),
        "--id",
        "customer_id",
        "--label",
        "churned",
        "--models",
        "m",
        "--json",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let report = json(&stdout);
    let model_id = report["model_id"].as_str().unwrap();
    assert_eq!(model_id.len(), 64);
    assert_eq!(report["promoted"], true);
    let auc = report["metrics"]["roc_auc"].as_f64().unwrap();
    assert!(auc > 0.7 && auc <= 1.0, "auc {auc}");
    assert!(
        report["bands"]["high"].as_f64().unwrap() > report["bands"]["medium"].as_f64().unwrap()
    );
    assert_eq!(report["top_coefficients"].as_array().unwrap().len(), 10);
    assert!(d.join("m").join(model_id).join("model.json").exists());

    // The human report of a second model on the same store names the champion.
    let (code, stdout, stderr) = run(churn(d).args([
        "train",
        "--data",
        data.to_str().unwrap(),
        "--models",
        "m",
        "--seed",
        "11",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Holdout metrics"), "{stdout}");
    assert!(stdout.contains("Risk bands"));
    assert!(stdout.contains("Top coefficients"));
    assert!(stdout.contains("champion"), "{stdout}");
    assert!(stdout.contains("promoted  yes") || stdout.contains("promoted  no"));
}

/// `--max-rows` (and `CHURN_TRAIN_MAX_ROWS`) cap the rows trained on: the
/// report says how many were read and sampled; a cap below the minimum is a
/// usage error naming the flag, and a bad variable a user error naming it.
#[test]
fn train_max_rows_trains_on_a_sample_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = data_csv();
    let train = |extra: &[&str]| {
        let mut cmd = churn(d);
        cmd.args(["train", "--data", data.to_str().unwrap(), "--models", "m"])
            .args(extra);
        cmd
    };
    let (code, stdout, stderr) = run(&mut train(&["--max-rows", "1500", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    let report = json(&stdout);
    assert_eq!(report["rows"], CUSTOMERS);
    assert_eq!(report["report"]["rows_read"], CUSTOMERS);
    assert_eq!(report["report"]["rows_sampled"], 1500);
    assert!(report["report"]["sampling_shift"].as_f64().unwrap() < 0.0);
    let (code, stdout, stderr) = run(train(&[]).env("CHURN_TRAIN_MAX_ROWS", "2000"));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("sample    2000 of the {CUSTOMERS} rows")),
        "{stdout}"
    );
    let (code, _, stderr) = run(&mut train(&["--max-rows", "10"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--max-rows"), "{stderr}");
    assert_user_error(
        train(&[]).env("CHURN_TRAIN_MAX_ROWS", "ten"),
        "CHURN_TRAIN_MAX_ROWS",
    );
}

#[test]
fn train_with_a_schema_file_and_renamed_columns_then_score_renames_the_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The same data with other id and label names, and labels as yes/no.
    let text = std::fs::read_to_string(data_csv()).unwrap();
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .replace("customer_id", "account")
        .replace("churned", "cancelled");
    let mut out = String::from(&header);
    out.push('\n');
    for line in lines {
        let (rest, label) = line.rsplit_once(',').unwrap();
        out.push_str(&format!(
            "{rest},{}\n",
            if label == "1" { "yes" } else { "no" }
        ));
    }
    std::fs::write(d.join("accounts.csv"), out).unwrap();
    std::fs::write(
        d.join("schema.toml"),
        "[columns.region]\nkind = \"ignored\"\n",
    )
    .unwrap();

    let (code, stdout, stderr) = run(churn(d).args([
        "train",
        "--data",
        "accounts.csv",
        "--id",
        "account",
        "--label",
        "cancelled",
        "--schema",
        "schema.toml",
        "--models",
        "m",
        "--json",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let report = json(&stdout);
    assert_eq!(report["promoted"], true);
    let names: Vec<&str> = report["top_coefficients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with("region")),
        "ignored column used: {names:?}"
    );

    let (code, _, stderr) = run(churn(d).args([
        "score",
        "--data",
        "accounts.csv",
        "--out",
        "scores.csv",
        "--models",
        "m",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let scores = std::fs::read_to_string(d.join("scores.csv")).unwrap();
    assert!(
        scores.starts_with("customer_id,churn_probability,risk_band,reason_1,reason_2,reason_3\n")
    );
    assert_eq!(scores.lines().count(), CUSTOMERS + 1);
    assert!(scores.lines().nth(1).unwrap().starts_with("cust_"));
}

/// The bands of a `churn train --json` report and of the stored artifact.
fn trained_bands(dir: &Path, stdout: &str) -> (Value, Value) {
    let report = json(stdout);
    let id = report["model_id"].as_str().unwrap();
    let stored = std::fs::read_to_string(dir.join("m").join(id).join("model.json")).unwrap();
    (report["bands"].clone(), json(&stored)["bands"].clone())
}

#[test]
fn train_band_options_and_their_variables_reach_the_stored_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = data_csv();
    let data = data.to_str().unwrap();
    let base = ["train", "--data", data, "--models", "m", "--json"];

    // Fixed cutoffs: stored as given.
    let (code, stdout, stderr) =
        run(churn(d)
            .args(base)
            .args(["--high-cutoff", "0.5", "--medium-cutoff", "0.2"]));
    assert_eq!(code, 0, "{stderr}");
    let (reported, stored) = trained_bands(d, &stdout);
    assert_eq!(reported, stored);
    assert_eq!(stored["high"].as_f64(), Some(0.5));
    assert_eq!(stored["medium"].as_f64(), Some(0.2));
    assert_eq!(stored["policy"]["policy"], "fixed");

    // Shares from the environment (the options' fallbacks), then an option
    // winning over its variable.
    let (code, stdout, stderr) = run(churn(d)
        .args(base)
        .env("CHURN_BAND_HIGH_SHARE", "0.02")
        .env("CHURN_BAND_MEDIUM_SHARE", "0.05"));
    assert_eq!(code, 0, "{stderr}");
    let (_, narrow) = trained_bands(d, &stdout);
    assert_eq!(narrow["policy"]["policy"], "quantile");
    assert_eq!(narrow["policy"]["high_share"].as_f64(), Some(0.02));
    assert_eq!(narrow["policy"]["medium_share"].as_f64(), Some(0.05));
    let (code, stdout, stderr) = run(churn(d)
        .args(base)
        .args(["--high-share", "0.3"])
        .env("CHURN_BAND_HIGH_SHARE", "0.02"));
    assert_eq!(code, 0, "{stderr}");
    let (_, wide) = trained_bands(d, &stdout);
    assert_eq!(wide["policy"]["high_share"].as_f64(), Some(0.3));
    assert_eq!(wide["policy"]["medium_share"].as_f64(), Some(0.2));
    assert!(
        wide["high"].as_f64() < narrow["high"].as_f64(),
        "a larger high share lowers the high cutoff: {wide} vs {narrow}"
    );

    // The two forms conflict, also through a variable; cutoffs come in pairs;
    // out-of-order cutoffs name the variable. What clap refuses is a usage
    // error (exit 2); values that parse but break a rule are bad input (1).
    for (args, envs, needle, expected) in [
        (
            vec![
                "--high-share",
                "0.1",
                "--high-cutoff",
                "0.5",
                "--medium-cutoff",
                "0.2",
            ],
            vec![],
            "cannot be used with",
            2,
        ),
        (
            vec!["--high-cutoff", "0.5", "--medium-cutoff", "0.2"],
            vec![("CHURN_BAND_MEDIUM_SHARE", "0.1")],
            "cannot be used with",
            2,
        ),
        (vec!["--high-cutoff", "0.5"], vec![], "--medium-cutoff", 2),
        (
            vec!["--high-cutoff", "0.2", "--medium-cutoff", "0.5"],
            vec![],
            "CHURN_BAND_MEDIUM_CUTOFF",
            1,
        ),
        (
            vec!["--high-share", "0.8", "--medium-share", "0.5"],
            vec![],
            "CHURN_BAND_MEDIUM_SHARE",
            1,
        ),
        (
            vec!["--high-cutoff", "high", "--medium-cutoff", "0.2"],
            vec![],
            "--high-cutoff",
            2,
        ),
    ] {
        let mut cmd = churn(d);
        cmd.args(base).args(&args).arg("--quiet");
        for (k, v) in &envs {
            cmd.env(k, v);
        }
        let (code, _, stderr) = run(&mut cmd);
        assert_eq!(code, expected, "{args:?} {envs:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?} {envs:?}: {stderr}");
    }
}

#[test]
fn train_errors_are_user_errors_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = data_csv();
    let data = data.to_str().unwrap();
    // Missing file.
    assert_user_error(
        churn(d).args(["train", "--data", "nope.csv", "--models", "m"]),
        "nope.csv",
    );
    // Wrong label column / wrong id column.
    assert_user_error(
        churn(d).args([
            "train",
            "--data",
            data,
            "--label",
            "cancelled",
            "--models",
            "m",
        ]),
        "cancelled",
    );
    assert_user_error(
        churn(d).args([
            "train",
            "--data",
            data,
            "--id",
            "account_no",
            "--models",
            "m",
        ]),
        "account_no",
    );
    // Bad schema file, missing schema file.
    std::fs::write(d.join("bad.toml"), "this is = = not toml [").unwrap();
    assert_user_error(
        churn(d).args([
            "train", "--data", data, "--schema", "bad.toml", "--models", "m",
        ]),
        "schema",
    );
    assert_user_error(
        churn(d).args([
            "train",
            "--data",
            data,
            "--schema",
            "missing.toml",
            "--models",
            "m",
        ]),
        "missing.toml",
    );
    // An attribute column the schema names and the data lacks.
    std::fs::write(
        d.join("attributes.toml"),
        "[attributes]\nrenewal_date = \"renews_on\"\n",
    )
    .unwrap();
    let err = assert_user_error(
        churn(d).args([
            "train",
            "--data",
            data,
            "--schema",
            "attributes.toml",
            "--models",
            "m",
        ]),
        "renews_on",
    );
    assert!(
        err.contains("not found") || err.contains("missing"),
        "{err}"
    );
    // Unsupported input format.
    std::fs::write(d.join("data.json"), "{}").unwrap();
    assert_user_error(
        churn(d).args(["train", "--data", "data.json", "--models", "m"]),
        "data.json",
    );
    // Nothing was stored.
    assert!(!d.join("m/current.json").exists());
}

// ---------------------------------------------------------------- empty stores

#[test]
fn an_empty_model_store_is_a_user_error_everywhere_it_matters() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = data_csv();
    let data = data.to_str().unwrap();
    assert_user_error(
        churn(d).args(["score", "--data", data, "--out", "s.csv"]),
        "no model has been promoted",
    );
    assert_user_error(
        churn(d).args(["rescore", "--data", data]),
        "no model has been promoted",
    );
    assert_user_error(churn(d).args(["models", "rollback"]), "roll back");
    assert_user_error(churn(d).args(["models", "promote", "abc123"]), "abc123");
    let (code, stdout, _) = run(churn(d).args(["models", "list"]));
    assert_eq!(code, 0);
    assert!(stdout.contains("no models"), "{stdout}");
    let (code, stdout, _) = run(churn(d).args(["models", "list", "--format", "json"]));
    assert_eq!(code, 0);
    assert_eq!(json(&stdout), Value::Array(vec![]));
    // No flag store yet: a clear user error, and nothing created.
    assert_user_error(churn(d).args(["risk-list"]), "no flag store");
    assert!(
        !d.join("churn-data").exists(),
        "read-only commands must not create stores"
    );
    // Invalid store URIs.
    assert_user_error(
        churn(d).args(["risk-list", "--flags", "postgres://x"]),
        "sqlite://",
    );
    assert_user_error(
        churn(d)
            .args(["risk-list"])
            .env("CHURN_FLAGS", "mysql://db"),
        "mysql://db",
    );
}

// ---------------------------------------------------------------- after the demo

#[test]
fn risk_list_reads_the_demo_flags_in_every_format() {
    let d = demo();
    let (code, stdout, stderr) =
        run(churn(d).args(["risk-list", "--limit", "50", "--format", "csv"]));
    assert_eq!(code, 0, "{stderr}");
    let mut reader = csv_rows(&stdout);
    let header = reader.remove(0);
    assert_eq!(header[0], "customer_id");
    assert_eq!(header[1], "churn_probability");
    assert_eq!(reader.len(), 50);
    let probs: Vec<f64> = reader.iter().map(|r| r[1].parse().unwrap()).collect();
    assert!(
        probs.windows(2).all(|w| w[0] >= w[1]),
        "not sorted: {probs:?}"
    );
    assert!(reader.iter().all(|r| r[2] == "high"));
    let reason = header.iter().position(|h| h == "reason_1").unwrap();
    assert!(reader.iter().all(|r| r[reason].contains("(typical ")));
    let owner = header.iter().position(|h| h == "owner").unwrap();
    assert!(
        reader.iter().all(|r| r[owner].contains('@')),
        "the demo's accounts have owners"
    );

    let (code, stdout, _) = run(churn(d).args([
        "risk-list",
        "--band",
        "medium",
        "--limit",
        "5",
        "--format",
        "json",
    ]));
    assert_eq!(code, 0);
    let list = json(&stdout);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 5);
    for flag in list {
        assert_eq!(flag["risk_band"], "medium");
        assert!(flag["customer_id"].as_str().unwrap().starts_with("cust_"));
        assert!(!flag["reasons"].as_array().unwrap().is_empty());
        assert_eq!(flag["model_id"].as_str().unwrap().len(), 64);
    }
    // More than one store page (1000) is followed through the cursor.
    let (code, stdout, _) = run(churn(d).args([
        "risk-list",
        "--band",
        "medium",
        "--limit",
        "5000",
        "--format",
        "csv",
    ]));
    assert_eq!(code, 0);
    let medium = csv_rows(&stdout).len() - 1;
    assert!(medium > 300 && medium < 1500, "{medium} medium customers");

    let (code, stdout, _) = run(churn(d).args(["risk-list", "--limit", "3"]));
    assert_eq!(code, 0);
    let rows: Vec<&str> = stdout.lines().collect();
    assert_eq!(rows.len(), 2 + 3, "{stdout}");
    assert!(rows[0].contains("customer_id") && rows[0].contains("top reasons"));

    // Not a value the option takes: a usage error naming the bands that are.
    let (code, _, stderr) = run(churn(d).args(["risk-list", "--band", "low"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("not on risk lists; use high, medium or at-risk"),
        "{stderr}"
    );
}

fn csv_rows(text: &str) -> Vec<Vec<String>> {
    // Minimal CSV reader for the tests: quoted cells may hold commas.
    text.lines()
        .map(|line| {
            let mut cells = Vec::new();
            let mut cell = String::new();
            let mut quoted = false;
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                match (c, quoted) {
                    ('"', true) if chars.peek() == Some(&'"') => {
                        cell.push('"');
                        chars.next();
                    }
                    ('"', _) => quoted = !quoted,
                    (',', false) => cells.push(std::mem::take(&mut cell)),
                    (c, _) => cell.push(c),
                }
            }
            cells.push(cell);
            cells
        })
        .collect()
}

#[test]
fn score_writes_one_line_per_customer() {
    let d = demo();
    let out = tempfile::tempdir().unwrap();
    let score_into = |path: &Path| {
        let (code, _, stderr) = run(churn(d).args([
            "score",
            "--data",
            "churn-data/customers.csv",
            "--out",
            path.to_str().unwrap(),
        ]));
        assert_eq!(code, 0, "{stderr}");
    };
    let scores_path = out.path().join("scores.csv");
    score_into(&scores_path);
    let rows = csv_rows(&std::fs::read_to_string(&scores_path).unwrap());
    assert_eq!(
        rows[0],
        [
            "customer_id",
            "churn_probability",
            "risk_band",
            "reason_1",
            "reason_2",
            "reason_3"
        ]
    );
    assert_eq!(rows.len(), CUSTOMERS + 1);
    let mut high = 0;
    for row in &rows[1..] {
        let p: f64 = row[1].parse().unwrap();
        assert!((0.0..=1.0).contains(&p));
        assert!(["high", "medium", "low"].contains(&row[2].as_str()));
        high += usize::from(row[2] == "high");
    }
    // The high band is about the top 10 % of holdout scores.
    assert!(high > CUSTOMERS / 20 && high < CUSTOMERS / 5, "{high} high");

    // The same scores as Parquet: same columns, same rows, same words.
    let parquet_path = out.path().join("scores.parquet");
    score_into(&parquet_path);
    let table = churn_service::features::read_local_file(
        &parquet_path,
        &churn_service::features::ReadOptions::default(),
    )
    .unwrap();
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, rows[0]);
    assert_eq!(table.n_rows(), CUSTOMERS);
    let text = |col: usize, row: usize| match &table.columns[col].values {
        churn_model::ColumnValues::Text(v) => v[row].clone().unwrap_or_default(),
        churn_model::ColumnValues::Numeric(v) => format!("{:.6}", v[row]),
    };
    for (i, row) in rows[1..].iter().enumerate() {
        let from_parquet: Vec<String> = (0..6).map(|c| text(c, i)).collect();
        assert_eq!(&from_parquet, row, "row {i}");
    }

    let existing = out.path().join("keep.json");
    std::fs::write(&existing, "{}").unwrap();
    assert_user_error(
        churn(d).args([
            "score",
            "--data",
            "churn-data/customers.csv",
            "--out",
            existing.to_str().unwrap(),
        ]),
        ".csv or .parquet",
    );
    // A refused output name leaves the file that was there alone.
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "{}");
    assert_user_error(
        churn(d).args(["score", "--data", "missing.csv", "--out", "x.csv"]),
        "missing.csv",
    );
}

#[test]
fn score_reports_bad_rows_and_scores_the_rest() {
    let d = demo();
    let work = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(data_csv()).unwrap();
    let mut lines: Vec<String> = text.lines().take(11).map(str::to_string).collect();
    // Row 3: a word in a numeric column.
    let mut cells: Vec<String> = lines[3].split(',').map(str::to_string).collect();
    cells[1] = "lots".into();
    lines[3] = cells.join(",");
    std::fs::write(work.path().join("bad.csv"), lines.join("\n") + "\n").unwrap();
    let out = work.path().join("s.csv");
    let (code, _, stderr) = run(churn(d).args([
        "score",
        "--data",
        work.path().join("bad.csv").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("1 rows could not be scored"), "{stderr}");
    assert!(stderr.contains("row 3"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().lines().count(),
        1 + 9
    );
}

#[test]
fn rescore_again_rewrites_nothing_and_counts_it() {
    let copy = demo_copy();
    let (code, stdout, stderr) =
        run(churn(copy.path()).args(["rescore", "--data", "churn-data/customers.csv", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    let s = json(&stdout);
    assert_eq!(s["rows"], CUSTOMERS);
    assert_eq!(s["scored"], CUSTOMERS);
    assert_eq!(s["written"], 0);
    assert_eq!(s["skipped_unchanged"], CUSTOMERS);
    assert_eq!(s["newly_at_risk"], 0);
    assert_eq!(s["failed_rows_count"], 0);

    let (code, stdout, _) =
        run(churn(copy.path()).args(["rescore", "--data", "churn-data/customers.csv"]));
    assert_eq!(code, 0);
    assert!(stdout.contains("unchanged (not rewritten)"), "{stdout}");
    assert_user_error(
        churn(copy.path()).args(["rescore", "--data", "gone.csv"]),
        "gone.csv",
    );
}

#[test]
fn a_cs_team_reads_acknowledges_and_summarises_accounts() {
    let copy = demo_copy();
    let d = copy.path();
    // The top of the list, as JSON flags with the demo's account attributes.
    let (code, stdout, stderr) = run(churn(d).args([
        "risk-list",
        "--band",
        "at-risk",
        "--sort",
        "value",
        "--limit",
        "20",
        "--format",
        "json",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let list = json(&stdout);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 20);
    let var = |f: &Value| {
        f["churn_probability"].as_f64().unwrap() * f["attributes"]["value"].as_f64().unwrap()
    };
    assert!(
        list.windows(2).all(|w| var(&w[0]) >= var(&w[1])),
        "by value at risk"
    );
    let top = list[0]["customer_id"].as_str().unwrap().to_string();
    let owner = list[0]["attributes"]["owner"].as_str().unwrap().to_string();

    // One customer in full.
    let (code, stdout, _) = run(churn(d).args(["customer", &top, "--format", "json"]));
    assert_eq!(code, 0);
    let c = json(&stdout);
    assert_eq!(c["history"].as_array().unwrap().len(), 1, "{c}");
    assert_eq!(c["acknowledgement"], Value::Null);
    assert_eq!(c["days_in_band"], 0);
    let (code, stdout, _) = run(churn(d).args(["customer", &top]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains(&owner) && stdout.contains("history"),
        "{stdout}"
    );

    // Acknowledged: off the unacknowledged list of its owner, back after unack.
    let (code, stdout, stderr) = run(churn(d).args([
        "ack",
        &top,
        "--by",
        "ana@example.com",
        "--note",
        "exec sponsor call",
        "--format",
        "json",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout)["acknowledgement"]["by"], "ana@example.com");
    let owners_open = |d: &Path| {
        let (code, stdout, _) = run(churn(d).args([
            "risk-list",
            "--band",
            "at-risk",
            "--owner",
            &owner,
            "--unacknowledged",
            "--limit",
            "5000",
            "--format",
            "csv",
        ]));
        assert_eq!(code, 0);
        csv_rows(&stdout)
            .into_iter()
            .skip(1)
            .map(|r| r[0].clone())
            .collect::<Vec<_>>()
    };
    assert!(!owners_open(d).contains(&top));
    // A rescore keeps the acknowledgement.
    let (code, _, stderr) =
        run(churn(d).args(["rescore", "--data", "churn-data/customers.csv", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(!owners_open(d).contains(&top));
    let (code, _, _) = run(churn(d).args(["unack", &top]));
    assert_eq!(code, 0);
    assert!(owners_open(d).contains(&top));

    // Bad input: exit 1 naming the problem.
    assert_user_error(churn(d).args(["customer", "nobody"]), "nobody");
    assert_user_error(
        churn(d).args(["ack", "nobody", "--by", "a", "--note", "b"]),
        "nobody",
    );
    assert_user_error(
        churn(d).args([
            "ack",
            &top,
            "--by",
            "a",
            "--note",
            "b",
            "--until",
            "2020-01-01",
        ]),
        "until",
    );
    assert_user_error(
        churn(d).args(["ack", &top, "--by", "a", "--note", &"n".repeat(501)]),
        "note",
    );

    // The summary by owner adds up to the at-risk list.
    let (code, stdout, _) = run(churn(d).args(["summary", "--by", "owner", "--format", "json"]));
    assert_eq!(code, 0);
    let s = json(&stdout);
    let per_owner: u64 = s["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["at_risk"]["customers"].as_u64().unwrap())
        .sum();
    let (_, stdout, _) = run(churn(d).args([
        "risk-list",
        "--band",
        "at-risk",
        "--limit",
        "100000",
        "--format",
        "csv",
    ]));
    assert_eq!(per_owner as usize, csv_rows(&stdout).len() - 1);
    let (code, stdout, _) = run(churn(d).args(["summary"]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("high") && stdout.contains("total"),
        "{stdout}"
    );
}

#[test]
fn rescore_as_of_backfills_history_and_refuses_the_future() {
    let copy = demo_copy();
    let d = copy.path();
    // Older than the demo's scores: nothing changes.
    let (code, stdout, stderr) = run(churn(d).args([
        "rescore",
        "--data",
        "churn-data/customers.csv",
        "--as-of",
        "2020-01-01T00:00:00Z",
        "--json",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout)["stale_rejected"], CUSTOMERS);
    assert_eq!(json(&stdout)["written"], 0);
    let (code, _, stderr) = run(churn(d).args([
        "rescore",
        "--data",
        "churn-data/customers.csv",
        "--as-of",
        "2999-01-01T00:00:00Z",
    ]));
    assert_eq!(code, 2, "a bad option value is a usage error: {stderr}");
    assert!(stderr.contains("in the future"), "{stderr}");
}

/// `data` with every `column` value multiplied by `factor` (money in cents).
fn scaled_csv(data: &Path, column: &str, factor: f64, out: &Path) {
    let text = std::fs::read_to_string(data).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let at = header.split(',').position(|h| h == column).unwrap();
    let mut rows = vec![header.to_string()];
    for line in lines {
        let mut cells: Vec<String> = line.split(',').map(str::to_string).collect();
        if let Ok(x) = cells[at].parse::<f64>() {
            cells[at] = format!("{}", x * factor);
        }
        rows.push(cells.join(","));
    }
    std::fs::write(out, rows.join("\n") + "\n").unwrap();
}

#[test]
fn a_snapshot_in_cents_is_refused_with_exit_3_unless_forced_and_every_run_is_recorded() {
    let copy = demo_copy();
    let d = copy.path();
    // The training kind of snapshot passes.
    let (code, stdout, stderr) = run(churn(d).args([
        "check",
        "--data",
        data_csv().to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let report = json(&stdout);
    assert_eq!(report["status"], "ok");
    assert_eq!(report["rows"], CUSTOMERS);
    for f in report["features"].as_array().unwrap() {
        for key in [
            "feature",
            "psi",
            "missing_share",
            "reference_missing_share",
            "out_of_range_share",
            "level",
        ] {
            assert!(f.get(key).is_some(), "{key}: {f}");
        }
        assert!(f["psi"].as_f64().unwrap() < 0.1, "{f}");
    }
    for c in report["checks"].as_array().unwrap() {
        for key in ["name", "status", "detail"] {
            assert!(c.get(key).is_some(), "{key}: {c}");
        }
    }
    // Money in cents: refused, the check says why, exit 3.
    let cents = d.join("cents.csv");
    scaled_csv(&data_csv(), "mrr", 100.0, &cents);
    let cents = cents.to_str().unwrap();
    let (code, stdout, _) = run(churn(d).args(["check", "--data", cents, "--format", "json"]));
    assert_eq!(code, 3);
    let report = json(&stdout);
    assert_eq!(report["status"], "refuse");
    let range = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "out_of_range")
        .unwrap();
    assert_eq!(range["status"], "refuse");
    assert!(range["detail"].as_str().unwrap().contains("mrr"), "{range}");
    let list = |d: &Path| {
        run(churn(d).args([
            "risk-list",
            "--band",
            "at-risk",
            "--limit",
            "5000",
            "--format",
            "json",
        ]))
        .1
    };
    let before = list(d);
    let (code, stdout, stderr) = run(churn(d).args(["--quiet", "rescore", "--data", cents]));
    assert_eq!(code, 3, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.starts_with("error: snapshot refused: "), "{stderr}");
    assert!(
        stderr.contains("mrr") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert_eq!(list(d), before, "a refused snapshot changed the flags");
    // With --json the verdict is on stdout too.
    let (code, stdout, _) = run(churn(d).args(["--quiet", "rescore", "--data", cents, "--json"]));
    assert_eq!(code, 3);
    let refusal = json(&stdout);
    assert_eq!(refusal["refused"], true);
    assert_eq!(refusal["check"]["status"], "refuse");
    let (code, stdout, _) = run(churn(d).args(["runs", "list", "--format", "json"]));
    assert_eq!(code, 0);
    let runs = json(&stdout);
    let refused = &runs["runs"][0];
    assert_eq!(refused["refused"], true);
    assert_eq!(refused["counts"]["written"], 0);
    assert_eq!(refused["snapshot"], cents);
    // Forced: written, and the record says so.
    let (code, stdout, stderr) =
        run(churn(d).args(["rescore", "--data", cents, "--force", "--format", "json"]));
    assert_eq!(code, 0, "{stderr}");
    let summary = json(&stdout);
    assert_eq!(summary["forced"], true);
    assert_eq!(summary["check"]["status"], "refuse");
    assert!(summary["written"].as_u64().unwrap() > 0);
    let run_id = summary["run_id"].as_str().unwrap().to_string();
    let (code, stdout, _) = run(churn(d).args(["runs", "show", &run_id, "--format", "json"]));
    assert_eq!(code, 0);
    let record = json(&stdout);
    assert_eq!(
        (record["forced"].clone(), record["refused"].clone()),
        (Value::Bool(true), Value::Bool(false))
    );
    assert!(record["check"]["features"].as_array().unwrap().len() > 5);
    let (code, stdout, _) = run(churn(d).args(["runs", "show", &run_id]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("refuse (forced)") && stdout.contains("out_of_range"),
        "{stdout}"
    );
    assert_user_error(
        churn(d).args(["runs", "show", "run-that-never-was"]),
        "run-that-never-was",
    );
    // `churn score` stages its file behind the same check.
    let (code, _, _) = run(churn(d).args(["--quiet", "score", "--data", cents, "--out", "s.csv"]));
    assert_eq!(code, 3);
    assert!(!d.join("s.csv").exists());
    let (code, _, stderr) =
        run(churn(d).args(["score", "--data", cents, "--out", "s.csv", "--force"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("snapshot check: refuse, forced"),
        "{stderr}"
    );
    assert!(d.join("s.csv").exists());
}

#[test]
fn outcomes_report_realised_accuracy_and_are_served() {
    let copy = demo_copy();
    let d = copy.path();
    let text = std::fs::read_to_string(data_csv()).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let label = header.iter().position(|h| *h == "churned").unwrap();
    let mut rows = vec!["customer_id,churned".to_string()];
    for line in lines.take(800) {
        let cells: Vec<&str> = line.split(',').collect();
        rows.push(format!("{},{}", cells[0], cells[label]));
    }
    rows.push("not-a-customer,1".into());
    std::fs::write(d.join("outcomes.csv"), rows.join("\n") + "\n").unwrap();
    let (code, stdout, stderr) =
        run(churn(d).args(["outcomes", "--data", "outcomes.csv", "--format", "json"]));
    assert_eq!(code, 0, "{stderr}");
    let report = json(&stdout);
    for key in [
        "roc_auc",
        "pr_auc",
        "base_rate",
        "matched",
        "unmatched",
        "bands",
        "calibration",
        "by_model",
        "retrain_recommended",
    ] {
        assert!(report.get(key).is_some(), "{key}: {report}");
    }
    assert_eq!(report["matched"], 800);
    // Scored just now: each matched with its earliest score, and said so.
    assert_eq!(report["matched_before_horizon"], 800);
    assert_eq!(report["unmatched"], 1);
    assert_eq!(report["unmatched_ids"][0], "not-a-customer");
    for band in ["high", "medium", "low", "at_risk"] {
        for key in ["customers", "churned", "churn_rate", "precision", "recall"] {
            assert!(report["bands"][band].get(key).is_some(), "{band}.{key}");
        }
    }
    assert!(report["roc_auc"].as_f64().unwrap() > 0.7, "{report}");
    // Stored and served.
    let server = Server::start(d);
    let (status, served) = http(&server.addr, "GET", "/v1/outcomes/report", "");
    assert_eq!(status, 200);
    assert_eq!(served["roc_auc"], report["roc_auc"]);
    drop(server);
    // A label that does not parse names its row and column.
    rows[3] = rows[3].replace(",0", ",maybe").replace(",1", ",maybe");
    std::fs::write(d.join("outcomes.csv"), rows.join("\n") + "\n").unwrap();
    assert_user_error(
        churn(d).args(["outcomes", "--data", "outcomes.csv"]),
        "row 3",
    );
}

#[test]
fn models_list_promote_and_rollback() {
    let copy = demo_copy();
    let d = copy.path();
    let list = |d: &Path| {
        let (code, stdout, stderr) = run(churn(d).args(["models", "list", "--format", "json"]));
        assert_eq!(code, 0, "{stderr}");
        json(&stdout)
    };
    let before = list(d);
    let before = before.as_array().unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0]["current"], true);
    let first = before[0]["model_id"].as_str().unwrap().to_string();
    assert!(before[0]["roc_auc"].as_f64().unwrap() > 0.7);

    // A candidate trained on other seeds, then promoted by hand (by prefix).
    let (code, stdout, stderr) = run(churn(d).args([
        "train",
        "--data",
        "churn-data/customers.csv",
        "--seed",
        "99",
        "--json",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let second = json(&stdout)["model_id"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    let (code, stdout, stderr) = run(churn(d).args(["models", "promote", &second[..10]]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), format!("current model: {second}"));
    let now = list(d);
    let current: Vec<&str> = now
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["current"] == true)
        .map(|m| m["model_id"].as_str().unwrap())
        .collect();
    assert_eq!(current, [second.as_str()]);
    let (code, stdout, _) = run(churn(d).args(["models", "list"]));
    assert_eq!(code, 0);
    let starred: Vec<&str> = stdout.lines().filter(|l| l.starts_with('*')).collect();
    assert_eq!(starred.len(), 1);
    assert!(starred[0].contains(&second));

    let (code, stdout, stderr) = run(churn(d).args(["models", "rollback"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), format!("current model: {first}"));
    let pointer = std::fs::read_to_string(d.join("churn-data/models/current.json")).unwrap();
    assert!(pointer.contains(&first), "{pointer}");

    assert_user_error(
        churn(d).args(["models", "promote", "0000deadbeef"]),
        "0000deadbeef",
    );
    assert_user_error(churn(d).args(["models", "promote", "../etc"]), "../etc");
}

#[test]
fn a_broken_model_store_is_an_internal_error_exit_2() {
    let copy = demo_copy();
    let d = copy.path();
    let models = d.join("churn-data/models");
    let pointer = std::fs::read_to_string(models.join("current.json")).unwrap();
    let id = json(&pointer)["model_id"].as_str().unwrap().to_string();
    // The artifact changed under the pointer: refused, exit 70, one line.
    let artifact = models.join(&id).join("model.json");
    let mut bytes = std::fs::read_to_string(&artifact).unwrap();
    bytes = bytes.replacen("\"intercept\": ", "\"intercept\": 1", 1);
    std::fs::write(&artifact, bytes).unwrap();
    let (code, _, stderr) = run(churn(d).args([
        "-q",
        "score",
        "--data",
        "churn-data/customers.csv",
        "--out",
        "s.csv",
    ]));
    assert_eq!(code, 70, "{stderr}");
    assert!(stderr.starts_with("internal error: "), "{stderr}");
    assert!(stderr.contains("sha256 mismatch"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    // An unreadable pointer.
    std::fs::write(models.join("current.json"), "{not json").unwrap();
    let (code, _, stderr) = run(churn(d).args(["-q", "models", "rollback"]));
    assert_eq!(code, 70, "{stderr}");
    assert!(stderr.contains("current.json"), "{stderr}");
}

#[test]
fn env_vars_are_fallbacks_for_store_options() {
    let d = demo();
    let elsewhere = tempfile::tempdir().unwrap();
    let flags = format!("sqlite://{}", d.join("churn-data/flags.db").display());
    let models = d.join("churn-data/models");
    let (code, stdout, stderr) = run(churn(elsewhere.path())
        .args(["risk-list", "--limit", "2", "--format", "json"])
        .env("CHURN_FLAGS", &flags));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout).as_array().unwrap().len(), 2);
    let (code, stdout, _) = run(churn(elsewhere.path())
        .args(["models", "list", "--format", "json"])
        .env("CHURN_MODELS", &models));
    assert_eq!(code, 0);
    assert_eq!(json(&stdout).as_array().unwrap().len(), 1);
    // The option wins over the variable.
    let (code, stdout, _) = run(churn(elsewhere.path())
        .args(["models", "list", "--format", "json", "--models", "empty"])
        .env("CHURN_MODELS", &models));
    assert_eq!(code, 0);
    assert_eq!(json(&stdout), Value::Array(vec![]));
}

// ---------------------------------------------------------------- serve

#[test]
fn serve_answers_the_score_api_routes() {
    let server = Server::start(demo());
    let a = server.addr.as_str();

    let (status, page) = http(a, "GET", "/v1/risk-list?band=high&limit=3", "");
    assert_eq!(status, 200, "{page}");
    let flags = page["flags"].as_array().unwrap();
    assert_eq!(flags.len(), 3);
    assert!(page["next_cursor"].is_string(), "{page}");
    let top_id = flags[0]["customer_id"].as_str().unwrap().to_string();

    let (status, flag) = http(a, "GET", &format!("/v1/customers/{top_id}"), "");
    assert_eq!(status, 200);
    assert_eq!(flag["customer_id"], top_id.as_str());
    assert_eq!(flag["risk_band"], "high");

    let (status, err) = http(a, "GET", "/v1/customers/nobody-here", "");
    assert_eq!(status, 404);
    assert!(err["error"].is_string());

    let body = r#"{"customers":[{"customer_id":"c1","features":{"logins_30d":0,"days_since_last_login":60,"billing_failures_90d":3,"plan":"basic"}},{"customer_id":"c2","features":{"logins_30d":40,"features_used":12}}],"persist":false}"#;
    let (status, scored) = http(a, "POST", "/v1/score", body);
    assert_eq!(status, 200, "{scored}");
    assert_eq!(scored["model_id"].as_str().unwrap().len(), 64);
    let scores = scored["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 2);
    let p1 = scores[0]["churn_probability"].as_f64().unwrap();
    let p2 = scores[1]["churn_probability"].as_f64().unwrap();
    assert!(p1 > p2, "a disengaged customer scores higher: {p1} vs {p2}");
    assert_eq!(scores[0]["reasons"].as_array().unwrap().len(), 3);

    let (status, err) = http(a, "POST", "/v1/score", "{not json");
    assert_eq!(status, 400);
    assert!(err["error"].is_string());
}

#[test]
fn serve_persists_scores_when_asked() {
    let copy = demo_copy();
    let server = Server::start(copy.path());
    let a = server.addr.as_str();
    let body = r#"{"customers":[{"customer_id":"new-1","features":{"logins_30d":0,"billing_failures_90d":4}}],"persist":true}"#;
    let (status, scored) = http(a, "POST", "/v1/score", body);
    assert_eq!(status, 200, "{scored}");
    let (status, flag) = http(a, "GET", "/v1/customers/new-1", "");
    assert_eq!(status, 200, "{flag}");
    assert_eq!(
        flag["churn_probability"],
        scored["scores"][0]["churn_probability"]
    );
    drop(server);
    // The same flag store, read by the CLI.
    let (code, stdout, _) = run(churn(copy.path()).args([
        "risk-list",
        "--band",
        flag["risk_band"].as_str().unwrap(),
        "--limit",
        "5000",
        "--format",
        "csv",
    ]));
    if flag["risk_band"] != "low" {
        assert_eq!(code, 0);
        assert!(stdout.contains("\nnew-1,"), "persisted flag not listed");
    }
}

#[test]
fn serve_without_a_model_answers_503_and_a_taken_port_is_a_user_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let body = r#"{"customers":[{"customer_id":"c1","features":{}}]}"#;
    let (status, err) = http(&server.addr, "POST", "/v1/score", body);
    assert_eq!(status, 503, "{err}");
    assert_user_error(
        churn(dir.path()).args(["serve", "--addr", &server.addr]),
        "cannot listen",
    );
}

#[test]
fn the_shared_demo_output_was_complete() {
    // The shared demo ran with defaults: its stores are where the other
    // commands look without options.
    let d = demo();
    for file in [
        "churn-data/customers.csv",
        "churn-data/flags.db",
        "churn-data/models/current.json",
    ] {
        assert!(d.join(file).exists(), "{file}");
    }
}

/// One raw HTTP/1.1 exchange; returns the status and the body text.
fn raw_http(addr: &str, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut request = format!(
        "{head}\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status: u16 = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Requests a careless or hostile client sends: each gets a 4xx with a JSON
/// error (never a 5xx, never a crash), and the server keeps answering.
#[test]
fn serve_answers_hostile_requests_with_4xx_and_stays_up() {
    let server = Server::start(demo());
    let a = server.addr.as_str();
    let json_post = "POST /v1/score HTTP/1.1\r\nContent-Type: application/json";
    let score = |id: &str, logins: &str| {
        format!(
            r#"{{"customers":[{{"customer_id":{},"features":{{"logins_30d":{logins}}}}}],"persist":false}}"#,
            serde_json::to_string(id).unwrap()
        )
    };
    let long_id = "x".repeat(100_000);
    let deep = "[".repeat(10_000);
    let cases: Vec<(String, Vec<u8>, u16, &str)> = vec![
        // (request head, body, expected status, text the error must contain)
        (
            "POST /v1/score HTTP/1.1\r\nContent-Type: text/plain".into(),
            score("c1", "3").into_bytes(),
            415,
            "application/json",
        ),
        (
            "POST /v1/score HTTP/1.1".into(),
            score("c1", "3").into_bytes(),
            415,
            "Content-Type",
        ),
        (
            "POST /v1/score HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded".into(),
            b"customers=1".to_vec(),
            415,
            "Content-Type",
        ),
        (
            json_post.into(),
            score(&long_id, "3").into_bytes(),
            400,
            "256",
        ),
        (
            json_post.into(),
            score("c\u{7}1", "3").into_bytes(),
            400,
            "control character",
        ),
        (
            json_post.into(),
            score("   ", "3").into_bytes(),
            400,
            "customer_id",
        ),
        (
            json_post.into(),
            score("c1", "-5").into_bytes(),
            400,
            "logins_30d is -5; every training value was >= 0",
        ),
        (
            json_post.into(),
            score("c1", "1e400").into_bytes(),
            400,
            "malformed JSON",
        ),
        (
            json_post.into(),
            score("c1", "\"NaN\"").into_bytes(),
            400,
            "logins_30d",
        ),
        (
            json_post.into(),
            b"\xff\xfe{}".to_vec(),
            400,
            "malformed JSON",
        ),
        (json_post.into(), deep.into_bytes(), 400, "malformed JSON"),
        (json_post.into(), b"null".to_vec(), 400, "body"),
        (json_post.into(), b"[]".to_vec(), 400, "body"),
        (
            json_post.into(),
            br#"{"customers":[{"customer_id":"c1","features":{"plan":{"a":[1]}}}]}"#.to_vec(),
            400,
            "plan",
        ),
        ("PUT /v1/score HTTP/1.1".into(), Vec::new(), 405, "POST"),
        (
            "GET /v1/customers/%00 HTTP/1.1".into(),
            Vec::new(),
            400,
            "control character",
        ),
        (
            "GET /v1/customers/%ZZ HTTP/1.1".into(),
            Vec::new(),
            400,
            "percent",
        ),
        (
            format!("GET /v1/customers/{} HTTP/1.1", "y".repeat(300)),
            Vec::new(),
            400,
            "256",
        ),
        (
            "GET /v1/risk-list?limit=99999999999999999999999 HTTP/1.1".into(),
            Vec::new(),
            400,
            "limit",
        ),
        (
            "GET /v1/risk-list?band=low HTTP/1.1".into(),
            Vec::new(),
            400,
            "band",
        ),
        (
            "GET /v1/risk-list?band=high&band=medium HTTP/1.1".into(),
            Vec::new(),
            400,
            "duplicate",
        ),
        (
            "GET /v1/risk-list?band=hi%ZZgh HTTP/1.1".into(),
            Vec::new(),
            400,
            "percent",
        ),
        (
            // Under /v1 the API answers (outside it, the web pages' 404 page).
            "GET /v1/../../etc/passwd HTTP/1.1".into(),
            Vec::new(),
            404,
            "no route",
        ),
    ];
    for (head, body, want, needle) in &cases {
        let (status, text) = raw_http(a, head, body);
        let shown: String = head.chars().take(60).collect();
        assert_eq!(status, *want, "{shown}: {text}");
        let v = json(&text);
        let error = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{shown}: {v}"));
        let whole = format!("{error} {}", v["details"]);
        assert!(whole.contains(needle), "{shown}: {needle:?} not in {whole}");
    }
    // Still serving, and parameters on the media type are fine.
    let (status, text) = raw_http(
        a,
        "POST /v1/score HTTP/1.1\r\nContent-Type: Application/JSON; charset=utf-8",
        score("c1", "3").as_bytes(),
    );
    assert_eq!(status, 200, "{text}");
    assert!(json(&text)["warnings"].is_array(), "{text}");
    let (status, _) = http(a, "GET", "/v1/risk-list?band=high&limit=1", "");
    assert_eq!(status, 200);
}

/// docs/openapi.yaml as JSON.
fn openapi() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Follows a local `$ref` (`#/components/...`) in the spec.
fn resolve<'a>(spec: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("non-local $ref {r}"));
            resolve(
                spec,
                spec.pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {r}")),
            )
        }
        None => node,
    }
}

/// Checks one real response against the operation the spec documents for
/// `method` `template`: the status is listed and the body matches its schema.
fn conforms(spec: &Value, method: &str, template: &str, status: u16, body: &Value) {
    let op = &spec["paths"][template][method.to_lowercase()];
    assert!(op.is_object(), "{method} {template} is not documented");
    let response = op["responses"]
        .get(status.to_string())
        .unwrap_or_else(|| panic!("{method} {template}: status {status} is not documented"));
    let response = resolve(spec, response);
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "{method} {template} {status}: no JSON schema"
    );
    // The schema with the spec's components beside it, so `#/components/...`
    // references resolve inside one document.
    let document = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [schema],
        "components": spec["components"],
    });
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&document)
        .unwrap_or_else(|e| panic!("{method} {template} {status}: bad schema: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {template} {status}: {errors:?}\n{body}"
    );
}

#[test]
fn the_served_api_matches_its_openapi_description() {
    let spec = openapi();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    // The spec documents exactly the routes the handler serves.
    let mut documented: Vec<(String, String)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "delete", "patch"].contains(&k.as_str()))
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    documented.sort();
    let mut served: Vec<(String, String)> = churn_service::handlers::score_api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    served.sort();
    assert_eq!(documented, served);

    let copy = demo_copy();
    let server = Server::start(copy.path());
    let a = server.addr.as_str();
    let (_, page) = http(a, "GET", "/v1/risk-list?band=high&limit=2", "");
    let known = page["flags"][0]["customer_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, runs) = http(a, "GET", "/v1/runs", "");
    let demo_run = runs["runs"][0]["run_id"].as_str().unwrap().to_string();
    let many: Vec<Value> = (0..1001)
        .map(|i| serde_json::json!({"customer_id": format!("c{i}"), "features": {}}))
        .collect();
    let many = serde_json::json!({ "customers": many }).to_string();
    let as_json = "Content-Type: application/json";
    // (method, path, extra header, body, documented template, expected status)
    let cases: Vec<(&str, String, &str, String, &str, u16)> = vec![
        ("POST", "/v1/score".into(), as_json, r#"{"customers":[{"customer_id":"c1","features":{"logins_30d":2,"plan":"basic"}}]}"#.into(), "/v1/score", 200),
        ("POST", "/v1/score".into(), as_json, r#"{"customers":[{"customer_id":"n1","features":{"logins_30d":100000}}],"persist":true}"#.into(), "/v1/score", 200),
        ("POST", "/v1/score".into(), as_json, "{not json".into(), "/v1/score", 400),
        ("POST", "/v1/score".into(), as_json, r#"{"customers":[{"customer_id":"c1","features":{"logins_30d":-1}}]}"#.into(), "/v1/score", 400),
        ("POST", "/v1/score".into(), as_json, many, "/v1/score", 413),
        ("POST", "/v1/score".into(), "Content-Type: text/plain", "{}".into(), "/v1/score", 415),
        ("GET", "/v1/score".into(), "", String::new(), "/v1/score", 405),
        ("GET", format!("/v1/customers/{known}"), "", String::new(), "/v1/customers/{id}", 200),
        ("GET", "/v1/customers/n1".into(), "", String::new(), "/v1/customers/{id}", 200),
        ("GET", "/v1/customers/nobody".into(), "", String::new(), "/v1/customers/{id}", 404),
        ("GET", "/v1/customers/%01".into(), "", String::new(), "/v1/customers/{id}", 400),
        ("POST", "/v1/customers/x".into(), as_json, "{}".into(), "/v1/customers/{id}", 405),
        ("GET", "/v1/risk-list?band=medium&limit=3".into(), "", String::new(), "/v1/risk-list", 200),
        ("GET", "/v1/risk-list?band=low".into(), "", String::new(), "/v1/risk-list", 400),
        ("GET", "/v1/risk-list?cursor=zzz".into(), "", String::new(), "/v1/risk-list", 400),
        ("POST", "/v1/risk-list".into(), as_json, "{}".into(), "/v1/risk-list", 405),
        ("GET", "/v1/risk-list?band=at-risk&sort=value&unacknowledged=true&renewal_within_days=365".into(), "", String::new(), "/v1/risk-list", 200),
        ("GET", "/v1/risk-list?band=at-risk&owner=nobody%40example.com&sort=rising".into(), "", String::new(), "/v1/risk-list", 200),
        ("GET", "/v1/risk-list?sort=sideways".into(), "", String::new(), "/v1/risk-list", 400),
        ("GET", "/v1/risk-list?unacknowledged=yes".into(), "", String::new(), "/v1/risk-list", 400),
        ("POST", format!("/v1/customers/{known}/ack"), as_json, r#"{"by":"ana@example.com","note":"QBR booked"}"#.into(), "/v1/customers/{id}/ack", 200),
        ("GET", format!("/v1/customers/{known}"), "", String::new(), "/v1/customers/{id}", 200),
        ("POST", "/v1/customers/nobody/ack".into(), as_json, r#"{"by":"ana","note":"x"}"#.into(), "/v1/customers/{id}/ack", 404),
        ("POST", format!("/v1/customers/{known}/ack"), as_json, r#"{"by":"ana","note":"x","until":"2020-01-01"}"#.into(), "/v1/customers/{id}/ack", 400),
        ("POST", format!("/v1/customers/{known}/ack"), as_json, format!(r#"{{"by":"ana","note":"{}"}}"#, "n".repeat(501)), "/v1/customers/{id}/ack", 400),
        ("POST", format!("/v1/customers/{known}/ack"), "Content-Type: text/plain", "{}".into(), "/v1/customers/{id}/ack", 415),
        ("GET", format!("/v1/customers/{known}/ack"), "", String::new(), "/v1/customers/{id}/ack", 405),
        ("DELETE", format!("/v1/customers/{known}/ack"), "", String::new(), "/v1/customers/{id}/ack", 200),
        ("DELETE", "/v1/customers/nobody/ack".into(), "", String::new(), "/v1/customers/{id}/ack", 404),
        ("GET", "/v1/summary?by=owner".into(), "", String::new(), "/v1/summary", 200),
        ("GET", "/v1/summary".into(), "", String::new(), "/v1/summary", 200),
        ("GET", "/v1/summary?by=planet".into(), "", String::new(), "/v1/summary", 400),
        ("GET", "/v1/runs?limit=5".into(), "", String::new(), "/v1/runs", 200),
        ("GET", "/v1/runs?limit=0".into(), "", String::new(), "/v1/runs", 400),
        ("GET", format!("/v1/runs/{demo_run}"), "", String::new(), "/v1/runs/{run_id}", 200),
        ("GET", "/v1/runs/no-such-run".into(), "", String::new(), "/v1/runs/{run_id}", 404),
        ("GET", "/v1/runs/a%20b".into(), "", String::new(), "/v1/runs/{run_id}", 400),
        ("GET", "/v1/outcomes/report".into(), "", String::new(), "/v1/outcomes/report", 404),
        ("GET", "/v1/outcomes/report?model_id=..%2F".into(), "", String::new(), "/v1/outcomes/report", 400),
    ];
    for (method, path, header, body, template, want) in cases {
        let head = if header.is_empty() {
            format!("{method} {path} HTTP/1.1")
        } else {
            format!("{method} {path} HTTP/1.1\r\n{header}")
        };
        let (status, text) = raw_http(a, &head, body.as_bytes());
        assert_eq!(status, want, "{method} {path}: {text}");
        // The documented method of the template: a 405 is documented on the
        // route's own operation.
        let documented_method = served
            .iter()
            .find(|(m, p)| p == template && m == method)
            .or_else(|| served.iter().find(|(_, p)| p == template))
            .map(|(m, _)| m.as_str())
            .unwrap();
        conforms(&spec, documented_method, template, status, &json(&text));
    }
}

// ---------------------------------------------------------------- notify

/// `churn` with no notification configuration from the environment.
fn churn_quietly_unnotified(dir: &Path) -> Command {
    let mut cmd = churn(dir);
    for v in churn_service::notify::settings::VARIABLES {
        cmd.env_remove(v);
    }
    cmd
}

#[test]
fn risk_changes_reach_a_webhook_now_or_with_notify_later() {
    use churn_service::notify::webhook;
    use churn_service::test_support::Receiver;
    let copy = demo_copy();
    let dir = copy.path();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hook = rt.block_on(Receiver::start()).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();

    // Bad settings refuse to start, naming the variable.
    assert_user_error(
        churn_quietly_unnotified(dir).args(["notify"]),
        "no destination is configured",
    );
    assert_user_error(
        churn_quietly_unnotified(dir).args(["notify", "--webhook-url", &hook.url("/h")]),
        "CHURN_NOTIFY_WEBHOOK_SECRET",
    );
    let stderr = assert_user_error(
        churn_quietly_unnotified(dir)
            .args(["rescore", "--data", "churn-data/customers.csv"])
            .env(
                "CHURN_NOTIFY_SLACK_URL",
                "hooks.slack.com/services/T/B/token",
            ),
        "CHURN_NOTIFY_SLACK_URL",
    );
    assert!(!stderr.contains("token"), "the URL is not echoed: {stderr}");

    // Another day's snapshot moves customers between bands; the receiver is
    // down: the run still writes and exits 0, the events wait.
    let (code, _, stderr) = run(churn_quietly_unnotified(dir).args([
        "generate",
        "--customers",
        &CUSTOMERS.to_string(),
        "--seed",
        "77",
        "--out",
        "day2.csv",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run(churn_quietly_unnotified(dir).args([
        "rescore",
        "--data",
        "day2.csv",
        "--json",
        "--force",
        "--webhook-url",
        &format!("http://{closed}/h"),
        "--webhook-secret",
        "k",
        "--notify-deadline",
        "1",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("events still pending"), "{stderr}");
    let summary = json(&stdout);
    let events = &summary["events"];
    let recorded = ["became_at_risk", "escalated", "recovered"]
        .iter()
        .map(|k| events[k].as_u64().unwrap())
        .sum::<u64>();
    let sendable = recorded - events["held"].as_u64().unwrap();
    assert!(sendable > 10, "{events}");
    assert_eq!(summary["notify"]["destinations"][0]["pending"], sendable);
    let run_id = summary["run_id"].as_str().unwrap().to_string();

    let (code, stdout, _) = run(churn_quietly_unnotified(dir).args([
        "events",
        "--pending",
        "--limit",
        "1000",
        "--format",
        "json",
    ]));
    assert_eq!(code, 0);
    let pending = json(&stdout);
    assert_eq!(pending.as_array().unwrap().len() as u64, sendable.min(1000));
    // The batch that was tried carries its error; the rest were not tried.
    let tried = pending
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["deliveries"][0]["last_error"]
                .as_str()
                .is_some_and(|m| m.contains(&closed.to_string()))
        })
        .count();
    if sendable <= 1000 {
        assert_eq!(tried, 100.min(sendable as usize));
    }
    let (code, stdout, _) =
        run(churn_quietly_unnotified(dir).args(["events", "--run", &run_id, "--limit", "5"]));
    assert_eq!(code, 0);
    assert!(stdout.contains("pending: webhook"), "{stdout}");

    // Cron's `churn notify` with the receiver up: each event once, signed.
    let notify = |extra: &[&str]| {
        let mut cmd = churn_quietly_unnotified(dir);
        cmd.args(["notify", "--format", "json"])
            .env("CHURN_NOTIFY_WEBHOOK_URL", hook.url("/crm"))
            .env("CHURN_NOTIFY_WEBHOOK_SECRET", "k")
            .args(extra);
        run(&mut cmd)
    };
    let (code, stdout, stderr) = notify(&[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout)["destinations"][0]["delivered"], sendable);
    let mut ids = std::collections::BTreeSet::new();
    for r in hook.accepted() {
        let sig = r.header("x-churn-signature").unwrap();
        assert!(webhook::verify("k", &r.body, &sig));
        for e in r.json()["events"].as_array().unwrap() {
            assert!(ids.insert(e["id"].as_str().unwrap().to_string()));
        }
    }
    assert_eq!(ids.len() as u64, sendable);
    let (code, _, _) = notify(&[]);
    assert_eq!(code, 0, "nothing left pending");
    assert_eq!(
        hook.accepted().len(),
        sendable.div_ceil(100) as usize,
        "delivered once"
    );

    // --no-notify records and leaves delivery to `churn notify`.
    let (code, _, stderr) = run(churn_quietly_unnotified(dir).args([
        "rescore",
        "--data",
        "churn-data/customers.csv",
        "--json",
        "--no-notify",
        "--webhook-url",
        &hook.url("/crm"),
        "--webhook-secret",
        "k",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let before = hook.received().len();
    let (code, stdout, _) =
        run(churn_quietly_unnotified(dir).args(["events", "--pending", "--format", "json"]));
    assert_eq!(code, 0);
    assert!(!json(&stdout).as_array().unwrap().is_empty());
    assert_eq!(hook.received().len(), before);
}
