//! The advanced-hunting infrastructure cannot drift from the code: `infra/hunting-tables.json`
//! (which the Bicep loads for the DCR streams and the `<Table>_CL` tables) is exactly what the
//! schema module generates, the Bicep names streams and tables as the product sends them, and
//! the simulator's DCR declares the same streams.

use std::path::Path;

use xdrsync::domain::hunting::schema::{infra_json, TABLES};

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
        let sim = xdrsync_sim::sim::hunting_schema::stream_columns(&t.stream()).expect("the simulated DCR declares it");
        assert!(sim.iter().any(|c| c == "DefenderTenantId"), "{}", t.stream());
        // Defender's own columns, as the simulated tenant has them, never include it.
        let defender = xdrsync_sim::sim::hunting_schema::table(t.name).expect("a simulated table");
        assert!(!defender.columns.iter().any(|(c, _)| c == "DefenderTenantId"), "{}", t.name);
    }
}
