//! Every input error path names the row and column (or field).

mod common;

use churn_model::*;
use common::*;

fn set_label(t: &mut Table, i: usize, v: &str) {
    let col = t.columns.iter_mut().find(|c| c.name == "churned").unwrap();
    let mut text: Vec<Option<String>> = match &col.values {
        ColumnValues::Numeric(v) => v.iter().map(|x| Some(format!("{x}"))).collect(),
        ColumnValues::Text(v) => v.clone(),
    };
    text[i] = if v.is_empty() {
        None
    } else {
        Some(v.to_string())
    };
    col.values = ColumnValues::Text(text);
}

fn train_err(t: &Table) -> Error {
    train(t, &Schema::default(), &quick_config()).expect_err("should fail")
}

#[test]
fn bad_label_names_row_and_column() {
    let mut t = tiny_table(600);
    set_label(&mut t, 6, "maybe");
    let e = train_err(&t);
    assert_eq!(
        e,
        Error::BadLabel {
            row: 7,
            column: "churned".into(),
            value: "maybe".into()
        }
    );
    let msg = e.to_string();
    assert!(
        msg.contains("row 7") && msg.contains("churned") && msg.contains("maybe"),
        "{msg}"
    );
    // Rows of a chunk are numbered from the chunk's first row.
    t.first_row = 1001;
    assert!(matches!(train_err(&t), Error::BadLabel { row: 1007, .. }));
    // A numeric label other than 0/1.
    let mut t = tiny_table(600);
    if let ColumnValues::Numeric(v) = &mut t.columns[3].values {
        v[2] = 2.0;
    }
    assert!(matches!(train_err(&t), Error::BadLabel { row: 3, .. }));
}

#[test]
fn text_labels_in_any_spelling_are_accepted() {
    let mut t = tiny_table(600);
    let col = t.columns.iter_mut().find(|c| c.name == "churned").unwrap();
    if let ColumnValues::Numeric(v) = &col.values {
        let words = [("Yes", "no"), ("TRUE", "false"), ("1", "0")];
        col.values = ColumnValues::Text(
            v.iter()
                .enumerate()
                .map(|(i, &x)| {
                    Some(
                        if x == 1.0 {
                            words[i % 3].0
                        } else {
                            words[i % 3].1
                        }
                        .to_string(),
                    )
                })
                .collect(),
        );
    }
    assert!(train(&t, &Schema::default(), &quick_config()).is_ok());
}

#[test]
fn missing_label_and_missing_label_column() {
    let mut t = tiny_table(600);
    set_label(&mut t, 9, "");
    assert_eq!(
        train_err(&t),
        Error::MissingLabel {
            row: 10,
            column: "churned".into()
        }
    );
    let mut t = tiny_table(600);
    if let ColumnValues::Numeric(v) = &mut t.columns[3].values {
        v[0] = f64::NAN;
    }
    assert_eq!(
        train_err(&t),
        Error::MissingLabel {
            row: 1,
            column: "churned".into()
        }
    );
    let t = tiny_table(600);
    let cfg = TrainConfig {
        label_column: "left".into(),
        ..quick_config()
    };
    let e = train(&t, &Schema::default(), &cfg).unwrap_err();
    assert!(
        matches!(&e, Error::MissingColumn { column, .. } if column == "left"),
        "{e}"
    );
}

#[test]
fn duplicate_and_missing_customer_ids() {
    let mut t = tiny_table(600);
    if let ColumnValues::Text(v) = &mut t.columns[0].values {
        v[40] = Some("c3".into());
    }
    let e = train_err(&t);
    assert_eq!(
        e,
        Error::DuplicateId {
            row: 41,
            first_row: 4,
            column: "customer_id".into(),
            id: "c3".into()
        }
    );
    assert!(
        e.to_string().contains("row 41") && e.to_string().contains("row 4)"),
        "{e}"
    );
    let mut t = tiny_table(600);
    if let ColumnValues::Text(v) = &mut t.columns[0].values {
        v[5] = None;
    }
    assert_eq!(
        train_err(&t),
        Error::MissingId {
            row: 6,
            column: "customer_id".into()
        }
    );
    // Numeric ids work the same way.
    let mut t = tiny_table(600);
    t.columns[0] = Column::numeric("customer_id", (0..600).map(|i| (i % 599) as f64).collect());
    assert!(matches!(
        train_err(&t),
        Error::DuplicateId {
            row: 600,
            first_row: 1,
            ..
        }
    ));
}

