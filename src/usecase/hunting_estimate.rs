//! `xdrsync hunting estimate`: what turning a table on would cost, from a sample window before
//! now − delay: one `summarize count()` query for the rows (filter applied) and one `take 200`
//! query whose rows, mapped as they would be sent (projection applied), give the average size.
//! Rows and MB per day are the sample scaled to 24 hours: a busy or quiet sample hour skews it,
//! so a longer sample (`--sample P1D`) is steadier. Two queries per table, within the budget.
//! With many Defender tenants, the command runs this in each tenant's scope (its own token and
//! budget).

use serde::Serialize;
use time::Duration;

use crate::domain::hunting::kql::{self, Range};
use crate::domain::hunting::rows::{map_row, row_key};
use crate::domain::hunting::schema::TableDef;
use crate::error::PortError;
use crate::usecase::Ports;

const SAMPLE_ROWS: usize = 200;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    /// The Defender tenant sampled (multi-tenant mode only: each tenant is estimated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub table: String,
    pub sample_seconds: i64,
    pub sample_rows: u64,
    pub average_row_bytes: u64,
    pub rows_per_day: u64,
    pub mb_per_day: f64,
}

/// Parses the sample window: an ISO 8601 duration (the one parser of `domain::iso_duration`) of
/// more than zero and at most 30 days, the data advanced hunting keeps ("Queries explore and
/// return data from the past 30 days", Learn: Advanced hunting API), so a huge window can
/// neither overflow the time arithmetic nor ask for data that does not exist.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = crate::domain::iso_duration::parse_iso_duration(text).map_err(|e| e.to_string())?;
    if d <= Duration::ZERO || d > Duration::days(30) {
        return Err(format!(
            "'{text}' must be more than zero and at most 30 days (P30D): advanced hunting keeps 30 days"
        ));
    }
    Ok(d)
}

/// Estimates `table` from the sample window ending now − delay.
pub async fn estimate(s: &Ports, table: &'static TableDef, sample: Duration) -> Result<Estimate, PortError> {
    let rules = s.config.hunting.rules_for(table);
    let until = s.clock.now() - s.config.hunting.delay;
    let from = until - sample;
    let count = s.hunting.run_query(&kql::count_query(table, from, until, rules.filter.as_ref())).await?;
    let rows = count
        .results
        .first()
        .and_then(|r| r.values().next())
        .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|t| t.parse().ok())))
        .unwrap_or(0);
    let range = Range::Window { from, from_inclusive: true, until, take: SAMPLE_ROWS };
    let sample_page =
        s.hunting.run_query(&kql::page_query(table, range, rules.filter.as_ref(), rules.columns.as_deref())).await?;
    let sizes: Vec<usize> = sample_page
        .results
        .into_iter()
        .filter_map(|r| {
            let key = row_key(&r);
            map_row(table, r, &key, &s.config.tenant_id, &rules).ok().map(|v| v.to_string().len() + 1)
        })
        .collect();
    let average = if sizes.is_empty() { 0 } else { sizes.iter().sum::<usize>() / sizes.len() } as u64;
    let per_day = (rows as f64 * 86_400.0 / sample.whole_seconds().max(1) as f64).round() as u64;
    let multi = s.is_multi_tenant();
    Ok(Estimate {
        tenant_id: multi.then(|| s.config.tenant_id.clone()),
        tenant: multi.then(|| s.tenant_name()),
        table: table.name.to_string(),
        sample_seconds: sample.whole_seconds(),
        sample_rows: rows,
        average_row_bytes: average,
        rows_per_day: per_day,
        mb_per_day: ((per_day * average) as f64 / 1e6 * 10.0).round() / 10.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_sample_durations() {
        assert_eq!(parse_duration("PT1H"), Ok(Duration::hours(1)));
        assert_eq!(parse_duration("P1DT30M"), Ok(Duration::minutes(1_470)));
        assert_eq!(parse_duration("PT45S"), Ok(Duration::seconds(45)));
        assert_eq!(parse_duration("P30D"), Ok(Duration::days(30)));
        for bad in ["1H", "PT", "PTH", "P1H", "PT-1H", "P0D", "P31D", "P9999999999999D", "P1M"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
