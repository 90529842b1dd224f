//! The KQL the query source sends to `runHuntingQuery`: one table, a `Timestamp` range, the
//! user's filter (re-rendered from its parsed form, never pasted), ordered by `Timestamp`, a
//! `take` that bounds the result under the service's row and size limits, and the projection.

use time::OffsetDateTime;

use super::filter::Expr;
use super::schema::{TableDef, TIMESTAMP};
use crate::domain::time_fmt;

/// Which rows one query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// `from <(=) Timestamp <= until`, first `take` by `Timestamp`.
    Window { from: OffsetDateTime, from_inclusive: bool, until: OffsetDateTime, take: usize },
    /// Every row at exactly `at` (the boundary holds more rows than a page).
    Exact { at: OffsetDateTime },
}

/// A `datetime(…)` literal with the 7 fractional digits advanced hunting keeps.
pub fn datetime(t: OffsetDateTime) -> String {
    format!("datetime({})", time_fmt::format(t))
}

/// The query for `range` over `table`, filtered and projected.
pub fn page_query(table: &TableDef, range: Range, filter: Option<&Expr>, columns: Option<&[String]>) -> String {
    let mut q = String::from(table.name);
    match range {
        Range::Window { from, from_inclusive, until, .. } => {
            let op = if from_inclusive { ">=" } else { ">" };
            q.push_str(&format!(
                "\n| where {TIMESTAMP} {op} {} and {TIMESTAMP} <= {}",
                datetime(from),
                datetime(until)
            ));
        }
        Range::Exact { at } => q.push_str(&format!("\n| where {TIMESTAMP} == {}", datetime(at))),
    }
    if let Some(f) = filter {
        q.push_str(&format!("\n| where {}", f.render()));
    }
    if let Range::Window { take, .. } = range {
        q.push_str(&format!("\n| order by {TIMESTAMP} asc\n| take {take}"));
    }
    if let Some(cols) = columns {
        let mut list: Vec<&str> = vec![TIMESTAMP];
        list.extend(cols.iter().map(String::as_str).filter(|c| *c != TIMESTAMP));
        q.push_str(&format!("\n| project {}", list.join(", ")));
    }
    q
}

/// The count of rows in `[from, until)` passing the filter (`hunting estimate`).
pub fn count_query(table: &TableDef, from: OffsetDateTime, until: OffsetDateTime, filter: Option<&Expr>) -> String {
    let mut q =
        format!("{}\n| where {TIMESTAMP} >= {} and {TIMESTAMP} < {}", table.name, datetime(from), datetime(until));
    if let Some(f) = filter {
        q.push_str(&format!("\n| where {}", f.render()));
    }
    q.push_str("\n| summarize Count = count()");
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::hunting::filter::parse;
    use time::macros::datetime;

    #[test]
    fn a_page_query_has_the_window_filter_order_take_and_projection() {
        let t = TableDef::find("DeviceProcessEvents").unwrap();
        let f = parse("FileName =~ 'cmd.exe'").unwrap().unwrap();
        let cols = vec!["DeviceName".to_string(), "FileName".to_string()];
        let q = page_query(
            t,
            Range::Window {
                from: datetime!(2024-05-01 10:00:00.5 UTC),
                from_inclusive: true,
                until: datetime!(2024-05-01 10:05 UTC),
                take: 5000,
            },
            Some(&f),
            Some(&cols),
        );
        assert_eq!(
            q,
            "DeviceProcessEvents\n| where Timestamp >= datetime(2024-05-01T10:00:00.5000000Z) and Timestamp <= datetime(2024-05-01T10:05:00.0000000Z)\n| where FileName =~ \"cmd.exe\"\n| order by Timestamp asc\n| take 5000\n| project Timestamp, DeviceName, FileName"
        );
        let exact = page_query(t, Range::Exact { at: datetime!(2024-05-01 10:00 UTC) }, None, None);
        assert_eq!(exact, "DeviceProcessEvents\n| where Timestamp == datetime(2024-05-01T10:00:00.0000000Z)");
    }
}
