//! A pure model of one incident held on both sides, Defender and Sentinel, plus what xdrsync
//! stores between syncs (the base and each side's view), driven by random histories of analyst
//! edits on both sides interleaved with reconciles.
//!
//! The reconcile step follows `src/usecase/sync.rs` with the real core functions: read both
//! sides through `from_defender` / `from_sentinel`, `as_seen_by_merge` with the stored views,
//! `merge`, write Sentinel with `desired` when `differs`, patch Defender with `worth_writing` +
//! `defender_patch`, then store the target as the base and what each side shows as its view.
//! The sides are real `DefenderIncident` / `SentinelIncident` values, so the mapping tables and
//! the lossy spots take part: Sentinel has a classification only while closed, an owner Entra
//! does not know travels as a label, and (per case) Defender's API refuses `inProgress`.
//!
//! This model checks the core's decisions over many thousands of histories in milliseconds; the
//! product's own executor (its reads, the merge and its writes over HTTP) is held to the same
//! properties by `tests/two_sides_sync.rs`, against the simulator.
//!
//! A reconcile "trigger" (a poll or webhook message) carries no data: the reconcile reads both
//! sides when it runs. So triggers duplicated and reordered are reconciles placed at other
//! points of the history, repeated; that is what the schedules here vary.

use proptest::prelude::*;
use proptest::sample::select;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use xdrsync_core::domain::defender::{
    Classification, DefenderIncident, DefenderIncidentPatch, Determination, IncidentStatus, Severity,
};
use xdrsync_core::domain::fields::{
    defender_patch, from_defender, from_sentinel, Fields, Status, Verdict, UNKNOWN_OWNER_PREFIX,
};
use xdrsync_core::domain::merge::{as_seen_by_merge, merge, worth_writing, ConflictPolicy, Side, Times};
use xdrsync_core::domain::mirror::{desired, differs, AlertSummary, MirrorInput, ResolvedOwner};
use xdrsync_core::domain::sentinel::{
    ClassificationReason, Label, Owner, OwnerType, SentinelClassification, SentinelIncident, SentinelProperties,
    SentinelReadOnly, SentinelSeverity, SentinelStatus, SentinelWritable,
};

const ALICE: &str = "alice@contoso.com";
const BOB: &str = "bob@contoso.com";
/// A Defender owner Entra has no user for: Sentinel can only show it as a label.
const CAROL: &str = "carol@fabrikam.com";
const TAGS: [&str; 3] = ["vip", "phish", "lab"];
const T0: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);

/// The directory: Entra object ids of the users Sentinel can be assigned to.
fn object_id(upn: &str) -> Option<String> {
    match upn {
        ALICE => Some("oid-alice".into()),
        BOB => Some("oid-bob".into()),
        _ => None,
    }
}

fn upn_of(object_id: &str) -> Option<String> {
    match object_id {
        "oid-alice" => Some(ALICE.into()),
        "oid-bob" => Some(BOB.into()),
        _ => None,
    }
}

