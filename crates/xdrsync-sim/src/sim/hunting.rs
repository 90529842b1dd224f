//! Simulated advanced hunting: `POST /v1.0/security/runHuntingQuery` (`{"Query": "…"}` →
//! `{"schema", "results"}`) over seeded tables, for the KQL subset xdrsync emits: a table name,
//! `where` (the filter language of `xdrsync-core`'s `domain::hunting::filter`, which holds the
//! `Timestamp` windows too), `order by <col> [asc|desc]`, `take`/`limit`, `project`, and
//! `summarize <name> = count()`. Anything else is the service's 400 (`BadRequest`, "Syntax
//! error"). Limits, each settable per test: at most `row_limit` rows per result (documented:
//! 100,000; the simulator truncates, the product never relies on it), `max_result_bytes` (over
//! it: a 400 saying the result size exceeded the limit; the real text is not documented), and
//! `calls_per_minute` per tenant (documented: 45; beyond it a 429 with `Retry-After` whose message
//! names the quota). Rows with equal `Timestamp` come back in an order that changes from call to
//! call, as nothing documents one. Needs the `ThreatHunting.Read.All` application role.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::entra::authorize;
use super::faults::graph_error;
use super::hunting_kql::{self, Pred};
use super::hunting_schema;
use super::permissions::graph_missing_roles;
use super::world::Audience;
use super::Sim;

pub use super::permissions::THREAT_HUNTING_READ;

/// Seeded tables, limits and the call window.
#[derive(Debug)]
pub struct HuntingState {
    pub tables: BTreeMap<String, Vec<Map<String, Value>>>,
    pub row_limit: usize,
    pub max_result_bytes: usize,
    pub calls_per_minute: usize,
    window: VecDeque<Instant>,
    calls: u64,
    /// Every query received, in order.
    pub queries: Vec<String>,
}

impl Default for HuntingState {
    fn default() -> Self {
        Self {
            tables: BTreeMap::new(),
            row_limit: 100_000,
            max_result_bytes: 64 * 1024 * 1024,
            calls_per_minute: 45,
            window: VecDeque::new(),
            calls: 0,
            queries: Vec::new(),
        }
    }
}

impl HuntingState {
    /// Adds rows to a table (a real tenant's events arriving).
    pub fn add(&mut self, table: &str, rows: impl IntoIterator<Item = Map<String, Value>>) {
        self.tables.entry(table.to_string()).or_default().extend(rows);
    }
}

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/v1.0/security/runHuntingQuery", post(run_query))
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
}

fn bad(message: impl Into<String>) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

enum Stage {
    Where(Pred),
    Order { column: String, desc: bool },
    Take(usize),
    Project(Vec<String>),
    Count(String),
}

/// Splits on `|` outside string literals.
fn segments(q: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in q.chars() {
        match quote {
            Some(qc) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == qc {
                    quote = None;
                }
                out.last_mut().expect("one segment").push(c);
            }
            None if c == '|' => out.push(String::new()),
            None => {
                if c == '"' || c == '\'' {
                    quote = Some(c);
                }
                out.last_mut().expect("one segment").push(c);
            }
        }
    }
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

fn parse_stage(s: &str) -> Result<Stage, String> {
    let (op, rest) = s.split_once(char::is_whitespace).unwrap_or((s, ""));
    let rest = rest.trim();
    match op {
        "where" => hunting_kql::parse(rest).map(Stage::Where),
        "order" | "sort" => {
            let rest = rest.strip_prefix("by").ok_or("expected 'by'")?.trim();
            let mut words = rest.split_whitespace();
            let column = words.next().ok_or("expected a column")?.to_string();
            let desc = match words.next() {
                None | Some("desc") => true, // KQL's default order is descending
                Some("asc") => false,
                Some(other) => return Err(format!("unexpected '{other}'")),
            };
            Ok(Stage::Order { column, desc })
        }
        "take" | "limit" => rest.parse().map(Stage::Take).map_err(|_| format!("'{rest}' is not a row count")),
        "project" => {
            Ok(Stage::Project(rest.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect()))
        }
        "summarize" => {
            let (name, f) = rest.split_once('=').map(|(n, f)| (n.trim(), f.trim())).unwrap_or(("count_", rest));
            if f.replace(' ', "") != "count()" {
                return Err("only summarize count() is supported".into());
            }
            Ok(Stage::Count(name.to_string()))
        }
        other => Err(format!("'{other}' is not supported here")),
    }
}

/// The type name a result's `schema` gives a column of this DCR type.
fn type_name(t: &str) -> &'static str {
    match t {
        "int" => "Int32",
        "long" => "Int64",
        "real" => "Double",
        "boolean" => "Boolean",
        "datetime" => "DateTime",
        "dynamic" => "Object",
        _ => "String",
    }
}

