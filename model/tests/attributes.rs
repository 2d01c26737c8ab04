//! Account attributes: which columns they are (schema, defaults), that they
//! are no features, how the artifact records them (version 4 only when it
//! does) and how a row's values are read.

mod common;

use churn_model::preprocess::FeaturePrep;
use churn_model::*;
use common::*;
use serde_json::{json, Map, Value};

fn feature_names(artifact: &ModelArtifact) -> Vec<String> {
    artifact
        .preprocessing
        .features
        .iter()
        .map(|f| match f {
            FeaturePrep::Numeric(p) => p.name.clone(),
            FeaturePrep::Categorical(p) => p.name.clone(),
        })
        .collect()
}

fn synthetic(customers: usize, seed: u64) -> Table {
    generate(&SyntheticConfig { customers, seed })
}

fn names(table: &Table) -> Vec<&str> {
    table.columns.iter().map(|c| c.name.as_str()).collect()
}

#[test]
fn default_attribute_columns_are_no_features() {
    let table = synthetic(300, 1);
    let schema = Schema::default();
    let resolved = schema.resolve(&table, "customer_id", "churned").unwrap();
    let features: Vec<&str> = resolved.iter().map(|c| c.name.as_str()).collect();
    for a in synthetic::ATTRIBUTE_COLUMNS {
        assert!(!features.contains(&a), "{a} is a feature: {features:?}");
    }
    assert!(features.contains(&"mrr") && features.contains(&"plan"));
    let mapped = schema.attribute_columns(names(&table)).unwrap();
    assert_eq!(
        mapped.mapped().collect::<Vec<_>>(),
        vec![
            (AttributeRole::Name, "account_name"),
            (AttributeRole::Owner, "owner"),
            (AttributeRole::Segment, "segment"),
            (AttributeRole::Value, "arr"),
            (AttributeRole::RenewalDate, "renewal_date"),
        ]
    );
}

#[test]
fn a_kind_makes_an_attribute_column_a_feature_too() {
    let table = synthetic(300, 1);
    let schema = Schema::from_toml_str("[columns.segment]\nkind = \"categorical\"\n").unwrap();
    let resolved = schema.resolve(&table, "customer_id", "churned").unwrap();
    let segment = resolved.iter().find(|c| c.name == "segment").unwrap();
    assert_eq!(segment.kind, ColumnKind::Categorical);
    assert!(!resolved.iter().any(|c| c.name == "owner"));
    // Still an attribute.
    let mapped = schema.attribute_columns(names(&table)).unwrap();
    assert_eq!(mapped.column(AttributeRole::Segment), Some("segment"));
}

#[test]
fn an_attributes_table_replaces_the_defaults() {
    let mut table = synthetic(300, 1);
    for c in &mut table.columns {
        if c.name == "owner" {
            c.name = "csm_email".into();
        }
    }
    let schema = Schema::from_toml_str(
        "[attributes]\nowner = \"csm_email\"\nvalue = \"mrr\"\ncrm_id = \"customer_id\"\n",
    )
    .unwrap();
    let mapped = schema.attribute_columns(names(&table)).unwrap();
    assert_eq!(mapped.column(AttributeRole::Owner), Some("csm_email"));
    // Default names are not attributes when the table is given...
    assert_eq!(mapped.column(AttributeRole::Name), None);
    let resolved = schema.resolve(&table, "customer_id", "churned").unwrap();
    let features: Vec<&str> = resolved.iter().map(|c| c.name.as_str()).collect();
    // ... so `arr` is a feature again, `mrr` (now the value) is not.
    assert!(features.contains(&"arr") && !features.contains(&"mrr"));
    assert!(!features.contains(&"csm_email"));
    // Serialised back only with what was given.
    let back = Schema::from_toml_str(&toml::to_string(&schema).unwrap()).unwrap();
    assert_eq!(back, schema);
}