// ---- analyst edits --------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum DefenderEdit {
    Status(IncidentStatus),
    Classify(Option<Classification>, Determination),
    Assign(Option<&'static str>),
    Severity(Severity),
    ToggleTag(&'static str),
}

#[derive(Debug, Clone)]
enum SentinelEdit {
    /// New or Active; Sentinel drops the classification of a reopened incident.
    Reopen(SentinelStatus),
    /// Sentinel closes only with a classification.
    Close(SentinelClassification, Option<ClassificationReason>),
    /// Clearing the owner clears the unknown-owner label too (to the analyst, that label is the owner).
    Assign(Option<&'static str>),
    Severity(SentinelSeverity),
    ToggleTag(&'static str),
}

fn defender_edit() -> impl Strategy<Value = DefenderEdit> {
    let statuses = vec![
        IncidentStatus::Active,
        IncidentStatus::InProgress,
        IncidentStatus::AwaitingAction,
        IncidentStatus::Resolved,
    ];
    prop_oneof![
        select(statuses).prop_map(DefenderEdit::Status),
        select(vec![
            (None, Determination::Unknown),
            (Some(Classification::Unknown), Determination::Unknown),
            (Some(Classification::TruePositive), Determination::MultiStagedAttack),
            (Some(Classification::TruePositive), Determination::Malware),
            (Some(Classification::InformationalExpectedActivity), Determination::SecurityTesting),
            (Some(Classification::FalsePositive), Determination::Clean),
        ])
        .prop_map(|(c, d)| DefenderEdit::Classify(c, d)),
        select(vec![None, Some(ALICE), Some("Alice@Contoso.com"), Some(BOB), Some(CAROL)])
            .prop_map(DefenderEdit::Assign),
        select(vec![Severity::Informational, Severity::Low, Severity::Medium, Severity::High])
            .prop_map(DefenderEdit::Severity),
        select(TAGS.to_vec()).prop_map(DefenderEdit::ToggleTag),
    ]
}

fn sentinel_edit() -> impl Strategy<Value = SentinelEdit> {
    prop_oneof![
        select(vec![SentinelStatus::New, SentinelStatus::Active]).prop_map(SentinelEdit::Reopen),
        select(vec![
            (SentinelClassification::Undetermined, None),
            (SentinelClassification::TruePositive, Some(ClassificationReason::SuspiciousActivity)),
            (SentinelClassification::BenignPositive, Some(ClassificationReason::SuspiciousButExpected)),
            (SentinelClassification::FalsePositive, Some(ClassificationReason::InaccurateData)),
            (SentinelClassification::FalsePositive, Some(ClassificationReason::IncorrectAlertLogic)),
        ])
        .prop_map(|(c, r)| SentinelEdit::Close(c, r)),
        select(vec![None, Some(ALICE), Some(BOB)]).prop_map(SentinelEdit::Assign),
        select(vec![
            SentinelSeverity::Informational,
            SentinelSeverity::Low,
            SentinelSeverity::Medium,
            SentinelSeverity::High
        ])
        .prop_map(SentinelEdit::Severity),
        select(TAGS.to_vec()).prop_map(SentinelEdit::ToggleTag),
    ]
}

/// One step of a history; `tick` seconds pass first (0 gives ties between the sides' times).
#[derive(Debug, Clone)]
enum Step {
    Defender(DefenderEdit, u8),
    Sentinel(SentinelEdit, u8),
    Reconcile(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (defender_edit(), 0..2u8).prop_map(|(e, t)| Step::Defender(e, t)),
        3 => (sentinel_edit(), 0..2u8).prop_map(|(e, t)| Step::Sentinel(e, t)),
        2 => (0..2u8).prop_map(Step::Reconcile),
    ]
}

fn policy() -> impl Strategy<Value = ConflictPolicy> {
    select(vec![ConflictPolicy::LatestWins, ConflictPolicy::DefenderWins, ConflictPolicy::SentinelWins])
}

/// A Defender incident as the first poll finds it.
fn initial_incident(refuses_in_progress: bool, edits: &[DefenderEdit]) -> DefenderIncident {
    {
        let mut d: DefenderIncident = serde_json::from_value(serde_json::json!({
            "id": "29", "displayName": "Multi-stage incident", "status": "active", "severity": "medium",
            "incidentWebUrl": "https://security.microsoft.com/incidents/29",
            "createdDateTime": "2026-01-01T00:00:00Z", "lastUpdateDateTime": "2026-01-01T00:00:00Z",
        }))
        .unwrap();
        for e in edits {
            apply_defender_edit(&mut d, e, refuses_in_progress);
        }
        d
    }
}

/// An analyst's edit in Defender. Where the API refuses `inProgress`, the portal has no
/// in-progress state either: such a status edit sets active.
fn apply_defender_edit(d: &mut DefenderIncident, e: &DefenderEdit, refuses_in_progress: bool) {
    match e {
        DefenderEdit::Status(IncidentStatus::InProgress | IncidentStatus::AwaitingAction) if refuses_in_progress => {
            d.status = IncidentStatus::Active
        }
        DefenderEdit::Status(s) => d.status = s.clone(),
        DefenderEdit::Classify(c, det) => {
            d.classification = c.clone();
            d.determination = Some(det.clone());
        }
        DefenderEdit::Assign(o) => d.assigned_to = o.map(str::to_string),
        DefenderEdit::Severity(s) => d.severity = s.clone(),
        DefenderEdit::ToggleTag(t) => match d.custom_tags.iter().position(|x| x == t) {
            Some(i) => {
                d.custom_tags.remove(i);
            }
            None => d.custom_tags.push(t.to_string()),
        },
    }
}

fn apply_sentinel_edit(w: &mut SentinelWritable, e: &SentinelEdit) {
    match e {
        SentinelEdit::Reopen(s) => {
            w.status = s.clone();
            w.classification = None;
            w.classification_reason = None;
        }
        SentinelEdit::Close(c, r) => {
            w.status = SentinelStatus::Closed;
            w.classification = Some(c.clone());
            w.classification_reason = r.clone();
        }
        SentinelEdit::Assign(None) => {
            w.owner = None;
            w.labels.retain(|l| !l.label_name.starts_with(UNKNOWN_OWNER_PREFIX));
        }
        SentinelEdit::Assign(Some(upn)) => w.owner = Some(sentinel_owner(object_id(upn).unwrap())),
        SentinelEdit::Severity(s) => w.severity = s.clone(),
        SentinelEdit::ToggleTag(t) => match w.labels.iter().position(|l| l.label_name == *t) {
            Some(i) => {
                w.labels.remove(i);
            }
            None => w.labels.push(Label::user(*t)),
        },
    }
}

/// The owner as Sentinel's server fills it in from the object id.
fn sentinel_owner(object_id: String) -> Owner {
    let upn = upn_of(&object_id);
    Owner {
        object_id: Some(object_id),
        email: upn.clone(),
        assigned_to: upn.clone(),
        user_principal_name: upn,
        owner_type: Some(OwnerType::User),
    }
}

// ---- the two sides and xdrsync's stored state -----------------------------------------------

/// What xdrsync stores per incident between syncs (the merge-relevant part of `IncidentState`).
#[derive(Debug, Clone)]
struct Stored {
    base: Fields,
    defender_view: Fields,
    sentinel_view: Fields,
}

/// What one reconcile sent: Sentinel PUTs and Defender PATCH requests (a refused one counts).
#[derive(Debug, Clone, Default, PartialEq)]
struct Writes {
    sentinel: usize,
    defender: usize,
    conflicts: Vec<(&'static str, Side)>,
}

impl Writes {
    fn quiet(&self) -> bool {
        self.sentinel == 0 && self.defender == 0
    }
}

#[derive(Debug, Clone)]
struct World {
    now: OffsetDateTime,
    policy: ConflictPolicy,
    /// Defender's API answers 400 to `status: inProgress` (the case `as_seen_by_merge` exists for).
    refuses_in_progress: bool,
    defender: DefenderIncident,
    sentinel: Option<SentinelIncident>,
    stored: Option<Stored>,
    etags: u64,
    alerts: AlertSummary,
}

impl World {
    fn new(defender: DefenderIncident, policy: ConflictPolicy, refuses_in_progress: bool) -> Self {
        let alerts = AlertSummary {
            count: 1,
            lines: vec!["- Suspicious sign-in [Microsoft Entra ID Protection]".into()],
            first_activity: Some(T0),
            last_activity: Some(T0),
        };
        World { now: T0, policy, refuses_in_progress, defender, sentinel: None, stored: None, etags: 0, alerts }
    }

    fn tick(&mut self, secs: u8) {
        self.now += Duration::seconds(secs.into());
    }

    fn next_etag(&mut self) -> String {
        self.etags += 1;
        format!("\"{}\"", self.etags)
    }

    fn edit_defender(&mut self, e: &DefenderEdit) {
        apply_defender_edit(&mut self.defender, e, self.refuses_in_progress);
        self.defender.last_update_date_time = self.now;
    }

    /// Sentinel edits need the mirror; before the first sync there is nothing to edit.
    fn edit_sentinel(&mut self, e: &SentinelEdit) {
        let etag = self.next_etag();
        let now = self.now;
        if let Some(s) = self.sentinel.as_mut() {
            apply_sentinel_edit(&mut s.properties.writable, e);
            s.properties.read_only.last_modified_time_utc = Some(now);
            s.etag = Some(etag);
        }
    }

    fn run(&mut self, step: &Step) -> Writes {
        match step {
            Step::Defender(e, t) => {
                self.tick(*t);
                self.edit_defender(e);
                Writes::default()
            }
            Step::Sentinel(e, t) => {
                self.tick(*t);
                self.edit_sentinel(e);
                Writes::default()
            }
            Step::Reconcile(t) => {
                self.tick(*t);
                self.reconcile()
            }
        }
    }

    /// Sentinel's PUT: replaces the writable properties, fills the owner from its object id.
    fn sentinel_put(&mut self, mut w: SentinelWritable) {
        if let Some(oid) = w.owner.as_ref().and_then(|o| o.object_id.clone()) {
            w.owner = Some(sentinel_owner(oid));
        }
        let etag = self.next_etag();
        self.sentinel = Some(SentinelIncident {
            id: String::new(),
            name: "mirror".into(),
            etag: Some(etag),
            kind: "Microsoft.SecurityInsights/Incidents".into(),
            properties: SentinelProperties {
                writable: w,
                read_only: SentinelReadOnly { last_modified_time_utc: Some(self.now), ..Default::default() },
            },
        });
    }

    /// Defender's PATCH; `Err` is the 400 a tenant that refuses `inProgress` answers.
    fn defender_patch(&mut self, p: &DefenderIncidentPatch) -> Result<(), ()> {
        if self.refuses_in_progress && p.status == Some(IncidentStatus::InProgress) {
            return Err(());
        }
        let d = &mut self.defender;
        if let Some(s) = &p.status {
            d.status = s.clone();
        }
        if let Some(o) = &p.assigned_to {
            d.assigned_to = o.clone();
        }
        if let Some(c) = &p.classification {
            d.classification = Some(c.clone());
        }
        if let Some(x) = &p.determination {
            d.determination = Some(x.clone());
        }
        if let Some(t) = &p.custom_tags {
            d.custom_tags = t.clone();
        }
        if let Some(s) = &p.severity {
            d.severity = s.clone();
        }
        d.last_update_date_time = self.now;
        Ok(())
    }

    /// One reconcile, as `src/usecase/sync.rs` does it (without its "nothing changed since last
    /// time" shortcut and without remembering a refusal, so the merge functions alone must keep
    /// a quiet system quiet).
    fn reconcile(&mut self) -> Writes {
        let mut writes = Writes::default();
        let d = self.defender.clone();
        let d_fields = from_defender(&d);
        let stored = self.stored.clone();
        let base = stored.as_ref().map(|s| &s.base);
        let target = match &self.sentinel {
            Some(cur) => {
                let times = Times {
                    defender: d.last_update_date_time,
                    sentinel: cur.properties.read_only.last_modified_time_utc.unwrap_or(d.last_update_date_time),
                };
                let d_seen = as_seen_by_merge(&d_fields, stored.as_ref().map(|s| &s.defender_view), base);
                let s_seen = as_seen_by_merge(&from_sentinel(cur), stored.as_ref().map(|s| &s.sentinel_view), base);
                let m = merge(base, &d_seen, &s_seen, self.policy, times);
                writes.conflicts = m.conflicts.iter().map(|c| (c.field, c.winner)).collect();
                m.target
            }
            None => d_fields.clone(),
        };

        let owner = target.owner.clone().flatten().map(|upn| ResolvedOwner { object_id: object_id(&upn), upn });
        let want = desired(&MirrorInput {
            incident: &d,
            alerts: &self.alerts,
            target: &target,
            owner: owner.as_ref(),
            current: self.sentinel.as_ref().map(|c| &c.properties.writable),
            tenant: None,
        });
        let reason = want.classification_reason.clone();
        if self.sentinel.as_ref().is_none_or(|c| differs(&want, &c.properties.writable)) {
            self.sentinel_put(want);
            writes.sentinel += 1;
        }
        let sentinel_view = from_sentinel(self.sentinel.as_ref().expect("written above"));

        let worth = worth_writing(&target, &d_fields, stored.as_ref().map(|s| &s.defender_view), base);
        let mut patch = defender_patch(&target, &worth, d.determination.as_ref(), reason.as_ref());
        if !patch.is_empty() {
            writes.defender += 1;
            if self.defender_patch(&patch).is_err() {
                // sync.rs: Defender refused inProgress; fall back to active.
                patch.status = matches!(d.status, IncidentStatus::Resolved | IncidentStatus::Redirected)
                    .then_some(IncidentStatus::Active);
                if !patch.is_empty() {
                    writes.defender += 1;
                    self.defender_patch(&patch).expect("no inProgress left");
                }
            }
        }
        let defender_view = from_defender(&self.defender);
        self.stored = Some(Stored { base: target, defender_view, sentinel_view });
        writes
    }

    fn readings(&self) -> (Fields, Fields) {
        (from_defender(&self.defender), from_sentinel(self.sentinel.as_ref().expect("mirror exists")))
    }
}

/// Both sides hold the same values, as far as each side can hold them: Sentinel has a
/// classification only while closed; a Defender that refuses `inProgress` stays active.
fn check_same(world: &World, d: &Fields, s: &Fields) -> Result<(), TestCaseError> {
    let lossy_status =
        world.refuses_in_progress && s.status == Some(Status::InProgress) && d.status == Some(Status::Open);
    if !lossy_status {
        prop_assert_eq!(d.status, s.status, "status");
    }
    if s.status == Some(Status::Closed) {
        prop_assert_eq!(d.verdict, s.verdict, "classification");
    }
    prop_assert_eq!(&d.owner, &s.owner, "owner");
    prop_assert_eq!(d.severity, s.severity, "severity");
    prop_assert_eq!(&d.tags, &s.tags, "tags");
    Ok(())
}

fn check_converged(world: &World) -> Result<(), TestCaseError> {
    let (d, s) = world.readings();
    check_same(world, &d, &s)
}

/// Reconciles (a trigger), checks both sides agree, then reconciles again (a duplicate
/// trigger) and checks that it sent nothing.
fn reconcile_and_check(world: &mut World) -> Result<Writes, TestCaseError> {
    let w = world.reconcile();
    check_converged(world)?;
    let again = world.reconcile();
    prop_assert!(again.quiet(), "a duplicate trigger wrote: {:?}", again);
    check_converged(world)?;
    Ok(w)
}

fn history() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(step(), 0..40)
}

fn world() -> impl Strategy<Value = World> {
    (any::<bool>(), policy(), proptest::collection::vec(defender_edit(), 0..6))
        .prop_map(|(refuses, policy, edits)| World::new(initial_incident(refuses, &edits), policy, refuses))
}

/// The synced values as both sides would agree on them; Defender's classification only counts
/// when Sentinel ends closed (while it is open, what Defender keeps depends on which
/// intermediate Sentinel classification a reconcile happened to see).
fn observable(world: &World) -> (Fields, Fields) {
    let (mut d, s) = world.readings();
    if s.status != Some(Status::Closed) {
        d.verdict = None;
    }
    (d, s)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Defender,
    Sentinel,
}

/// A one-sided history: the edits of one side, and where reconciles run between them.
fn one_sided() -> impl Strategy<Value = (World, Who, Vec<Step>, Vec<Vec<u8>>)> {
    let edit = (defender_edit(), sentinel_edit(), 0..2u8);
    // Two schedules: for each gap before an edit, how many reconciles run there (0 to 3).
    let schedules = proptest::collection::vec(proptest::collection::vec(0..4u8, 12), 2);
    (world(), select(vec![Who::Defender, Who::Sentinel]), proptest::collection::vec(edit, 1..12), schedules).prop_map(
        |(w, who, edits, schedules)| {
            let edits = edits
                .into_iter()
                .map(|(d, s, t)| if who == Who::Defender { Step::Defender(d, t) } else { Step::Sentinel(s, t) })
                .collect();
            (w, who, edits, schedules)
        },
    )
}

/// Runs `edits` with `schedule[i]` reconciles before edit `i`, then a final reconcile.
fn run_schedule(mut world: World, edits: &[Step], schedule: &[u8]) -> Result<World, TestCaseError> {
    for (i, e) in edits.iter().enumerate() {
        for _ in 0..schedule[i] {
            reconcile_and_check(&mut world)?;
        }
        world.run(e);
    }
    reconcile_and_check(&mut world)?;
    Ok(world)
}

/// What the merge should do with one field, from what each side shows after the edits, what it
/// showed after the last sync, and the base: a side shows an edit when its value is an opinion
/// that is neither what it showed last time nor the base.
fn expect_field<T: Clone + PartialEq>(
    base: &Option<T>,
    d: (&Option<T>, &Option<T>),
    s: (&Option<T>, &Option<T>),
    winner: Side,
) -> (Option<T>, bool) {
    let edit = |(now, seen): (&Option<T>, &Option<T>)| match now {
        Some(v) if now != seen && now != base => Some(v.clone()),
        _ => None,
    };
    match (edit(d), edit(s)) {
        (None, None) => (base.clone(), false),
        (Some(v), None) | (None, Some(v)) => (Some(v), false),
        (Some(a), Some(b)) if a == b => (Some(a), false),
        (Some(a), Some(b)) => (Some(if winner == Side::Defender { a } else { b }), true),
    }
}

/// [`expect_field`] for every field, and the conflicts it expects (field name, winner).
fn expect(
    base: &Fields,
    (d, d_seen): (&Fields, &Fields),
    (s, s_seen): (&Fields, &Fields),
    winner: Side,
) -> (Fields, Vec<(&'static str, Side)>) {
    let (status, c1) = expect_field(&base.status, (&d.status, &d_seen.status), (&s.status, &s_seen.status), winner);
    let (verdict, c2) =
        expect_field(&base.verdict, (&d.verdict, &d_seen.verdict), (&s.verdict, &s_seen.verdict), winner);
    let (owner, c3) = expect_field(&base.owner, (&d.owner, &d_seen.owner), (&s.owner, &s_seen.owner), winner);
    let (severity, c4) =
        expect_field(&base.severity, (&d.severity, &d_seen.severity), (&s.severity, &s_seen.severity), winner);
    let (tags, c5) = expect_field(&base.tags, (&d.tags, &d_seen.tags), (&s.tags, &s_seen.tags), winner);
    let conflicts = [("status", c1), ("classification", c2), ("owner", c3), ("severity", c4), ("tags", c5)]
        .into_iter()
        .filter(|(_, c)| *c)
        .map(|(f, _)| (f, winner))
        .collect();
    (Fields { status, verdict, owner, severity, tags }, conflicts)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, max_shrink_iters: 512, ..ProptestConfig::default() })]

    /// Random edits on both sides, with reconciles anywhere in between: after every reconcile
    /// both sides hold the same values, a duplicate trigger right after writes nothing, and
    /// after the last reconcile the system is quiet.
    #[test]
    fn random_histories_converge_and_a_quiet_system_writes_nothing(
        mut world in world(),
        steps in history(),
    ) {
        reconcile_and_check(&mut world)?; // the first sync creates the mirror
        for s in &steps {
            world.run(s);
            if matches!(s, Step::Reconcile(_)) {
                check_converged(&world)?;
            }
        }
        reconcile_and_check(&mut world)?;
        for _ in 0..3 {
            world.tick(1);
            let w = world.reconcile();
            prop_assert!(w.quiet(), "a quiet system wrote: {:?}", w);
        }
    }

    /// Edits on one side only: that side always wins (the sync never changes what it shows, and
    /// the other side ends up holding it), and where the reconciles run, or how many times,
    /// does not change the final state.
    #[test]
    fn one_sided_edits_win_whatever_the_triggers((world, who, edits, schedules) in one_sided()) {
        let mut world = world;
        reconcile_and_check(&mut world)?;
        let mut finals = Vec::new();
        for schedule in &schedules {
            // What the edited side shows with all edits applied and no sync at all.
            let mut unsynced = world.clone();
            for e in &edits {
                unsynced.run(e);
            }
            let (d_edited, s_edited) = unsynced.readings();
            let end = run_schedule(world.clone(), &edits, schedule)?;
            let (d, s) = end.readings();
            match who {
                Who::Defender => {
                    prop_assert_eq!(&d, &d_edited, "Defender's edits were changed by the sync");
                    check_same(&end, &d_edited, &s)?;
                }
                Who::Sentinel => {
                    prop_assert_eq!(&s, &s_edited, "Sentinel's edits were changed by the sync");
                    check_same(&end, &d, &s_edited)?;
                }
            }
            finals.push(observable(&end));
        }
        prop_assert_eq!(&finals[0], &finals[1], "two trigger schedules ended differently");
    }

    /// Both sides edited between two reconciles: each field takes the only edit, the common
    /// edit, or for different edits the policy's side (latest-wins: the later side by its own
    /// modification time, Defender on a tie), and the conflicts reported are exactly those.
    #[test]
    fn conflicting_edits_resolve_by_the_policy(
        mut world in world(),
        warmup in proptest::collection::vec(step(), 0..12),
        d_edits in proptest::collection::vec((defender_edit(), 0..3u8), 1..5),
        s_edits in proptest::collection::vec((sentinel_edit(), 0..3u8), 1..5),
    ) {
        reconcile_and_check(&mut world)?;
        for s in &warmup {
            world.run(s);
        }
        reconcile_and_check(&mut world)?;
        let base = world.stored.as_ref().unwrap().base.clone();
        let (d_before, s_before) = world.readings();

        // The edits, in time order; equal delays are equal times (ties across the sides).
        let start = world.now + Duration::seconds(1);
        let mut events: Vec<(u8, Step)> = d_edits
            .iter()
            .map(|(e, k)| (*k, Step::Defender(e.clone(), 0)))
            .chain(s_edits.iter().map(|(e, k)| (*k, Step::Sentinel(e.clone(), 0))))
            .collect();
        events.sort_by_key(|(k, _)| *k);
        for (k, e) in &events {
            world.now = start + Duration::seconds((*k).into());
            world.run(e);
        }
        let t_d = d_edits.iter().map(|(_, k)| *k).max().unwrap();
        let t_s = s_edits.iter().map(|(_, k)| *k).max().unwrap();
        let winner = match world.policy {
            ConflictPolicy::DefenderWins => Side::Defender,
            ConflictPolicy::SentinelWins => Side::Sentinel,
            ConflictPolicy::LatestWins if t_s > t_d => Side::Sentinel,
            ConflictPolicy::LatestWins => Side::Defender,
        };

        let (d_after, s_after) = world.readings();
        let (expected, expected_conflicts) = expect(&base, (&d_after, &d_before), (&s_after, &s_before), winner);

        world.tick(1);
        let w = reconcile_and_check(&mut world)?;
        prop_assert_eq!(&w.conflicts, &expected_conflicts);
        prop_assert_eq!(&world.stored.as_ref().unwrap().base, &expected, "the new base");
        let (d, s) = world.readings();
        check_same(&world, &expected, &s)?;
        check_same(&world, &d, &expected)?;
    }
}

/// A Defender that refuses `inProgress` does not undo Sentinel's Active, and is not asked again.
#[test]
fn sentinel_in_progress_survives_a_defender_that_cannot_hold_it() {
    let d: DefenderIncident = serde_json::from_value(serde_json::json!({
        "id": "29", "status": "active", "severity": "medium", "lastUpdateDateTime": "2026-01-01T00:00:00Z",
    }))
    .unwrap();
    let mut world = World::new(d, ConflictPolicy::LatestWins, true);
    world.reconcile();
    world.tick(1);
    world.edit_sentinel(&SentinelEdit::Reopen(SentinelStatus::Active));
    world.tick(1);
    let w = world.reconcile();
    assert_eq!(w.defender, 1, "asked once, refused, nothing left to patch");
    let (d, s) = world.readings();
    assert_eq!((d.status, s.status), (Some(Status::Open), Some(Status::InProgress)));
    assert_eq!(world.stored.as_ref().unwrap().base.status, Some(Status::InProgress));
    world.tick(1);
    assert!(world.reconcile().quiet());
    assert_eq!(world.readings().1.status, Some(Status::InProgress));
}

/// Defender's `Verdict` survives a Sentinel reopen (Sentinel then has no classification).
#[test]
fn a_sentinel_reopen_keeps_defenders_classification() {
    let d: DefenderIncident = serde_json::from_value(serde_json::json!({
        "id": "29", "status": "resolved", "severity": "medium", "classification": "truePositive",
        "determination": "malware", "lastUpdateDateTime": "2026-01-01T00:00:00Z",
    }))
    .unwrap();
    let mut world = World::new(d, ConflictPolicy::SentinelWins, false);
    world.reconcile();
    world.tick(1);
    world.edit_sentinel(&SentinelEdit::Reopen(SentinelStatus::New));
    world.tick(1);
    world.reconcile();
    let (d, s) = world.readings();
    assert_eq!((d.status, s.status), (Some(Status::Open), Some(Status::Open)));
    assert_eq!(d.verdict, Some(Verdict::TruePositive));
    assert_eq!(world.defender.determination, Some(Determination::Malware));
}
