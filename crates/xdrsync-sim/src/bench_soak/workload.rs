//! The soak's workload and its verdicts: the changes an analyst and Defender make (new incidents,
//! Defender updates, Sentinel edits), what each must look like on the other side once synced, and
//! the duplicates a crash could leave (two mirrors of one incident, a comment copied twice).
//! Deciding whether a change is reflected is a pure function of the simulator's world.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::json;

use crate::demo::Stack;
use crate::sim::seed::SeedSpec;
use crate::sim::World;
use xdrsync_core::domain::names::sentinel_incident_name;

/// What a change must look like on the other side once synced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// A new Defender incident: its mirror exists in Sentinel.
    Mirror,
    /// A Defender severity (`low`, `medium`, `high`) shown by the mirror.
    SentinelSeverity(String),
    /// A Defender comment with this unique text, copied to the mirror.
    SentinelComment(String),
    /// A Sentinel owner (UPN) assigned in Defender.
    DefenderOwner(String),
    /// A Sentinel comment with this unique text, copied to Defender.
    DefenderComment(String),
}

impl Expect {
    /// The report's name of the change.
    pub fn kind(&self) -> &'static str {
        match self {
            Expect::Mirror => "new incident",
            Expect::SentinelSeverity(_) | Expect::SentinelComment(_) => "Defender update",
            Expect::DefenderOwner(_) | Expect::DefenderComment(_) => "Sentinel edit",
        }
    }

    /// The field a field change sets (a later change of it replaces the value).
    fn field(&self) -> Option<&'static str> {
        match self {
            Expect::SentinelSeverity(_) => Some("severity"),
            Expect::DefenderOwner(_) => Some("owner"),
            _ => None,
        }
    }

    /// Whether a change of this kind was made on the Defender side (one pending per side and
    /// incident, so each change can be told apart and timed).
    fn made_in_defender(&self) -> bool {
        matches!(self, Expect::Mirror | Expect::SentinelSeverity(_) | Expect::SentinelComment(_))
    }
}

/// One change made during the soak.
#[derive(Debug, Clone)]
pub struct Change {
    pub incident: String,
    pub expect: Expect,
    pub at: Instant,
    /// When it was first seen reflected on the other side.
    pub synced_at: Option<Instant>,
}

/// How many copies of the change the other side holds (1 once synced; more is a duplicate). A
/// field change counts 1 when the other side shows the value, else 0.
pub fn copies(w: &World, tenant: &str, incident: &str, expect: &Expect) -> usize {
    let name = sentinel_incident_name(tenant, incident);
    let mirror = w.sentinel_incident(&name);
    let defender = w.incident(incident);
    match expect {
        Expect::Mirror => usize::from(mirror.is_some()),
        Expect::SentinelSeverity(sev) => {
            usize::from(mirror.is_some_and(|m| m.writable.severity.eq_ignore_ascii_case(sev)))
        }
        Expect::SentinelComment(text) => {
            mirror.map_or(0, |m| m.comments.values().filter(|c| c.properties.message.contains(text.as_str())).count())
        }
        Expect::DefenderOwner(upn) => {
            usize::from(defender.is_some_and(|d| d.assigned_to.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(upn))))
        }
        Expect::DefenderComment(text) => {
            defender.map_or(0, |d| d.comments.iter().filter(|c| c.comment.contains(text.as_str())).count())
        }
    }
}

/// Sentinel incidents that are not the one mirror of a Defender incident (a second mirror of an
/// incident would need another name: the mirror's name derives from the incident's id).
pub fn extra_mirrors(w: &World, tenant: &str) -> usize {
    let expected: std::collections::HashSet<uuid::Uuid> =
        w.incidents.values().map(|d| sentinel_incident_name(tenant, &d.id)).collect();
    w.sentinel.keys().filter(|name| !expected.contains(name)).count()
}

/// Whether the change at `index` is lost at the end: never seen synced, or (for the last change
/// of its field on its incident, and for every comment or mirror) not shown by the other side now.
/// An earlier value of a field, once synced, may rightly be gone: a later change replaced it.
pub fn is_lost(w: &World, tenant: &str, changes: &[Change], index: usize) -> bool {
    let c = &changes[index];
    if c.synced_at.is_none() {
        return true;
    }
    let superseded = c
        .expect
        .field()
        .is_some_and(|f| changes[index + 1..].iter().any(|l| l.incident == c.incident && l.expect.field() == Some(f)));
    !superseded && copies(w, tenant, &c.incident, &c.expect) == 0
}

/// The analysts a Sentinel edit assigns (users the simulated Entra knows).
const OWNERS: [&str; 4] = ["alice@contoso.com", "bob@contoso.com", "carol@contoso.com", "dave@contoso.com"];
const SEVERITIES: [&str; 3] = ["low", "medium", "high"];

