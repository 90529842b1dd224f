//! Identity end to end against the simulator (docs/identity.md): each Graph credential kind
//! (managed identity only, federated managed identity → app registration, secret) with Azure calls
//! on the managed identity; the federated assertion refused for a wrong issuer, subject or
//! audience; an unreachable Entra is not "refused"; a grant reaches a token issued before it
//! after one 403-triggered refresh.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::*;
use time::OffsetDateTime;
use xdrsync::app;
use xdrsync::error::PortError;
use xdrsync::usecase::Ports;
use xdrsync_sim::sim::entra::FederatedCredential;
use xdrsync_sim::sim::{RunningSim, SimConfig};

fn vars_for(sim: &RunningSim, kind: &str) -> HashMap<String, String> {
    let mut m = settings(sim, None);
    m.retain(|k, _| k != "XDRSYNC_CLIENT_ID" && k != "XDRSYNC_CLIENT_SECRET");
    m.extend(sim.sim.config.settings_with_credential(sim.addr, kind));
    m
}

/// One Graph read, one ARM read, one Logs Ingestion probe.
async fn every_audience(s: &Ports) -> Result<(), PortError> {
    s.defender.list_incidents_since(OffsetDateTime::UNIX_EPOCH).await?;
    s.sentinel.list_incidents_modified_since(OffsetDateTime::now_utc()).await?;
    match s.logs.probe(&s.config.alerts_stream).await {
        Err(PortError::Rejected { .. }) | Ok(()) => Ok(()),
        Err(e) => Err(e),
    }
}

#[tokio::test]
async fn managed_identity_alone_makes_every_call() {
    let sim = start_sim(SimConfig::demo()).await;
    let s = app::build(config(&vars_for(&sim, "managed-identity")));
    every_audience(&s).await.expect("every call with the managed identity");
    assert!(sim_stat(&sim, "entra.msi").await >= 3, "Graph, ARM and Monitor tokens from the identity endpoint");
    assert_eq!(sim_stat(&sim, "entra.token").await, 0, "no app registration involved");
}

#[tokio::test]
async fn federated_credential_gets_graph_tokens_without_a_secret_and_azure_stays_on_the_identity() {
    let sim = start_sim(SimConfig::demo()).await;
    let vars = vars_for(&sim, "federated");
    assert!(!vars.contains_key("XDRSYNC_CLIENT_SECRET"));
    let s = app::build(config(&vars));
    every_audience(&s).await.expect("every call");
    assert_eq!(sim_stat(&sim, "entra.assertion").await, 1, "Graph: one exchange of the identity's token");
    assert_eq!(sim_stat(&sim, "entra.secret").await, 0);
    // ARM, Monitor and the assertion itself: three managed-identity tokens.
    assert_eq!(sim_stat(&sim, "entra.msi").await, 3);
}

#[tokio::test]
async fn a_secret_serves_graph_while_azure_calls_use_the_managed_identity() {
    let sim = start_sim(SimConfig::demo()).await;
    let s = app::build(config(&vars_for(&sim, "secret")));
    every_audience(&s).await.expect("every call");
    assert_eq!(sim_stat(&sim, "entra.secret").await, 1, "only Graph uses the secret");
    assert_eq!(sim_stat(&sim, "entra.msi").await, 2, "ARM and Monitor from the identity");
    // Outside Azure (no identity endpoint) the secret serves every call.
    let sim = start_sim(SimConfig::demo()).await;
    let s = app::build(config(&settings(&sim, None)));
    every_audience(&s).await.expect("every call");
    assert_eq!(sim_stat(&sim, "entra.secret").await, 3);
    assert_eq!(sim_stat(&sim, "entra.msi").await, 0);
}

