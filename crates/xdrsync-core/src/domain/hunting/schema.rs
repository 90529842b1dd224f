//! Table definitions: a Defender advanced-hunting table, its columns and KQL types, and the
//! columns of its `<Table>_CL` copy in the workspace (the same, plus `TimeGenerated`,
//! `AdditionalFields` where the table has none, `XdrsyncRowKey` and `DefenderTenantId`).

use serde::Serialize;

pub use super::tables::TABLES;

/// A column type, as advanced hunting and Log Analytics name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KqlType {
    Str,
    Int,
    Long,
    Real,
    Bool,
    DateTime,
    Dynamic,
}

impl KqlType {
    /// The name in a DCR stream declaration and a Log Analytics table (`boolean`, `datetime`, …).
    pub fn dcr_name(self) -> &'static str {
        match self {
            KqlType::Str => "string",
            KqlType::Int => "int",
            KqlType::Long => "long",
            KqlType::Real => "real",
            KqlType::Bool => "boolean",
            KqlType::DateTime => "datetime",
            KqlType::Dynamic => "dynamic",
        }
    }

    /// The name advanced hunting's schema reference uses (`bool`).
    pub fn kql_name(self) -> &'static str {
        match self {
            KqlType::Bool => "bool",
            other => other.dcr_name(),
        }
    }
}

impl KqlType {
    /// A type as advanced hunting's schema reference writes it; Microsoft's pages spell the
    /// boolean type both `bool` and `boolean`.
    pub fn from_kql_name(name: &str) -> Option<KqlType> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "string" => KqlType::Str,
            "int" => KqlType::Int,
            "long" => KqlType::Long,
            "real" => KqlType::Real,
            "bool" | "boolean" => KqlType::Bool,
            "datetime" => KqlType::DateTime,
            "dynamic" => KqlType::Dynamic,
            _ => return None,
        })
    }
}

/// Columns that advanced hunting documents as `string` holding JSON text and that the export
/// declares `dynamic`, so KQL over `<Table>_CL` can index into them (`AdditionalFields` is also
/// merged with unknown columns into one object, see `rows.rs`).
pub const JSON_TEXT_COLUMNS: [&str; 6] =
    [ADDITIONAL_FIELDS, "LoggedOnUsers", "ConnectedNetworks", "DefaultGateways", "DnsAddresses", "IPAddresses"];

/// Documented columns deliberately not exported as columns of their own: (table, column, why).
/// Empty today: every column of the reference pages is exported. A column left out still
/// reaches `<Table>_CL`, inside `AdditionalFields`.
pub const LEFT_OUT: &[(&str, &str, &str)] = &[];

/// Whether the export's type `ours` for `column` can hold what advanced hunting documents as
/// `documented`: the same type, or `dynamic` for a JSON-text column ([`JSON_TEXT_COLUMNS`]).
pub fn holds_documented_type(column: &str, ours: KqlType, documented: KqlType) -> bool {
    ours == documented
        || (ours == KqlType::Dynamic
            && documented == KqlType::Str
            && JSON_TEXT_COLUMNS.iter().any(|c| c.eq_ignore_ascii_case(column)))
}

/// One advanced-hunting table.
#[derive(Debug, PartialEq, Eq)]
pub struct TableDef {
    pub name: &'static str,
    /// Columns in the order `hunting schema` prints them (`Timestamp` first).
    pub columns: &'static [(&'static str, KqlType)],
}

/// Column holding unknown columns (and the table's own `AdditionalFields`, where it has one).
pub const ADDITIONAL_FIELDS: &str = "AdditionalFields";
/// Column holding the row's stable key (a digest of the row as Defender sent it).
pub const ROW_KEY: &str = "XdrsyncRowKey";
pub const TIME_GENERATED: &str = "TimeGenerated";
/// Column naming the Defender tenant a row came from (many tenants share one `<Table>_CL`).
/// Not `TenantId`: Log Analytics reserves that name for the workspace's own tenant.
pub const TENANT_COLUMN: &str = "DefenderTenantId";
pub const TIMESTAMP: &str = "Timestamp";

impl TableDef {
    /// A table by name, case-insensitively.
    pub fn find(name: &str) -> Option<&'static TableDef> {
        TABLES.iter().find(|t| t.name.eq_ignore_ascii_case(name.trim()))
    }

    /// The canonical spelling of a column, found case-insensitively.
    pub fn column(&self, name: &str) -> Option<(&'static str, KqlType)> {
        self.columns.iter().find(|(c, _)| c.eq_ignore_ascii_case(name)).copied()
    }

    /// The DCR input stream (`Custom-<Table>`).
    pub fn stream(&self) -> String {
        format!("Custom-{}", self.name)
    }

    /// The workspace table (`<Table>_CL`).
    pub fn output_table(&self) -> String {
        format!("{}_CL", self.name)
    }

    /// The columns of `<Table>_CL` and of its stream: the table's own (a name Log Analytics
    /// reserves, such as `Title`, gets a trailing `_`), then `TimeGenerated`, `AdditionalFields`
    /// (if the table has none), `XdrsyncRowKey` and `DefenderTenantId`. Everything after
    /// `TimeGenerated` is added by the export, never sent by Defender.
    pub fn output_columns(&self) -> Vec<(String, KqlType)> {
        let mut cols: Vec<(String, KqlType)> = self.columns.iter().map(|(c, t)| (output_name(c), *t)).collect();
        cols.push((TIME_GENERATED.into(), KqlType::DateTime));
        if self.column(ADDITIONAL_FIELDS).is_none() {
            cols.push((ADDITIONAL_FIELDS.into(), KqlType::Dynamic));
        }
        cols.push((ROW_KEY.into(), KqlType::Str));
        cols.push((TENANT_COLUMN.into(), KqlType::Str));
        cols
    }
}

