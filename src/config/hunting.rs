//! Advanced-hunting export settings (docs/hunting.md), validated at startup
//! with the rest of [`crate::config`]: which tables each source exports, the schedules, the
//! delay, and per table an optional filter (`XDRSYNC_HUNTING_FILTER_<TABLE>`, the KQL subset of
//! `domain::hunting::filter`) and projection (`XDRSYNC_HUNTING_COLUMNS_<TABLE>`). `<TABLE>` is the
//! table's name in any case (`XDRSYNC_HUNTING_FILTER_DEVICEPROCESSEVENTS`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::endpoint::ConfigError;
use crate::domain::hunting::filter;
use crate::domain::hunting::rows::RowRules;
use crate::domain::hunting::schema::{TableDef, TABLES, TIMESTAMP};

pub const FILTER_PREFIX: &str = "XDRSYNC_HUNTING_FILTER_";
pub const COLUMNS_PREFIX: &str = "XDRSYNC_HUNTING_COLUMNS_";
/// Every five minutes (NCRONTAB, six fields).
pub const DEFAULT_SCHEDULE: &str = "0 */5 * * * *";
/// The documented `runHuntingQuery` row limit.
pub const SERVICE_ROW_LIMIT: usize = 100_000;

/// The hunting settings.
#[derive(Debug, Clone)]
pub struct HuntingSettings {
    /// `XDRSYNC_HUNTING_TABLES`: tables the query source exports (empty: off).
    pub tables: Vec<&'static TableDef>,
    /// `XDRSYNC_HUNTING_SCHEDULE`: the query source's and the storage source's timers.
    pub schedule: String,
    /// `XDRSYNC_HUNTING_DELAY_SECONDS`: rows newer than now − delay wait for the next run.
    pub delay: Duration,
    /// `XDRSYNC_HUNTING_LOOKBACK_MINUTES`: how far back a table's first run starts.
    pub lookback: Duration,
    /// `XDRSYNC_HUNTING_PAGE_ROWS`: `take` of one query (≤ the service's 100,000).
    pub page_rows: usize,
    /// `XDRSYNC_HUNTING_CALLS_PER_MINUTE`: the query budget (Defender documents 45 per tenant).
    pub calls_per_minute: u32,
    /// `XDRSYNC_HUNTING_DCR_IMMUTABLE_ID`, bare form: the DCR with every `Custom-<Table>` stream
    /// not routed below (default `XDRSYNC_DCR_IMMUTABLE_ID`).
    pub dcr_immutable_id: Option<String>,
    /// `XDRSYNC_HUNTING_DCR_IMMUTABLE_ID`, `<Table>=dcr-…` entries: the DCR of each table. A DCR
    /// holds at most 10 streams (Azure Monitor service limits), so more tables need several DCRs;
    /// the template deploys one per table (infra/hunting.bicep).
    pub dcr_routes: BTreeMap<&'static str, String>,
    /// `XDRSYNC_HUNTING_STORAGE_TABLES`: tables read from the Streaming API's storage account.
    pub storage_tables: Vec<&'static TableDef>,
    /// `XDRSYNC_HUNTING_STORAGE_CONNECTION`: that account (a connection string).
    pub storage_connection: Option<String>,
    /// Filter and projection per table (canonical table name).
    pub rules: BTreeMap<&'static str, RowRules>,
}

impl HuntingSettings {
    /// The rules of `table` (none: every row, every column).
    pub fn rules_for(&self, table: &TableDef) -> RowRules {
        self.rules.get(table.name).cloned().unwrap_or_default()
    }

    /// The DCR `table`'s rows go to: its route, else the bare default (`None`: the alerts DCR).
    pub fn dcr_for(&self, table: &TableDef) -> Option<String> {
        self.dcr_routes.get(table.name).or(self.dcr_immutable_id.as_ref()).cloned()
    }
}

const DCR_VAR: &str = "XDRSYNC_HUNTING_DCR_IMMUTABLE_ID";

fn is_dcr_id(d: &str) -> bool {
    d.len() == 36 && d.starts_with("dcr-") && d[4..].chars().all(|c| c.is_ascii_hexdigit())
}