#[tokio::test]
async fn federated_tokens_reach_every_defender_tenant() {
    let (sims, tenants) = start_two_workspaces(2).await;
    let primary = sims.primary();
    let mut vars = vars_for(&primary, "federated");
    let list: Vec<String> = tenants.iter().map(|t| t.to_string()).collect();
    vars.insert("XDRSYNC_DEFENDER_TENANTS".into(), list.join(","));
    let s = app::build(config(&vars));
    for t in s.each_tenant() {
        t.defender.list_incidents_since(OffsetDateTime::UNIX_EPOCH).await.expect("the tenant's own token");
    }
    for id in &tenants {
        let tenant = sims.sims.tenant(id).expect("tenant sim");
        assert_eq!(tenant.stats.snapshot().get("entra.assertion").copied(), Some(1), "{id}");
    }
}

/// The Graph token error with the sim's federated credential set to `fic`.
async fn refused_with(fic: FederatedCredential) -> String {
    let sim = start_sim(SimConfig { federated_credential: Some(fic), ..SimConfig::demo() }).await;
    let s = app::build(config(&vars_for(&sim, "federated")));
    let e = s.graph_tokens.token(&s.config.graph_scope).await.expect_err("the assertion is refused");
    assert!(matches!(e, PortError::Unauthorized { .. }), "{e:?}");
    assert_eq!(sim_stat(&sim, "entra.assertion_refused").await, 1);
    e.to_string()
}

#[tokio::test]
async fn the_assertion_is_refused_for_a_wrong_issuer_subject_or_audience() {
    let demo = SimConfig::demo();
    let right = demo.federated_credential.clone().expect("the demo app trusts its identity");
    let wrong_issuer =
        FederatedCredential { issuer: "https://token.actions.githubusercontent.com".into(), ..right.clone() };
    assert!(refused_with(wrong_issuer).await.contains("AADSTS700211"));
    let other_identity = FederatedCredential::trusting(&demo.tenant_id, "00000000-1111-2222-3333-444444444444");
    assert!(refused_with(other_identity).await.contains("AADSTS700213"));
    let wrong_audience = FederatedCredential { audience: "api://AzureADTokenExchangeUSGov".into(), ..right };
    assert!(refused_with(wrong_audience).await.contains("AADSTS700212"));
    // No federated credential at all.
    let sim = start_sim(SimConfig { federated_credential: None, ..SimConfig::demo() }).await;
    let s = app::build(config(&vars_for(&sim, "federated")));
    let e = s.graph_tokens.token(&s.config.graph_scope).await.unwrap_err();
    assert!(e.to_string().contains("AADSTS70021"), "{e}");
}

#[tokio::test]
async fn a_token_of_another_audience_is_no_assertion() {
    // An ARM token of the same identity presented as the assertion: the audience does not match.
    let sim = start_sim(SimConfig::demo()).await;
    let s = app::build(config(&vars_for(&sim, "federated")));
    let arm = s.tokens.token(&s.config.arm_scope).await.unwrap();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", sim.sim.config.client_id.as_str()),
        ("scope", "https://graph.microsoft.com/.default"),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", secrecy::ExposeSecret::expose_secret(&arm)),
    ];
    let url = format!("{}/{}/oauth2/v2.0/token", sim.base_url(), sim.sim.config.tenant_id);
    let r = reqwest::Client::new().post(url).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("AADSTS700212"));
}

#[tokio::test]
async fn an_entra_that_does_not_answer_is_unreachable_within_the_http_timeout() {
    // Accepts connections, never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let sim = start_sim(SimConfig::demo()).await;
    let mut vars = settings(&sim, None);
    vars.insert("XDRSYNC_AUTHORITY_HOST".into(), format!("http://{silent_addr}"));
    vars.insert("XDRSYNC_HTTP_TIMEOUT_SECONDS".into(), "1".into());
    let s = app::build(config(&vars));
    let started = Instant::now();
    let e = s.graph_tokens.token(&s.config.graph_scope).await.expect_err("no answer");
    assert!(started.elapsed() < Duration::from_secs(10), "the configured timeout applies: {:?}", started.elapsed());
    assert!(matches!(e, PortError::Unavailable { .. }), "a timeout is not a refusal: {e:?}");
    assert!(e.to_string().contains("timed out"), "{e}");
    // Nothing listening (a name that does not resolve fails the same way: before any answer).
    drop(silent);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    vars.insert("XDRSYNC_AUTHORITY_HOST".into(), format!("http://{closed}"));
    let s = app::build(config(&vars));
    let e = s.graph_tokens.token(&s.config.graph_scope).await.expect_err("nothing listens");
    assert!(matches!(e, PortError::Unavailable { .. }), "{e:?}");
    // A wrong secret is refused, not unreachable.
    let mut vars = settings(&sim, None);
    vars.insert("XDRSYNC_CLIENT_SECRET".into(), "not-the-secret".into());
    let s = app::build(config(&vars));
    let e = s.graph_tokens.token(&s.config.graph_scope).await.expect_err("refused");
    assert!(matches!(e, PortError::Unauthorized { .. }) && e.to_string().contains("AADSTS7000215"), "{e:?}");
}