/// The content of `infra/hunting-tables.json`, which the Bicep loads (`xdrsync hunting schema
/// --all --json` prints it): `tables` maps each table to its `<Table>_CL` columns (`{"name",
/// "type"}` with DCR type names), `streams` is the DCR's `streamDeclarations` for every table
/// (static, because the Bicep cannot build an object in a loop without lambdas, which the infra
/// linter cannot parse).
pub fn infra_json() -> serde_json::Value {
    let mut tables = serde_json::Map::new();
    let mut streams = serde_json::Map::new();
    for t in TABLES {
        let cols: Vec<serde_json::Value> = t
            .output_columns()
            .into_iter()
            .map(|(name, ty)| serde_json::json!({"name": name, "type": ty.dcr_name()}))
            .collect();
        streams.insert(t.stream(), serde_json::json!({ "columns": cols }));
        tables.insert(t.name.to_string(), serde_json::Value::Array(cols));
    }
    serde_json::json!({ "tables": tables, "streams": streams })
}

/// A Defender column's name in `<Table>_CL`: itself, or `<name>_` for a reserved name.
pub fn output_name(column: &str) -> String {
    if RESERVED_COLUMNS.iter().any(|r| r.eq_ignore_ascii_case(column)) {
        format!("{column}_")
    } else {
        column.to_string()
    }
}

/// Log Analytics reserves these column names in custom tables.
pub const RESERVED_COLUMNS: [&str; 7] =
    ["_ResourceId", "id", "_SubscriptionId", "TenantId", "Type", "UniqueId", "Title"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_a_timestamp_first_and_unique_valid_columns() {
        assert!(TABLES.len() >= 19);
        for t in TABLES {
            assert_eq!(t.columns[0], (TIMESTAMP, KqlType::DateTime), "{}", t.name);
            let out = t.output_columns();
            let mut names: Vec<String> = out.iter().map(|(c, _)| c.to_ascii_lowercase()).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), out.len(), "{}: duplicate column", t.name);
            for (c, _) in &out {
                // Log Analytics: starts with a letter, ≤ 45 letters, digits or _.
                assert!(c.len() <= 45 && c.chars().next().is_some_and(|x| x.is_ascii_alphabetic()), "{c}");
                assert!(c.chars().all(|x| x.is_ascii_alphanumeric() || x == '_'), "{c}");
                assert!(!RESERVED_COLUMNS.iter().any(|r| r.eq_ignore_ascii_case(c)), "{}: reserved {c}", t.name);
            }
        }
    }

    #[test]
    fn the_tenant_column_is_in_every_table_and_collides_with_nothing() {
        assert!(!RESERVED_COLUMNS.iter().any(|r| r.eq_ignore_ascii_case(TENANT_COLUMN)));
        for t in TABLES {
            assert!(t.column(TENANT_COLUMN).is_none(), "{} has a Defender column of that name", t.name);
            let out = t.output_columns();
            assert_eq!(out.last(), Some(&(TENANT_COLUMN.to_string(), KqlType::Str)), "{}", t.name);
            let generated = out.iter().position(|(c, _)| c == TIME_GENERATED).unwrap();
            assert!(out.iter().position(|(c, _)| c == TENANT_COLUMN).unwrap() > generated, "added by the export");
        }
    }

    #[test]
    fn reads_the_reference_pages_type_names_and_widens_only_json_text() {
        assert_eq!(KqlType::from_kql_name("bool"), Some(KqlType::Bool));
        assert_eq!(KqlType::from_kql_name("boolean"), Some(KqlType::Bool));
        assert_eq!(KqlType::from_kql_name("long"), Some(KqlType::Long));
        assert_eq!(KqlType::from_kql_name("guid"), None);
        assert!(holds_documented_type("LoggedOnUsers", KqlType::Dynamic, KqlType::Str));
        assert!(!holds_documented_type("FileName", KqlType::Dynamic, KqlType::Str));
        assert!(!holds_documented_type("Port", KqlType::Str, KqlType::Int));
        assert!(holds_documented_type("Port", KqlType::Int, KqlType::Int));
    }

    #[test]
    fn finds_tables_and_columns_case_insensitively() {
        let t = TableDef::find("deviceprocessevents").unwrap();
        assert_eq!(t.name, "DeviceProcessEvents");
        assert_eq!(t.column("processcommandline"), Some(("ProcessCommandLine", KqlType::Str)));
        assert_eq!(t.stream(), "Custom-DeviceProcessEvents");
        assert_eq!(t.output_table(), "DeviceProcessEvents_CL");
        assert!(TableDef::find("NoSuchTable").is_none());
        let info = TableDef::find("AlertInfo").unwrap();
        assert!(info.output_columns().contains(&(ADDITIONAL_FIELDS.into(), KqlType::Dynamic)));
        assert!(info.output_columns().contains(&("Title_".into(), KqlType::Str)), "reserved names get a _");
    }
}
