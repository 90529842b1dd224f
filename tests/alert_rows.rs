//! Alert rows in Logs Ingestion when calls fail after the service stored them (ARCHITECTURE.md:
//! “Logs Ingestion”). The service does not deduplicate, so a lost answer or a crash before the
//! digests are saved sends rows again; these tests inject exactly those failures and count the
//! copies of every row in the simulator's table. The bound under test: every copy beyond the
//! first comes from one failed attempt at the call that carried that row, and rows of calls
//! already accepted are never sent again.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use support::*;
use xdrsync::app;
use xdrsync::domain::work::{ChangeHint, WorkItem};
use xdrsync::error::PortError;
use xdrsync::ports::{AcceptedRows, Entity, LogsIngestion, Table, UploadReport};
use xdrsync::usecase::sync::{reconcile, SyncOutcome};
use xdrsync::usecase::{Ports, UseCaseError};
use xdrsync_sim::fakes::{MemoryQueue, MemoryStore};
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::{RunningSim, SimConfig};

const ALERTS: usize = 12;

/// Ports against `sim` with in-memory storage, Logs Ingestion at `logs_endpoint` (the sim's by
/// default) in calls of at most `max_batch` bytes.
fn ports(sim: &RunningSim, store: Arc<MemoryStore>, logs_endpoint: Option<&str>, max_batch: usize) -> Ports {
    let mut vars = settings(sim, None);
    vars.insert("XDRSYNC_MAX_BATCH_BYTES".into(), max_batch.to_string());
    if let Some(endpoint) = logs_endpoint {
        vars.insert("XDRSYNC_LOGS_INGESTION_ENDPOINT".into(), endpoint.into());
    }
    let mut s = app::build(config(&vars));
    s.store = store;
    s.queue = Arc::new(MemoryQueue::new());
    s
}

async fn sync(s: &Ports, id: &str) -> Result<SyncOutcome, UseCaseError> {
    reconcile(s, &WorkItem::reconcile(&s.config.tenant_id, id, ChangeHint::Reconcile)).await
}

/// Reconciles until it succeeds (a queue redelivering the message); returns the failed tries.
async fn sync_until_done(s: &Ports, id: &str) -> usize {
    for failed in 0..10 {
        match sync(s, id).await {
            Ok(_) => return failed,
            Err(e) => assert!(e.to_string().contains("logs") || e.to_string().contains("died"), "{e}"),
        }
    }
    panic!("the reconcile never succeeded")
}

/// Copies of each alert row in the simulator's table, by alert id and row digest.
fn copies(sim: &RunningSim) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for r in sim.sim.world().logs.values().flatten() {
        let key = (r["SystemAlertId"].as_str().unwrap().to_string(), r["RowDigest"].as_str().unwrap().to_string());
        *out.entry(key).or_default() += 1;
    }
    out
}

fn seed_one(sim: &RunningSim) -> String {
    seed(sim, SeedSpec { count: 1, min_alerts: ALERTS, max_alerts: ALERTS, ..Default::default() }).remove(0)
}

/// What the proxy saw: per request, the alert ids it carried and whether it was made to fail.
#[derive(Default)]
struct Calls {
    carried: Vec<(Vec<String>, bool)>,
}

struct Proxy {
    upstream: String,
    http: reqwest::Client,
    /// `fail[i]`: answer request `i` (from 0) with a 503 after the upstream stored it.
    fail: Vec<bool>,
    seen: Mutex<Calls>,
}

fn alert_ids(headers: &HeaderMap, body: &[u8]) -> Vec<String> {
    let gzip = headers.get("content-encoding").is_some_and(|v| v == "gzip");
    let mut raw = Vec::new();
    if gzip {
        flate2::read::GzDecoder::new(body).read_to_end(&mut raw).unwrap();
    } else {
        raw = body.to_vec();
    }
    let rows: Vec<Value> = serde_json::from_slice(&raw).unwrap();
    rows.iter().map(|r| r["SystemAlertId"].as_str().unwrap().to_string()).collect()
}

/// Forwards every request to the simulator; for the chosen ones, once the simulator has stored
/// the rows (2xx), answers 503 instead: the service committed, the answer was lost.
async fn forward(State(p): State<Arc<Proxy>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 64 * 1024 * 1024).await.unwrap();
    let url = format!("{}{}", p.upstream, parts.uri.path_and_query().map(|x| x.as_str()).unwrap_or("/"));
    let mut up = p.http.request(parts.method.clone(), url).body(body.clone());
    for name in ["authorization", "content-type", "content-encoding", "x-ms-client-request-id"] {
        if let Some(v) = parts.headers.get(name) {
            up = up.header(name, v.as_bytes());
        }
    }
    let answer = up.send().await.unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let bytes = answer.bytes().await.unwrap();
    let mut seen = p.seen.lock().unwrap();
    let fail = p.fail.get(seen.carried.len()).copied().unwrap_or(false) && status.is_success();
    seen.carried.push((alert_ids(&parts.headers, &body), fail));
    if fail {
        let mut r = (StatusCode::SERVICE_UNAVAILABLE, "lost").into_response();
        r.headers_mut().insert("retry-after", "0".parse().unwrap());
        return r;
    }
    (status, bytes).into_response()
}

