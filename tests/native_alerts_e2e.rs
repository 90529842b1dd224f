//! Native alerts on mirrors, end to end (docs/native-alerts.md): Defender incidents (the
//! simulator) → sync fills the workspace's trigger outbox → the pacer sends trigger rows → the
//! analytics rules (a model of the documented rule engine, below) raise SecurityAlerts → attach
//! relates each to its mirror with one PUT.
//!
//! The rule engine here follows the contract between product and simulator and Learn's text: a
//! rule per shard runs once a minute over the rows ingested in the preceding minute; at most 29
//! rows give one alert each, more give 29 single alerts and a 30th summary alert; a summary's
//! custom details are either every row's values or the first row's (Learn is silent: both are
//! run); ingestion delays vary (jitter), and an ingestion stall delivers what was sent during it
//! all at once (so a run sees more than 29 rows whatever the pacing). Relations are refused for an unknown alert (404), a name
//! reused for another alert (409) and a 151st alert (400). Once the simulator's own rule engine
//! is merged these runs belong on it.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Value};
use support::*;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use xdrsync::app;
use xdrsync::domain::alert_links::QueryTable;
use xdrsync::domain::names::sentinel_incident_name;
use xdrsync::domain::sentinel::{SentinelComment, SentinelIncident, SentinelIncidentBody};
use xdrsync::domain::work::{ChangeHint, WorkItem};
use xdrsync::error::PortError;
use xdrsync::ports::{AcceptedRows, Clock, LogQuery, LogsIngestion, SentinelApi, UploadReport};
use xdrsync::usecase::alert_outbox;
use xdrsync::usecase::attach_alerts::attach;
use xdrsync::usecase::sync::reconcile;
use xdrsync::usecase::Ports;
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::SimConfig;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SummaryShape {
    AllValues,
    FirstRow,
}

struct Alert {
    system_alert_id: String,
    ingested: OffsetDateTime,
    details: Value,
    summary: bool,
}

#[derive(Default)]
struct State {
    now: Option<OffsetDateTime>,
    /// Trigger rows with their ingestion time, not yet seen by a run.
    rows: Vec<(OffsetDateTime, Value)>,
    /// The start of the next one-minute window each rule runs over.
    next_run: Option<OffsetDateTime>,
    alerts: Vec<Alert>,
    /// incident name → relation name → SystemAlertId.
    relations: BTreeMap<Uuid, BTreeMap<Uuid, String>>,
    summaries: usize,
    queries: usize,
    puts: usize,
    deletes: usize,
    trigger_rows_sent: usize,
}

/// The workspace's rule engine, query API and relations, as documented (module doc).
struct Workspace {
    state: Mutex<State>,
    shape: SummaryShape,
    /// Ingestion delay of a row: 30 s plus up to this many seconds, by a hash of its TriggerId.
    jitter_secs: i64,
    /// Rows sent before this are ingested at this instant, all at once.
    stall_until: OffsetDateTime,
    alerts_stream: String,
}

impl Workspace {
    fn new(shape: SummaryShape, jitter_secs: i64, stall: Duration, start: OffsetDateTime) -> Arc<Self> {
        let state = State { now: Some(start), next_run: Some(start), ..Default::default() };
        Arc::new(Self {
            state: Mutex::new(state),
            shape,
            jitter_secs,
            stall_until: start + stall,
            alerts_stream: "Custom-XdrsyncAlerts".into(),
        })
    }