/// `dcr-…` (every table), or `<Table>=dcr-…` entries, comma-separated, with at most one bare
/// `dcr-…` among them for the tables not named.
pub fn parse_dcr_routes(raw: &str) -> Result<(Option<String>, BTreeMap<&'static str, String>), ConfigError> {
    let bad = |problem: String| ConfigError { var: DCR_VAR.into(), problem };
    let mut default = None;
    let mut routes = BTreeMap::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (table, id) = match entry.split_once('=') {
            Some((t, id)) => (Some(t.trim()), id.trim()),
            None => (None, entry),
        };
        if !is_dcr_id(id) {
            return Err(bad(format!("'{id}' is not a DCR immutable id (dcr- followed by 32 hex digits)")));
        }
        match table {
            None if default.is_some() => return Err(bad("names more than one DCR for the tables not routed".into())),
            None => default = Some(id.to_string()),
            Some(t) => {
                let def = TableDef::find(t)
                    .ok_or_else(|| bad(format!("'{t}' is not an advanced-hunting table xdrsync exports")))?;
                if routes.insert(def.name, id.to_string()).is_some() {
                    return Err(bad(format!("routes {} twice", def.name)));
                }
            }
        }
    }
    Ok((default, routes))
}

/// `XDRSYNC_HUNTING_STORAGE_CONNECTION`: a connection string (`AccountName`, `AccountKey`, and
/// `BlobEndpoint` or the default endpoint; `UseDevelopmentStorage=true` for Azurite), or the
/// blob endpoint URL alone (the app's identity reads it).
#[derive(Clone, PartialEq, Eq)]
pub struct BlobConnection {
    pub account: String,
    /// `None`: identity-based.
    pub key: Option<String>,
    pub endpoint: url::Url,
}

impl std::fmt::Debug for BlobConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobConnection")
            .field("account", &self.account)
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl BlobConnection {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let endpoint = |u: &str| {
            super::endpoint::parse_endpoint("XDRSYNC_HUNTING_STORAGE_CONNECTION", u.trim_end_matches('/'))
                .map_err(|e| e.problem)
        };
        if raw.starts_with("https://") || raw.starts_with("http://") {
            let url = endpoint(raw)?;
            let account = url.host_str().and_then(|h| h.split('.').next()).unwrap_or_default().to_string();
            return Ok(Self { account, key: None, endpoint: url });
        }
        let field = |name: &str| {
            raw.split(';')
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
        };
        let dev = field("UseDevelopmentStorage").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let account = field("AccountName").or_else(|| dev.then(|| super::storage_conn::DEV_ACCOUNT.to_string()));
        let key = field("AccountKey").or_else(|| dev.then(|| super::storage_conn::DEV_KEY.to_string()));
        let (Some(account), Some(key)) = (account, key) else {
            return Err("needs AccountName and AccountKey (or UseDevelopmentStorage=true), or the blob endpoint URL for identity-based access".into());
        };
        let url = match field("BlobEndpoint") {
            Some(e) => endpoint(&e)?,
            None if dev => endpoint(&format!("http://127.0.0.1:10000/{}", super::storage_conn::DEV_ACCOUNT))?,
            None => {
                let suffix = field("EndpointSuffix").unwrap_or_else(|| "core.windows.net".into());
                endpoint(&format!("https://{account}.blob.{suffix}"))?
            }
        };
        Ok(Self { account, key: Some(key), endpoint: url })
    }
}

fn get<'a>(map: &'a HashMap<String, String>, var: &str) -> Option<&'a str> {
    map.get(var).map(|s| s.trim()).filter(|s| !s.is_empty())
}

