//! The simulator behaves like the services where a lenient fake would be convenient: list ties
//! are not ordered by id, ARM's `$top` cap and property-checked `$filter`, writes that commit and
//! then answer 500, the comment options, and a 403 per missing role with the service's body.
//! Everything goes through HTTP, as a client would.

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use xdrsync_sim::sim::seed::{seed, SeedSpec};
use xdrsync_sim::sim::{spawn, FaultKind, FaultRule, RunningSim, SimConfig, TieOrder};

struct Fixture {
    sim: RunningSim,
    http: Client,
}

impl Fixture {
    async fn start(config: SimConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self { sim: spawn(listener, config).await.unwrap(), http: Client::new() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    async fn token(&self, scope: &str) -> String {
        let c = &self.sim.sim.config;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
            ("scope", scope),
        ];
        let r = self.http.post(self.url(&format!("/{}/oauth2/v2.0/token", c.tenant_id))).form(&form).send().await;
        let v: Value = r.unwrap().json().await.unwrap();
        v["access_token"].as_str().unwrap().to_string()
    }

    /// A request with a fresh token for `scope`; returns status and JSON body (Null when empty).
    async fn call(&self, scope: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let token = self.token(scope).await;
        self.call_with(&token, method, path, body).await
    }

    async fn call_with(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut rb = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn graph(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call("https://graph.microsoft.com/.default", method, &format!("/v1.0{path}"), body).await
    }

    async fn arm(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let sep = if path.contains('?') { '&' } else { '?' };
        let full = format!("{}{path}{sep}api-version=2025-09-01", self.sim.sim.sentinel_base());
        self.call("https://management.azure.com/.default", method, &full, body).await
    }

    async fn control(&self, method: Method, path: &str, body: Value) -> Value {
        let r = self.http.request(method, self.url(path)).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    fn seed(&self, spec: SeedSpec) -> Vec<String> {
        seed(&mut self.sim.sim.world(), &self.sim.sim.config.tenant_id, &spec)
    }

    /// Creates a Sentinel incident named `name` through the API.
    async fn put_incident(&self, name: &str, severity: &str) -> (StatusCode, Value) {
        let body = json!({"properties": {"title": format!("incident {name}"), "severity": severity, "status": "New"}});
        self.arm(Method::PUT, &format!("/incidents/{name}"), Some(body)).await
    }

    async fn logs_post(&self, rows: Value) -> (StatusCode, Value) {
        let c = &self.sim.sim.config;
        let path =
            format!("/dataCollectionRules/{}/streams/{}?api-version=2023-01-01", c.dcr_immutable_id, c.streams[0]);
        self.call("https://monitor.azure.com/.default", Method::POST, &path, Some(rows)).await
    }
}

fn ids_of(v: &Value) -> Vec<String> {
    v["value"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect()
}

fn names_of(v: &Value) -> Vec<String> {
    v["value"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_string()).collect()
}

fn name(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

// ------------------------------------------------------------------------------------------------
// Ordering of ties

#[tokio::test]
async fn graph_incidents_with_equal_times_are_not_listed_in_id_order_yet_page_stably() {
    let f = Fixture::start(SimConfig::demo()).await;
    let mut ids = f.seed(SeedSpec { count: 20, same_timestamp: true, max_alerts: 1, ..Default::default() });
    let (_, all) = f.graph(Method::GET, "/security/incidents", None).await;
    let listed = ids_of(&all);
    assert_eq!(listed.len(), 20);
    let mut ascending = listed.clone();
    ascending.sort_by_key(|i| i.parse::<u64>().unwrap());
    let mut descending = ascending.clone();
    descending.reverse();
    assert_ne!(listed, ascending, "ties are not broken by id (ascending)");
    assert_ne!(listed, descending, "ties are not broken by id (descending)");
    // The same order again, and page by page.
    assert_eq!(ids_of(&f.graph(Method::GET, "/security/incidents", None).await.1), listed);
    let mut paged = Vec::new();
    let mut next = Some(f.url("/v1.0/security/incidents?$top=6"));
    let token = f.token("https://graph.microsoft.com/.default").await;
    while let Some(url) = next {
        let v: Value = f.http.get(url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        paged.extend(ids_of(&v));
        next = v["@odata.nextLink"].as_str().map(String::from);
    }
    assert_eq!(paged, listed, "pages follow one order");

    // Insertion order, when asked for.
    f.control(Method::PATCH, "/_sim/options", json!({"tieOrder": {"kind": "insertion"}})).await;
    ids.sort_by_key(|i| i.parse::<u64>().unwrap());
    assert_eq!(ids_of(&f.graph(Method::GET, "/security/incidents", None).await.1), ids);
}

#[tokio::test]
async fn arm_incidents_with_equal_sort_keys_are_not_listed_in_name_order() {
    let mut config = SimConfig::demo();
    config.options.tie_order = TieOrder::Shuffled { seed: 11 };
    let f = Fixture::start(config).await;
    let mut created = Vec::new();
    for n in 0..12 {
        assert_eq!(f.put_incident(&name(n), "High").await.0, StatusCode::CREATED);
        created.push(name(n));
    }
    let (status, v) = f.arm(Method::GET, "/incidents?$orderby=properties/severity asc", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let listed = names_of(&v);
    assert_eq!(listed.len(), 12);
    let mut reversed = created.clone();
    reversed.reverse();
    assert_ne!(listed, created, "equal severities are not in name order");
    assert_ne!(listed, reversed);
    // A real key still sorts: creation time ascending is creation order.
    let (_, v) = f.arm(Method::GET, "/incidents?$orderby=properties/createdTimeUtc asc", None).await;
    assert_eq!(names_of(&v), created);
}

// ------------------------------------------------------------------------------------------------
// ARM list options

#[tokio::test]
async fn arm_top_is_capped_at_1000_and_pages_follow_next_link() {
    let f = Fixture::start(SimConfig::demo()).await;
    for n in 0..5 {
        f.put_incident(&name(n), "Low").await;
    }
    let (status, v) = f.arm(Method::GET, "/incidents?$top=1000", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names_of(&v).len(), 5);
    let (status, v) = f.arm(Method::GET, "/incidents?$top=1001", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "BadRequest", "ARM CloudError shape: {v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("1000"));
    // $top=2: three pages through nextLink.
    let (_, first) = f.arm(Method::GET, "/incidents?$top=2", None).await;
    let token = f.token("https://management.azure.com/.default").await;
    let mut names = names_of(&first);
    let mut next = first["nextLink"].as_str().map(String::from);
    let mut pages = 1;
    while let Some(url) = next {
        let v: Value = f.http.get(url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        names.extend(names_of(&v));
        next = v["nextLink"].as_str().map(String::from);
        pages += 1;
    }
    assert_eq!((pages, names.len()), (3, 5));
}

#[tokio::test]
async fn arm_filter_and_orderby_take_incident_properties_only() {
    let f = Fixture::start(SimConfig::demo()).await;
    f.put_incident(&name(1), "High").await;
    f.put_incident(&name(2), "Low").await;
    let (status, v) = f.arm(Method::GET, "/incidents?$filter=properties/severity eq 'High'", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names_of(&v), vec![name(1)]);
    let (status, v) =
        f.arm(Method::GET, "/incidents?$filter=properties/lastModifiedTimeUtc ge 2020-01-01T00:00:00Z", None).await;
    assert_eq!((status, names_of(&v).len()), (StatusCode::OK, 2));
    // The service's own answer to a capitalised, unprefixed name (Azure/azure-powershell#21618).
    let (status, v) = f.arm(Method::GET, "/incidents?$filter=CreatedTimeUtc ge 2020-01-01T00:00:00Z", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!({"error": {"code": "BadRequest", "message": "Could not find a property named 'CreatedTimeUtc'"}})
    );
    for bad in ["properties/foo eq 'x'", "properties/lastUpdateDateTime ge 2020-01-01T00:00:00Z", "severity eq 'High'"]
    {
        let (status, v) = f.arm(Method::GET, &format!("/incidents?$filter={bad}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(v["error"]["message"].as_str().unwrap().starts_with("Could not find a property named"), "{v}");
    }
    let (status, _) = f.arm(Method::GET, "/incidents?$orderby=properties/nope desc", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // `name` is accepted and matches nothing, as reported (Azure/azure-rest-api-specs#28207).
    let (status, v) = f.arm(Method::GET, &format!("/incidents?$filter=name eq '{}'", name(1)), None).await;
    assert_eq!((status, names_of(&v).len()), (StatusCode::OK, 0));
}

// ------------------------------------------------------------------------------------------------
// Writes that commit, then lose their answer

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
async fn commit_then_fail_stores_every_kind_of_write_and_answers_500() {
    let f = Fixture::start(SimConfig::demo()).await;
    let id = f.seed(SeedSpec { count: 1, ..Default::default() }).remove(0);

    // Graph PATCH. A read first: reads never consume the rule.
    f.sim.sim.faults.set(commit_then_fail("graph"));
    assert_eq!(f.graph(Method::GET, &format!("/security/incidents/{id}"), None).await.0, StatusCode::OK);
    let (status, body) = f
        .graph(Method::PATCH, &format!("/security/incidents/{id}"), Some(json!({"assignedTo": "bob@contoso.com"})))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body["error"]["innerError"].is_object(), "Graph error shape: {body}");
    assert_eq!(f.sim.sim.world().incident(&id).unwrap().assigned_to.as_deref(), Some("bob@contoso.com"));
    assert_eq!(f.graph(Method::GET, &format!("/security/incidents/{id}"), None).await.0, StatusCode::OK, "one shot");

    // Graph comment.
    f.sim.sim.faults.set(commit_then_fail("graph"));
    let comment = json!({"@odata.type": "microsoft.graph.security.alertComment", "comment": "lost answer"});
    let (status, _) = f.graph(Method::POST, &format!("/security/incidents/{id}/comments"), Some(comment)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(f.sim.sim.world().incident(&id).unwrap().comments.last().unwrap().comment, "lost answer");

    // ARM incident PUT.
    f.sim.sim.faults.set(commit_then_fail("arm"));
    let (status, body) = f.put_incident(&name(7), "Medium").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body["error"]["code"].is_string(), "ARM error shape: {body}");
    let incident = uuid::Uuid::parse_str(&name(7)).unwrap();
    assert_eq!(f.sim.sim.world().sentinel[&incident].writes, 1, "the incident was created");

    // ARM comment PUT.
    f.sim.sim.faults.set(commit_then_fail("arm"));
    let comment = json!({"properties": {"message": "stored anyway"}});
    let (status, _) = f.arm(Method::PUT, &format!("/incidents/{}/comments/{}", name(7), name(70)), Some(comment)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(f.sim.sim.world().sentinel[&incident].comments.len(), 1);

    // Logs Ingestion POST.
    f.sim.sim.faults.set(commit_then_fail("logs"));
    let (status, _) = f.logs_post(json!([{"TimeGenerated": "2024-01-01T00:00:00Z", "X": 1}])).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(f.sim.sim.world().logs.values().map(Vec::len).sum::<usize>(), 1, "the rows were ingested");

    let stats = f.sim.sim.stats.snapshot();
    assert_eq!(
        ["graph", "arm", "logs"].map(|a| stats.get(&format!("{a}.commit_then_fail")).copied().unwrap_or(0)),
        [2, 2, 1]
    );
}

#[tokio::test]
async fn a_write_the_service_refuses_keeps_its_real_answer_under_commit_then_fail() {
    let f = Fixture::start(SimConfig::demo()).await;
    f.sim.sim.faults.set(commit_then_fail("arm"));
    let closed_without_classification = json!({"properties": {"title": "t", "severity": "Low", "status": "Closed"}});
    let (status, _) = f.arm(Method::PUT, &format!("/incidents/{}", name(1)), Some(closed_without_classification)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(f.sim.sim.world().sentinel.is_empty());
}

// ------------------------------------------------------------------------------------------------
// Comments

#[tokio::test]
async fn graph_comment_order_is_an_option() {
    let f = Fixture::start(SimConfig::demo()).await;
    let id = f.seed(SeedSpec { count: 1, ..Default::default() }).remove(0);
    for text in ["first", "second"] {
        f.control(Method::POST, &format!("/_sim/defender/incidents/{id}/edit"), json!({"comment": text})).await;
    }
    let texts = |v: &Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|c| c["comment"].as_str().unwrap().to_string()).collect()
    };
    let (_, v) = f.graph(Method::GET, &format!("/security/incidents/{id}"), None).await;
    assert_eq!(texts(&v["comments"]), ["first", "second"], "oldest first by default");
    assert!(v["comments"][0]["createdByDisplayName"].is_string() && v["comments"][0]["createdDateTime"].is_string());

    let o = f.control(Method::PATCH, "/_sim/options", json!({"graphCommentOrder": "newestFirst"})).await;
    assert_eq!(o["graphCommentOrder"], "newestFirst");
    assert_eq!(o["sentinelCommentTouchesIncident"], true, "other options keep their values");
    let (_, v) = f.graph(Method::GET, &format!("/security/incidents/{id}?$expand=alerts"), None).await;
    assert_eq!(texts(&v["comments"]), ["second", "first"]);
    let (_, v) =
        f.graph(Method::POST, &format!("/security/incidents/{id}/comments"), Some(json!({"comment": "third"}))).await;
    assert_eq!(texts(&v["value"]), ["third", "second", "first"], "the POST answers the whole list, same order");
}

#[tokio::test]
async fn sentinel_comments_may_leave_the_incident_untouched_but_always_count() {
    let mut config = SimConfig::demo();
    config.options.sentinel_comment_touches_incident = false;
    let f = Fixture::start(config).await;
    let (_, created) = f.put_incident(&name(1), "Low").await;
    let put_comment = |c: u32| {
        let f = &f;
        async move {
            let body = json!({"properties": {"message": format!("note {c}")}});
            f.arm(Method::PUT, &format!("/incidents/{}/comments/{}", name(1), name(100 + c)), Some(body)).await
        }
    };
    assert_eq!(put_comment(1).await.0, StatusCode::CREATED);
    let (_, after) = f.arm(Method::GET, &format!("/incidents/{}", name(1)), None).await;
    assert_eq!(after["etag"], created["etag"], "etag unchanged");
    assert_eq!(after["properties"]["lastModifiedTimeUtc"], created["properties"]["lastModifiedTimeUtc"]);
    assert_eq!(after["properties"]["additionalData"]["commentsCount"], 1);

    f.control(Method::PATCH, "/_sim/options", json!({"sentinelCommentTouchesIncident": true})).await;
    put_comment(2).await;
    let (_, touched) = f.arm(Method::GET, &format!("/incidents/{}", name(1)), None).await;
    assert_ne!(touched["etag"], after["etag"]);
    assert_ne!(touched["properties"]["lastModifiedTimeUtc"], after["properties"]["lastModifiedTimeUtc"]);
    assert_eq!(touched["properties"]["additionalData"]["commentsCount"], 2);
    let (_, list) = f.arm(Method::GET, &format!("/incidents/{}/comments", name(1)), None).await;
    assert_eq!(list["value"][0]["type"], "Microsoft.SecurityInsights/incidents/comments");
    assert_eq!(list["value"].as_array().unwrap().len(), 2);
}

// ------------------------------------------------------------------------------------------------
// Permissions

#[tokio::test]
async fn graph_roles_ride_in_the_token_and_a_missing_one_is_graphs_403() {
    let mut config = SimConfig::demo();
    config.permissions.graph_app_roles = ["SecurityIncident.Read.All".to_string()].into();
    let f = Fixture::start(config).await;
    let id = f.seed(SeedSpec { count: 1, ..Default::default() }).remove(0);
    assert_eq!(f.graph(Method::GET, &format!("/security/incidents/{id}"), None).await.0, StatusCode::OK);
    assert_eq!(f.graph(Method::GET, "/security/alerts_v2", None).await.0, StatusCode::OK, "incident roles read alerts");
    let (status, v) =
        f.graph(Method::PATCH, &format!("/security/incidents/{id}"), Some(json!({"status": "resolved"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "Forbidden");
    assert_eq!(
        v["error"]["message"],
        "Missing application roles. API required roles: SecurityIncident.ReadWrite.All, application roles: SecurityIncident.Read.All."
    );
    assert!(v["error"]["innerError"]["request-id"].is_string());
    let (status, _) =
        f.graph(Method::POST, &format!("/security/incidents/{id}/comments"), Some(json!({"comment": "x"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, v) = f.graph(Method::GET, "/users/bob@contoso.com", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "Authorization_RequestDenied");
    assert_eq!(v["error"]["message"], "Insufficient privileges to complete the operation.");
}

#[tokio::test]
async fn a_withheld_graph_role_is_refused_at_once_and_a_grant_needs_a_fresh_token() {
    let f = Fixture::start(SimConfig::demo()).await;
    let token = f.token("https://graph.microsoft.com/.default").await;
    assert_eq!(f.call_with(&token, Method::GET, "/v1.0/users/bob@contoso.com", None).await.0, StatusCode::OK);
    let p = f.control(Method::POST, "/_sim/permissions/withhold", json!({"role": "User.Read.All"})).await;
    assert_eq!(p["permissions"]["graphAppRoles"], json!(["SecurityIncident.ReadWrite.All", "ThreatHunting.Read.All"]));
    // The token stays valid (Entra does not revoke it), but the withheld role no longer serves.
    let (status, v) = f.call_with(&token, Method::GET, "/v1.0/users/bob@contoso.com", None).await;
    assert_eq!((status, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("Authorization_RequestDenied")));
    assert_eq!(
        f.graph(Method::GET, "/users/bob@contoso.com", None).await.0,
        StatusCode::FORBIDDEN,
        "a new token lacks it"
    );
    let stale = f.token("https://graph.microsoft.com/.default").await;
    f.control(Method::POST, "/_sim/permissions/grant", json!({"role": "User.Read.All"})).await;
    // A token issued before the grant keeps the grants it was issued with, as Entra's do.
    assert_eq!(f.call_with(&stale, Method::GET, "/v1.0/users/bob@contoso.com", None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(f.graph(Method::GET, "/users/bob@contoso.com", None).await.0, StatusCode::OK, "a fresh token has it");
}

#[tokio::test]
async fn sentinel_needs_responder_on_the_workspace() {
    let f = Fixture::start(SimConfig::demo()).await;
    assert_eq!(f.put_incident(&name(1), "Low").await.0, StatusCode::CREATED);
    f.control(Method::POST, "/_sim/permissions/withhold", json!({"role": "Microsoft Sentinel Responder"})).await;
    let (status, v) = f.arm(Method::GET, &format!("/incidents/{}", name(1)), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "AuthorizationFailed");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("The client '") && message.contains("with object id '"),
        "documented message shape: {message}"
    );
    assert!(message.contains("does not have authorization to perform action 'Microsoft.SecurityInsights/incidents/read' over scope '/subscriptions/"));
    assert!(
        message.ends_with("or the scope is invalid. If access was recently granted, please refresh your credentials.")
    );
    // A reader reads but cannot write.
    f.control(Method::POST, "/_sim/permissions/grant", json!({"role": "Microsoft Sentinel Reader"})).await;
    assert_eq!(f.arm(Method::GET, &format!("/incidents/{}", name(1)), None).await.0, StatusCode::OK);
    let (status, v) = f.put_incident(&name(2), "Low").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(v["error"]["message"].as_str().unwrap().contains("'Microsoft.SecurityInsights/incidents/write'"));
    let comment = json!({"properties": {"message": "m"}});
    let (status, v) = f.arm(Method::PUT, &format!("/incidents/{}/comments/{}", name(1), name(9)), Some(comment)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(v["error"]["message"].as_str().unwrap().contains("'Microsoft.SecurityInsights/incidents/comments/write'"));
}

#[tokio::test]
async fn logs_ingestion_needs_monitoring_metrics_publisher_on_the_dcr() {
    let mut config = SimConfig::demo();
    config.permissions.dcr_roles.clear();
    let f = Fixture::start(config).await;
    let (status, v) = f.logs_post(json!([{"TimeGenerated": "2024-01-01T00:00:00Z"}])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "OperationFailed");
    assert!(v["error"]["message"].as_str().unwrap().starts_with(
        "The authentication token provided does not have access to ingest data for the data collection rule with immutable Id 'dcr-"
    ));
    assert!(f.sim.sim.world().logs.is_empty());
    let p = f.control(Method::PUT, "/_sim/permissions", json!({"graphAppRoles": ["SecurityIncident.ReadWrite.All"], "workspaceRoles": [], "dcrRoles": ["Monitoring Metrics Publisher"]})).await;
    assert_eq!(p["dcrRoles"], json!(["Monitoring Metrics Publisher"]));
    assert_eq!(f.logs_post(json!([{"TimeGenerated": "2024-01-01T00:00:00Z"}])).await.0, StatusCode::NO_CONTENT);
}

// ------------------------------------------------------------------------------------------------
// Read-only properties on PUT

#[tokio::test]
async fn read_only_properties_are_ignored_and_counted_or_refused_by_option() {
    let f = Fixture::start(SimConfig::demo()).await;
    let body = json!({"properties": {"title": "t", "severity": "Low", "status": "New", "providerName": "me",
        "labels": [{"labelName": "a", "labelType": "AutoAssigned"}]}});
    let (status, v) = f.arm(Method::PUT, &format!("/incidents/{}", name(1)), Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(v["properties"]["providerName"], "Azure Sentinel", "the server's value");
    assert_eq!(v["properties"]["labels"][0]["labelType"], "User", "the server sets label types");
    assert_eq!(f.sim.sim.stats.snapshot()["arm.incidents.put.read_only_sent"], 1);
    f.control(Method::PATCH, "/_sim/options", json!({"rejectReadOnlyProperties": true})).await;
    let (status, v) = f.arm(Method::PUT, &format!("/incidents/{}", name(2)), Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("properties.providerName") && message.contains("properties.labels[0].labelType"),
        "{message}"
    );
}

// ------------------------------------------------------------------------------------------------
// Independence

#[test]
fn the_simulated_services_never_use_the_products_code() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sim");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("xdrsync_core"), "{} uses the product's crate", path.display());
        checked += 1;
    }
    assert!(checked >= 10);
}

/// ARM's regional token buckets (Learn, request-limits-and-throttling): per subscription,
/// principal and kind, writes 200 refilled at 10/s. The 201st write at once is a 429 with
/// `Retry-After`; reads and another principal's writes still go through.
#[tokio::test]
async fn arm_writes_are_a_bucket_of_200_per_principal_and_the_next_is_429() {
    let mut config = SimConfig::demo();
    config.options.arm_limits = true;
    let f = Fixture::start(config).await;
    let token = f.token("https://management.azure.com/.default").await;
    let base = f.sim.sim.sentinel_base();
    let body = json!({"properties": {"title": "t", "severity": "Low", "status": "New"}});
    let mut ok = 0;
    let mut throttled = None;
    for _ in 0..230 {
        let path = format!("{base}/incidents/{}?api-version=2025-09-01", uuid::Uuid::new_v4());
        let r = f.http.put(f.url(&path)).bearer_auth(&token).json(&body).send().await.unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            let after: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            let v: Value = r.json().await.unwrap();
            throttled = Some((after, v));
            break;
        }
        assert!(r.status().is_success(), "{}", r.status());
        ok += 1;
    }
    // A refill of 10/s may add a few tokens while the loop runs; never fewer than the bucket.
    assert!((200..215).contains(&ok), "{ok} writes before the first 429");
    let (after, v) = throttled.expect("the bucket ran dry");
    assert!((1..=2).contains(&after), "Retry-After {after}");
    assert_eq!(v["error"]["code"], "SubscriptionRequestsThrottled", "{v}");
    assert!(f.sim.sim.stats.snapshot()["arm.throttled.writes"] >= 1);

    let (status, _) = f.call_with(&token, Method::GET, &format!("{base}/incidents?api-version=2025-09-01"), None).await;
    assert_eq!(status, StatusCode::OK, "reads have their own bucket");
    let (status, _) = f
        .call_with(
            &token,
            Method::DELETE,
            &format!("{base}/incidents/{}?api-version=2025-09-01", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    // (Refused by RBAC, after the throttle: the app is a Responder.)
    assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "deletes have their own bucket");

    // Another principal (the managed identity) has its own bucket.
    let c = &f.sim.sim.config;
    let mi: Value = f
        .http
        .get(f.url("/msi/token?api-version=2019-08-01&resource=https://management.azure.com/"))
        .query(&[("client_id", c.managed_identity_client_id.as_str())])
        .header("x-identity-header", c.identity_header.as_str())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mi_token = mi["access_token"].as_str().unwrap();
    let path = format!("{base}/incidents/{}?api-version=2025-09-01", uuid::Uuid::new_v4());
    let r = f.http.put(f.url(&path)).bearer_auth(mi_token).json(&body).send().await.unwrap();
    assert_ne!(r.status(), StatusCode::TOO_MANY_REQUESTS, "another principal's bucket is full");

    // The bucket refills: after the Retry-After, the app writes again.
    tokio::time::sleep(std::time::Duration::from_secs(after)).await;
    let path = format!("{base}/incidents/{}?api-version=2025-09-01", uuid::Uuid::new_v4());
    let r = f.http.put(f.url(&path)).bearer_auth(&token).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

#[tokio::test]
async fn arm_limits_are_off_unless_asked_for() {
    let f = Fixture::start(SimConfig::demo()).await;
    for i in 0..210 {
        let (status, _) = f.put_incident(&uuid::Uuid::new_v4().to_string(), "Low").await;
        assert!(status.is_success(), "write {i}: {status}");
    }
}