#[tokio::test]
async fn answers_lost_after_the_service_stored_a_call_cost_one_copy_per_failed_attempt_and_only_of_that_call() {
    let sim = start_sim(SimConfig::demo()).await;
    let id = seed_one(&sim);
    // Request 1 passes; 2 and 3 are stored but answered 503 (the adapter's retry, request 4,
    // then succeeds); 5 to 8 are stored and answered 503 (the adapter gives up after 4 attempts,
    // the reconcile fails and is run again).
    let fail = vec![false, true, true, false, true, true, true, true];
    let proxy =
        Arc::new(Proxy { upstream: sim.base_url(), http: reqwest::Client::new(), fail, seen: Mutex::default() });
    let url = serve_router(axum::Router::new().fallback(forward).with_state(proxy.clone())).await;
    let s = ports(&sim, Arc::new(MemoryStore::new()), Some(&url), 6_000);

    let failed_reconciles = sync_until_done(&s, &id).await;
    assert_eq!(failed_reconciles, 1, "the fourth failed attempt of one call fails the reconcile once");

    let carried = proxy.seen.lock().unwrap().carried.clone();
    let calls: BTreeSet<&Vec<String>> = carried.iter().map(|(ids, _)| ids).collect();
    assert!(calls.len() >= 3, "the alerts took at least three calls: {}", calls.len());
    let failed_attempts = carried.iter().filter(|(_, f)| *f).count();
    assert_eq!(failed_attempts, 6);
    let mut failures_carrying: BTreeMap<&str, usize> = BTreeMap::new();
    for (ids, failed) in &carried {
        for a in ids {
            *failures_carrying.entry(a.as_str()).or_default() += usize::from(*failed);
        }
    }
    let copies = copies(&sim);
    let alerts: BTreeSet<&str> = copies.keys().map(|(a, _)| a.as_str()).collect();
    assert_eq!(alerts.len(), ALERTS, "every alert arrived");
    assert_eq!(copies.len(), ALERTS, "one version per alert");
    let mut extra = 0;
    for ((alert, _), n) in &copies {
        let bound = 1 + failures_carrying.get(alert.as_str()).copied().unwrap_or(0);
        assert!(*n <= bound, "alert {alert}: {n} copies, bound {bound}");
        // The proxy fails only after the store, so here the bound is reached exactly.
        assert_eq!(*n, bound, "alert {alert}");
        extra += n - 1;
    }
    let first_call = &carried[0].0;
    for a in first_call {
        assert_eq!(failures_carrying[a.as_str()], 0);
    }
    assert!(
        first_call.iter().all(|a| copies.iter().any(|((x, _), n)| x == a && *n == 1)),
        "the call accepted before the failed reconcile was not sent again"
    );
    let rows_per_call = carried.iter().map(|(ids, _)| ids.len()).max().unwrap();
    assert!(extra <= failed_attempts * rows_per_call, "{extra} extra rows for {failed_attempts} failed attempts");

    // Nothing changed since: nothing is sent again.
    let before = proxy.seen.lock().unwrap().carried.len();
    sync(&s, &id).await.unwrap();
    assert_eq!(proxy.seen.lock().unwrap().carried.len(), before);
}

/// The real Logs Ingestion port, except that the process "dies" right after the service
/// accepted call number `die_after` of one upload: before its digests are saved.
struct DiesAfterAccepting {
    inner: Arc<dyn LogsIngestion>,
    die_after: usize,
    armed: std::sync::atomic::AtomicBool,
    accepted: Mutex<Vec<Vec<String>>>,
}

struct Tap<'a> {
    outer: &'a dyn AcceptedRows,
    owner: &'a DiesAfterAccepting,
    rows: &'a [Value],
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl AcceptedRows for Tap<'_> {
    async fn accepted(&self, rows: &[usize]) -> Result<(), PortError> {
        let ids = rows.iter().map(|i| self.rows[*i]["SystemAlertId"].as_str().unwrap().to_string()).collect();
        self.owner.accepted.lock().unwrap().push(ids);
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.owner.die_after
            && self.owner.armed.swap(false, Ordering::SeqCst)
        {
            return Err(PortError::unavailable("test", "the process died before saving the digests"));
        }
        self.outer.accepted(rows).await
    }
}

#[async_trait::async_trait]
impl LogsIngestion for DiesAfterAccepting {
    async fn probe(&self, stream: &str) -> Result<(), PortError> {
        self.inner.probe(stream).await
    }

    async fn upload_reporting(
        &self,
        stream: &str,
        rows: &[Value],
        on_accepted: &dyn AcceptedRows,
    ) -> Result<UploadReport, PortError> {
        let tap = Tap { outer: on_accepted, owner: self, rows, calls: AtomicUsize::new(0) };
        self.inner.upload_reporting(stream, rows, &tap).await
    }
}

