//! The advanced-hunting query source with many Defender tenants, end to end against the
//! simulator (one sim per tenant behind one address, each with its own seeded tables and its own
//! `runHuntingQuery` quota; two tenants hold the very same rows on purpose): every tenant's rows
//! arrive once in the one hunting DCR, each with its `DefenderTenantId`; one tenant whose consent
//! was revoked or whose quota is spent leaves the others exporting and shows in its own health;
//! a restart resumes each tenant at its own cursor; `check` and `hunting estimate` go per tenant.

mod support;

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use support::*;
use time::OffsetDateTime;
use xdrsync::domain::hunting::cursor::HuntingCursor;
use xdrsync::domain::hunting::rows::row_key;
use xdrsync::domain::hunting::schema::TableDef;
use xdrsync::ports::{StateStore, Table};
use xdrsync::usecase::hunting::{cursor_key, HuntingCursorRecord};
use xdrsync::usecase::hunting_jobs::hunting_export;
use xdrsync::usecase::Ports;
use xdrsync_sim::fakes::MemoryStore;
use xdrsync_sim::sim::hunting_seed::HuntingSeed;
use xdrsync_sim::sim::tenants::{spawn_tenants, tenant_configs, RunningTenantSims};
use xdrsync_sim::sim::SimConfig;

const NAMES: [&str; 3] = ["Contoso", "Fabrikam", "Northwind"];
const TABLE: &str = "DeviceProcessEvents";

async fn start() -> (RunningTenantSims, Vec<String>) {
    let primary = SimConfig::demo();
    let tenants = tenant_configs(&primary, 3);
    let ids: Vec<String> = tenants.iter().map(|t| t.tenant_id.clone()).collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let sims = spawn_tenants(listener, primary, tenants, Vec::new()).await.expect("simulator starts");
    (sims, ids)
}

fn vars(sims: &RunningTenantSims, tenants: &[String], extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut v = settings(&sims.primary(), None);
    let list: Vec<String> = tenants.iter().enumerate().map(|(i, t)| format!("{t}={}", NAMES[i])).collect();
    v.insert("XDRSYNC_DEFENDER_TENANTS".into(), list.join(","));
    v.insert("XDRSYNC_HUNTING_TABLES".into(), TABLE.into());
    v.insert("XDRSYNC_HUNTING_LOOKBACK_MINUTES".into(), "180".into());
    v.insert("XDRSYNC_HUNTING_CALLS_PER_MINUTE".into(), "600".into());
    v.insert("XDRSYNC_HUNTING_PAGE_ROWS".into(), "250".into());
    for (k, val) in extra {
        v.insert(k.to_string(), val.to_string());
    }
    v
}

fn build(vars: &HashMap<String, String>, store: Arc<MemoryStore>) -> Ports {
    let mut s = xdrsync::app::build(config(vars));
    s.store = store;
    s
}

/// `count` rows ending `minutes_ago` before now; the same arguments give the same rows.
fn rows(count: usize, minutes_ago: i64, offset: usize) -> Vec<Map<String, Value>> {
    let mut seed = HuntingSeed::new(TABLE, count, OffsetDateTime::now_utc());
    let span = seed.step * ((count / seed.ties) as i32);
    seed.start = OffsetDateTime::now_utc() - time::Duration::minutes(minutes_ago) - span;
    seed.offset = offset;
    seed.rows()
}

fn add(sims: &RunningTenantSims, tenant: &str, rows: &[Map<String, Value>]) {
    sims.sims.tenant(tenant).unwrap().hunting.lock().unwrap().add(TABLE, rows.to_vec());
}

/// Every row in the hunting DCR (the workspace tenant's Logs Ingestion, shared by all tenants).
fn exported(sims: &RunningTenantSims) -> Vec<Value> {
    sims.sims.primary.world().logs.get(&format!("Custom-{TABLE}")).cloned().unwrap_or_default()
}

/// How often each (DefenderTenantId, XdrsyncRowKey) arrived.
fn arrivals(sims: &RunningTenantSims) -> HashMap<(String, String), usize> {
    let mut out = HashMap::new();
    for r in exported(sims) {
        let tenant = r["DefenderTenantId"].as_str().expect("every row names its tenant").to_string();
        *out.entry((tenant, r["XdrsyncRowKey"].as_str().unwrap().to_string())).or_default() += 1;
    }
    out
}