#[test]
fn an_absent_attributes_column_fails_training_naming_it() {
    let table = synthetic(300, 1);
    let schema = Schema::from_toml_str("[attributes]\nrenewal_date = \"renews_on\"\n").unwrap();
    let e = schema.attribute_columns(names(&table)).unwrap_err();
    match &e {
        Error::MissingColumn { column, available } => {
            assert_eq!(column, "renews_on");
            assert!(available.contains("renewal_date"), "{available}");
        }
        other => panic!("{other:?}"),
    }
    let e = train(&table, &schema, &quick_config()).unwrap_err();
    assert!(
        matches!(&e, Error::MissingColumn { column, .. } if column == "renews_on"),
        "{e}"
    );
    assert!(e.to_string().contains("renews_on"), "{e}");
}

#[test]
fn bad_attributes_tables_are_schema_errors() {
    for text in [
        "[attributes]\nmanager = \"csm\"\n",
        "[attributes]\nowner = \"\"\n",
        "[attributes]\nowner = 3\n",
    ] {
        assert!(
            matches!(Schema::from_toml_str(text), Err(Error::Schema { .. })),
            "{text}"
        );
    }
}

/// Attributes change nothing of the model: the same table without them
/// trains the same coefficients into an artifact with no `attributes` key.
#[test]
fn attributes_need_version_four_and_change_nothing_else() {
    let with = synthetic(3_000, 8);
    let without = without_attributes(with.clone());
    let a = train(&with, &Schema::default(), &quick_config()).unwrap();
    let b = train(&without, &Schema::default(), &quick_config()).unwrap();
    assert_eq!(a.report.complexity, Complexity::Linear);
    assert_eq!(a.artifact.schema_version, SCHEMA_VERSION);
    assert_eq!(b.artifact.schema_version, SCHEMA_VERSION);
    assert_eq!(feature_names(&a.artifact), feature_names(&b.artifact));
    assert_eq!(a.artifact.coefficients, b.artifact.coefficients);
    assert_eq!(a.artifact.metrics, b.artifact.metrics);
    assert_eq!(
        a.artifact.attributes.column(AttributeRole::RenewalDate),
        Some("renewal_date")
    );
    assert!(b.artifact.attributes.is_empty());
    let b_text = String::from_utf8(b.artifact.to_json_bytes()).unwrap();
    assert!(!b_text.contains("\"attributes\""));
    // Round trip with the hash verified.
    let bytes = a.artifact.to_json_bytes();
    let back = ModelArtifact::from_json_bytes(&bytes).unwrap();
    assert_eq!(back, a.artifact);
    // Attribute columns in a record are neither features nor ignored fields.
    let rec = record(&with, 3);
    assert_eq!(
        Scorer::new(&a.artifact)
            .score_json(&rec)
            .unwrap()
            .ignored_fields,
        0
    );
    assert_eq!(
        Scorer::new(&b.artifact)
            .score_json(&rec)
            .unwrap()
            .ignored_fields,
        5
    );
    // An older version with attributes is refused even with a good hash.
    let mut old = a.artifact.clone();
    old.holdout_curves = None;
    old.holdout_profile = None;
    for r in &mut old.reference {
        if let churn_model::reference::Bins::Deciles { shares, .. } = &mut r.bins {
            shares.clear();
        }
    }
    old.schema_version = ATTRIBUTES_SCHEMA_VERSION;
    old.model_id = old.content_hash();
    assert!(ModelArtifact::from_json_bytes(&old.to_json_bytes()).is_ok());
    old.schema_version = SHAPES_SCHEMA_VERSION;
    old.model_id = old.content_hash();
    assert!(matches!(
        ModelArtifact::from_json_bytes(&old.to_json_bytes()),
        Err(Error::ArtifactCorrupt { .. })
    ));
}

#[test]
fn version_for_takes_attributes_into_account() {
    let prep = &saas_model().artifact.preprocessing;
    let mut attributes = AttributeColumns::default();
    assert_eq!(
        ModelArtifact::version_for(prep, &attributes),
        LINEAR_SCHEMA_VERSION
    );
    attributes.set(AttributeRole::Owner, Some("owner".into()));
    assert_eq!(
        ModelArtifact::version_for(prep, &attributes),
        ATTRIBUTES_SCHEMA_VERSION
    );
}

