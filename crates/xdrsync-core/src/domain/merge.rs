//! The three-way merge (ARCHITECTURE.md: “The three-way merge”), pure. For each field: base B (what both sides last agreed
//! on), Defender's value d, Sentinel's value s. Only one side changed → that side wins; both
//! changed to the same value → agree; both changed differently → the conflict policy decides.
//! The result is the value both sides should now hold, and the new base.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::fields::{Fields, Level, Status, Verdict};

/// `XDRSYNC_CONFLICT_POLICY`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ConflictPolicy {
    /// Each side's own modification time decides; Defender on a tie.
    #[default]
    LatestWins,
    DefenderWins,
    SentinelWins,
}

impl ConflictPolicy {
    /// The setting's value, as users write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::LatestWins => "latest-wins",
            Self::DefenderWins => "defender-wins",
            Self::SentinelWins => "sentinel-wins",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "latest-wins" => Some(Self::LatestWins),
            "defender-wins" => Some(Self::DefenderWins),
            "sentinel-wins" => Some(Self::SentinelWins),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    Defender,
    Sentinel,
}

/// A field both sides changed to different values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub field: &'static str,
    pub defender: String,
    pub sentinel: String,
    pub winner: Side,
}

/// Each side's modification time, for `latest-wins`.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    pub defender: OffsetDateTime,
    pub sentinel: OffsetDateTime,
}

/// The merge's answer: the value each field should now have on both sides (= the new base).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub target: Fields,
    pub conflicts: Vec<Conflict>,
}

fn pick_winner(policy: ConflictPolicy, times: Times) -> Side {
    match policy {
        ConflictPolicy::DefenderWins => Side::Defender,
        ConflictPolicy::SentinelWins => Side::Sentinel,
        ConflictPolicy::LatestWins if times.sentinel > times.defender => Side::Sentinel,
        ConflictPolicy::LatestWins => Side::Defender,
    }
}

/// A field value as the Sentinel portal names it, for the conflict note analysts read.
pub trait Shown {
    fn shown(&self) -> String;
}

impl Shown for Status {
    fn shown(&self) -> String {
        match self {
            Status::Open => "New",
            Status::InProgress => "Active",
            Status::Closed => "Closed",
        }
        .into()
    }
}

impl Shown for Verdict {
    fn shown(&self) -> String {
        match self {
            Verdict::Undetermined => "Undetermined",
            Verdict::TruePositive => "True positive",
            Verdict::BenignPositive => "Benign positive",
            Verdict::FalsePositive => "False positive",
        }
        .into()
    }
}

impl Shown for Level {
    fn shown(&self) -> String {
        match self {
            Level::Informational => "Informational",
            Level::Low => "Low",
            Level::Medium => "Medium",
            Level::High => "High",
        }
        .into()
    }
}

impl Shown for Option<String> {
    fn shown(&self) -> String {
        self.clone().unwrap_or_else(|| "unassigned".into())
    }
}

