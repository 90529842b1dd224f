//! Mode 2, `XDRSYNC_TARGET=defender-portal` (docs/unified-portal.md), pure: which source incidents
//! a target-tenant Defender incident holds (from its Sentinel rule alerts' custom details), and the
//! sync plan between one target incident and every source incident linked to it.
//!
//! Both sides are Graph incidents, so the field maps are the identity except the owner: a UPN one
//! tenant does not know is kept as a tag (`Source owner: <upn>` on the target, `Target owner: <upn>`
//! on a source). The three-way merge is merge.rs's, with the source in the "Defender" seat and the
//! target in the "Sentinel" seat (so `defender-wins` = source wins, `sentinel-wins` = target wins).
//! A target grouping several sources is merged in two phases: first every source is merged into
//! one running target value (a later source sees an earlier one's change as a target change, and
//! two sources changing a field differently meet the conflict policy with the target as arbiter);
//! then that one value is written to every side and becomes every pair's base. A second pass over
//! the result therefore writes nothing: no ping-pong.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::comments::{defender_comment_key, fingerprint, FROM_XDRSYNC};
use super::defender::{AlertComment, DefenderAlert, DefenderIncident, DefenderIncidentPatch, Determination};
use super::fields::{
    status_from_defender, status_to_defender, verdict_from_defender, verdict_to_defender, Fields, Status,
};
use super::merge::{merge, Conflict, ConflictPolicy, Times};

/// `XDRSYNC_TARGET`: where mirrors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SyncTarget {
    /// Sentinel incidents through ARM (the Azure portal experience; every earlier version).
    #[default]
    Sentinel,
    /// The workspace tenant's own Defender incidents, made by the correlation engine from the
    /// native-alerts rule; xdrsync creates no Sentinel incident.
    DefenderPortal,
}

impl SyncTarget {
    /// The setting's value, as users write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sentinel => "sentinel",
            Self::DefenderPortal => "defender-portal",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sentinel" => Some(Self::Sentinel),
            "defender-portal" => Some(Self::DefenderPortal),
            _ => None,
        }
    }
}

/// The tag keeping a source owner the target tenant does not know.
pub const SOURCE_OWNER_PREFIX: &str = "Source owner: ";
/// The tag keeping a target owner the source tenant does not know.
pub const TARGET_OWNER_PREFIX: &str = "Target owner: ";
/// The `serviceSource` of alerts made by Sentinel analytics rules (documented enum member).
pub const SENTINEL_SERVICE_SOURCE: &str = "microsoftSentinel";

/// A source incident: Defender tenant and incident id, as the rule's custom details name them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SourceRef {
    pub tenant: String,
    pub incident: String,
}

/// One custom detail's value. Sentinel stores custom details as arrays of strings (seen in
/// `SecurityAlert.ExtendedProperties`); Graph may pass them as arrays, plain strings or a JSON
/// string holding an array: all are read.
fn detail(bag: &Value, key: &str) -> Option<String> {
    let v = bag.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(key))?.1;
    let s = match v {
        Value::String(s) if s.trim_start().starts_with('[') => {
            serde_json::from_str::<Value>(s).ok().and_then(|a| a.get(0).and_then(Value::as_str).map(str::to_string))
        }
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.first().and_then(Value::as_str).map(str::to_string),
        _ => None,
    }?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// The source incident a target alert stands for, or `None` for any other alert. Looks in
/// `customDetails` (documented for custom detections), then `additionalData` and its nested
/// `customDetails` (assumed for Sentinel rule alerts): whichever carries both keys.
pub fn source_of_alert(a: &DefenderAlert) -> Option<SourceRef> {
    let from_sentinel = a.service_source.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(SENTINEL_SERVICE_SOURCE));
    if !from_sentinel {
        return None;
    }
    let nested = a.additional_data.as_ref().and_then(|d| d.get("customDetails").or_else(|| d.get("CustomDetails")));
    [a.custom_details.as_ref(), a.additional_data.as_ref(), nested].into_iter().flatten().find_map(|bag| {
        Some(SourceRef { tenant: detail(bag, "DefenderTenantId")?, incident: detail(bag, "DefenderIncidentId")? })
    })
}