fn time_of(row: &Map<String, Value>, column: &str) -> Option<time::OffsetDateTime> {
    row.get(column).and_then(Value::as_str).and_then(|s| super::timefmt::parse(s).ok())
}

/// A rank for rows with equal sort keys that changes with every call.
fn tie_rank(index: usize, call: u64) -> u64 {
    (index as u64 ^ call.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xff51_afd7_ed55_8ccd).rotate_left(29)
}

async fn run_query(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let caller = match authorize(&sim, &headers, Audience::Graph, graph_error) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !caller.has_any(&[THREAT_HUNTING_READ]) {
        sim.stats.bump("graph.forbidden");
        return graph_missing_roles(&[THREAT_HUNTING_READ], &caller.roles);
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else { return bad("The request body is not valid JSON") };
    let Some(query) = req.get("Query").and_then(Value::as_str) else { return bad("Query is required") };
    let mut state = sim.hunting.lock().unwrap_or_else(|p| p.into_inner());
    // The per-tenant call quota, a sliding minute.
    let now = Instant::now();
    while state.window.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
        state.window.pop_front();
    }
    if state.window.len() >= state.calls_per_minute {
        sim.stats.bump("hunting.throttled");
        let wait =
            state.window.front().map_or(1, |t| (Duration::from_secs(60) - now.duration_since(*t)).as_secs().max(1));
        let limit = state.calls_per_minute;
        let mut r = graph_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            format!("Rate limit is exceeded: {limit} calls per minute per tenant. Try again in {wait} seconds."),
        );
        r.headers_mut().insert("retry-after", wait.to_string().parse().expect("digits"));
        return r;
    }
    state.window.push_back(now);
    state.calls += 1;
    state.queries.push(query.to_string());
    sim.stats.bump("hunting.queries");
    let call = state.calls;
    let segs = segments(query);
    let Some(table) = hunting_schema::table(&segs[0]) else {
        return bad(format!("Failed to resolve table expression named '{}'", segs[0]));
    };
    let mut stages = Vec::new();
    for s in &segs[1..] {
        match parse_stage(s) {
            Ok(st) => stages.push(st),
            Err(e) => return bad(format!("Syntax error: {e}")),
        }
    }
    // Rows are borrowed until the result is cut, then cloned (tables hold tens of thousands).
    let empty = Vec::new();
    let all = state.tables.get(&table.name).unwrap_or(&empty);
    let mut rows: Vec<(usize, &Map<String, Value>)> = all.iter().enumerate().collect();
    let mut columns: Vec<(String, &'static str)> =
        table.columns.iter().map(|(c, t)| (c.clone(), type_name(t))).collect();
    let mut projection: Option<Vec<String>> = None;
    let mut count: Option<String> = None;
    for st in stages {
        match st {
            Stage::Where(e) => rows.retain(|(_, r)| hunting_kql::eval(&e, r)),
            Stage::Order { column, desc } => {
                rows.sort_by_cached_key(|(i, r)| (time_of(r, &column), tie_rank(*i, call)));
                if desc {
                    rows.reverse();
                }
            }
            Stage::Take(n) => rows.truncate(n),
            Stage::Project(cols) => {
                if let Some(c) = cols.iter().find(|c| !table.columns.iter().any(|(k, _)| k == *c)) {
                    return bad(format!("Failed to resolve scalar expression named '{c}'"));
                }
                columns.retain(|(c, _)| cols.contains(c));
                projection = Some(cols);
            }
            Stage::Count(name) => {
                columns = vec![(name.clone(), "Int64")];
                count = Some(name);
            }
        }
    }
    let mut rows: Vec<Map<String, Value>> = match count {
        Some(name) => vec![Map::from_iter([(name, json!(rows.len()))])],
        None => rows
            .into_iter()
            .map(|(_, r)| match &projection {
                Some(cols) => r.iter().filter(|(k, _)| cols.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
                None => r.clone(),
            })
            .collect(),
    };
    if rows.len() > state.row_limit {
        sim.stats.bump("hunting.truncated");
        rows.truncate(state.row_limit);
    }
    let max_bytes = state.max_result_bytes;
    drop(state);
    let results = Value::Array(rows.into_iter().map(Value::Object).collect());
    let size = results.to_string().len();
    if size > max_bytes {
        sim.stats.bump("hunting.too_large");
        return bad(format!("Query result size exceeded the allowed limit ({size} bytes; the limit is {max_bytes})"));
    }
    sim.stats.bump("hunting.ok");
    let schema: Vec<Value> = columns.into_iter().map(|(n, t)| json!({"name": n, "type": t})).collect();
    Json(json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.security.huntingQueryResults",
        "schema": schema,
        "results": results,
    }))
    .into_response()
}