    fn advance(&self, by: Duration) {
        let mut st = self.state.lock().unwrap();
        let now = st.now.unwrap() + by;
        st.now = Some(now);
        // Every rule's runs due by now, one per minute of ingestion.
        while st.next_run.unwrap() + Duration::minutes(1) <= now {
            let from = st.next_run.unwrap();
            let to = from + Duration::minutes(1);
            let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut st.rows).into_iter().partition(|(t, _)| *t < to);
            st.rows = rest;
            let mut by_shard: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
            for (t, r) in due {
                assert!(t >= from, "a row ingested before the window it was run in");
                by_shard.entry(r["RuleShard"].as_i64().unwrap()).or_default().push(r);
            }
            for rows in by_shard.into_values() {
                let details = |r: &Value| {
                    json!({
                        "DefenderTenantId": [r["DefenderTenantId"]], "DefenderIncidentId": [r["DefenderIncidentId"]],
                        "DefenderAlertId": [r["DefenderAlertId"]], "TriggerId": [r["TriggerId"]], "TriggerPart": [r["TriggerPart"]],
                    })
                };
                let mut made: Vec<(Value, bool)> = rows.iter().take(29).map(|r| (details(r), false)).collect();
                if rows.len() > 29 {
                    let summary = match self.shape {
                        SummaryShape::FirstRow => details(&rows[0]),
                        SummaryShape::AllValues => {
                            let all = |k: &str| Value::Array(rows.iter().map(|r| r[k].clone()).collect());
                            json!({
                                "DefenderTenantId": all("DefenderTenantId"), "DefenderIncidentId": all("DefenderIncidentId"),
                                "DefenderAlertId": all("DefenderAlertId"), "TriggerId": all("TriggerId"), "TriggerPart": all("TriggerPart"),
                            })
                        }
                    };
                    made.push((summary, true));
                    st.summaries += 1;
                }
                for (details, summary) in made {
                    st.alerts.push(Alert {
                        system_alert_id: Uuid::new_v4().to_string(),
                        ingested: to + Duration::seconds(20),
                        details,
                        summary,
                    });
                }
            }
            st.next_run = Some(to);
        }
    }

    fn related(&self) -> BTreeMap<Uuid, BTreeMap<Uuid, String>> {
        self.state.lock().unwrap().relations.clone()
    }

    fn alert(&self, system_alert_id: &str) -> Option<(Value, bool)> {
        let st = self.state.lock().unwrap();
        st.alerts.iter().find(|a| a.system_alert_id == system_alert_id).map(|a| (a.details.clone(), a.summary))
    }
}

impl Clock for Workspace {
    fn now(&self) -> OffsetDateTime {
        self.state.lock().unwrap().now.unwrap()
    }
}

#[async_trait]
impl LogsIngestion for Workspace {
    async fn upload_reporting(
        &self,
        stream: &str,
        rows: &[Value],
        on_accepted: &dyn AcceptedRows,
    ) -> Result<UploadReport, PortError> {
        if stream != self.alerts_stream {
            assert_eq!(stream, "Custom-XdrsyncAlertTriggers", "trigger rows go to their own stream");
            let mut st = self.state.lock().unwrap();
            let now = st.now.unwrap();
            for r in rows {
                let h = u64::from_str_radix(&r["TriggerId"].as_str().unwrap().replace('-', "")[..8], 16).unwrap();
                let delay = 30 + (h % (self.jitter_secs as u64 + 1)) as i64;
                st.rows.push(((now + Duration::seconds(delay)).max(self.stall_until), r.clone()));
                st.trigger_rows_sent += 1;
            }
        }
        on_accepted.accepted(&(0..rows.len()).collect::<Vec<_>>()).await?;
        Ok(UploadReport { rows_sent: rows.len(), requests: 1, too_large: vec![] })
    }

    async fn probe(&self, _stream: &str) -> Result<(), PortError> {
        Ok(())
    }
}

#[async_trait]
impl LogQuery for Workspace {
    async fn query(&self, query: &str, _timespan: &str) -> Result<QueryTable, PortError> {
        let after = query
            .split("ingestion_time() > datetime(")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .and_then(|t| xdrsync::domain::time_fmt::parse(t).ok())
            .expect("the query names its watermark");
        assert!(query.starts_with("SecurityAlert\n") && query.contains("\"Custom Details\""), "{query}");
        let mut st = self.state.lock().unwrap();
        st.queries += 1;
        let fmt = xdrsync::domain::time_fmt::format;
        let rows = st
            .alerts
            .iter()
            .filter(|a| a.ingested > after && a.ingested <= st.now.unwrap())
            .map(|a| {
                vec![
                    json!(a.system_alert_id),
                    json!(fmt(a.ingested)),
                    json!(fmt(a.ingested)),
                    json!(a.details.to_string()),
                ]
            })
            .collect();
        Ok(QueryTable {
            columns: ["SystemAlertId", "TimeGenerated", "IngestedAt", "XdrsyncDetails"].map(String::from).to_vec(),
            rows,
        })
    }
}

fn refused(what: &str) -> PortError {
    PortError::Rejected { service: "sentinel", code: None, reason: format!("{what}: not used by attach") }
}