/// The source incidents a target incident holds (sorted, so plans are deterministic).
pub fn sources_of(alerts: &[DefenderAlert]) -> BTreeSet<SourceRef> {
    alerts.iter().filter_map(source_of_alert).collect()
}

/// Links found in a batch of target incidents with their alerts: source → target ids. A source
/// whose alerts sit in several targets (the engine split them) is linked to each.
pub fn links(targets: &[(&str, &[DefenderAlert])]) -> BTreeMap<SourceRef, BTreeSet<String>> {
    let mut out: BTreeMap<SourceRef, BTreeSet<String>> = BTreeMap::new();
    for (id, alerts) in targets {
        for s in sources_of(alerts) {
            out.entry(s).or_default().insert((*id).to_string());
        }
    }
    out
}

/// The key of a (target, source) pair's row within the target's partition: `<tenant>:<incident>`.
pub fn pair_row(src: &SourceRef) -> String {
    format!("{}:{}", src.tenant.to_ascii_lowercase(), src.incident)
}

/// The sources paired with a target before that its alerts no longer name: the engine split
/// them out, or the target is gone (`named` empty). Their link to this target goes, so a later
/// change of theirs costs no read of a target that no longer holds them.
/// `paired` are the pair rows' keys ([`pair_row`]); a key of another shape is left alone.
pub fn stale_pairs<'a>(paired: impl IntoIterator<Item = &'a str>, named: &BTreeSet<SourceRef>) -> Vec<SourceRef> {
    let named: BTreeSet<String> = named.iter().map(pair_row).collect();
    let mut out: Vec<SourceRef> = paired
        .into_iter()
        .filter_map(|key| {
            let (tenant, incident) = key.split_once(':')?;
            let src = SourceRef { tenant: tenant.to_ascii_lowercase(), incident: incident.to_string() };
            (!incident.is_empty() && !named.contains(&pair_row(&src))).then_some(src)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What is stored per (source, target) pair: the last agreed fields and the comments copied.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PairState {
    pub base: Option<Fields>,
    /// Fingerprints of source comments already copied to the target.
    #[serde(default)]
    pub to_target: BTreeSet<String>,
    /// Fingerprints of target comments already copied to the source.
    #[serde(default)]
    pub to_source: BTreeSet<String>,
}

/// One source incident as read, with its pair's state.
#[derive(Debug, Clone)]
pub struct SourceSide<'a> {
    pub source: SourceRef,
    pub incident: &'a DefenderIncident,
    pub state: Option<&'a PairState>,
}

/// Whether a tenant knows a UPN (the caller asks Entra, with its cache).
pub trait Directory {
    fn in_source(&self, tenant: &str, upn: &str) -> bool;
    fn in_target(&self, upn: &str) -> bool;
}

/// Writes for one source incident.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcePlan {
    pub source: SourceRef,
    pub patch: DefenderIncidentPatch,
    pub comments: Vec<String>,
    pub next: PairState,
}

/// Everything one pass over a target and its sources writes.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPlan {
    pub target_patch: DefenderIncidentPatch,
    pub target_comments: Vec<String>,
    pub sources: Vec<SourcePlan>,
    pub conflicts: Vec<Conflict>,
}

impl GroupPlan {
    /// True when the pass writes nothing to either side (state may still be recorded).
    pub fn writes_nothing(&self) -> bool {
        self.target_patch.is_empty()
            && self.target_comments.is_empty()
            && self.sources.iter().all(|s| s.patch.is_empty() && s.comments.is_empty())
    }
}

/// An incident's synced fields as one side shows them: owner from `assignedTo`, else from the
/// owner tag (`label`); tags without the owner tag. Severity is not synced in this mode (each
/// tenant's engine owns it). `inProgress` reads as open: Graph documents only `active`,
/// `resolved` and `redirected` as settable, so it could never be written to the other side.
pub fn view(i: &DefenderIncident, label: &str) -> Fields {
    let assigned = i.assigned_to.as_deref().map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty());
    let tagged = i.custom_tags.iter().find_map(|t| t.strip_prefix(label)).map(|u| u.trim().to_ascii_lowercase());
    Fields {
        status: status_from_defender(&i.status).map(|st| if st == Status::InProgress { Status::Open } else { st }),
        verdict: verdict_from_defender(i.classification.as_ref()),
        owner: Some(assigned.or(tagged)),
        severity: None,
        tags: Some(
            i.custom_tags
                .iter()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty() && !t.starts_with(label))
                .collect(),
        ),
    }
}