/// Each of `seeded` arrived exactly once under `tenant`, and nothing else of that tenant did.
fn assert_once_each(sims: &RunningTenantSims, tenant: &str, seeded: &[Map<String, Value>]) {
    let got = arrivals(sims);
    for row in seeded {
        assert_eq!(got.get(&(tenant.to_string(), row_key(row))), Some(&1), "{tenant}: a row lost or sent twice");
    }
    assert_eq!(got.keys().filter(|(t, _)| t == tenant).count(), seeded.len(), "{tenant}: rows of another tenant");
}

fn tenant_health(v: &Value, tenant: &str) -> Value {
    v["tenants"].as_array().unwrap().iter().find(|t| t["tenantId"] == tenant).cloned().unwrap_or(Value::Null)
}

async fn control(sims: &RunningTenantSims, method: reqwest::Method, path: &str, body: Value) {
    sim_control(&sims.base_url(), method, path, body).await;
}

#[tokio::test]
async fn every_tenants_rows_arrive_once_with_its_tenant_and_a_revoked_tenant_stays_isolated() {
    let (sims, tenants) = start().await;
    // Contoso and Fabrikam hold the very same rows; Northwind others.
    let same = rows(900, 30, 0);
    let northwind = rows(500, 30, 5_000);
    add(&sims, &tenants[0], &same);
    add(&sims, &tenants[1], &same);
    add(&sims, &tenants[2], &northwind);
    control(&sims, reqwest::Method::DELETE, &format!("/_sim/tenants/{}/consent", tenants[2]), json!({})).await;
    let store = Arc::new(MemoryStore::new());
    let s = build(&vars(&sims, &tenants, &[]), store.clone());

    let e = hunting_export(&s).await.expect_err("Northwind cannot be read");
    assert!(e.contains("Contoso: DeviceProcessEvents 900 rows"), "{e}");
    assert!(e.contains("Fabrikam: DeviceProcessEvents 900 rows"), "{e}");
    assert!(e.contains("failed: Northwind"), "{e}");
    assert_once_each(&sims, &tenants[0], &same);
    assert_once_each(&sims, &tenants[1], &same);
    assert_eq!(exported(&sims).len(), 1_800, "the same row of two tenants is two rows");
    // Each tenant was queried in its own tables (the token's tenant picks them).
    for t in &tenants[..2] {
        assert!(!sims.sims.tenant(t).unwrap().hunting.lock().unwrap().queries.is_empty(), "{t} queried");
    }
    assert!(sims.sims.primary.hunting.lock().unwrap().queries.is_empty(), "the workspace's tenant is no source");
    assert_eq!(sim_stat(&sims.primary(), "logs.undeclared_columns").await, 0, "DefenderTenantId is declared");

    let h = xdrsync::usecase::health::check(&s, true).await;
    let v = serde_json::to_value(&h).unwrap();
    assert_eq!(tenant_health(&v, &tenants[0])["status"], "healthy", "{v}");
    assert_eq!(tenant_health(&v, &tenants[1])["status"], "healthy", "{v}");
    let northwind_health = tenant_health(&v, &tenants[2]);
    assert_eq!(northwind_health["status"], "unhealthy", "{v}");
    assert!(northwind_health["reasons"].to_string().contains("Hunting export fails"), "{v}");
    assert_eq!(h.status, "degraded", "the others still export: {v}");
    let text = xdrsync::ops::status::render(&xdrsync::ops::status::gather(&s).await);
    let row = text.lines().find(|l| l.starts_with("tenant Northwind")).unwrap_or_default();
    assert!(row.contains("unhealthy"), "{text}");

    // Consent restored: Northwind catches up; nothing of the others is sent again.
    control(&sims, reqwest::Method::PUT, &format!("/_sim/tenants/{}/consent", tenants[2]), json!({})).await;
    let line = hunting_export(&build(&vars(&sims, &tenants, &[]), store.clone())).await.expect("all tenants export");
    assert!(
        line.contains("Northwind: DeviceProcessEvents 500 rows")
            && line.contains("Contoso: DeviceProcessEvents 0 rows"),
        "{line}"
    );
    assert_once_each(&sims, &tenants[2], &northwind);
    assert_once_each(&sims, &tenants[0], &same);
    assert_once_each(&sims, &tenants[1], &same);
    let h = xdrsync::usecase::health::check(&s, true).await;
    assert_eq!(h.status, "healthy", "{:?}", h.reasons);
}

