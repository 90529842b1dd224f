//! The advanced-hunting export's query source (ARCHITECTURE.md: “Advanced hunting”): per table
//! in `XDRSYNC_HUNTING_TABLES`, pages of `runHuntingQuery` over `[cursor, now − delay]` (the pure
//! rules in `domain::hunting::cursor`), each page's new rows mapped and sent to `Custom-<Table>`,
//! then the cursor saved (ETag-guarded): the cursor moves only after Logs Ingestion accepted the
//! rows, so a crash re-sends at most one page. A result over the service's size limit halves the
//! page and asks again. Stream sources (`hunting_stream`) share the sink.

use crate::records::HUNTING_FEED;
use crate::usecase::health::record_feed;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::config::hunting::SERVICE_ROW_LIMIT;
use crate::domain::hunting::cursor::{after_page, after_sweep, HuntingCursor, Next, PageRow};
use crate::domain::hunting::kql::{self, Range};
use crate::domain::hunting::rows::{map_row, row_key, timestamp};
use crate::domain::hunting::schema::TableDef;
use crate::domain::time_fmt::rfc3339;
use crate::error::PortError;
use crate::ports::Table;
use crate::state::{self, RowKey};
use crate::usecase::Ports;

/// A table's cursor row (`Cursors`, PK tenant, RK `hunting:<Table>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HuntingCursorRecord {
    pub cursor: HuntingCursor,
    #[serde(with = "rfc3339")]
    pub exported_at: OffsetDateTime,
}

pub fn cursor_key(tenant: &str, table: &TableDef) -> Result<RowKey, PortError> {
    RowKey::new(tenant, &format!("hunting:{}", table.name))
}

/// What one table's run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableReport {
    pub table: String,
    pub queries: usize,
    pub rows_read: usize,
    pub rows_sent: usize,
    /// Rows over the 1 MB a Logs Ingestion call carries (logged, not sent).
    pub rows_too_large: usize,
    /// Rows without a readable `Timestamp` (logged, not sent).
    pub rows_malformed: usize,
    /// The run stopped at its time budget; the next run goes on from the cursor.
    pub stopped_early: bool,
}

/// Sends mapped rows to the table's stream; every row must be accepted before the caller moves
/// its cursor. Returns how many were sent and how many were too large to send.
pub async fn sink(s: &Ports, table: &TableDef, rows: &[Value]) -> Result<(usize, usize), PortError> {
    if rows.is_empty() {
        return Ok((0, 0));
    }
    let report = s.hunting_logs.upload(&table.stream(), rows).await?;
    if !report.too_large.is_empty() {
        tracing::warn!(
            hunting.table = table.name,
            rows = report.too_large.len(),
            "rows larger than one Logs Ingestion call were not sent"
        );
    }
    Ok((report.rows_sent, report.too_large.len()))
}