/// Three-way merge of tag sets, element by element: an addition on either side stays, a
/// removal on either side of a tag in the base wins.
fn merge_tags(base: &BTreeSet<String>, a: &BTreeSet<String>, b: &BTreeSet<String>) -> BTreeSet<String> {
    a.union(b).filter(|t| !base.contains(*t) || (a.contains(*t) && b.contains(*t))).cloned().collect()
}

/// The patch bringing incident `i` (shown as `current`) to `agreed`. `known` says whether the
/// agreed owner is a user of `i`'s tenant; otherwise the owner goes into the `label` tag.
fn patch_to(
    i: &DefenderIncident,
    current: &Fields,
    agreed: &Fields,
    label: &str,
    known: bool,
    kept: Option<&Determination>,
) -> DefenderIncidentPatch {
    let mut p = DefenderIncidentPatch::default();
    if let (Some(s), true) = (agreed.status, agreed.status != current.status) {
        p.status = Some(status_to_defender(s));
    }
    if let (Some(v), true) = (agreed.verdict, agreed.verdict != current.verdict) {
        let (c, d) = verdict_to_defender(v, kept, None);
        p.classification = Some(c);
        p.determination = Some(d);
    }
    let owner = agreed.owner.clone().unwrap_or(None);
    let (assigned, owner_tag) = match owner {
        Some(o) if known => (Some(o), None),
        Some(o) => (None, Some(format!("{label}{o}"))),
        None => (None, None),
    };
    let now_assigned = i.assigned_to.as_deref().map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty());
    if assigned != now_assigned {
        p.assigned_to = Some(assigned);
    }
    let mut tags: BTreeSet<String> = agreed.tags.clone().unwrap_or_default();
    tags.extend(owner_tag);
    let now: BTreeSet<String> = i.custom_tags.iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
    if tags != now {
        p.custom_tags = Some(tags.into_iter().collect());
    }
    p
}

/// Marker of a comment copied from a source to the target.
pub fn source_marker(s: &SourceRef) -> String {
    format!("[xdrsync from {}/{}] ", s.tenant, s.incident)
}

/// Marker of a comment copied from the target to a source.
pub fn target_marker(target_id: &str) -> String {
    format!("[xdrsync from target {target_id}] ")
}

fn text(c: &AlertComment) -> Option<&str> {
    c.comment.as_deref().filter(|t| !t.trim().is_empty())
}

fn key(c: &AlertComment) -> String {
    fingerprint(&defender_comment_key(c))
}