#[tokio::test]
async fn a_grant_reaches_a_token_issued_before_it_after_one_refresh() {
    let sim = start_sim(SimConfig::demo()).await;
    let r =
        sim_post(&sim, "/_sim/permissions/withhold", serde_json::json!({"role": "Microsoft Sentinel Responder"})).await;
    assert!(r.status().is_success());
    let s = app::build(config(&vars_for(&sim, "managed-identity")));
    // A token issued while the role is missing, held by the client.
    s.tokens.token(&s.config.arm_scope).await.unwrap();
    let issued = sim_stat(&sim, "entra.msi").await;
    let r =
        sim_post(&sim, "/_sim/permissions/grant", serde_json::json!({"role": "Microsoft Sentinel Responder"})).await;
    assert!(r.status().is_success());
    s.sentinel
        .list_incidents_modified_since(OffsetDateTime::now_utc())
        .await
        .expect("the 403 of the old token is followed by a fresh one, which carries the grant");
    assert_eq!(sim_stat(&sim, "arm.forbidden").await, 1, "the old token was refused once");
    assert_eq!(sim_stat(&sim, "entra.msi").await, issued + 1, "one new token");
    // Refused again soon after (role withheld): the client does not refresh on every 403.
    let r =
        sim_post(&sim, "/_sim/permissions/withhold", serde_json::json!({"role": "Microsoft Sentinel Responder"})).await;
    assert!(r.status().is_success());
    let before = sim_stat(&sim, "entra.msi").await;
    let e = s.sentinel.list_incidents_modified_since(OffsetDateTime::now_utc()).await.unwrap_err();
    assert!(matches!(e, PortError::Forbidden { .. }), "{e:?}");
    // The withheld role applies to the held token at once; the 403 within the window does not
    // fetch another token.
    assert_eq!(sim_stat(&sim, "entra.msi").await, before);
}

/// `check` in process, storage faked; the lines as `FAIL`/`ok` text.
async fn check_text(vars: &HashMap<String, String>) -> String {
    let mut s = app::build(config(vars));
    s.store = std::sync::Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    s.queue = std::sync::Arc::new(xdrsync_sim::fakes::MemoryQueue::new());
    let lines = xdrsync::check::run(&s).await;
    lines.iter().map(|l| format!("{} {}: {}\n", if l.ok { "ok" } else { "FAIL" }, l.what, l.detail)).collect()
}

fn line<'a>(text: &'a str, what: &str) -> &'a str {
    text.lines().find(|l| l.contains(what)).unwrap_or_else(|| panic!("no line {what}: {text}"))
}