/// Exports one table up to `until`, within `deadline`.
pub async fn export_table(
    s: &Ports,
    table: &'static TableDef,
    until: OffsetDateTime,
    deadline: tokio::time::Instant,
) -> Result<TableReport, PortError> {
    let cfg = &s.config.hunting;
    let rules = cfg.rules_for(table);
    let key = cursor_key(&s.config.tenant_id, table)?;
    let stored = state::load::<HuntingCursorRecord>(&*s.store, Table::Cursors, &key).await?;
    let mut etag = stored.as_ref().map(|v| v.etag.clone());
    let mut cursor = stored.map(|v| v.value.cursor).unwrap_or_else(|| HuntingCursor::start(until - cfg.lookback));
    let mut report = TableReport { table: table.name.to_string(), ..Default::default() };
    let mut take = cfg.page_rows;
    let mut sweep: Option<OffsetDateTime> = None;
    loop {
        if tokio::time::Instant::now() >= deadline {
            report.stopped_early = true;
            break;
        }
        let range = match sweep {
            Some(at) => Range::Exact { at },
            None => match cursor.range(until, take) {
                Some(r) => r,
                None => break,
            },
        };
        let query = kql::page_query(table, range, rules.filter.as_ref(), rules.columns.as_deref());
        report.queries += 1;
        let result = match s.hunting.run_query(&query).await {
            Ok(r) => r,
            Err(PortError::TooLarge { message, .. }) if take > 1 && sweep.is_none() => {
                take = (take / 2).max(1);
                tracing::info!(hunting.table = table.name, take, error.message = %message, "result too large; asking for fewer rows");
                continue;
            }
            Err(e) => return Err(e),
        };
        let returned = result.results.len();
        report.rows_read += returned;
        let mut rows: Vec<(Map<String, Value>, PageRow)> = Vec::with_capacity(returned);
        for row in result.results {
            match timestamp(&row) {
                Ok(at) => {
                    let key = row_key(&row);
                    rows.push((row, PageRow { at, key }));
                }
                Err(_) => report.rows_malformed += 1,
            }
        }
        if report.rows_malformed > 0 {
            tracing::warn!(
                hunting.table = table.name,
                rows = report.rows_malformed,
                "rows without a Timestamp were not sent"
            );
        }
        let page: Vec<PageRow> = rows.iter().map(|(_, p)| p.clone()).collect();
        // Fresh rows keep their page order; `after_page` returns their positions in `page`.
        let step = match range {
            Range::Window { take, .. } => after_page(&cursor, &page, returned >= take.min(SERVICE_ROW_LIMIT)),
            Range::Exact { at } => {
                if returned >= SERVICE_ROW_LIMIT {
                    tracing::warn!(hunting.table = table.name, at = %at, "more rows share one Timestamp than one query returns; the rest are not exported");
                }
                after_sweep(&cursor, at, &page)
            }
        };
        // Rows move into their mapped form (no copy): a page can be tens of megabytes.
        let mut keep = vec![false; rows.len()];
        for i in &step.fresh {
            keep[*i] = true;
        }
        let mut out = Vec::with_capacity(step.fresh.len());
        for ((row, p), keep) in rows.into_iter().zip(keep) {
            if keep {
                // The tenant of this scope: the one whose token ran the query.
                if let Ok(v) = map_row(table, row, &p.key, &s.config.tenant_id, &rules) {
                    out.push(v);
                }
            }
        }
        let (sent, too_large) = sink(s, table, &out).await?;
        report.rows_sent += sent;
        report.rows_too_large += too_large;
        // The rows are accepted: only now does the cursor move.
        let record = HuntingCursorRecord { cursor: step.cursor.clone(), exported_at: s.clock.now() };
        etag = Some(state::save(&*s.store, Table::Cursors, &key, &record, &[], etag.as_ref()).await?);
        cursor = step.cursor;
        sweep = None;
        match step.next {
            Next::Done => break,
            Next::More => {}
            Next::Sweep(at) => sweep = Some(at),
        }
    }
    Ok(report)
}

/// One tick of the query source: every configured table (each runs even if another fails).
pub async fn export_all(s: &Ports) -> Result<Vec<TableReport>, String> {
    let cfg = &s.config.hunting;
    let until = s.clock.now() - cfg.delay;
    let deadline = tokio::time::Instant::now() + s.config.poll_time_budget;
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    let mut first_error = None;
    for table in &cfg.tables {
        match export_table(s, table, until, deadline).await {
            Ok(r) => {
                tracing::info!(
                    hunting.table = table.name,
                    rows.sent = r.rows_sent,
                    queries = r.queries,
                    "hunting export ran"
                );
                reports.push(r);
            }
            Err(e) => {
                tracing::error!(hunting.table = table.name, error.message = %e, "hunting export failed; the next run resumes at the cursor");
                failures.push(format!("{}: {e}", table.name));
                first_error.get_or_insert(crate::usecase::UseCaseError::from(e));
            }
        }
    }
    // Health shows the source's last run (`GET /api/health`, `xdrsync status`).
    record_feed(s, HUNTING_FEED, first_error.as_ref().map_or(Ok(()), Err)).await;
    if failures.is_empty() {
        Ok(reports)
    } else {
        Err(failures.join("; "))
    }
}
