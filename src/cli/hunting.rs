//! `xdrsync hunting schema` and `xdrsync hunting estimate`: the advanced-hunting export's
//! commands (docs/hunting.md). They print; the binary maps the result to an exit code:
//! [`CliError::BadInput`] is 2 (nothing was asked of any service), [`CliError::Failed`] 1.

use crate::domain::hunting::schema::{infra_json, TableDef, TABLES};
use crate::usecase::hunting_estimate::{estimate, parse_duration, Estimate};
use crate::usecase::Ports;

/// Why a hunting command stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// An unknown table, a malformed window, no table chosen: nothing was called.
    BadInput(String),
    /// A service call failed (the text holds what was estimated before it).
    Failed(String),
}

impl CliError {
    /// README's rule: 2 for bad input, 1 when the work failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::BadInput(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::BadInput(m) | CliError::Failed(m) => f.write_str(m),
        }
    }
}

/// The columns of `table` (or `--all` tables): a text table, or JSON. Errors name the tables.
pub fn schema(table: Option<&str>, all: bool, json: bool) -> Result<String, CliError> {
    if all {
        return Ok(if json {
            serde_json::to_string_pretty(&infra_json()).unwrap_or_default()
        } else {
            TABLES.iter().map(|t| format!("{} ({} columns)", t.name, t.columns.len())).collect::<Vec<_>>().join("\n")
        });
    }
    let name = table.ok_or_else(|| CliError::BadInput("name a table, or use --all".into()))?;
    let t = TableDef::find(name).ok_or_else(|| {
        CliError::BadInput(format!("'{name}' is not an advanced-hunting table xdrsync exports; tables: {}", names()))
    })?;
    if json {
        let cols: Vec<serde_json::Value> = t
            .output_columns()
            .into_iter()
            .map(|(c, ty)| serde_json::json!({"name": c, "type": ty.kql_name()}))
            .collect();
        let v = serde_json::json!({"table": t.name, "stream": t.stream(), "workspaceTable": t.output_table(), "columns": cols});
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    let mut out = format!("{} → {} (stream {})\n", t.name, t.output_table(), t.stream());
    for (c, ty) in t.output_columns() {
        out.push_str(&format!("  {c:<45} {}\n", ty.kql_name()));
    }
    Ok(out.trim_end().to_string())
}

fn names() -> String {
    TABLES.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
}

/// Estimates each table (`tables`, else `XDRSYNC_HUNTING_TABLES`) from a `sample` window, in
/// every Defender tenant when there are many.
pub async fn estimate_command(s: &Ports, tables: &[String], sample: &str, json: bool) -> Result<String, CliError> {
    let sample = parse_duration(sample).map_err(|e| CliError::BadInput(format!("--sample: {e}")))?;
    let chosen: Vec<&'static TableDef> = if tables.is_empty() {
        s.config.hunting.tables.clone()
    } else {
        tables
            .iter()
            .map(|n| {
                TableDef::find(n).ok_or_else(|| {
                    CliError::BadInput(format!("'{n}' is not an advanced-hunting table; tables: {}", names()))
                })
            })
            .collect::<Result<_, _>>()?
    };
    if chosen.is_empty() {
        return Err(CliError::BadInput("no table: pass --tables or set XDRSYNC_HUNTING_TABLES".into()));
    }
    if !s.is_multi_tenant() {
        let mut estimates: Vec<Estimate> = Vec::new();
        for t in chosen {
            estimates.push(estimate(s, t, sample).await.map_err(|e| CliError::Failed(format!("{}: {e}", t.name)))?);
        }
        return Ok(render(&estimates, json));
    }
    // Every Defender tenant, each with its own token; a tenant that fails is named with its fix
    // and the others are still reported.
    let mut estimates: Vec<Estimate> = Vec::new();
    let mut failed = Vec::new();
    for scope in s.each_tenant() {
        for t in &chosen {
            match estimate(&scope, t, sample).await {
                Ok(e) => estimates.push(e),
                Err(e) => {
                    let fix = match e.reaction() {
                        crate::error::Reaction::FixAccess => format!(
                            " (grant the Graph application permission ThreatHunting.Read.All, with {})",
                            crate::check::admin_consent(s, &scope.config.tenant_id)
                        ),
                        _ => String::new(),
                    };
                    failed.push(format!("tenant {}: {}: {e}{fix}", scope.tenant_name(), t.name));
                    break; // its other tables would fail alike
                }
            }
        }
    }
    let out = render(&estimates, json);
    if failed.is_empty() {
        Ok(out)
    } else {
        Err(CliError::Failed(format!("{out}\n{}", failed.join("\n"))))
    }
}

/// JSON, or a text table (with a tenant column when estimates name their tenant).
fn render(estimates: &[Estimate], json: bool) -> String {
    if json {
        return serde_json::to_string_pretty(estimates).unwrap_or_default();
    }
    let tenant_col =
        |name: &str| if estimates.iter().any(|e| e.tenant.is_some()) { format!("{name:<20} ") } else { String::new() };
    let mut out = format!(
        "{}{:<28} {:>12} {:>12} {:>14} {:>10}\n",
        tenant_col("tenant"),
        "table",
        "sample rows",
        "bytes/row",
        "rows/day",
        "MB/day"
    );
    for e in estimates {
        out.push_str(&format!(
            "{}{:<28} {:>12} {:>12} {:>14} {:>10.1}\n",
            tenant_col(e.tenant.as_deref().unwrap_or_default()),
            e.table,
            e.sample_rows,
            e.average_row_bytes,
            e.rows_per_day,
            e.mb_per_day
        ));
    }
    out.push_str(
        "(filters and projections from XDRSYNC_HUNTING_FILTER_/COLUMNS_<TABLE> applied; the sample scaled to a day)",
    );
    out
}