#[tokio::test]
async fn check_proves_each_permission_of_its_own_principal_without_writing() {
    let sim = start_sim(SimConfig::demo()).await;
    let mut vars = vars_for(&sim, "federated");
    vars.insert("XDRSYNC_HUNTING_TABLES".into(), "EmailEvents".into());
    let text = check_text(&vars).await;
    let mi = &sim.sim.config.managed_identity_client_id;
    assert!(
        line(&text, "permissions on workspace").starts_with("ok")
            && line(&text, "permissions on workspace").contains(mi.as_str()),
        "{text}"
    );
    assert!(line(&text, "permissions on the data collection rule").starts_with("ok"), "{text}");
    assert!(line(&text, "Graph permissions").starts_with("ok"), "{text}");
    assert!(line(&text, "token for Graph").contains("federated credential"), "{text}");
    assert!(line(&text, "token for ARM").contains(mi.as_str()), "{text}");
    assert_eq!(sim.sim.world().sentinel.len(), 0, "nothing written");

    // Each missing permission, named.
    for role in ["Microsoft Sentinel Responder", "Monitoring Metrics Publisher", "ThreatHunting.Read.All"] {
        let r = sim_post(&sim, "/_sim/permissions/withhold", serde_json::json!({"role": role})).await;
        assert!(r.status().is_success());
    }
    let r = sim_post(&sim, "/_sim/permissions/grant", serde_json::json!({"role": "Microsoft Sentinel Reader"})).await;
    assert!(r.status().is_success());
    let text = check_text(&vars).await;
    let ws = line(&text, "permissions on workspace");
    assert!(ws.starts_with("FAIL") && ws.contains("Microsoft.SecurityInsights/incidents/comments/write"), "{text}");
    assert!(!ws.contains("incidents/read"), "a Reader may read: {ws}");
    let dcr = line(&text, "permissions on the data collection rule");
    assert!(dcr.starts_with("FAIL") && dcr.contains("Microsoft.Insights/Telemetry/Write"), "{text}");
    let graph = line(&text, "Graph permissions");
    assert!(
        graph.starts_with("FAIL") && graph.contains("ThreatHunting.Read.All") && graph.contains("adminconsent"),
        "{text}"
    );
}

#[tokio::test]
async fn a_logs_ingestion_400_in_check_is_a_failure_naming_the_stream() {
    let sim = start_sim(SimConfig::demo()).await;
    let mut vars = vars_for(&sim, "managed-identity");
    vars.insert("XDRSYNC_ALERTS_STREAM".into(), "Custom-NotDeclared".into());
    let text = check_text(&vars).await;
    let l = line(&text, " Logs Ingestion: ");
    assert!(l.starts_with("FAIL") && l.contains("Custom-NotDeclared"), "{text}");
}

#[tokio::test]
async fn check_names_a_routed_workspaces_dcr_without_the_publisher_role_or_out_of_sight() {
    let (sims, tenants) = start_two_workspaces(2).await;
    let vars = two_workspace_settings(&sims, None, &tenants, &["A", "B"], 1);
    let text = check_text(&vars).await;
    let routed = format!("permissions on data collection rule {SECOND_DCR}");
    assert!(line(&text, &routed).starts_with("ok") && line(&text, &routed).contains("soc-emea"), "{text}");
    assert!(line(&text, "permissions on the data collection rule").starts_with("ok"), "{text}");

    // The routed workspace's rule lacks Monitoring Metrics Publisher: its line fails, naming it.
    let second = &sims.sims.workspaces[0];
    second.permissions.lock().unwrap().dcr_roles.remove("Monitoring Metrics Publisher");
    let text = check_text(&vars).await;
    let l = line(&text, &routed);
    assert!(
        l.starts_with("FAIL")
            && l.contains("Microsoft.Insights/Telemetry/Write")
            && l.contains("Monitoring Metrics Publisher on data collection rule /subscriptions/")
            && l.contains("soc-emea-xdrsync"),
        "{text}"
    );
    assert!(
        line(&text, "permissions on the data collection rule").starts_with("ok"),
        "the default rule is fine: {text}"
    );

    // Out of sight (no read on it): the list does not show it, and the line says what to grant.
    second.permissions.lock().unwrap().dcr_roles.clear();
    let text = check_text(&vars).await;
    let l = line(&text, &routed);
    assert!(
        l.starts_with("FAIL") && l.contains("Monitoring Reader") && l.contains("XDRSYNC_TENANT_WORKSPACES"),
        "{text}"
    );
}

const HUNTING_A: &str = "dcr-0000000000000000000000000000000a";
const HUNTING_B: &str = "dcr-0000000000000000000000000000000b";

