//! The advanced-hunting infrastructure cannot drift from the code: `infra/hunting-tables.json`
//! (which the Bicep loads for the DCR streams and the `<Table>_CL` tables) is exactly what the
//! schema module generates, the Bicep names streams and tables as the product sends them, and
//! the simulator's DCR declares the same streams. And the schema module cannot drift from
//! Defender: it is checked against the simulator's transcription of Microsoft's schema reference
//! pages (`crates/xdrsync-sim/src/sim/defender_hunting_tables.json`), which is not derived from
//! the product.

use std::path::Path;

use xdrsync::domain::hunting::schema::{holds_documented_type, infra_json, KqlType, LEFT_OUT, TABLES};
use xdrsync_sim::sim::hunting_schema;

fn infra(file: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("infra").join(file)).expect("infra file")
}

#[test]
fn hunting_tables_json_is_generated_from_the_schema_module() {
    let on_disk: serde_json::Value = serde_json::from_str(&infra("hunting-tables.json")).expect("valid JSON");
    assert_eq!(
        on_disk,
        infra_json(),
        "infra/hunting-tables.json is stale: regenerate with `xdrsync hunting schema --all --json > infra/hunting-tables.json`"
    );
}

#[test]
fn the_bicep_names_streams_and_tables_as_the_product_sends_them() {
    let dcr = infra("hunting.bicep");
    let ws = infra("hunting-workspace.bicep");
    for text in [&dcr, &ws] {
        assert!(text.contains("loadJsonContent('hunting-tables.json')"), "columns come from the generated file");
    }
    // The product sends to TableDef::stream() = Custom-<Table>, landing in output_table() = <Table>_CL.
    let t = &TABLES[0];
    assert_eq!(t.stream(), format!("Custom-{}", t.name));
    assert_eq!(t.output_table(), format!("{}_CL", t.name));
    assert!(dcr.contains("schema.streams['Custom-${name}']") && dcr.contains("outputStream: 'Custom-${name}_CL'"));
    assert!(infra_json()["streams"].get(t.stream()).is_some(), "streams are keyed by the product's stream name");
    assert!(ws.contains("name: '${name}_CL'"));
    let ingestion = infra("ingestion.bicep");
    assert!(ingestion.contains("module hunting 'hunting.bicep'"));
    let main = infra("main.bicep");
    assert!(main.contains("module huntingWorkspace 'hunting-workspace.bicep'"));
    assert!(main.contains("XDRSYNC_HUNTING_SCHEDULE: huntingSchedule"), "HuntingExport's schedule setting exists");
    assert!(main.contains("param huntingSchedule string = '0 */5 * * * *'"), "every 5 minutes by default");
}

#[test]
fn the_simulated_dcr_declares_every_hunting_stream() {
    let streams = xdrsync_sim::sim::SimConfig::demo().streams;
    for t in TABLES {
        assert!(streams.contains(&t.stream()), "{}", t.name);
    }
}

#[test]
fn every_stream_and_table_declares_the_tenant_column() {
    let json: serde_json::Value = serde_json::from_str(&infra("hunting-tables.json")).expect("valid JSON");
    let has = |cols: &serde_json::Value| {
        cols.as_array().is_some_and(|c| c.iter().any(|c| c["name"] == "DefenderTenantId" && c["type"] == "string"))
    };
    for t in TABLES {
        assert!(has(&json["tables"][t.name]), "{}_CL", t.name);
        assert!(has(&json["streams"][t.stream()]["columns"]), "{}", t.stream());
        let sim = hunting_schema::stream_columns(&t.stream()).expect("the simulated DCR declares it");
        assert!(sim.iter().any(|c| c == "DefenderTenantId"), "{}", t.stream());
        // Defender's own columns, as the simulated tenant has them, never include it.
        let defender = hunting_schema::table(t.name).expect("a simulated table");
        assert!(!defender.columns.iter().any(|(c, _)| c == "DefenderTenantId"), "{}", t.name);
    }
}

/// The reference page's columns of `table` with the product's reading of their type names.
fn documented(table: &str) -> Vec<(String, KqlType)> {
    hunting_schema::documented_columns(table)
        .unwrap_or_else(|| panic!("{table}: no reference page transcribed"))
        .into_iter()
        .map(|(c, t)| {
            let ty = KqlType::from_kql_name(&t).unwrap_or_else(|| panic!("{table}.{c}: unknown type {t}"));
            (c, ty)
        })
        .collect()
}

#[test]
fn every_exported_table_names_the_reference_page_it_is_checked_against() {
    for t in TABLES {
        let src = hunting_schema::table_source(t.name).unwrap_or_else(|| panic!("{}: no source", t.name));
        assert_eq!(src.page, format!("{} table in the advanced hunting schema", t.name));
        assert!(src.source.starts_with("MicrosoftDocs/defender-docs@"), "{}: {}", t.name, src.source);
        assert_eq!(hunting_schema::table(t.name).map(|s| s.columns.len()), Some(documented(t.name).len()));
    }
}

#[test]
fn every_column_the_product_reads_is_documented_with_a_compatible_type() {
    let mut wrong = Vec::new();
    for t in TABLES {
        let doc = documented(t.name);
        for (col, ours) in t.columns {
            // Exact spelling: the product's output column is named as Defender sends it.
            match doc.iter().find(|(c, _)| c == col) {
                None => wrong.push(format!("{}.{col}: not on the reference page", t.name)),
                Some((_, theirs)) if !holds_documented_type(col, *ours, *theirs) => wrong.push(format!(
                    "{}.{col}: product {} but documented {}",
                    t.name,
                    ours.kql_name(),
                    theirs.kql_name()
                )),
                Some(_) => {}
            }
        }
    }
    assert!(wrong.is_empty(), "the schema module disagrees with Defender's documentation:\n{}", wrong.join("\n"));
}

#[test]
fn every_documented_column_is_exported_or_left_out_with_a_reason() {
    let mut missing = Vec::new();
    for t in TABLES {
        for (col, _) in documented(t.name) {
            let left_out = LEFT_OUT.iter().find(|(table, c, _)| *table == t.name && *c == col);
            match (t.columns.iter().any(|(c, _)| *c == col), left_out) {
                (true, None) => {}
                (false, Some((_, _, why))) => assert!(!why.trim().is_empty(), "{}.{col}: no reason", t.name),
                (true, Some(_)) => missing.push(format!("{}.{col}: exported and listed as left out", t.name)),
                (false, None) => missing.push(format!("{}.{col}", t.name)),
            }
        }
    }
    for (table, col, _) in LEFT_OUT {
        assert!(documented(table).iter().any(|(c, _)| c == col), "{table}.{col}: left out but not documented");
    }
    assert!(missing.is_empty(), "documented columns neither exported nor left out:\n{}", missing.join("\n"));
}