#[async_trait]
impl SentinelApi for Workspace {
    async fn get_incident(&self, _: &Uuid) -> Result<Option<SentinelIncident>, PortError> {
        Err(refused("get incident"))
    }
    async fn put_incident(&self, _: &Uuid, _: &SentinelIncidentBody) -> Result<SentinelIncident, PortError> {
        Err(refused("put incident"))
    }
    async fn list_incidents_modified_since(&self, _: OffsetDateTime) -> Result<Vec<SentinelIncident>, PortError> {
        Err(refused("list incidents"))
    }
    async fn list_comments(&self, _: &Uuid) -> Result<Vec<SentinelComment>, PortError> {
        Err(refused("list comments"))
    }
    async fn workspace_role_definitions(&self) -> Result<Vec<String>, PortError> {
        Err(refused("roles"))
    }
    async fn put_comment(&self, _: &Uuid, _: &Uuid, _: &str) -> Result<(), PortError> {
        Err(refused("put comment"))
    }
    async fn put_relation(&self, incident: &Uuid, relation: &Uuid, related: &str) -> Result<(), PortError> {
        let mut st = self.state.lock().unwrap();
        st.puts += 1;
        let id = related.rsplit('/').next().unwrap().to_string();
        if !st.alerts.iter().any(|a| a.system_alert_id == id) {
            return Err(PortError::NotFound { service: "sentinel", message: format!("alert {id}") });
        }
        let rels = st.relations.entry(*incident).or_default();
        match rels.get(relation) {
            Some(other) if *other != id => {
                Err(PortError::Conflict { service: "sentinel", message: "relation name reused".into() })
            }
            Some(_) => Ok(()),
            None if rels.len() >= 150 => Err(PortError::Rejected {
                service: "sentinel",
                code: Some("BadRequest".into()),
                reason: "an incident holds at most 150 alerts".into(),
            }),
            None => {
                rels.insert(*relation, id);
                Ok(())
            }
        }
    }
    async fn delete_relation(&self, incident: &Uuid, relation: &str) -> Result<(), PortError> {
        let mut st = self.state.lock().unwrap();
        st.deletes += 1;
        if let Some(r) = st.relations.get_mut(incident) {
            r.retain(|k, _| k.to_string() != relation);
        }
        Ok(())
    }
}

/// What a burst left: the workspace, attach's services, the incident ids, the trigger rows sync
/// queued, and the attach runs it took.
struct Burst {
    ws: Arc<Workspace>,
    s: Ports,
    ids: Vec<String>,
    queued: usize,
    runs: usize,
}

/// Seeds `count` incidents with `alerts` alerts each and syncs them (mirrors in the simulator,
/// triggers into the outbox); returns attach's services (talking to the workspace model), the
/// incident ids and the trigger rows queued.
async fn synced(ws: &Arc<Workspace>, count: usize, alerts: usize) -> (Ports, Vec<String>, usize) {
    let sim = start_sim(SimConfig::demo()).await;
    let mut vars = settings(&sim, None);
    vars.insert("XDRSYNC_ATTACH_ALERTS".into(), "true".into());
    vars.insert("XDRSYNC_ALERT_RULES".into(), "2".into());
    vars.insert("XDRSYNC_ALERTS_ATTACH_DELAY_MINUTES".into(), "5".into());
    let ids = seed(&sim, SeedSpec { count, min_alerts: alerts, max_alerts: alerts, ..Default::default() });
    let mut s = app::build(config(&vars));
    s.store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    s.queue = Arc::new(xdrsync_sim::fakes::MemoryQueue::new());
    s.logs = ws.clone();
    s.clock = ws.clone();
    for id in &ids {
        reconcile(&s, &WorkItem::reconcile(&s.config.tenant_id, id, ChangeHint::Reconcile)).await.expect("synced");
    }
    let queued = alert_outbox::load_all(&s).await.unwrap().len();
    // Attach talks to the workspace model (sync above made the mirrors in the simulator).
    let mut a = s.clone();
    a.sentinel = ws.clone();
    a.log_query = ws.clone();
    (a, ids, queued)
}

/// Whole seconds: ingestion times carry 100 ns precision at most, as the service's do.
fn start() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

/// [`synced`], then attach once a simulated minute until the outbox is empty.
async fn burst(shape: SummaryShape, jitter_secs: i64, stall: Duration, count: usize, alerts: usize) -> Burst {
    let ws = Workspace::new(shape, jitter_secs, stall, start());
    let (a, ids, queued) = synced(&ws, count, alerts).await;
    let mut runs = 0;
    for _ in 0..240 {
        let r = attach(&a).await.expect("an attach run");
        runs += 1;
        if r.backlog.pending + r.backlog.in_flight + r.backlog.failed == 0 {
            break;
        }
        ws.advance(Duration::minutes(1));
    }
    Burst { ws, s: a, ids, queued, runs }
}