/// Makes changes through the simulator's control API, as Defender and an analyst would.
pub struct Workload {
    pub changes: Vec<Change>,
    rng: StdRng,
    tenant: String,
    made: usize,
}

impl Workload {
    pub fn new(tenant: String, rng: StdRng) -> Self {
        Self { changes: Vec::new(), rng, tenant, made: 0 }
    }

    /// Incidents already mirrored (at the start), recorded as synced new-incident changes so later
    /// edits can pick them.
    pub fn adopt(&mut self, ids: &[String]) {
        let now = Instant::now();
        self.changes.extend(ids.iter().map(|id| Change {
            incident: id.clone(),
            expect: Expect::Mirror,
            at: now,
            synced_at: Some(now),
        }));
    }

    /// Records when each pending change first shows on the other side.
    pub fn observe(&mut self, w: &World) {
        let now = Instant::now();
        for c in self.changes.iter_mut().filter(|c| c.synced_at.is_none()) {
            if copies(w, &self.tenant, &c.incident, &c.expect) > 0 {
                c.synced_at = Some(now);
            }
        }
    }

    pub fn pending(&self) -> usize {
        self.changes.iter().filter(|c| c.synced_at.is_none()).count()
    }

    /// An incident whose mirror exists and that has no pending change from this side.
    fn pick(&mut self, from_defender: bool) -> Option<String> {
        let busy: std::collections::HashSet<&str> = self
            .changes
            .iter()
            .filter(|c| {
                c.synced_at.is_none() && (c.expect.made_in_defender() == from_defender || c.expect == Expect::Mirror)
            })
            .map(|c| c.incident.as_str())
            .collect();
        let free: Vec<&str> = self
            .changes
            .iter()
            .filter(|c| c.expect == Expect::Mirror && !busy.contains(c.incident.as_str()))
            .map(|c| c.incident.as_str())
            .collect();
        (!free.is_empty()).then(|| free[self.rng.gen_range(0..free.len())].to_string())
    }

