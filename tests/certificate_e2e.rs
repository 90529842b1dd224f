//! The certificate credential end to end (docs/identity.md, outside Azure): xdrsync signs a client
//! assertion with the app registration's certificate and mirrors incidents with the tokens it
//! gets; the simulator's Entra verifies the signature against the registered certificate and
//! refuses another certificate, a wrong audience, issuer or subject, an expired or tampered
//! assertion and a replayed one; `check` names the principal and the certificate.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use support::*;
use xdrsync::adapters::cert_assertion::ClientCertificate;
use xdrsync::app;
use xdrsync::domain::names::sentinel_incident_name;
use xdrsync::error::PortError;
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::{RunningSim, SimConfig};

const APP_PEM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/certs/graph-app.pem");
const OTHER_PEM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/certs/other-app.pem");

/// The DER of the certificate in `pem` (what an administrator uploads to the app registration).
fn certificate_der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_file_iter(pem).unwrap().next().unwrap().unwrap().to_vec()
}

/// A simulator whose app registration holds graph-app.pem's certificate.
async fn sim_with_certificate() -> RunningSim {
    start_sim(SimConfig { client_certificate: Some(certificate_der(APP_PEM)), ..SimConfig::demo() }).await
}

/// Outside Azure (no managed identity): the certificate is the only credential.
fn certificate_vars(sim: &RunningSim, pem: &str) -> HashMap<String, String> {
    let mut vars = settings(sim, None);
    vars.remove("XDRSYNC_CLIENT_SECRET");
    vars.insert("XDRSYNC_GRAPH_CREDENTIAL".into(), "certificate".into());
    vars.insert("XDRSYNC_CLIENT_CERTIFICATE_PATH".into(), pem.into());
    vars
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_credential_mirrors_incidents_and_check_names_it() {
    let sim = sim_with_certificate().await;
    let vars = certificate_vars(&sim, APP_PEM);
    let mut services = app::build(config(&vars));
    services.store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    services.queue = Arc::new(xdrsync_sim::fakes::MemoryQueue::new());
    let thumbprint = ClientCertificate::load(std::path::Path::new(APP_PEM)).unwrap().thumbprint;

    let lines = xdrsync::check::run(&services).await;
    let text: String =
        lines.iter().map(|l| format!("{} {}: {}\n", if l.ok { "ok" } else { "FAIL" }, l.what, l.detail)).collect();
    for audience in ["token for Graph", "token for ARM"] {
        let l = text.lines().find(|l| l.contains(audience)).unwrap();
        assert!(l.starts_with("ok") && l.contains(&format!("(certificate {thumbprint})")), "{text}");
    }
    assert!(text.lines().find(|l| l.contains("Defender incidents")).unwrap().starts_with("ok"), "{text}");

    let services = Arc::new(services);
    let runner = xdrsync::standalone::start(services.clone(), 0).await.expect("runner starts");
    let ids = seed(&sim, SeedSpec { count: 5, ..Default::default() });
    let tenant = services.config.tenant_id.clone();
    eventually(60, "5 mirrors", || {
        let w = sim.sim.world();
        ids.iter().all(|id| w.sentinel.contains_key(&sentinel_incident_name(&tenant, id)))
    })
    .await;
    runner.shutdown().await;
    assert!(sim_stat(&sim, "entra.certificate").await >= 3, "Graph, ARM and Monitor tokens by certificate");
    assert_eq!(sim_stat(&sim, "entra.secret").await, 0);
    assert_eq!(sim_stat(&sim, "entra.msi").await, 0);
    assert_eq!(sim_stat(&sim, "entra.assertion_refused").await, 0);
}

#[tokio::test]
async fn a_certificate_not_registered_on_the_app_is_refused() {
    let sim = sim_with_certificate().await;
    let s = app::build(config(&certificate_vars(&sim, OTHER_PEM)));
    let e = s.graph_tokens.token(&s.config.graph_scope).await.expect_err("another certificate");
    assert!(matches!(e, PortError::Unauthorized { .. }) && e.to_string().contains("AADSTS700027"), "{e:?}");
    // No certificate registered at all.
    let sim = start_sim(SimConfig::demo()).await;
    let s = app::build(config(&certificate_vars(&sim, APP_PEM)));
    let e = s.graph_tokens.token(&s.config.graph_scope).await.unwrap_err();
    assert!(e.to_string().contains("AADSTS700027"), "{e}");
}

/// Posts `assertion` for the sim's app to its token endpoint; the answer's status and body.
async fn present(sim: &RunningSim, assertion: &str) -> (u16, String) {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", sim.sim.config.client_id.as_str()),
        ("scope", "https://graph.microsoft.com/.default"),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", assertion),
    ];
    let r = reqwest::Client::new().post(token_url(sim)).form(&form).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn token_url(sim: &RunningSim) -> String {
    format!("{}/{}/oauth2/v2.0/token", sim.base_url(), sim.sim.config.tenant_id)
}

#[tokio::test]
async fn entra_refuses_a_wrong_audience_issuer_expiry_signature_or_a_replay() {
    let sim = sim_with_certificate().await;
    let cert = ClientCertificate::load(std::path::Path::new(APP_PEM)).unwrap();
    let app_id = sim.sim.config.client_id.clone();
    let now = time::OffsetDateTime::now_utc();

    let good = cert.assertion(&app_id, &token_url(&sim), now).unwrap();
    assert_eq!(present(&sim, &good).await.0, 200, "the right assertion is accepted");
    let (status, body) = present(&sim, &good).await;
    assert!(status == 401 && body.contains("AADSTS50027"), "a replayed jti is refused: {body}");

    let other_endpoint = "https://login.microsoftonline.com/other/oauth2/v2.0/token";
    let (status, body) = present(&sim, &cert.assertion(&app_id, other_endpoint, now).unwrap()).await;
    assert!(status == 401 && body.contains("AADSTS50027") && body.contains("audience"), "{body}");

    let other_app = "00000000-1111-2222-3333-444444444444";
    let (status, body) = present(&sim, &cert.assertion(other_app, &token_url(&sim), now).unwrap()).await;
    assert!(status == 401 && body.contains("AADSTS700021"), "iss/sub not the client id: {body}");

    let expired = cert.assertion(&app_id, &token_url(&sim), now - time::Duration::hours(1)).unwrap();
    let (status, body) = present(&sim, &expired).await;
    assert!(status == 401 && body.contains("AADSTS700024"), "{body}");

    // The payload changed after signing (another audience): the signature no longer holds.
    let fresh = cert.assertion(&app_id, &token_url(&sim), now).unwrap();
    let parts: Vec<&str> = fresh.split('.').collect();
    let forged_claims = xdrsync::adapters::cert_assertion::assertion_claims(&app_id, &token_url(&sim), now, "forged");
    use base64::Engine;
    let forged_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged_claims.to_string());
    let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    let (status, body) = present(&sim, &tampered).await;
    assert!(status == 401 && body.contains("AADSTS700027"), "{body}");
    assert_eq!(sim_stat(&sim, "entra.certificate").await, 1);
}

#[test]
fn a_missing_or_unreadable_certificate_file_is_a_clear_configuration_error() {
    let mut vars: HashMap<String, String> =
        xdrsync_sim::sim::SimConfig::demo().settings_for("127.0.0.1:1".parse().unwrap()).into_iter().collect();
    vars.insert("AzureWebJobsStorage".into(), "UseDevelopmentStorage=true".into());
    vars.remove("XDRSYNC_CLIENT_SECRET");
    vars.insert("XDRSYNC_GRAPH_CREDENTIAL".into(), "certificate".into());
    let e = xdrsync::config::Config::from_vars(&vars).unwrap_err();
    assert_eq!(e.var, "XDRSYNC_CLIENT_CERTIFICATE_PATH");
    vars.insert("XDRSYNC_CLIENT_CERTIFICATE_PATH".into(), "/nonexistent/app.pem".into());
    let e = xdrsync::config::Config::from_vars(&vars).unwrap_err();
    assert!(e.var == "XDRSYNC_CLIENT_CERTIFICATE_PATH" && e.problem.contains("cannot read"), "{e:?}");
}