/// Every trigger row ends related to its own mirror, exactly once, never through a summary;
/// nothing is left in the outbox.
async fn assert_all_related(ws: &Workspace, s: &Ports, ids: &[String], queued: usize) {
    let backlog = alert_outbox::backlog(s).await.unwrap();
    assert_eq!((backlog.pending, backlog.in_flight, backlog.failed), (0, 0, 0), "outbox drained: {backlog:?}");
    let tenant = s.config.tenant_id.to_ascii_lowercase();
    let mut keys = BTreeSet::new();
    for (mirror, rels) in ws.related() {
        let incident =
            ids.iter().find(|id| sentinel_incident_name(&s.config.tenant_id, id) == mirror).expect("a mirror");
        for sys in rels.values() {
            let (details, summary) = ws.alert(sys).unwrap();
            assert!(!summary, "a summary alert is never related");
            assert_eq!(details["DefenderIncidentId"][0], incident.as_str(), "related to its own mirror");
            let key = (details["DefenderAlertId"][0].clone().to_string(), details["TriggerPart"][0].to_string());
            assert!(keys.insert(key), "each trigger row related once");
            assert_eq!(details["DefenderTenantId"][0].as_str().unwrap().to_ascii_lowercase(), tenant);
        }
    }
    assert_eq!(keys.len(), queued, "every trigger row of every alert is on its mirror");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_paced_below_the_summary_and_every_alert_lands_on_its_own_mirror() {
    let b = burst(SummaryShape::FirstRow, 60, Duration::ZERO, 20, 12).await;
    assert!(b.queued >= 240, "{} trigger rows: far more than 2 rules × 29 a minute", b.queued);
    assert_all_related(&b.ws, &b.s, &b.ids, b.queued).await;
    let st = b.ws.state.lock().unwrap();
    eprintln!(
        "burst: {} trigger rows of {} incidents related in {} attach runs (simulated minutes): {} PUTs, {} queries, {} deletes",
        b.queued,
        b.ids.len(),
        b.runs,
        st.puts,
        st.queries,
        st.deletes
    );
    assert_eq!(st.summaries, 0, "pacing keeps every run at or below 29 rows per rule, with 60 s of jitter");
    assert_eq!(st.trigger_rows_sent, b.queued, "nothing sent twice");
    assert_eq!(st.puts, b.queued, "one relation PUT per alert");
    assert_eq!(st.deletes, 0, "no relation listing or removal");
    assert_eq!(st.queries, b.runs, "one query per attach run");
    // The ceiling: 2 rules × 28 rows per 2 minutes.
    let minutes = b.runs as f64;
    assert!(
        minutes >= b.queued as f64 / 28.0,
        "{} rows in {minutes} minutes is faster than the pacing allows",
        b.queued
    );
    assert!(minutes <= b.queued as f64 / 28.0 + 6.0, "{} rows took {minutes} minutes", b.queued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_summarised_by_a_run_past_29_are_sent_again_and_related_under_both_summary_shapes() {
    // An ingestion stall beyond what pacing can absorb: runs see more than 29 rows, the rule
    // summarises, and xdrsync must still relate every row's own alert, never a summary.
    for shape in [SummaryShape::AllValues, SummaryShape::FirstRow] {
        let b = burst(shape, 60, Duration::minutes(6), 12, 15).await;
        assert_all_related(&b.ws, &b.s, &b.ids, b.queued).await;
        let (summaries, sent) = {
            let st = b.ws.state.lock().unwrap();
            (st.summaries, st.trigger_rows_sent)
        };
        assert!(summaries > 0, "{shape:?}: the stall made the rule summarise");
        assert!(sent > b.queued, "{shape:?}: summarised rows were sent again");
        let seen = xdrsync::usecase::attach_alerts::backlogs(&b.s).await.unwrap();
        assert_eq!(seen[0].summaries_seen as usize, summaries, "{shape:?}: status counts the summaries");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_older_than_an_hour_degrades_the_feed_and_drains_without_loss() {
    // Ingestion stalls for 90 minutes: nothing can be related meanwhile.
    let ws = Workspace::new(SummaryShape::AllValues, 0, Duration::minutes(90), start());
    let (s, ids, queued) = synced(&ws, 3, 4).await;
    let mut degraded_at = None;
    for minute in 0..240 {
        match attach(&s).await {
            Ok(r) if r.backlog.pending + r.backlog.in_flight + r.backlog.failed == 0 => break,
            Ok(_) => {}
            Err(e) => {
                assert!(e.to_string().contains("native alerts backlog"), "{e}");
                degraded_at.get_or_insert(minute);
            }
        }
        ws.advance(Duration::minutes(1));
    }
    assert!(
        degraded_at.is_some_and(|m| (60..=62).contains(&m)),
        "degraded once the oldest row waited an hour: {degraded_at:?}"
    );
    assert_all_related(&ws, &s, &ids, queued).await;
}