    /// Makes one random change: a new incident, a Defender update or a Sentinel edit (a new
    /// incident when no mirror is free for an edit).
    pub async fn step(&mut self, stack: &Stack) -> anyhow::Result<()> {
        self.made += 1;
        let n = self.made;
        let roll = self.rng.gen_range(0..3);
        let target = match roll {
            1 => self.pick(true).map(|id| (id, true)),
            2 => self.pick(false).map(|id| (id, false)),
            _ => None,
        };
        let base = stack.sim.base_url();
        let (incident, expect) = match target {
            None => {
                let spec = SeedSpec { count: 1, seed: n as u64, min_alerts: 1, max_alerts: 2, ..Default::default() };
                let ids = crate::sim::seed::seed(&mut stack.sim.sim.world(), &self.tenant, &spec);
                let id = ids.into_iter().next().ok_or_else(|| anyhow::anyhow!("the simulator seeded nothing"))?;
                (id, Expect::Mirror)
            }
            Some((id, true)) => {
                let (body, expect) = if self.rng.gen_bool(0.5) {
                    let current = stack.sim.sim.world().incident(&id).map(|d| d.severity.clone()).unwrap_or_default();
                    let others: Vec<&str> = SEVERITIES.iter().copied().filter(|s| *s != current).collect();
                    let sev = others[self.rng.gen_range(0..others.len())];
                    (json!({"severity": sev}), Expect::SentinelSeverity(sev.to_string()))
                } else {
                    let text = format!("soak change {n}: Defender comment");
                    (json!({"comment": text, "by": "erin@contoso.com"}), Expect::SentinelComment(text))
                };
                let r = stack.http.post(format!("{base}/_sim/defender/incidents/{id}/edit")).json(&body).send().await?;
                anyhow::ensure!(r.status().is_success(), "Defender edit of {id} failed: {}", r.status());
                (id, expect)
            }
            Some((id, false)) => {
                let (body, expect) = if self.rng.gen_bool(0.5) {
                    let current = stack.sim.sim.world().incident(&id).and_then(|d| d.assigned_to.clone());
                    let others: Vec<&str> = OWNERS
                        .iter()
                        .copied()
                        .filter(|o| current.as_deref().is_none_or(|c| !c.eq_ignore_ascii_case(o)))
                        .collect();
                    let upn = others[self.rng.gen_range(0..others.len())];
                    (json!({"ownerUpn": upn}), Expect::DefenderOwner(upn.to_string()))
                } else {
                    let text = format!("soak change {n}: Sentinel comment");
                    (json!({"comment": text}), Expect::DefenderComment(text))
                };
                let name = sentinel_incident_name(&self.tenant, &id);
                let r =
                    stack.http.post(format!("{base}/_sim/sentinel/incidents/{name}/edit")).json(&body).send().await?;
                anyhow::ensure!(r.status().is_success(), "Sentinel edit of {name} failed: {}", r.status());
                (id, expect)
            }
        };
        self.changes.push(Change { incident, expect, at: Instant::now(), synced_at: None });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::model::{IncidentReadOnly, IncidentWritable, SentinelRecord};
    use crate::sim::SimConfig;

    fn world_with_mirror() -> (World, String, String) {
        let config = SimConfig::demo();
        let mut w = World::new(&config);
        let tenant = config.tenant_id.clone();
        let id = crate::sim::seed::seed(&mut w, &tenant, &SeedSpec { count: 1, ..Default::default() }).remove(0);
        (w, tenant, id)
    }

    #[test]
    fn a_change_is_reflected_only_when_the_other_side_shows_it() {
        let (mut w, tenant, id) = world_with_mirror();
        assert_eq!(copies(&w, &tenant, &id, &Expect::Mirror), 0, "no mirror yet");
        let comment = Expect::DefenderComment("soak change 7: Sentinel comment".into());
        assert_eq!(copies(&w, &tenant, &id, &comment), 0);
        let now = w.now();
        let d = w.incident_mut(&id).expect("seeded");
        for _ in 0..2 {
            d.comments.push(crate::sim::model::GraphComment {
                comment: "[Sentinel] Alice: soak change 7: Sentinel comment".into(),
                created_by_display_name: "app".into(),
                created_date_time: now,
            });
        }
        assert_eq!(copies(&w, &tenant, &id, &comment), 2, "a comment copied twice counts twice");
        d_owner(&mut w, &id, "Bob@Contoso.com");
        assert_eq!(copies(&w, &tenant, &id, &Expect::DefenderOwner("bob@contoso.com".into())), 1, "UPNs ignore case");
        assert_eq!(copies(&w, &tenant, &id, &Expect::DefenderOwner("carol@contoso.com".into())), 0);
    }

    fn d_owner(w: &mut World, id: &str, upn: &str) {
        w.incident_mut(id).expect("seeded").assigned_to = Some(upn.into());
    }

    #[test]
    fn a_mirror_under_another_name_is_extra() {
        let (mut w, tenant, id) = world_with_mirror();
        assert_eq!(extra_mirrors(&w, &tenant), 0);
        let now = w.now();
        let record = SentinelRecord {
            writable: IncidentWritable {
                title: "t".into(),
                description: None,
                severity: "High".into(),
                status: "New".into(),
                classification: None,
                classification_reason: None,
                classification_comment: None,
                owner: None,
                labels: vec![],
                first_activity_time_utc: None,
                last_activity_time_utc: None,
            },
            read_only: IncidentReadOnly {
                created_time_utc: now,
                last_modified_time_utc: now,
                incident_number: 1,
                incident_url: String::new(),
                provider_name: "Azure Sentinel".into(),
                provider_incident_id: "1".into(),
                related_analytic_rule_ids: vec![],
            },
            etag: World::new_etag(),
            comments: Default::default(),
            relations: Default::default(),
            writes: 1,
            seq: 1,
        };
        w.sentinel.insert(sentinel_incident_name(&tenant, &id), record.clone());
        assert_eq!(extra_mirrors(&w, &tenant), 0, "the incident's own mirror");
        w.sentinel.insert(uuid::Uuid::new_v4(), record);
        assert_eq!(extra_mirrors(&w, &tenant), 1, "a second mirror");
    }

    #[test]
    fn a_superseded_field_value_is_not_lost_but_an_unsynced_change_is() {
        let (mut w, tenant, id) = world_with_mirror();
        let at = Instant::now();
        let change = |upn: &str, synced: bool| Change {
            incident: id.clone(),
            expect: Expect::DefenderOwner(upn.into()),
            at,
            synced_at: synced.then_some(at),
        };
        d_owner(&mut w, &id, "bob@contoso.com");
        let changes = vec![change("alice@contoso.com", true), change("bob@contoso.com", true)];
        assert!(!is_lost(&w, &tenant, &changes, 0), "alice was synced, then replaced by bob");
        assert!(!is_lost(&w, &tenant, &changes, 1));
        d_owner(&mut w, &id, "alice@contoso.com");
        assert!(is_lost(&w, &tenant, &changes, 1), "bob is the last value and Defender does not show it");
        let changes = vec![change("alice@contoso.com", false), change("bob@contoso.com", true)];
        assert!(is_lost(&w, &tenant, &changes, 0), "never seen synced");
    }
}