fn table_list(map: &HashMap<String, String>, var: &'static str) -> Result<Vec<&'static TableDef>, ConfigError> {
    let mut out: Vec<&'static TableDef> = Vec::new();
    for name in get(map, var).unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let t = TableDef::find(name).ok_or_else(|| ConfigError {
            var: var.into(),
            problem: format!(
                "'{name}' is not an advanced-hunting table xdrsync exports ({})",
                TABLES.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
            ),
        })?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    map: &HashMap<String, String>,
    var: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError> {
    let Some(raw) = get(map, var) else { return Ok(default) };
    let v: T = raw.parse().map_err(|_| ConfigError { var: var.into(), problem: format!("'{raw}' is not a number") })?;
    if !range.contains(&v) {
        return Err(ConfigError {
            var: var.into(),
            problem: format!("{v} is outside {}..={}", range.start(), range.end()),
        });
    }
    Ok(v)
}

fn schedule(map: &HashMap<String, String>, var: &'static str) -> Result<String, ConfigError> {
    let s = get(map, var).unwrap_or(DEFAULT_SCHEDULE).to_string();
    crate::domain::schedule::Schedule::parse(&s).map_err(|p| ConfigError { var: var.into(), problem: p })?;
    Ok(s)
}

/// Per-table rules from the `…_FILTER_<TABLE>` and `…_COLUMNS_<TABLE>` settings.
fn rules(map: &HashMap<String, String>) -> Result<BTreeMap<&'static str, RowRules>, ConfigError> {
    let mut out: BTreeMap<&'static str, RowRules> = BTreeMap::new();
    let mut names: Vec<&String> = map.keys().collect();
    names.sort();
    for var in names {
        let upper = var.to_ascii_uppercase();
        let (prefix, is_filter) = if upper.starts_with(FILTER_PREFIX) {
            (FILTER_PREFIX, true)
        } else if upper.starts_with(COLUMNS_PREFIX) {
            (COLUMNS_PREFIX, false)
        } else {
            continue;
        };
        let Some(raw) = get(map, var) else { continue };
        let table = TableDef::find(&var[prefix.len()..]).ok_or_else(|| ConfigError {
            var: var.clone().into(),
            problem: format!("'{}' is not an advanced-hunting table xdrsync exports", &var[prefix.len()..]),
        })?;
        let rule = out.entry(table.name).or_default();
        let bad = |problem: String| ConfigError { var: var.clone().into(), problem };
        if is_filter {
            let expr = filter::parse(raw).map_err(|e| bad(format!("not a supported filter: {e}")))?;
            if let Some(e) = &expr {
                if let Some(c) = e.columns().into_iter().find(|c| table.column(c).is_none()) {
                    return Err(bad(format!("{} has no column '{c}'", table.name)));
                }
            }
            rule.filter = expr;
        } else {
            let mut cols = Vec::new();
            for c in raw.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                let (canon, _) = table.column(c).ok_or_else(|| bad(format!("{} has no column '{c}'", table.name)))?;
                if canon != TIMESTAMP && !cols.iter().any(|k: &String| k == canon) {
                    cols.push(canon.to_string());
                }
            }
            rule.columns = Some(cols);
        }
    }
    // A filter on a projected-away column still works in KQL (where runs before project) and
    // in xdrsync (the filter sees the whole row), so the two need no check against each other.
    Ok(out)
}

