//! `--help` on every command (with an example and the exit codes) and usage
//! errors (exit 2, clap's convention).

use assert_cmd::Command;
use predicates::prelude::*;

fn churn() -> Command {
    let mut cmd = Command::cargo_bin("churn").unwrap();
    cmd.env_remove("CHURN_MODELS").env_remove("CHURN_FLAGS");
    cmd
}

const COMMANDS: &[&[&str]] = &[
    &["demo"],
    &["generate"],
    &["train"],
    &["score"],
    &["rescore"],
    &["risk-list"],
    &["serve"],
    &["models"],
    &["models", "list"],
    &["models", "promote"],
    &["models", "rollback"],
];

#[test]
fn every_command_has_help_with_an_example() {
    for args in COMMANDS {
        let out = churn().args(*args).arg("--help").output().unwrap();
        assert!(out.status.success(), "{args:?} --help failed");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Usage: churn"), "{args:?}: {text}");
        assert!(text.contains("Example"), "{args:?} has no example: {text}");
        // The example really uses this command.
        let invocation = format!("churn {}", args.join(" "));
        assert!(
            text.contains(&invocation),
            "{args:?}: example does not show `{invocation}`"
        );
    }
}

#[test]
fn store_options_show_their_env_fallbacks_and_defaults() {
    let out = churn().args(["risk-list", "--help"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("CHURN_FLAGS"));
    assert!(text.contains("sqlite://./churn-data/flags.db"));
    let out = churn().args(["score", "--help"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("CHURN_MODELS"));
    assert!(text.contains("./churn-data/models"));
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    churn()
        .arg("frobnicate")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unrecognized subcommand"));
    churn()
        .args(["generate", "--out", "x.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--customers"));
    churn()
        .args(["risk-list", "--band", "urgent"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not high, medium or at-risk"));
    churn()
        .args(["risk-list", "--format", "xml"])
        .assert()
        .code(2);
    churn().assert().code(2);
}

#[test]
fn version_exits_0() {
    churn()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("churn "));
}

#[test]
fn help_lists_the_exit_codes() {
    let out = churn().arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("1 bad input or state")
            && text.contains("2 usage")
            && text.contains("3 snapshot refused")
            && text.contains("70 internal error"),
        "{text}"
    );
}