#[tokio::test]
async fn one_tenants_spent_quota_does_not_stop_the_others() {
    let (sims, tenants) = start().await;
    let each: Vec<Vec<Map<String, Value>>> = (0..3).map(|i| rows(600, 20, i * 10_000)).collect();
    for (t, r) in tenants.iter().zip(&each) {
        add(&sims, t, r);
    }
    // Fabrikam's own quota is tiny; the others keep theirs (the quota is per tenant).
    sims.sims.tenant(&tenants[1]).unwrap().hunting.lock().unwrap().calls_per_minute = 2;
    let store = Arc::new(MemoryStore::new());
    let vars = vars(&sims, &tenants, &[("XDRSYNC_HUNTING_PAGE_ROWS", "100")]);
    let e = hunting_export(&build(&vars, store.clone())).await.expect_err("Fabrikam is throttled");
    assert!(e.contains("failed: Fabrikam") && !e.contains("failed: Contoso"), "{e}");
    assert!(sim_stat_of(&sims, &tenants[1], "hunting.throttled") >= 1);
    assert_eq!(sim_stat_of(&sims, &tenants[0], "hunting.throttled"), 0, "Contoso's quota is its own");
    assert_once_each(&sims, &tenants[0], &each[0]);
    assert_once_each(&sims, &tenants[2], &each[2]);
    sims.sims.tenant(&tenants[1]).unwrap().hunting.lock().unwrap().calls_per_minute = 45;
    hunting_export(&build(&vars, store)).await.expect("Fabrikam resumes at its cursor");
    for (t, r) in tenants.iter().zip(&each) {
        assert_once_each(&sims, t, r);
    }
}

fn sim_stat_of(sims: &RunningTenantSims, tenant: &str, key: &str) -> u64 {
    sims.sims.tenant(tenant).unwrap().stats.snapshot().get(key).copied().unwrap_or(0)
}

/// A tenant's cursor row of the table, from the tenant's own partition.
async fn cursor(store: &MemoryStore, tenant: &str) -> HuntingCursor {
    let key = cursor_key(tenant, TableDef::find(TABLE).unwrap()).unwrap();
    let rows = store.query_partition(Table::Cursors, &key.pk).await.unwrap();
    let e = rows.into_iter().find(|e| e.row_key == key.rk).expect("a cursor row in the tenant's partition");
    xdrsync::state::decode::<HuntingCursorRecord>(&e).unwrap().cursor
}