/// A sim with two hunting DCRs (EmailEvents → A, DeviceEvents → B) and settings routing to them.
async fn two_hunting_dcrs(routes: &str) -> (RunningSim, HashMap<String, String>) {
    let sim = start_sim(
        SimConfig::demo()
            .with_hunting_dcr("Custom-EmailEvents", HUNTING_A)
            .with_hunting_dcr("Custom-DeviceEvents", HUNTING_B),
    )
    .await;
    let mut vars = vars_for(&sim, "managed-identity");
    vars.insert("XDRSYNC_HUNTING_TABLES".into(), "EmailEvents,DeviceEvents".into());
    vars.insert("XDRSYNC_HUNTING_DCR_IMMUTABLE_ID".into(), routes.into());
    (sim, vars)
}

#[tokio::test]
async fn check_proves_every_hunting_dcr_and_names_the_second_one_without_the_role() {
    let routes = format!("EmailEvents={HUNTING_A},DeviceEvents={HUNTING_B}");
    let (sim, vars) = two_hunting_dcrs(&routes).await;
    let text = check_text(&vars).await;
    for dcr in [HUNTING_A, HUNTING_B] {
        assert!(line(&text, &format!("permissions on data collection rule {dcr}")).starts_with("ok"), "{text}");
    }
    assert!(line(&text, "hunting Logs Ingestion of DeviceEvents").starts_with("ok"), "{text}");

    let r = sim_post(
        &sim,
        "/_sim/permissions/withhold",
        serde_json::json!({"role": "Monitoring Metrics Publisher", "dcr": HUNTING_B}),
    )
    .await;
    assert!(r.status().is_success());
    let text = check_text(&vars).await;
    let b = line(&text, &format!("permissions on data collection rule {HUNTING_B}"));
    assert!(
        b.starts_with("FAIL") && b.contains("Telemetry/Write") && b.contains("hunting table DeviceEvents"),
        "{text}"
    );
    assert!(line(&text, &format!("permissions on data collection rule {HUNTING_A}")).starts_with("ok"), "{text}");
    // The upload probe of the second table fails too, on its own rule; the first table's passes.
    let probe = line(&text, "hunting Logs Ingestion of DeviceEvents");
    assert!(probe.starts_with("FAIL") && probe.contains(HUNTING_B), "{text}");
    assert!(line(&text, "hunting Logs Ingestion of EmailEvents").starts_with("ok"), "{text}");
}

#[tokio::test]
async fn a_hunting_dcr_that_does_not_declare_the_tables_stream_fails_check_naming_it() {
    // DeviceEvents routed to A, which declares only Custom-EmailEvents: a 400 naming the stream.
    let (_sim, vars) = two_hunting_dcrs(&format!("EmailEvents={HUNTING_A},DeviceEvents={HUNTING_A}")).await;
    let text = check_text(&vars).await;
    let probe = line(&text, "hunting Logs Ingestion of DeviceEvents");
    assert!(probe.starts_with("FAIL") && probe.contains("Custom-DeviceEvents"), "{text}");
    assert!(line(&text, "hunting Logs Ingestion of EmailEvents").starts_with("ok"), "{text}");
}

#[tokio::test]
async fn check_probes_the_alert_trigger_stream_and_names_it_when_the_dcr_does_not_declare_it() {
    let mut cfg = SimConfig::demo();
    cfg.streams.retain(|s| s != "Custom-XdrsyncAlertTriggers");
    let sim = start_sim(cfg).await;
    let mut vars = settings(&sim, None);
    vars.insert("XDRSYNC_ATTACH_ALERTS".into(), "true".into());
    let text = check_text(&vars).await;
    let probe = line(&text, "Logs Ingestion (alert triggers)");
    assert!(probe.starts_with("FAIL") && probe.contains("Custom-XdrsyncAlertTriggers"), "{text}");
    assert!(line(&text, "Logs Ingestion:").starts_with("ok"), "the alerts stream itself is declared: {text}");

    let sim = start_sim(SimConfig::demo()).await;
    let mut vars = settings(&sim, None);
    vars.insert("XDRSYNC_ATTACH_ALERTS".into(), "true".into());
    let text = check_text(&vars).await;
    assert!(line(&text, "Logs Ingestion (alert triggers)").starts_with("ok"), "{text}");
}
