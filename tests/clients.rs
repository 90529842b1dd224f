//! Each HTTP client against the simulator: paging, alerts paging, etag 409 handling, token
//! refresh, Retry-After, 413 split, Graph writes and user lookup, Sentinel listing.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::*;
use time::OffsetDateTime;
use xdrsync::adapters::http::{build_http_client, CounterRef, ServiceClient};
use xdrsync::adapters::logs::DcrLogsIngestion;
use xdrsync::app;
use xdrsync::domain::defender::{DefenderIncidentPatch, IncidentStatus};
use xdrsync::domain::names::sentinel_incident_name;
use xdrsync::domain::sentinel::*;
use xdrsync::error::{PortError, Reaction};
use xdrsync::metrics::CallCounters;
use xdrsync::ports::LogsIngestion;
use xdrsync::retry::RetryPolicy;
use xdrsync::usecase::Ports;
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::{FaultKind, FaultRule, SimConfig};

async fn setup(sim_config: SimConfig) -> (xdrsync_sim::sim::RunningSim, Ports) {
    let sim = start_sim(sim_config).await;
    let services = app::build(config(&settings(&sim, None)));
    (sim, services)
}

fn writable(title: &str) -> SentinelWritable {
    SentinelWritable {
        title: title.into(),
        description: Some("d".into()),
        severity: SentinelSeverity::Medium,
        status: SentinelStatus::New,
        classification: None,
        classification_reason: None,
        classification_comment: None,
        owner: None,
        labels: vec![Label::user("Microsoft Defender XDR")],
        first_activity_time_utc: None,
        last_activity_time_utc: None,
    }
}

#[tokio::test]
async fn lists_500_incidents_through_pages_of_50() {
    let (sim, s) = setup(SimConfig::demo()).await;
    seed(&sim, SeedSpec { count: 500, max_alerts: 1, ..Default::default() });
    let all = s.defender.list_incidents_since(OffsetDateTime::UNIX_EPOCH).await.unwrap();
    let mut ids: Vec<_> = all.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 500);
    assert_eq!(sim_stat(&sim, "graph.incidents.list").await, 10, "500 incidents at $top=50 is 10 pages");
}

#[tokio::test]
async fn incidents_sharing_one_timestamp_across_pages_are_all_listed_once() {
    let (sim, s) = setup(SimConfig::demo()).await;
    seed(&sim, SeedSpec { count: 30, ..Default::default() });
    seed(&sim, SeedSpec { count: 137, same_timestamp: true, max_alerts: 1, ..Default::default() });
    let all = s.defender.list_incidents_since(OffsetDateTime::UNIX_EPOCH).await.unwrap();
    assert_eq!(all.len(), 167);
    let mut ids: Vec<_> = all.iter().map(|i| &i.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 167);
}

#[tokio::test]
async fn since_filter_returns_only_newer_incidents() {
    let (sim, s) = setup(SimConfig::demo()).await;
    seed(&sim, SeedSpec { count: 5, ..Default::default() });
    let cut = sim.sim.world().now();
    seed(&sim, SeedSpec { count: 3, ..Default::default() });
    let newer = s.defender.list_incidents_since(cut).await.unwrap();
    assert_eq!(newer.len(), 3);
    assert!(newer.iter().all(|i| i.last_update_date_time >= cut));
}

#[tokio::test]
async fn simulator_rejects_top_over_50_with_graphs_message() {
    let (sim, s) = setup(SimConfig::demo()).await;
    let token = s.tokens.token(&s.config.graph_scope).await.unwrap();
    let resp = reqwest::Client::new()
        .get(format!("{}/v1.0/security/incidents?$top=100", sim.base_url()))
        .bearer_auth(secrecy::ExposeSecret::expose_secret(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("The limit of '50' for Top query has been exceeded"));
}

#[tokio::test]
async fn alerts_of_a_big_incident_are_paged_and_complete() {
    let (sim, s) = setup(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, big_incidents: 1, big_alerts: 250, ..Default::default() });
    seed(&sim, SeedSpec { count: 3, ..Default::default() });
    let alerts = s.defender.list_alerts(&ids[0]).await.unwrap();
    assert_eq!(alerts.len(), 250);
    assert!(alerts.iter().all(|a| a.incident_id.as_deref() == Some(ids[0].as_str())));
    assert!(alerts.iter().all(|a| !a.evidence.is_empty()));
    assert_eq!(sim_stat(&sim, "graph.alerts.list").await, 3, "250 alerts at the default 100 per page");
}