fn attribute_table() -> Table {
    let text = |v: &[&str]| -> Vec<Option<String>> {
        v.iter()
            .map(|s| (!s.is_empty()).then(|| s.to_string()))
            .collect()
    };
    Table::new(vec![
        Column::text("owner", text(&["  ana@example.com ", "   ", "ben"])),
        Column::text("arr", text(&["1200.50", "lots", ""])),
        Column::text("renews_on", text(&["2026-03-01", "2026-02-30", "soon"])),
        Column::numeric("crm", vec![12345.0, f64::NAN, 7.5]),
    ])
}

#[test]
fn rows_are_extracted_with_bad_values_null_and_reported() {
    let table = attribute_table();
    let mut m = AttributeColumns::default();
    m.set(AttributeRole::Owner, Some("owner".into()));
    m.set(AttributeRole::Value, Some("arr".into()));
    m.set(AttributeRole::RenewalDate, Some("renews_on".into()));
    m.set(AttributeRole::CrmId, Some("crm".into()));
    m.set(AttributeRole::Name, Some("not_there".into()));
    let (a, bad) = m.extract(&table, 0);
    assert_eq!(
        a,
        Attributes {
            owner: Some("ana@example.com".into()),
            value: Some(1200.5),
            renewal_date: Some("2026-03-01".into()),
            crm_id: Some("12345".into()),
            ..Attributes::default()
        }
    );
    assert!(bad.is_empty());
    let (a, bad) = m.extract(&table, 1);
    assert!(a.is_empty(), "{a:?}");
    let roles: Vec<(AttributeRole, &str)> =
        bad.iter().map(|b| (b.role, b.column.as_str())).collect();
    assert_eq!(
        roles,
        [
            (AttributeRole::Value, "arr"),
            (AttributeRole::RenewalDate, "renews_on")
        ]
    );
    assert!(bad[0].message.contains("\"lots\""), "{}", bad[0].message);
    assert!(bad[1].message.contains("2026-02-30"), "{}", bad[1].message);
    let (a, bad) = m.extract(&table, 2);
    assert_eq!(a.owner.as_deref(), Some("ben"));
    assert_eq!(a.crm_id.as_deref(), Some("7.5"));
    assert_eq!((a.value, a.renewal_date), (None, None));
    assert_eq!(bad.len(), 1);
    // Past the end: nothing, no panic.
    assert_eq!(m.extract(&table, 99), (Attributes::default(), vec![]));
}

#[test]
fn json_records_carry_attributes_by_column_name() {
    let mut m = AttributeColumns::default();
    m.set(AttributeRole::Owner, Some("csm".into()));
    m.set(AttributeRole::Value, Some("arr".into()));
    m.set(AttributeRole::RenewalDate, Some("renews_on".into()));
    m.set(AttributeRole::Segment, Some("segment".into()));
    let rec: Map<String, Value> = serde_json::from_value(json!({
        "csm": "ana", "arr": 1200, "renews_on": "2026-13-01", "segment": ["smb"]
    }))
    .unwrap();
    let (a, bad) = m.extract_json(&rec);
    assert_eq!(a.owner.as_deref(), Some("ana"));
    assert_eq!(a.value, Some(1200.0));
    assert_eq!((a.renewal_date, a.segment), (None, None));
    let columns: Vec<&str> = bad.iter().map(|b| b.column.as_str()).collect();
    assert_eq!(columns, ["segment", "renews_on"]);
    assert!(bad[0].message.contains("an array"), "{}", bad[0].message);
    let (a, bad) = m.extract_json(&serde_json::from_value(json!({"arr": "12.5"})).unwrap());
    assert_eq!((a.value, bad.len()), (Some(12.5), 0));
}