impl Shown for std::collections::BTreeSet<String> {
    fn shown(&self) -> String {
        if self.is_empty() {
            "no tags".into()
        } else {
            self.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    }
}

fn field<T: Clone + PartialEq + Shown>(
    name: &'static str,
    base: Option<&T>,
    d: Option<&T>,
    s: Option<&T>,
    policy: ConflictPolicy,
    times: Times,
    conflicts: &mut Vec<Conflict>,
) -> Option<T> {
    // A side with no opinion (unmappable value) counts as unchanged.
    let d = d.or(base);
    let s = s.or(base);
    match (base, d, s) {
        (_, None, None) => None,
        (None, Some(d), _) => Some(d.clone()), // first sync: Defender's value
        (None, None, Some(s)) => Some(s.clone()),
        (Some(b), Some(d), Some(s)) => {
            let d_changed = d != b;
            let s_changed = s != b;
            match (d_changed, s_changed) {
                (false, false) => Some(b.clone()),
                (true, false) => Some(d.clone()),
                (false, true) => Some(s.clone()),
                (true, true) if d == s => Some(d.clone()),
                (true, true) => {
                    let winner = pick_winner(policy, times);
                    conflicts.push(Conflict { field: name, defender: d.shown(), sentinel: s.shown(), winner });
                    Some(if winner == Side::Defender { d.clone() } else { s.clone() })
                }
            }
        }
        (Some(b), _, _) => Some(b.clone()),
    }
}

/// Merges every synced field. `base` is `None` on first sync.
pub fn merge(base: Option<&Fields>, d: &Fields, s: &Fields, policy: ConflictPolicy, times: Times) -> Merged {
    let empty = Fields::default();
    let b = base.unwrap_or(&empty);
    let mut conflicts = Vec::new();
    let target = Fields {
        status: field("status", b.status.as_ref(), d.status.as_ref(), s.status.as_ref(), policy, times, &mut conflicts),
        verdict: field(
            "classification",
            b.verdict.as_ref(),
            d.verdict.as_ref(),
            s.verdict.as_ref(),
            policy,
            times,
            &mut conflicts,
        ),
        owner: field("owner", b.owner.as_ref(), d.owner.as_ref(), s.owner.as_ref(), policy, times, &mut conflicts),
        severity: field(
            "severity",
            b.severity.as_ref(),
            d.severity.as_ref(),
            s.severity.as_ref(),
            policy,
            times,
            &mut conflicts,
        ),
        tags: field("tags", b.tags.as_ref(), d.tags.as_ref(), s.tags.as_ref(), policy, times, &mut conflicts),
    };
    Merged { target, conflicts }
}

fn as_last_seen<T: Clone + PartialEq>(
    now: &Option<T>,
    seen: Option<&Option<T>>,
    base: Option<&Option<T>>,
) -> Option<T> {
    match (seen, base) {
        (Some(seen), Some(base)) if seen.is_some() && now == seen => base.clone(),
        _ => now.clone(),
    }
}

/// One side's values as the merge should see them: a field still showing what that side showed
/// after our last sync counts as unchanged (the base), even when it differs from the base
/// because the side cannot hold the agreed value (Defender's API cannot set `inProgress`;
/// Sentinel has no determination). Without this, a lossy field would read as an edit and undo
/// the other side's change on the next sync.
pub fn as_seen_by_merge(now: &Fields, last_seen: Option<&Fields>, base: Option<&Fields>) -> Fields {
    let (Some(seen), Some(base)) = (last_seen, base) else { return now.clone() };
    Fields {
        status: as_last_seen(&now.status, Some(&seen.status), Some(&base.status)),
        verdict: as_last_seen(&now.verdict, Some(&seen.verdict), Some(&base.verdict)),
        owner: as_last_seen(&now.owner, Some(&seen.owner), Some(&base.owner)),
        severity: as_last_seen(&now.severity, Some(&seen.severity), Some(&base.severity)),
        tags: as_last_seen(&now.tags, Some(&seen.tags), Some(&base.tags)),
    }
}

/// The fields worth writing to a side: those where the target differs from what the side holds
/// now, leaving out fields where neither the target moved from the base nor the side moved from
/// what it showed last time (a side that cannot hold the value is not asked again and again).
pub fn worth_writing(target: &Fields, now: &Fields, last_seen: Option<&Fields>, base: Option<&Fields>) -> Fields {
    fn pick<T: Clone + PartialEq>(
        t: &Option<T>,
        now: &Option<T>,
        seen: Option<&Option<T>>,
        base: Option<&Option<T>>,
    ) -> Option<T> {
        let settled = seen.is_some_and(|s| s.is_some() && s == now) && base.is_some_and(|b| b == t);
        if settled {
            t.clone()
        } else {
            now.clone()
        }
    }
    let seen = last_seen;
    Fields {
        status: pick(&target.status, &now.status, seen.map(|s| &s.status), base.map(|b| &b.status)),
        verdict: pick(&target.verdict, &now.verdict, seen.map(|s| &s.verdict), base.map(|b| &b.verdict)),
        owner: pick(&target.owner, &now.owner, seen.map(|s| &s.owner), base.map(|b| &b.owner)),
        severity: pick(&target.severity, &now.severity, seen.map(|s| &s.severity), base.map(|b| &b.severity)),
        tags: pick(&target.tags, &now.tags, seen.map(|s| &s.tags), base.map(|b| &b.tags)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;
    use time::macros::datetime;

    fn times(d: i64, s: i64) -> Times {
        let t0 = datetime!(2026-01-01 0:00 UTC);
        Times { defender: t0 + time::Duration::seconds(d), sentinel: t0 + time::Duration::seconds(s) }
    }

    fn f(status: Status, owner: Option<&str>) -> Fields {
        Fields {
            status: Some(status),
            verdict: Some(Verdict::Undetermined),
            owner: Some(owner.map(str::to_string)),
            severity: Some(Level::Medium),
            tags: Some(Default::default()),
        }
    }

    #[test]
    fn the_design_table() {
        let b = f(Status::Open, None);
        let p = ConflictPolicy::LatestWins;
        // nothing changed
        assert_eq!(merge(Some(&b), &b, &b, p, times(0, 0)).target, b);
        // only Defender changed
        let d = f(Status::InProgress, None);
        assert_eq!(merge(Some(&b), &d, &b, p, times(0, 0)).target, d);
        // only Sentinel changed
        let s = f(Status::Closed, Some("bob@contoso.com"));
        assert_eq!(merge(Some(&b), &b, &s, p, times(0, 0)).target, s);
        // both changed the same way
        assert_eq!(merge(Some(&b), &s, &s, p, times(0, 0)).target, s);
        // both changed differently: latest wins, Defender on a tie
        let m = merge(Some(&b), &d, &s, p, times(10, 20));
        assert_eq!(m.target.status, Some(Status::Closed));
        assert_eq!(m.conflicts.len(), 1);
        assert_eq!(m.conflicts[0].winner, Side::Sentinel);
        assert_eq!(merge(Some(&b), &d, &s, p, times(20, 20)).target.status, Some(Status::InProgress));
        assert_eq!(
            merge(Some(&b), &d, &s, ConflictPolicy::SentinelWins, times(99, 0)).target.status,
            Some(Status::Closed)
        );
        assert_eq!(
            merge(Some(&b), &d, &s, ConflictPolicy::DefenderWins, times(0, 99)).target.status,
            Some(Status::InProgress)
        );
        // the owner changed only in Sentinel: no conflict there
        assert_eq!(m.target.owner, Some(Some("bob@contoso.com".into())));
    }

    #[test]
    fn first_sync_takes_defender() {
        let d = f(Status::InProgress, Some("a@b.c"));
        let s = f(Status::Open, None);
        let m = merge(None, &d, &s, ConflictPolicy::SentinelWins, times(0, 9));
        assert_eq!(m.target, d);
        assert!(m.conflicts.is_empty());
    }

    #[test]
    fn no_opinion_counts_as_unchanged() {
        let b = f(Status::Open, None);
        let mut d = b.clone();
        d.status = None;
        let s = f(Status::Closed, None);
        assert_eq!(
            merge(Some(&b), &d, &s, ConflictPolicy::DefenderWins, times(0, 0)).target.status,
            Some(Status::Closed)
        );
    }

    #[test]
    fn a_value_one_side_cannot_hold_does_not_read_as_an_edit() {
        // Sentinel went Active (InProgress); Defender's API could only stay active (Open).
        let base = f(Status::InProgress, None);
        let defender_seen = f(Status::Open, None);
        let d_now = defender_seen.clone();
        let d = as_seen_by_merge(&d_now, Some(&defender_seen), Some(&base));
        assert_eq!(d.status, Some(Status::InProgress), "unchanged since last sync");
        let m = merge(Some(&base), &d, &base, ConflictPolicy::LatestWins, times(0, 0));
        assert_eq!(m.target.status, Some(Status::InProgress), "Sentinel is not reverted");
        // ...and Defender is not asked again for what it could not take.
        let w = worth_writing(&m.target, &d_now, Some(&defender_seen), Some(&base));
        assert_eq!(w.status, m.target.status);
        // A real Defender edit afterwards still counts.
        let d_now = f(Status::Closed, None);
        let d = as_seen_by_merge(&d_now, Some(&defender_seen), Some(&base));
        assert_eq!(
            merge(Some(&base), &d, &base, ConflictPolicy::LatestWins, times(0, 0)).target.status,
            Some(Status::Closed)
        );
    }

    fn arb_fields() -> impl Strategy<Value = Fields> {
        (0..3u8, 0..4u8, proptest::option::of("[a-c]"), 0..4u8, proptest::collection::btree_set("[x-z]", 0..3))
            .prop_map(|(st, v, o, sev, tags)| Fields {
                status: Some([Status::Open, Status::InProgress, Status::Closed][st as usize]),
                verdict: Some(
                    [Verdict::Undetermined, Verdict::TruePositive, Verdict::BenignPositive, Verdict::FalsePositive]
                        [v as usize],
                ),
                owner: Some(o),
                severity: Some([Level::Informational, Level::Low, Level::Medium, Level::High][sev as usize]),
                tags: Some(tags),
            })
    }

    fn arb_policy() -> impl Strategy<Value = ConflictPolicy> {
        prop_oneof![
            Just(ConflictPolicy::LatestWins),
            Just(ConflictPolicy::DefenderWins),
            Just(ConflictPolicy::SentinelWins)
        ]
    }

    // The merge in use (views, writes, triggers duplicated and reordered, the policies) is
    // exercised by the two-sided model in `tests/two_sides_model.rs`.
    proptest! {
        /// A field that only one side changed always takes that side's value, whatever the policy.
        #[test]
        fn one_sided_change_wins(b in arb_fields(), d in arb_fields(), p in arb_policy()) {
            let m = merge(Some(&b), &d, &b, p, times(0, 9));
            prop_assert_eq!(&m.target, &d);
            prop_assert!(m.conflicts.is_empty());
            let m = merge(Some(&b), &b, &d, p, times(9, 0));
            prop_assert_eq!(&m.target, &d);
            prop_assert!(m.conflicts.is_empty());
        }
    }
}