#[tokio::test]
async fn a_restart_resumes_each_tenant_at_its_own_cursor() {
    let (sims, tenants) = start().await;
    // Contoso's rows end 30 minutes ago, Fabrikam's 15: their cursors end far apart.
    let contoso = rows(700, 30, 0);
    let fabrikam = rows(700, 15, 0);
    add(&sims, &tenants[0], &contoso);
    add(&sims, &tenants[1], &fabrikam);
    let store = Arc::new(MemoryStore::new());
    let vars = vars(&sims, &tenants, &[]);
    let mut first = build(&vars, store.clone());
    // Fabrikam's second upload is stored but its answer lost: a crash in that tenant only.
    first.hunting_logs = Arc::new(LoseAnswer {
        inner: first.hunting_logs.clone(),
        calls: AtomicUsize::new(0),
        lose_at: 2,
        only_tenant: Some(tenants[1].clone()),
    });
    let e = hunting_export(&first).await.expect_err("Fabrikam's second page was not confirmed");
    assert!(e.contains("failed: Fabrikam") && e.contains("Contoso: DeviceProcessEvents 700 rows"), "{e}");
    assert_once_each(&sims, &tenants[0], &contoso);

    // Each tenant's cursor row is in its own partition, where it stopped.
    let (c0, c1) = (cursor(&store, &tenants[0]).await, cursor(&store, &tenants[1]).await);
    assert_ne!(c0, c1);
    // Rows newer than Contoso's cursor, yet older than where Fabrikam's export stopped: only a
    // cursor of Contoso's own finds them.
    let late = rows(90, 24, 50_000);
    add(&sims, &tenants[0], &late);
    let newer = rows(60, 10, 60_000);
    add(&sims, &tenants[1], &newer);

    let line = hunting_export(&build(&vars, store.clone())).await.expect("the restart completes");
    assert!(line.contains("Contoso: DeviceProcessEvents 90 rows"), "only the new rows: {line}");
    let all_contoso: Vec<_> = contoso.into_iter().chain(late).collect();
    assert_once_each(&sims, &tenants[0], &all_contoso);
    // Fabrikam: nothing lost; the page whose answer was lost is the only one sent twice.
    let got = arrivals(&sims);
    let all_fabrikam: Vec<_> = fabrikam.into_iter().chain(newer).collect();
    let mut resent = 0;
    for row in &all_fabrikam {
        let n = got.get(&(tenants[1].clone(), row_key(row))).copied().unwrap_or(0);
        assert!(n >= 1, "Fabrikam: a row was lost");
        resent += n - 1;
    }
    assert!(resent > 0 && resent <= 250, "re-sends stay within one page: {resent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_estimate_go_per_tenant_and_name_the_fix_for_a_tenant_that_fails() {
    let (sims, tenants) = start().await;
    for t in &tenants {
        add(&sims, t, &rows(300, 20, 0));
    }
    // Fabrikam withholds the role (403).
    control(
        &sims,
        reqwest::Method::POST,
        &format!("/_sim/tenants/{}/permissions/withhold", tenants[1]),
        json!({"role": "ThreatHunting.Read.All"}),
    )
    .await;
    let s = build(&vars(&sims, &tenants, &[]), Arc::new(MemoryStore::new()));
    let lines = xdrsync::check_hunting::lines(&s).await;
    let line = |name: &str| {
        lines.iter().find(|l| l.what == format!("advanced hunting of {name}")).unwrap_or_else(|| panic!("{lines:?}"))
    };
    assert!(line("Contoso").ok && line("Northwind").ok, "{lines:?}");
    let fabrikam = line("Fabrikam");
    assert!(!fabrikam.ok);
    assert!(
        fabrikam.detail.contains("ThreatHunting.Read.All")
            && fabrikam.detail.contains(&format!("/{}/adminconsent?client_id=", tenants[1])),
        "{}",
        fabrikam.detail
    );

    let e =
        xdrsync::cli::hunting::estimate_command(&s, &[], "PT1H", true).await.expect_err("Fabrikam fails").to_string();
    assert!(e.contains("tenant Fabrikam") && e.contains("ThreatHunting.Read.All") && e.contains("adminconsent"), "{e}");
    let json_part = &e[..e.rfind("]\n").expect("the estimates of the others") + 1];
    let estimates: Value = serde_json::from_str(json_part).unwrap();
    let named: Vec<&str> = estimates.as_array().unwrap().iter().map(|e| e["tenant"].as_str().unwrap()).collect();
    assert_eq!(named, ["Contoso", "Northwind"]);
    for e in estimates.as_array().unwrap() {
        assert!(e["sampleRows"].as_u64().unwrap() > 0 && e["tenantId"].as_str().is_some(), "{e}");
    }

    // Northwind's consent revoked: its token is refused (not a 403), and the line says the same fix.
    control(&sims, reqwest::Method::DELETE, &format!("/_sim/tenants/{}/consent", tenants[2]), json!({})).await;
    let s = build(&vars(&sims, &tenants, &[]), Arc::new(MemoryStore::new()));
    let lines = xdrsync::check_hunting::lines(&s).await;
    let northwind = lines.iter().find(|l| l.what == "advanced hunting of Northwind").expect("a line per tenant");
    assert!(!northwind.ok);
    assert!(
        northwind.detail.contains("ThreatHunting.Read.All")
            && northwind.detail.contains(&format!("/{}/adminconsent?client_id=", tenants[2])),
        "{}",
        northwind.detail
    );
    assert!(lines.iter().any(|l| l.what == "advanced hunting of Contoso" && l.ok), "{lines:?}");
}
