//! The two-sided property of the core's model (`crates/xdrsync-core/tests/two_sides_model.rs`),
//! held by the product itself: random histories of analyst edits in Defender and in Sentinel
//! (through the simulator's portals), interleaved with reconciles run by the real use case
//! (`usecase::sync::reconcile`, its reads, merge and writes over HTTP). After every reconcile
//! both sides show the same severity, owner and status (but for Defender's API refusing
//! `inProgress`, the model's lossy case); a duplicate trigger writes nothing; and a field edited on
//! one side only since the last reconcile ends with that edit on both sides.

mod support;

use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use serde_json::{json, Value};
use support::*;
use xdrsync::domain::names::sentinel_incident_name;
use xdrsync::domain::work::{ChangeHint, WorkItem};
use xdrsync::usecase::Ports;
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::{RunningSim, SimConfig};

/// A field both sides hold, with the same meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Severity,
    Owner,
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Defender,
    Sentinel,
}

#[derive(Debug, Clone)]
enum Step {
    /// An analyst's edit: the field, and which of its values (an index into [`values`]).
    Edit(Side, Field, usize),
    Reconcile,
}

/// The values a field takes, in the shared vocabulary the test compares in.
fn values(f: Field) -> &'static [&'static str] {
    match f {
        Field::Severity => &["low", "medium", "high"],
        Field::Owner => &["alice@contoso.com", "bob@contoso.com"],
        // Closing needs a classification on both sides; the model covers it, here the open states.
        Field::Status => &["new", "active"],
    }
}

fn edit_body(side: Side, f: Field, v: &str) -> Value {
    match (side, f) {
        (Side::Defender, Field::Severity) => json!({"severity": v}),
        (Side::Defender, Field::Owner) => json!({"assignedTo": v}),
        (Side::Defender, Field::Status) => json!({"status": if v == "new" { "active" } else { "inProgress" }}),
        (Side::Sentinel, Field::Severity) => json!({"severity": capitalised(v)}),
        (Side::Sentinel, Field::Owner) => json!({"ownerUpn": v}),
        (Side::Sentinel, Field::Status) => json!({"status": capitalised(v)}),
    }
}

fn capitalised(v: &str) -> String {
    let mut c = v.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

fn step() -> impl Strategy<Value = Step> {
    let field = prop_oneof![Just(Field::Severity), Just(Field::Owner), Just(Field::Status)];
    let side = prop_oneof![Just(Side::Defender), Just(Side::Sentinel)];
    prop_oneof![
        3 => (side, field, 0..3usize).prop_map(|(s, f, i)| Step::Edit(s, f, i % values(f).len())),
        2 => Just(Step::Reconcile),
    ]
}

struct Harness {
    rt: tokio::runtime::Runtime,
    sim: RunningSim,
    services: Arc<Ports>,
}

/// One simulator and one set of ports for every case (each case has its own incident).
fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (sim, services) = rt.block_on(async {
            let sim = start_sim(SimConfig::demo()).await;
            let (services, _queue) = services_with_fakes(&sim);
            (sim, services)
        });
        Harness { rt, sim, services }
    })
}

/// What each side shows of the three fields, in the shared vocabulary.
async fn readings(h: &Harness, id: &str) -> ([Option<String>; 3], [Option<String>; 3]) {
    let d = h.services.defender.get_incident(id).await.unwrap().expect("the incident exists");
    let name = sentinel_incident_name(&h.services.config.tenant_id, id);
    let s = h.services.sentinel.get_incident(&name).await.unwrap().expect("the mirror exists");
    let d = serde_json::to_value(&d).unwrap();
    let s = serde_json::to_value(&s).unwrap();
    let text = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_ascii_lowercase);
    let d_status = text(&d, "/status").map(|st| {
        if st == "active" {
            "new".into()
        } else if st == "inprogress" {
            "active".into()
        } else {
            st
        }
    });
    let defender = [text(&d, "/severity"), text(&d, "/assignedTo"), d_status];
    let owner = text(&s, "/properties/owner/userPrincipalName").or_else(|| text(&s, "/properties/owner/email"));
    let sentinel = [text(&s, "/properties/severity"), owner, text(&s, "/properties/status")];
    (defender, sentinel)
}

async fn writes(h: &Harness) -> u64 {
    sim_stat(&h.sim, "arm.incidents.put").await + sim_stat(&h.sim, "graph.incidents.patch").await
}

async fn reconcile(h: &Harness, id: &str) {
    let item = WorkItem::reconcile(&h.services.config.tenant_id, id, ChangeHint::Reconcile);
    xdrsync::usecase::sync::reconcile(&h.services, &item).await.expect("the reconcile succeeds");
}

fn index(f: Field) -> usize {
    match f {
        Field::Severity => 0,
        Field::Owner => 1,
        Field::Status => 2,
    }
}

async fn run_case(h: &Harness, steps: &[Step]) -> Result<(), TestCaseError> {
    let id = seed(&h.sim, SeedSpec { count: 1, ..Default::default() }).remove(0);
    let name = sentinel_incident_name(&h.services.config.tenant_id, &id);
    reconcile(h, &id).await;
    // Per field: the sides that edited it since the last reconcile, and the last value set.
    let mut pending: [(Vec<Side>, Option<&str>); 3] = Default::default();
    let mut steps = steps.to_vec();
    steps.push(Step::Reconcile);
    for step in &steps {
        match step {
            Step::Edit(side, f, i) => {
                let v = values(*f)[*i];
                let path = match side {
                    Side::Defender => format!("/_sim/defender/incidents/{id}/edit"),
                    Side::Sentinel => format!("/_sim/sentinel/incidents/{name}/edit"),
                };
                // An edit to the value the side already shows changes nothing there: not an edit.
                let (d_now, s_now) = readings(h, &id).await;
                let shown = if *side == Side::Defender { &d_now } else { &s_now };
                let unchanged = shown[index(*f)].as_deref() == Some(v);
                let r = sim_post(&h.sim, &path, edit_body(*side, *f, v)).await;
                prop_assert!(r.status().is_success(), "the simulator took the edit {step:?}");
                if unchanged {
                    continue;
                }
                let p = &mut pending[index(*f)];
                if !p.0.contains(side) {
                    p.0.push(*side);
                }
                p.1 = Some(v);
            }
            Step::Reconcile => {
                reconcile(h, &id).await;
                let (mut d, s) = readings(h, &id).await;
                // Graph's PATCH may refuse `inProgress` (the model's lossy case): Defender then
                // stays active while Sentinel shows Active, and nothing else may differ.
                if d[2].as_deref() == Some("new") && s[2].as_deref() == Some("active") {
                    d[2] = s[2].clone();
                }
                prop_assert_eq!(&d, &s, "both sides agree after a reconcile ({:?})", step);
                for (i, (sides, last)) in pending.iter().enumerate() {
                    if sides.len() == 1 {
                        prop_assert_eq!(s[i].as_deref(), *last, "a one-sided edit of field {} wins", i);
                    }
                }
                pending = Default::default();
                let before = writes(h).await;
                reconcile(h, &id).await;
                prop_assert_eq!(writes(h).await, before, "a duplicate trigger writes nothing");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 16, ..ProptestConfig::default() })]

    #[test]
    fn reconciles_of_the_product_converge_keep_one_sided_edits_and_are_idempotent(
        steps in proptest::collection::vec(step(), 1..14)
    ) {
        let h = harness();
        h.rt.block_on(run_case(h, &steps))?;
    }
}