impl HuntingSettings {
    pub fn from_vars(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let (dcr, dcr_routes) = parse_dcr_routes(get(map, DCR_VAR).unwrap_or(""))?;
        let storage_tables = table_list(map, "XDRSYNC_HUNTING_STORAGE_TABLES")?;
        let storage_connection = get(map, "XDRSYNC_HUNTING_STORAGE_CONNECTION").map(str::to_string);
        if let Some(raw) = &storage_connection {
            BlobConnection::parse(raw)
                .map_err(|p| ConfigError { var: "XDRSYNC_HUNTING_STORAGE_CONNECTION".into(), problem: p })?;
        }
        if !storage_tables.is_empty() && storage_connection.is_none() {
            return Err(ConfigError {
                var: "XDRSYNC_HUNTING_STORAGE_CONNECTION".into(),
                problem: "is not set: XDRSYNC_HUNTING_STORAGE_TABLES needs the Streaming API's storage account".into(),
            });
        }
        Ok(Self {
            tables: table_list(map, "XDRSYNC_HUNTING_TABLES")?,
            schedule: schedule(map, "XDRSYNC_HUNTING_SCHEDULE")?,
            delay: Duration::from_secs(number(map, "XDRSYNC_HUNTING_DELAY_SECONDS", 300u64, 0..=86_400)?),
            lookback: Duration::from_secs(60 * number(map, "XDRSYNC_HUNTING_LOOKBACK_MINUTES", 60u64, 0..=43_200)?),
            page_rows: number(map, "XDRSYNC_HUNTING_PAGE_ROWS", 10_000usize, 1..=SERVICE_ROW_LIMIT)?,
            calls_per_minute: number(map, "XDRSYNC_HUNTING_CALLS_PER_MINUTE", 40u32, 1..=600)?,
            dcr_immutable_id: dcr,
            dcr_routes,
            storage_tables,
            storage_connection,
            rules: rules(map)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn blob_connections_are_strings_with_keys_or_endpoint_urls() {
        let c = BlobConnection::parse(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!((c.account.as_str(), c.endpoint.as_str()), ("acct", "https://acct.blob.core.windows.net/"));
        let c = BlobConnection::parse("https://acct.blob.core.windows.net/").unwrap();
        assert_eq!((c.account.as_str(), c.key.is_none()), ("acct", true));
        assert!(BlobConnection::parse("http://acct.blob.core.windows.net").is_err(), "https only, off loopback");
        assert!(BlobConnection::parse("AccountName=acct").is_err());
        assert!(
            !format!("{:?}", BlobConnection::parse("AccountName=a;AccountKey=c2VjcmV0").unwrap()).contains("c2VjcmV0")
        );
    }

    #[test]
    fn each_table_goes_to_its_routed_dcr_or_the_default() {
        let (a, b) = ("dcr-0000000000000000000000000000000a", "dcr-0000000000000000000000000000000b");
        let s = HuntingSettings::from_vars(&vars(&[(DCR_VAR, &format!("emailevents={a}, {b}"))])).unwrap();
        let t = |n| TableDef::find(n).unwrap();
        assert_eq!(s.dcr_for(t("EmailEvents")).as_deref(), Some(a));
        assert_eq!(s.dcr_for(t("DeviceProcessEvents")).as_deref(), Some(b));
        let only_routes = HuntingSettings::from_vars(&vars(&[(DCR_VAR, &format!("EmailEvents={a}"))])).unwrap();
        assert_eq!(only_routes.dcr_for(t("DeviceProcessEvents")), None, "not routed: the alerts DCR");
        for bad in [
            format!("{a},{b}"),
            format!("EmailEvents={a},EMAILEVENTS={b}"),
            format!("Nope={a}"),
            "EmailEvents=dcr-1".into(),
        ] {
            let e = HuntingSettings::from_vars(&vars(&[(DCR_VAR, &bad)])).unwrap_err();
            assert_eq!(e.var, DCR_VAR, "{bad}");
        }
    }

    #[test]
    fn defaults_are_off_every_five_minutes_five_minutes_late() {
        let s = HuntingSettings::from_vars(&HashMap::new()).unwrap();
        assert!(s.tables.is_empty());
        assert_eq!(s.schedule, "0 */5 * * * *");
        assert_eq!(s.delay, Duration::from_secs(300));
        assert_eq!(s.page_rows, 10_000);
    }

    #[test]
    fn tables_filters_and_columns_are_validated_by_name_in_any_case() {
        let s = HuntingSettings::from_vars(&vars(&[
            ("XDRSYNC_HUNTING_TABLES", "deviceprocessevents, EmailEvents"),
            ("XDRSYNC_HUNTING_FILTER_DEVICEPROCESSEVENTS", "FileName =~ 'powershell.exe'"),
            ("XDRSYNC_HUNTING_COLUMNS_EmailEvents", "Subject, senderfromaddress"),
        ]))
        .unwrap();
        assert_eq!(s.tables.iter().map(|t| t.name).collect::<Vec<_>>(), ["DeviceProcessEvents", "EmailEvents"]);
        assert!(s.rules_for(s.tables[0]).filter.is_some());
        assert_eq!(s.rules_for(s.tables[1]).columns, Some(vec!["Subject".into(), "SenderFromAddress".into()]));
        for (var, value, named) in [
            ("XDRSYNC_HUNTING_TABLES", "DeviceProcessEvents,Nope", "XDRSYNC_HUNTING_TABLES"),
            (
                "XDRSYNC_HUNTING_FILTER_DEVICEPROCESSEVENTS",
                "FileName == 'a' | take 1",
                "XDRSYNC_HUNTING_FILTER_DEVICEPROCESSEVENTS",
            ),
            ("XDRSYNC_HUNTING_FILTER_EMAILEVENTS", "NoColumn == 1", "XDRSYNC_HUNTING_FILTER_EMAILEVENTS"),
            ("XDRSYNC_HUNTING_COLUMNS_EMAILEVENTS", "Subject,Nope", "XDRSYNC_HUNTING_COLUMNS_EMAILEVENTS"),
            ("XDRSYNC_HUNTING_FILTER_NOTATABLE", "a == 1", "XDRSYNC_HUNTING_FILTER_NOTATABLE"),
            ("XDRSYNC_HUNTING_PAGE_ROWS", "200000", "XDRSYNC_HUNTING_PAGE_ROWS"),
            ("XDRSYNC_HUNTING_SCHEDULE", "every minute", "XDRSYNC_HUNTING_SCHEDULE"),
        ] {
            let e = HuntingSettings::from_vars(&vars(&[(var, value)])).unwrap_err();
            assert_eq!(e.var, named, "{var}={value}: {e}");
        }
    }
}