#[tokio::test]
async fn a_crash_after_an_accepted_call_resends_that_call_once_and_nothing_before_it() {
    let sim = start_sim(SimConfig::demo()).await;
    let id = seed_one(&sim);
    let mut s = ports(&sim, Arc::new(MemoryStore::new()), None, 6_000);
    let dies = Arc::new(DiesAfterAccepting {
        inner: s.logs.clone(),
        die_after: 2,
        armed: true.into(),
        accepted: Mutex::default(),
    });
    s.logs = dies.clone();

    assert_eq!(sync_until_done(&s, &id).await, 1, "one reconcile died");
    let accepted = dies.accepted.lock().unwrap().clone();
    assert!(accepted.len() >= 4, "three calls, then the second again and the rest: {accepted:?}");
    let (first, second) = (&accepted[0], &accepted[1]);
    assert_eq!(&accepted[2], second, "the retry starts with the call whose digests were not saved");
    let copies = copies(&sim);
    assert_eq!(copies.len(), ALERTS);
    for ((alert, _), n) in &copies {
        let expected = if second.contains(alert) { 2 } else { 1 };
        assert_eq!(*n, expected, "alert {alert} (first call {first:?}, second {second:?})");
    }
}

/// The real port, recording which alerts each upload was asked to send.
struct Recording {
    inner: Arc<dyn LogsIngestion>,
    asked: Mutex<Vec<Vec<String>>>,
    too_large: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl LogsIngestion for Recording {
    async fn probe(&self, stream: &str) -> Result<(), PortError> {
        self.inner.probe(stream).await
    }

    async fn upload_reporting(
        &self,
        stream: &str,
        rows: &[Value],
        on_accepted: &dyn AcceptedRows,
    ) -> Result<UploadReport, PortError> {
        let ids: Vec<String> = rows.iter().map(|r| r["SystemAlertId"].as_str().unwrap().to_string()).collect();
        self.asked.lock().unwrap().push(ids.clone());
        let report = self.inner.upload_reporting(stream, rows, on_accepted).await?;
        self.too_large.lock().unwrap().extend(report.too_large.iter().map(|i| ids[*i].clone()));
        Ok(report)
    }
}

fn recording(s: &mut Ports) -> Arc<Recording> {
    let r = Arc::new(Recording { inner: s.logs.clone(), asked: Mutex::default(), too_large: Mutex::default() });
    s.logs = r.clone();
    r
}

async fn digests(s: &Ports, id: &str) -> BTreeMap<String, Entity> {
    let pk = escape(&format!("{}_{id}", s.config.tenant_id));
    s.store
        .query_partition(Table::AlertDigests, &pk)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.row_key.clone(), e))
        .collect()
}

#[tokio::test]
async fn a_row_too_large_to_send_is_not_recorded_as_sent_nor_tried_again_at_the_same_limit() {
    let sim = start_sim(SimConfig::demo()).await;
    let id = seed_one(&sim);
    let store = Arc::new(MemoryStore::new());
    // The smallest limit the configuration allows: alert rows do not fit in one call.
    let mut small = ports(&sim, store.clone(), None, 1_024);
    let rec = recording(&mut small);
    sync(&small, &id).await.unwrap();
    let too_large: BTreeSet<String> = rec.too_large.lock().unwrap().iter().cloned().collect();
    assert!(!too_large.is_empty(), "some rows are over 1,024 bytes");
    let stored = digests(&small, &id).await;
    let sent = copies(&sim);
    for alert in &too_large {
        assert!(!sent.keys().any(|(a, _)| a == alert), "{alert} was not sent");
        let e = &stored[&escape(alert)];
        assert!(e.str("Digest").is_none(), "{alert} is not recorded as sent");
        assert!(e.str("TooLargeDigest").is_some());
        assert_eq!(e.props["TooLargeLimit"], json!(1_024));
    }

    // A new alert: the incident's alerts are shipped again, the known too-large rows are not
    // tried again at the same limit.
    sim_post(&sim, &format!("/_sim/defender/incidents/{id}/edit"), json!({"addAlerts": 1})).await;
    sync(&small, &id).await.unwrap();
    let asked = rec.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2);
    assert!(asked[1].iter().all(|a| !too_large.contains(a)), "not tried again: {:?}", asked[1]);

    // With the default limit, the next shipment sends them.
    let mut big = ports(&sim, store, None, 1_000_000);
    let rec = recording(&mut big);
    sim_post(&sim, &format!("/_sim/defender/incidents/{id}/edit"), json!({"addAlerts": 1})).await;
    sync(&big, &id).await.unwrap();
    assert!(rec.too_large.lock().unwrap().is_empty());
    let sent = copies(&sim);
    let alerts: BTreeSet<&str> = sent.keys().map(|(a, _)| a.as_str()).collect();
    assert_eq!(alerts.len(), ALERTS + 2, "every alert arrived");
    assert!(sent.values().all(|n| *n == 1), "each once: {sent:?}");
    for (rk, e) in digests(&big, &id).await {
        assert!(e.str("Digest").is_some(), "{rk} recorded as sent");
    }
}

fn escape(id: &str) -> String {
    xdrsync::domain::keys::escape_key(id).unwrap()
}