#[tokio::test]
async fn patch_comment_and_user_lookup() {
    let (sim, s) = setup(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let before = s.defender.get_incident(&ids[0]).await.unwrap().unwrap();
    let patch = DefenderIncidentPatch {
        status: Some(IncidentStatus::Resolved),
        assigned_to: Some(Some("bob@contoso.com".into())),
        ..Default::default()
    };
    let after = s.defender.patch_incident(&ids[0], &patch).await.unwrap();
    assert_eq!(after.status, IncidentStatus::Resolved);
    assert_eq!(after.assigned_to.as_deref(), Some("bob@contoso.com"));
    assert!(after.last_update_date_time > before.last_update_date_time);
    let comments = s.defender.add_comment(&ids[0], "from a test").await.unwrap();
    assert_eq!(comments.last().unwrap().comment.as_deref(), Some("from a test"));
    assert!(s.defender.get_incident("999999").await.unwrap().is_none());
    let user = s.defender.find_user("alice@contoso.com").await.unwrap().unwrap();
    assert_eq!(user.user_principal_name.as_deref(), Some("alice@contoso.com"));
    assert!(s.defender.find_user("nobody#EXT#@contoso.com").await.unwrap().is_none());
}

#[tokio::test]
async fn sentinel_put_with_a_stale_etag_is_a_conflict() {
    let (sim, s) = setup(SimConfig::demo()).await;
    let name = sentinel_incident_name(&s.config.tenant_id, "1001");
    let created = s
        .sentinel
        .put_incident(&name, &SentinelIncidentBody { etag: None, properties: writable("first") })
        .await
        .unwrap();
    assert_eq!(created.properties.read_only.provider_name.as_deref(), Some("Azure Sentinel"));
    // An analyst edits in between: our etag is now stale.
    let r = sim_post(&sim, &format!("/_sim/sentinel/incidents/{name}/edit"), json!({"severity": "High"})).await;
    assert!(r.status().is_success());
    let stale = SentinelIncidentBody { etag: created.etag.clone(), properties: writable("stale") };
    let e = s.sentinel.put_incident(&name, &stale).await.unwrap_err();
    assert_eq!(e.reaction(), Reaction::Redo);
    assert!(e.to_string().contains("Newer version"));
    let current = s.sentinel.get_incident(&name).await.unwrap().unwrap();
    assert_eq!(current.properties.writable.title, "first", "nothing was saved");
    assert_eq!(current.properties.writable.severity, SentinelSeverity::High);
}

#[tokio::test]
async fn sentinel_rejects_closed_without_classification_and_ignores_read_only_fields() {
    let (sim, s) = setup(SimConfig::demo()).await;
    let name = uuid::Uuid::new_v4();
    let mut w = writable("t");
    w.status = SentinelStatus::Closed;
    let e =
        s.sentinel.put_incident(&name, &SentinelIncidentBody { etag: None, properties: w.clone() }).await.unwrap_err();
    assert!(matches!(e, PortError::Rejected { .. }), "{e:?}");
    w.classification = Some(SentinelClassification::BenignPositive);
    let e =
        s.sentinel.put_incident(&name, &SentinelIncidentBody { etag: None, properties: w.clone() }).await.unwrap_err();
    assert!(e.to_string().contains("must have classificationReason"));
    w.classification_reason = Some(ClassificationReason::SuspiciousButExpected);
    w.description = Some("x".repeat(5001));
    let e =
        s.sentinel.put_incident(&name, &SentinelIncidentBody { etag: None, properties: w.clone() }).await.unwrap_err();
    assert!(matches!(e, PortError::Rejected { .. }), "{e:?}");
    w.description = None;
    // A client trying to set providerName gets the server's value.
    let token = s.tokens.token(&s.config.arm_scope).await.unwrap();
    let mut body = serde_json::to_value(SentinelIncidentBody { etag: None, properties: w }).unwrap();
    body["properties"]["providerName"] = json!("Microsoft Defender XDR");
    body["properties"]["incidentNumber"] = json!(999999);
    let url = format!(
        "{}{}/incidents/{name}?api-version=2025-09-01",
        sim.base_url(),
        s.config.security_insights_base().trim_start_matches(&sim.base_url())
    );
    let resp = reqwest::Client::new()
        .put(url)
        .bearer_auth(secrecy::ExposeSecret::expose_secret(&token))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let got = s.sentinel.get_incident(&name).await.unwrap().unwrap();
    assert_eq!(got.properties.read_only.provider_name.as_deref(), Some("Azure Sentinel"));
    assert_ne!(got.properties.read_only.incident_number, Some(999999));
}

#[tokio::test]
async fn sentinel_list_follows_next_links_past_1000() {
    let (_sim, s) = setup(SimConfig::demo()).await;
    let since = OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let mut names = Vec::new();
    for i in 0..1100 {
        let name = uuid::Uuid::new_v4();
        s.sentinel
            .put_incident(&name, &SentinelIncidentBody { etag: None, properties: writable(&format!("i{i}")) })
            .await
            .unwrap();
        names.push(name);
    }
    let all = s.sentinel.list_incidents_modified_since(since).await.unwrap();
    assert_eq!(all.len(), 1100);
    let later =
        s.sentinel.list_incidents_modified_since(OffsetDateTime::now_utc() + time::Duration::minutes(1)).await.unwrap();
    assert!(later.is_empty());
}

#[tokio::test]
async fn sentinel_comments_round_trip() {
    let (_sim, s) = setup(SimConfig::demo()).await;
    let name = uuid::Uuid::new_v4();
    s.sentinel.put_incident(&name, &SentinelIncidentBody { etag: None, properties: writable("c") }).await.unwrap();
    let cid = uuid::Uuid::new_v4();
    s.sentinel.put_comment(&name, &cid, "hello").await.unwrap();
    s.sentinel.put_comment(&name, &cid, "hello").await.unwrap();
    let comments = s.sentinel.list_comments(&name).await.unwrap();
    assert_eq!(comments.len(), 1, "same comment id twice is one comment");
    assert_eq!(comments[0].properties.message, "hello");
}

#[tokio::test]
async fn tokens_are_refreshed_before_expiry() {
    // 22 s tokens are refreshed half-way (auth.rs: 5 minutes before expiry, or half-way for short ones).
    let (sim, s) = setup(SimConfig { token_lifetime_secs: 22, ..SimConfig::demo() }).await;
    seed(&sim, SeedSpec { count: 1, ..Default::default() });
    s.defender.list_incidents_since(OffsetDateTime::UNIX_EPOCH).await.unwrap();
    s.defender.list_incidents_since(OffsetDateTime::UNIX_EPOCH).await.unwrap();
    assert_eq!(sim_stat(&sim, "entra.token").await, 1, "a fresh token is reused");
    // Keep calling: once the token is within the margin (after 2 s) a call fetches a new one,
    // well before the old one expires (22 s), and no call fails meanwhile.
    eventually_async(15, "a token near expiry replaced", || async {
        s.defender.list_incidents_since(OffsetDateTime::UNIX_EPOCH).await.unwrap();
        sim_stat(&sim, "entra.token").await == 2
    })
    .await;
}

#[tokio::test]
async fn an_expired_or_wrong_audience_token_is_refused_and_the_client_takes_a_fresh_one() {
    let (sim, s) = setup(SimConfig { token_lifetime_secs: 2, ..SimConfig::demo() }).await;
    let url = format!("{}/v1.0/security/incidents", sim.base_url());
    let get_with = |token: secrecy::SecretString| {
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .get(&url)
                .bearer_auth(secrecy::ExposeSecret::expose_secret(&token))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let arm_token = s.tokens.token(&s.config.arm_scope).await.unwrap();
    assert_eq!(get_with(arm_token).await, 401, "an ARM token is not a Graph token");
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 401, "no token");
    let graph_token = s.tokens.token(&s.config.graph_scope).await.unwrap();
    assert_eq!(get_with(graph_token.clone()).await, 200, "a fresh Graph token is taken");
    // The same token, once its lifetime has passed, is refused...
    eventually_async(10, "the token expired", || {
        let t = graph_token.clone();
        let get = &get_with;
        async move { get(t).await == 401 }
    })
    .await;
    // ...and the product's client is not caught by it: it takes a fresh one.
    s.defender.list_incidents_since(OffsetDateTime::UNIX_EPOCH).await.expect("a call after the expiry succeeds");
    assert!(sim_stat(&sim, "entra.token").await >= 3, "a fresh Graph token was fetched after the expiry");
}

#[tokio::test]
async fn retry_after_is_honoured_on_429() {
    let (sim, s) = setup(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    s.tokens.token(&s.config.graph_scope).await.unwrap();
    sim.sim.faults.set(vec![FaultRule {
        api: "graph".into(),
        rate: 1.0,
        kind: FaultKind::Status { status: 429 },
        retry_after_secs: Some(1),
        remaining: Some(2),
    }]);
    let start = Instant::now();
    let got = s.defender.get_incident(&ids[0]).await.unwrap();
    assert!(got.is_some());
    assert!(start.elapsed() >= Duration::from_secs(2), "waited Retry-After twice, took {:?}", start.elapsed());
    assert_eq!(sim_stat(&sim, "graph.faults").await, 2);
}

#[tokio::test]
async fn server_errors_are_retried_then_surface_as_retryable() {
    let (sim, s) = setup(SimConfig::demo()).await;
    s.tokens.token(&s.config.graph_scope).await.unwrap();
    sim.sim.faults.set(vec![FaultRule {
        api: "graph".into(),
        rate: 1.0,
        kind: FaultKind::Status { status: 503 },
        retry_after_secs: Some(0),
        remaining: None,
    }]);
    let e = s.defender.get_incident("1001").await.unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(sim_stat(&sim, "graph.faults").await, 4, "4 attempts per call, as documented");
}

fn logs_client(s: &Ports, max_batch: usize) -> DcrLogsIngestion {
    let counters = CallCounters::shared();
    let client = ServiceClient::new(
        "logs-ingestion",
        build_http_client(Duration::from_secs(30)),
        s.tokens.clone(),
        s.config.monitor_scope.clone(),
        RetryPolicy::default(),
        CounterRef::new(counters, |c| &c.logs),
    );
    DcrLogsIngestion::new(client, &s.config.logs_ingestion_endpoint, s.config.dcr_immutable_id.clone(), max_batch)
}

/// Rows of columns the alerts stream declares (the service drops any other): `EntitiesOmitted`
/// carries the row's sequence number, `Description` its padding.
fn rows(n: usize, pad: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| json!({"TimeGenerated": "2026-01-01T00:00:00Z", "EntitiesOmitted": i, "Description": "x".repeat(pad)}))
        .collect()
}

#[tokio::test]
async fn logs_upload_batches_under_one_megabyte_and_loses_nothing() {
    let (sim, s) = setup(SimConfig::demo()).await;
    let report = s.logs.upload("Custom-XdrsyncAlerts", &rows(3000, 900)).await.unwrap();
    assert_eq!(report.rows_sent, 3000);
    assert!(report.requests >= 3, "~2.8 MB needs at least 3 calls");
    assert_eq!(sim_stat(&sim, "logs.too_large").await, 0);
    let stored = sim_get(&sim, "/_sim/logs/Custom-XdrsyncAlerts").await;
    let seqs: Vec<u64> = stored.as_array().unwrap().iter().map(|r| r["EntitiesOmitted"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..3000).collect::<Vec<u64>>(), "every row once, in order");
}

#[tokio::test]
async fn logs_upload_splits_on_413() {
    let (sim, s) = setup(SimConfig::demo()).await;
    // A client misconfigured to 3 MB batches: the service answers 413 and we split.
    let big = logs_client(&s, 3_000_000);
    let report = big.upload("Custom-XdrsyncAlerts", &rows(2000, 1000)).await.unwrap();
    assert_eq!(report.rows_sent, 2000);
    assert!(sim_stat(&sim, "logs.too_large").await >= 1);
    let stored = sim_get(&sim, "/_sim/logs/Custom-XdrsyncAlerts").await;
    let seqs: Vec<u64> = stored.as_array().unwrap().iter().map(|r| r["EntitiesOmitted"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..2000).collect::<Vec<u64>>());
}

#[tokio::test]
async fn wrong_client_secret_is_an_auth_error_that_names_the_cause_not_the_secret() {
    let sim = start_sim(SimConfig::demo()).await;
    let mut vars = settings(&sim, None);
    vars.insert("XDRSYNC_CLIENT_SECRET".into(), "definitely-the-wrong-secret".into());
    let s = app::build(config(&vars));
    let e = s.tokens.token(&s.config.graph_scope).await.unwrap_err();
    assert!(matches!(e, PortError::Unauthorized { .. }), "{e:?}");
    let text = format!("{e} {e:?}");
    assert!(text.contains("AADSTS7000215") || text.contains("invalid_client"), "{text}");
    assert!(!text.contains("definitely-the-wrong-secret"));
}

#[tokio::test]
async fn managed_identity_tokens_work_with_a_client_id() {
    let sim = start_sim(SimConfig::demo()).await;
    let mut vars = settings(&sim, None);
    vars.remove("XDRSYNC_CLIENT_SECRET");
    vars.remove("XDRSYNC_CLIENT_ID");
    vars.insert("IDENTITY_ENDPOINT".into(), format!("{}/msi/token", sim.base_url()));
    vars.insert("IDENTITY_HEADER".into(), sim.sim.config.identity_header.clone());
    vars.insert("XDRSYNC_MANAGED_IDENTITY_CLIENT_ID".into(), sim.sim.config.managed_identity_client_id.clone());
    let s = app::build(config(&vars));
    seed(&sim, SeedSpec { count: 2, ..Default::default() });
    assert_eq!(s.defender.list_incidents_since(OffsetDateTime::UNIX_EPOCH).await.unwrap().len(), 2);
    s.defender.list_incidents_since(OffsetDateTime::UNIX_EPOCH).await.unwrap();
    assert_eq!(sim_stat(&sim, "entra.msi").await, 1, "cached");

    vars.insert("IDENTITY_HEADER".into(), "wrong-header".into());
    let bad = app::build(config(&vars));
    assert_eq!(bad.tokens.token(&bad.config.graph_scope).await.unwrap_err().reaction(), Reaction::FixAccess);
    // An identity not assigned to the app: a setting to fix, not a request to drop.
    vars.insert("IDENTITY_HEADER".into(), sim.sim.config.identity_header.clone());
    vars.insert("XDRSYNC_MANAGED_IDENTITY_CLIENT_ID".into(), "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee".into());
    let bad = app::build(config(&vars));
    let e = bad.tokens.token(&bad.config.graph_scope).await.unwrap_err();
    assert_eq!(e.reaction(), Reaction::FixAccess, "{e:?}");
}

struct FixedToken;

#[async_trait::async_trait]
impl xdrsync::ports::TokenSource for FixedToken {
    async fn token(&self, _scope: &str) -> Result<secrecy::SecretString, xdrsync::error::PortError> {
        Ok(secrecy::SecretString::from("t".to_string()))
    }
    async fn invalidate(&self, _scope: &str) {}
}

#[tokio::test]
async fn a_patch_answered_with_204_reads_the_incident_back() {
    use axum::routing::get;
    let incident =
        json!({"id": "7", "lastUpdateDateTime": "2026-01-01T00:00:00Z", "status": "resolved", "severity": "low"});
    let served = incident.clone();
    let app = axum::Router::new().route(
        "/v1.0/security/incidents/{id}",
        get(move || {
            let v = served.clone();
            async move { axum::Json(v) }
        })
        .patch(|| async { axum::http::StatusCode::NO_CONTENT }),
    );
    let base = serve_router(app).await;
    let client = ServiceClient::new(
        "graph",
        build_http_client(Duration::from_secs(5)),
        std::sync::Arc::new(FixedToken),
        "https://graph.microsoft.com/.default",
        RetryPolicy::default(),
        CounterRef::new(CallCounters::shared(), |c| &c.graph),
    );
    let graph = xdrsync::adapters::graph::GraphDefender::new(client, &url::Url::parse(&base).unwrap());
    let patch = DefenderIncidentPatch { status: Some(IncidentStatus::Resolved), ..Default::default() };
    let got = xdrsync::ports::DefenderApi::patch_incident(&graph, "7", &patch).await.unwrap();
    assert_eq!(got.status, IncidentStatus::Resolved);
    assert_eq!(got.id, "7");
}

fn commit_then_fail(api: &str) -> Vec<FaultRule> {
    vec![FaultRule {
        api: api.into(),
        rate: 1.0,
        kind: FaultKind::CommitThenFail { status: 500 },
        retry_after_secs: None,
        remaining: Some(1),
    }]
}

#[tokio::test]
async fn a_graph_comment_whose_answer_is_lost_is_not_posted_again() {
    let (sim, s) = setup(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    sim.sim.faults.set(commit_then_fail("graph"));
    let e = s.defender.add_comment(&ids[0], "said once").await.unwrap_err();
    assert!(e.is_retryable(), "the caller retries later, after rereading: {e}");
    assert_eq!(sim_stat(&sim, "graph.incidents.comments.post").await, 1, "no blind retry of a POST");
    let copies =
        sim.sim.world().incident(&ids[0]).unwrap().comments.iter().filter(|c| c.comment == "said once").count();
    assert_eq!(copies, 1);
    // Throttling means the service did not act: that is still retried.
    sim.sim.faults.set(vec![FaultRule {
        api: "graph".into(),
        rate: 1.0,
        kind: FaultKind::Status { status: 429 },
        retry_after_secs: Some(0),
        remaining: Some(1),
    }]);
    s.defender.add_comment(&ids[0], "after a 429").await.unwrap();
}

#[tokio::test]
async fn idempotent_writes_whose_answer_is_lost_are_retried_harmlessly() {
    let (sim, s) = setup(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    sim.sim.faults.set(commit_then_fail("graph"));
    let patch = DefenderIncidentPatch { assigned_to: Some(Some("bob@contoso.com".into())), ..Default::default() };
    let got = s.defender.patch_incident(&ids[0], &patch).await.unwrap();
    assert_eq!(got.assigned_to.as_deref(), Some("bob@contoso.com"));
    assert_eq!(sim_stat(&sim, "graph.commit_then_fail").await, 1);
    let name = sentinel_incident_name(&s.config.tenant_id, &ids[0]);
    let created = s.sentinel.put_incident(&name, &SentinelIncidentBody { etag: None, properties: writable("t") }).await;
    created.unwrap();
    sim.sim.faults.set(commit_then_fail("arm"));
    let comment = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"c");
    s.sentinel.put_comment(&name, &comment, "once by name").await.unwrap();
    assert_eq!(sim_stat(&sim, "arm.commit_then_fail").await, 1);
    assert_eq!(sim.sim.world().sentinel[&name].comments.len(), 1, "a PUT by name lands once");
}

/// What the simulated DCR stored of `rows(…)`: their sequence numbers in order.
async fn stored_seqs(sim: &xdrsync_sim::sim::RunningSim) -> Vec<u64> {
    let stored = sim_get(sim, "/_sim/logs/Custom-XdrsyncAlerts").await;
    stored.as_array().map(|a| a.iter().map(|r| r["EntitiesOmitted"].as_u64().unwrap()).collect()).unwrap_or_default()
}

#[tokio::test]
async fn logs_upload_past_the_dcrs_calls_a_minute_is_throttled_and_keeps_what_was_accepted() {
    let mut cfg = SimConfig::demo();
    cfg.options.logs_requests_per_minute = 2;
    let (sim, s) = setup(cfg).await;
    let e = s.logs.upload("Custom-XdrsyncAlerts", &rows(3000, 900)).await.unwrap_err();
    assert!(matches!(e, PortError::Throttled { .. }), "{e:?}");
    assert_eq!(e.reaction(), Reaction::Retry, "the caller retries later (its cursor has not moved)");
    assert!(sim_stat(&sim, "logs.throttled").await >= 1);
    let seqs = stored_seqs(&sim).await;
    assert!(!seqs.is_empty() && seqs.len() < 3000, "two calls' rows were accepted: {}", seqs.len());
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<u64>>(), "a prefix, each row once");
}

#[tokio::test]
async fn logs_upload_past_the_dcrs_data_a_minute_is_throttled() {
    let mut cfg = SimConfig::demo();
    cfg.options.logs_bytes_per_minute = 1_500_000;
    let (sim, s) = setup(cfg).await;
    let e = s.logs.upload("Custom-XdrsyncAlerts", &rows(3000, 900)).await.unwrap_err();
    assert!(matches!(e, PortError::Throttled { .. }), "{e:?}");
    let seqs = stored_seqs(&sim).await;
    assert!(!seqs.is_empty() && seqs.len() < 2000, "only the first ~1 MB call fits: {}", seqs.len());
}

#[tokio::test]
async fn incident_stamps_use_select_where_graph_honours_it_and_whole_incidents_where_it_refuses() {
    for refuses in [false, true] {
        let mut cfg = SimConfig::demo();
        cfg.options.graph_refuses_select = refuses;
        let (sim, s) = setup(cfg).await;
        let ids = seed(&sim, SeedSpec { count: 3, ..Default::default() });
        let window = xdrsync::domain::cursor::Window {
            since: OffsetDateTime::now_utc() - time::Duration::hours(1),
            until: None,
        };
        for _ in 0..2 {
            let page = s.defender.list_incident_stamps(window, None).await.expect("listed");
            let listed: std::collections::BTreeSet<&str> = page.items.iter().map(|i| i.id.as_str()).collect();
            assert!(ids.iter().all(|id| listed.contains(id.as_str())), "refuses {refuses}: every incident listed");
        }
        // Refused once, then remembered: the second listing goes without `$select` at once.
        let refused = sim_stat(&sim, "graph.incidents.list.select_refused").await;
        assert_eq!(refused, u64::from(refuses), "refuses {refuses}");
    }
}