/// The one plan for target `t` (id `target_id`) and every source linked to it.
pub fn plan_group(
    target_id: &str,
    t: &DefenderIncident,
    sources: &[SourceSide<'_>],
    dir: &dyn Directory,
    policy: ConflictPolicy,
) -> GroupPlan {
    let t_view = view(t, SOURCE_OWNER_PREFIX);
    let s_views: Vec<Fields> = sources.iter().map(|s| view(s.incident, TARGET_OWNER_PREFIX)).collect();
    let mut established = sources.iter().any(|s| s.state.and_then(|st| st.base.as_ref()).is_some());
    let mut agreed = t_view.clone();
    let mut conflicts = Vec::new();
    // Phase 1: fold every source into one running target value.
    for (s, sv) in sources.iter().zip(&s_views) {
        let stored = s.state.and_then(|st| st.base.clone());
        // A source joining a target that already syncs with others takes the target's values
        // (its base is itself) but keeps its tags (an empty tag base: a union).
        let base = match stored {
            Some(b) => Some(b),
            None if established => Some(Fields { tags: Some(BTreeSet::new()), ..sv.clone() }),
            None => None,
        };
        let times = Times { defender: s.incident.last_update_date_time, sentinel: t.last_update_date_time };
        let scalars = |f: &Fields| Fields { tags: None, ..f.clone() };
        let m = merge(base.as_ref().map(scalars).as_ref(), &scalars(sv), &scalars(&agreed), policy, times);
        conflicts.extend(m.conflicts);
        let tags = match base.as_ref().and_then(|b| b.tags.as_ref()) {
            Some(bt) => merge_tags(bt, sv.tags.as_ref().unwrap_or(bt), agreed.tags.as_ref().unwrap_or(bt)),
            None => sv.tags.clone().unwrap_or_default(),
        };
        agreed = Fields { tags: Some(tags), ..m.target };
        established = true;
    }
    // Phase 2: write the one value everywhere; it is every pair's new base.
    let kept = kept_determination(&agreed, t, sources);
    let target_known = agreed.owner.clone().flatten().is_none_or(|o| dir.in_target(&o));
    let target_patch = patch_to(t, &t_view, &agreed, SOURCE_OWNER_PREFIX, target_known, kept.as_ref());
    // Source → target: each source's own comments (not copies from the target, not ours).
    let marker_back = target_marker(target_id);
    let mut nexts: Vec<PairState> = Vec::new();
    let mut target_comments = Vec::new();
    for s in sources {
        let mut next = s.state.cloned().unwrap_or_default();
        next.base = Some(agreed.clone());
        for c in &s.incident.comments {
            let Some(txt) = text(c) else { continue };
            if txt.starts_with(&marker_back) || txt.starts_with(FROM_XDRSYNC) || !next.to_target.insert(key(c)) {
                continue;
            }
            target_comments.push(format!("{}{txt}", source_marker(&s.source)));
        }
        nexts.push(next);
    }
    // Target → source: every comment the target holds after this pass (so one source's comment
    // reaches the others in the same pass), except this source's own copies and ours. Known by
    // text: a copy we write has no id or time before it exists.
    let on_target: Vec<&str> =
        t.comments.iter().filter_map(text).chain(target_comments.iter().map(String::as_str)).collect();
    let mut plans = Vec::new();
    for ((s, sv), mut next) in sources.iter().zip(&s_views).zip(nexts) {
        let known = agreed.owner.clone().flatten().is_none_or(|o| dir.in_source(&s.source.tenant, &o));
        let patch = patch_to(s.incident, sv, &agreed, TARGET_OWNER_PREFIX, known, kept.as_ref());
        let own = source_marker(&s.source);
        let mut comments = Vec::new();
        for txt in &on_target {
            if txt.starts_with(&own) || txt.starts_with(FROM_XDRSYNC) {
                continue;
            }
            if next.to_source.insert(fingerprint(&format!("target:{txt}"))) {
                comments.push(format!("{marker_back}{txt}"));
            }
        }
        plans.push(SourcePlan { source: s.source.clone(), patch, comments, next });
    }
    if !conflicts.is_empty() {
        let list: Vec<&str> = conflicts.iter().map(|c| c.field).collect();
        target_comments.push(format!(
            "{FROM_XDRSYNC}linked source incidents changed {} differently; kept by policy {}",
            list.join(", "),
            policy.name()
        ));
    }
    GroupPlan { target_patch, target_comments, sources: plans, conflicts }
}

/// The Defender determination to write with the agreed verdict: one a side already has for it
/// (the target's first), so a precise determination is not flattened on the way across.
fn kept_determination(agreed: &Fields, t: &DefenderIncident, sources: &[SourceSide<'_>]) -> Option<Determination> {
    std::iter::once(t)
        .chain(sources.iter().map(|s| s.incident))
        .filter(|i| verdict_from_defender(i.classification.as_ref()) == agreed.verdict)
        .find_map(|i| i.determination.clone())
}

/// A source incident's reconcile plan in this mode: the alert rows still go to
/// `XdrsyncAlerts_CL` (the rule turns them into alerts, the engine into target incidents) and the
/// state is kept; no Sentinel incident, index row, note or comment is written, and the source is
/// not patched from a mirror (the target incident's sync does that, `plan_group`).
pub fn rows_only(mut plan: super::plan::Plan) -> super::plan::Plan {
    plan.write_index = false;
    plan.put_sentinel = None;
    plan.conflict_note = None;
    plan.redirect_note = None;
    plan.defender_patch = None;
    plan.in_progress_fallback = None;
    plan.comments_to_sentinel.clear();
    plan.comments_to_defender.1.clear();
    plan.copy_sources = Default::default();
    plan.conflicts.clear();
    plan
}

#[cfg(test)]
#[path = "portal_tests.rs"]
mod tests;