#[test]
fn one_class_and_too_few_minority_rows() {
    let mut t = tiny_table(600);
    if let ColumnValues::Numeric(v) = &mut t.columns[3].values {
        v.iter_mut().for_each(|x| *x = 0.0);
    }
    let e = train_err(&t);
    assert!(
        matches!(&e, Error::OneClass { column, rows: 600, .. } if column == "churned"),
        "{e}"
    );
    // 49 churners < 50.
    let mut t = tiny_table(600);
    if let ColumnValues::Numeric(v) = &mut t.columns[3].values {
        for (i, x) in v.iter_mut().enumerate() {
            *x = if i < 49 { 1.0 } else { 0.0 };
        }
    }
    let e = train_err(&t);
    assert_eq!(
        e,
        Error::TooFewMinority {
            column: "churned".into(),
            class: "1 (churned)".into(),
            count: 49,
            required: 50
        }
    );
    // Exactly 50 is enough.
    if let ColumnValues::Numeric(v) = &mut t.columns[3].values {
        v[100] = 1.0;
    }
    assert!(train(&t, &Schema::default(), &quick_config()).is_ok());
}

#[test]
fn bad_schema_toml() {
    for (text, needle) in [
        ("[columns.plan]\nkind = \"textual\"\n", "textual"),
        ("[columns.plan]\nkinde = \"numeric\"\n", "kinde"),
        ("[columns.plan\n", ""),
        ("columns = 3\n", ""),
    ] {
        let e = Schema::from_toml_str(text).unwrap_err();
        assert!(matches!(e, Error::Schema { .. }), "{text}: {e}");
        assert!(e.to_string().contains(needle), "{e}");
    }
    // A required column the table lacks.
    let schema = Schema::from_toml_str("[columns.nps]\nrequired = true\n").unwrap();
    let e = train(&tiny_table(600), &schema, &quick_config()).unwrap_err();
    assert!(
        matches!(&e, Error::MissingColumn { column, .. } if column == "nps"),
        "{e}"
    );
    // The label column cannot be a feature.
    let schema = Schema::from_toml_str("[columns.churned]\nkind = \"numeric\"\n").unwrap();
    assert!(matches!(
        train(&tiny_table(600), &schema, &quick_config()),
        Err(Error::Schema { .. })
    ));
}

#[test]
fn cells_that_do_not_fit_the_schema() {
    let mut t = tiny_table(600);
    let mut vals: Vec<Option<String>> = (0..600).map(|i| Some(format!("{}", i % 7))).collect();
    vals[12] = Some("lots".into());
    t.columns.push(Column::text("seats", vals));
    let schema = Schema::from_toml_str("[columns.seats]\nkind = \"numeric\"\n").unwrap();
    let e = train(&t, &schema, &quick_config()).unwrap_err();
    assert_eq!(
        e,
        Error::NotANumber {
            row: 13,
            column: "seats".into(),
            value: "lots".into()
        }
    );
    // A required column with a gap.
    let mut t = tiny_table(600);
    if let ColumnValues::Numeric(v) = &mut t.columns[1].values {
        v[30] = f64::NAN;
    }
    let schema = Schema::from_toml_str("[columns.x1]\nrequired = true\n").unwrap();
    let e = train(&t, &schema, &quick_config()).unwrap_err();
    assert_eq!(
        e,
        Error::MissingRequired {
            row: 31,
            column: "x1".into()
        }
    );
    // An infinity a reader let through.
    let mut t = tiny_table(600);
    if let ColumnValues::Numeric(v) = &mut t.columns[2].values {
        v[4] = f64::INFINITY;
    }
    assert!(matches!(train_err(&t), Error::NotANumber { row: 5, .. }));
}

#[test]
fn shape_and_config_errors() {
    let mut t = tiny_table(600);
    if let ColumnValues::Numeric(v) = &mut t.columns[2].values {
        v.pop();
    }
    assert!(matches!(train_err(&t), Error::RaggedTable { .. }));
    assert_eq!(train_err(&Table::default()), Error::EmptyTable);
    assert!(matches!(
        TrainConfig::builder().holdout_fraction(1.5).build(),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        TrainConfig::builder().l2_grid(vec![]).build(),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        TrainConfig::builder()
            .bands(BandPolicy::Fixed {
                high: 0.2,
                medium: 0.5
            })
            .build(),
        Err(Error::InvalidConfig { .. })
    ));
    // Only the id and label: nothing to learn from.
    let t = tiny_table(600);
    let schema = Schema::from_toml_str(
        "[columns.x1]\nkind = \"ignored\"\n[columns.x2]\nkind = \"ignored\"\n",
    )
    .unwrap();
    assert_eq!(
        train(&t, &schema, &quick_config()).unwrap_err(),
        Error::NoFeatures
    );
}
