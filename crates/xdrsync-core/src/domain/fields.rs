//! The synced fields in one vocabulary, and the mapping tables from and to each side (ARCHITECTURE.md: “The three-way merge”).
//!
//! Each direction is a table here and tested both ways. Lossy spots are explicit: Defender's
//! determination has no Sentinel field, so it is kept in the state row and reused on the way
//! back when it still fits the classification; Sentinel's FalsePositive reason picks the
//! determination (IncorrectAlertLogic → other).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::defender::{Classification, DefenderIncident, Determination, IncidentStatus, Severity};
use super::sentinel::{
    ClassificationReason, SentinelClassification, SentinelIncident, SentinelSeverity, SentinelStatus,
};

/// Labels xdrsync owns on the Sentinel side; never synced as tags.
pub const PRODUCT_LABEL: &str = "Microsoft Defender XDR";
pub const REDIRECTED_LABEL: &str = "Redirected";
pub const BIG_INCIDENT_LABEL: &str = "150+";
/// Prefix of the label that keeps a Defender owner Entra does not know.
pub const UNKNOWN_OWNER_PREFIX: &str = "Defender owner: ";

pub fn is_owned_label(name: &str) -> bool {
    name == PRODUCT_LABEL
        || name == REDIRECTED_LABEL
        || name == BIG_INCIDENT_LABEL
        || name.starts_with(UNKNOWN_OWNER_PREFIX)
        || name.starts_with(super::tenants::TENANT_LABEL_PREFIX)
}

/// Lifecycle in one vocabulary: Defender active/inProgress/resolved ↔ Sentinel New/Active/Closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Open,
    InProgress,
    Closed,
}

/// Classification in one vocabulary (Sentinel's four values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Undetermined,
    TruePositive,
    BenignPositive,
    FalsePositive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    Informational,
    Low,
    Medium,
    High,
}

/// The values the three-way merge works on. `None` in a side's reading means "no opinion"
/// (a value this build cannot map), which the merge treats as unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Fields {
    pub status: Option<Status>,
    pub verdict: Option<Verdict>,
    /// Owner UPN, lower-cased: `Some(None)` = unassigned, `None` = no opinion. Stored so that
    /// the two stay distinct (plain serde would read a stored "unassigned" back as "no opinion").
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub owner: Option<Option<String>>,
    pub severity: Option<Level>,
    pub tags: Option<BTreeSet<String>>,
}

/// Serde for `Option<Option<T>>`: absent = `None`, `null` = `Some(None)`.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(v: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

fn norm_upn(s: &str) -> Option<String> {
    let t = s.trim().to_ascii_lowercase();
    (!t.is_empty()).then_some(t)
}

// ---- Defender → one vocabulary ------------------------------------------------------------

pub fn status_from_defender(s: &IncidentStatus) -> Option<Status> {
    match s {
        IncidentStatus::Active => Some(Status::Open),
        IncidentStatus::InProgress | IncidentStatus::AwaitingAction => Some(Status::InProgress),
        IncidentStatus::Resolved | IncidentStatus::Redirected => Some(Status::Closed),
        IncidentStatus::UnknownFutureValue | IncidentStatus::Unrecognized(_) => None,
    }
}

pub fn verdict_from_defender(c: Option<&Classification>) -> Option<Verdict> {
    match c {
        None | Some(Classification::Unknown) => Some(Verdict::Undetermined),
        Some(Classification::TruePositive) => Some(Verdict::TruePositive),
        Some(Classification::FalsePositive) => Some(Verdict::FalsePositive),
        Some(Classification::InformationalExpectedActivity) => Some(Verdict::BenignPositive),
        Some(Classification::UnknownFutureValue | Classification::Unrecognized(_)) => None,
    }
}

pub fn level_from_defender(s: &Severity) -> Option<Level> {
    match s {
        Severity::High => Some(Level::High),
        Severity::Medium => Some(Level::Medium),
        Severity::Low => Some(Level::Low),
        Severity::Informational | Severity::Unknown => Some(Level::Informational),
        Severity::UnknownFutureValue | Severity::Unrecognized(_) => None,
    }
}

pub fn from_defender(i: &DefenderIncident) -> Fields {
    Fields {
        status: status_from_defender(&i.status),
        verdict: verdict_from_defender(i.classification.as_ref()),
        owner: Some(i.assigned_to.as_deref().and_then(norm_upn)),
        severity: level_from_defender(&i.severity),
        tags: Some(i.custom_tags.iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect()),
    }
}

// ---- Sentinel → one vocabulary ------------------------------------------------------------

pub fn status_from_sentinel(s: &SentinelStatus) -> Option<Status> {
    match s {
        SentinelStatus::New => Some(Status::Open),
        SentinelStatus::Active => Some(Status::InProgress),
        SentinelStatus::Closed => Some(Status::Closed),
        SentinelStatus::Unrecognized(_) => None,
    }
}

pub fn verdict_from_sentinel(c: Option<&SentinelClassification>) -> Option<Verdict> {
    match c {
        None | Some(SentinelClassification::Undetermined) => Some(Verdict::Undetermined),
        Some(SentinelClassification::TruePositive) => Some(Verdict::TruePositive),
        Some(SentinelClassification::BenignPositive) => Some(Verdict::BenignPositive),
        Some(SentinelClassification::FalsePositive) => Some(Verdict::FalsePositive),
        Some(SentinelClassification::Unrecognized(_)) => None,
    }
}

pub fn level_from_sentinel(s: &SentinelSeverity) -> Option<Level> {
    match s {
        SentinelSeverity::High => Some(Level::High),
        SentinelSeverity::Medium => Some(Level::Medium),
        SentinelSeverity::Low => Some(Level::Low),
        SentinelSeverity::Informational => Some(Level::Informational),
        SentinelSeverity::Unrecognized(_) => None,
    }
}

/// The owner as Sentinel holds it: its UPN, or the UPN kept in the unknown-owner label when
/// Entra had no such user (so an unresolvable owner is not read back as "unassigned").
pub fn owner_from_sentinel(i: &SentinelIncident) -> Option<String> {
    let w = &i.properties.writable;
    let from_owner =
        w.owner.as_ref().and_then(|o| o.user_principal_name.as_deref().or(o.email.as_deref()).and_then(norm_upn));
    from_owner
        .or_else(|| w.labels.iter().find_map(|l| l.label_name.strip_prefix(UNKNOWN_OWNER_PREFIX)).and_then(norm_upn))
}

pub fn user_tags_from_sentinel(i: &SentinelIncident) -> BTreeSet<String> {
    i.properties
        .writable
        .labels
        .iter()
        .filter(|l| l.label_type.as_ref().is_none_or(|t| *t == super::sentinel::LabelType::User))
        .map(|l| l.label_name.trim().to_string())
        .filter(|n| !n.is_empty() && !is_owned_label(n))
        .collect()
}

pub fn from_sentinel(i: &SentinelIncident) -> Fields {
    let w = &i.properties.writable;
    // Sentinel holds a classification only on closed incidents: an open one has no opinion, so
    // reopening in Sentinel does not erase Defender's classification and determination.
    let verdict =
        if w.status == SentinelStatus::Closed { verdict_from_sentinel(w.classification.as_ref()) } else { None };
    Fields {
        status: status_from_sentinel(&w.status),
        verdict,
        owner: Some(owner_from_sentinel(i)),
        severity: level_from_sentinel(&w.severity),
        tags: Some(user_tags_from_sentinel(i)),
    }
}

// ---- one vocabulary → each side -----------------------------------------------------------

pub fn status_to_sentinel(s: Status) -> SentinelStatus {
    match s {
        Status::Open => SentinelStatus::New,
        Status::InProgress => SentinelStatus::Active,
        Status::Closed => SentinelStatus::Closed,
    }
}

/// Sentinel classification and reason for a verdict; Closed always gets one (Undetermined at
/// least), because Sentinel refuses to close without it.
pub fn verdict_to_sentinel(
    v: Verdict,
    prefer_incorrect_logic: bool,
) -> (SentinelClassification, Option<ClassificationReason>) {
    match v {
        Verdict::Undetermined => (SentinelClassification::Undetermined, None),
        Verdict::TruePositive => (SentinelClassification::TruePositive, Some(ClassificationReason::SuspiciousActivity)),
        Verdict::BenignPositive => {
            (SentinelClassification::BenignPositive, Some(ClassificationReason::SuspiciousButExpected))
        }
        Verdict::FalsePositive if prefer_incorrect_logic => {
            (SentinelClassification::FalsePositive, Some(ClassificationReason::IncorrectAlertLogic))
        }
        Verdict::FalsePositive => (SentinelClassification::FalsePositive, Some(ClassificationReason::InaccurateData)),
    }
}

pub fn level_to_sentinel(l: Level) -> SentinelSeverity {
    match l {
        Level::High => SentinelSeverity::High,
        Level::Medium => SentinelSeverity::Medium,
        Level::Low => SentinelSeverity::Low,
        Level::Informational => SentinelSeverity::Informational,
    }
}

pub fn status_to_defender(s: Status) -> IncidentStatus {
    match s {
        Status::Open => IncidentStatus::Active,
        Status::InProgress => IncidentStatus::InProgress,
        Status::Closed => IncidentStatus::Resolved,
    }
}

pub fn level_to_defender(l: Level) -> Severity {
    match l {
        Level::High => Severity::High,
        Level::Medium => Severity::Medium,
        Level::Low => Severity::Low,
        Level::Informational => Severity::Informational,
    }
}

fn determination_fits(v: Verdict, d: &Determination) -> bool {
    use Determination::*;
    match v {
        Verdict::TruePositive => matches!(
            d,
            Apt | Malware
                | MultiStagedAttack
                | CompromisedUser
                | CompromisedAccount
                | Phishing
                | MaliciousUserActivity
                | UnwantedSoftware
                | Other
        ),
        Verdict::BenignPositive => matches!(
            d,
            SecurityTesting
                | SecurityPersonnel
                | ConfirmedActivity
                | ConfirmedUserActivity
                | LineOfBusinessApplication
                | Other
        ),
        Verdict::FalsePositive => {
            matches!(d, NotMalicious | Clean | NotEnoughDataToValidate | InsufficientData | Other)
        }
        Verdict::Undetermined => matches!(d, Unknown),
    }
}

/// Defender classification and determination for a verdict. The determination Defender had
/// (kept in the state row) survives when it still fits; Sentinel's IncorrectAlertLogic reason
/// maps to `other`.
pub fn verdict_to_defender(
    v: Verdict,
    kept: Option<&Determination>,
    reason: Option<&ClassificationReason>,
) -> (Classification, Determination) {
    let classification = match v {
        Verdict::Undetermined => Classification::Unknown,
        Verdict::TruePositive => Classification::TruePositive,
        Verdict::BenignPositive => Classification::InformationalExpectedActivity,
        Verdict::FalsePositive => Classification::FalsePositive,
    };
    if v == Verdict::FalsePositive && reason == Some(&ClassificationReason::IncorrectAlertLogic) {
        return (classification, Determination::Other);
    }
    let determination = match kept {
        Some(d) if determination_fits(v, d) => d.clone(),
        _ => match v {
            Verdict::Undetermined => Determination::Unknown,
            Verdict::FalsePositive => Determination::NotMalicious,
            _ => Determination::Other,
        },
    };
    (classification, determination)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_tables_round_trip() {
        for s in [Status::Open, Status::InProgress, Status::Closed] {
            assert_eq!(status_from_sentinel(&status_to_sentinel(s)), Some(s));
            assert_eq!(status_from_defender(&status_to_defender(s)), Some(s));
        }
        assert_eq!(status_from_defender(&IncidentStatus::AwaitingAction), Some(Status::InProgress));
        assert_eq!(status_from_defender(&IncidentStatus::Redirected), Some(Status::Closed));
        assert_eq!(status_from_defender(&IncidentStatus::Unrecognized("x".into())), None);
    }

    #[test]
    fn verdict_tables_round_trip_and_keep_the_determination() {
        for v in [Verdict::Undetermined, Verdict::TruePositive, Verdict::BenignPositive, Verdict::FalsePositive] {
            let (c, r) = verdict_to_sentinel(v, false);
            assert_eq!(verdict_from_sentinel(Some(&c)), Some(v));
            let (dc, dd) = verdict_to_defender(v, None, r.as_ref());
            assert_eq!(verdict_from_defender(Some(&dc)), Some(v));
            assert!(determination_fits(v, &dd) || dd == Determination::NotMalicious);
        }
        // A Defender MultiStagedAttack survives a round trip through Sentinel's TruePositive.
        let (c, d) = verdict_to_defender(
            Verdict::TruePositive,
            Some(&Determination::MultiStagedAttack),
            Some(&ClassificationReason::SuspiciousActivity),
        );
        assert_eq!((c, d), (Classification::TruePositive, Determination::MultiStagedAttack));
        // ...but not a change of verdict.
        let (_, d) = verdict_to_defender(
            Verdict::FalsePositive,
            Some(&Determination::MultiStagedAttack),
            Some(&ClassificationReason::InaccurateData),
        );
        assert_eq!(d, Determination::NotMalicious);
        let (_, d) = verdict_to_defender(
            Verdict::FalsePositive,
            Some(&Determination::Clean),
            Some(&ClassificationReason::IncorrectAlertLogic),
        );
        assert_eq!(d, Determination::Other);
    }

    #[test]
    fn defender_mapping_matches_the_documented_connector() {
        assert_eq!(
            verdict_to_sentinel(Verdict::TruePositive, false),
            (SentinelClassification::TruePositive, Some(ClassificationReason::SuspiciousActivity))
        );
        assert_eq!(
            verdict_to_sentinel(Verdict::FalsePositive, false),
            (SentinelClassification::FalsePositive, Some(ClassificationReason::InaccurateData))
        );
        assert_eq!(
            verdict_to_sentinel(Verdict::BenignPositive, false),
            (SentinelClassification::BenignPositive, Some(ClassificationReason::SuspiciousButExpected))
        );
        assert_eq!(verdict_from_defender(None), Some(Verdict::Undetermined));
    }

    #[test]
    fn stored_fields_keep_unassigned_apart_from_no_opinion() {
        for owner in [None, Some(None), Some(Some("bob@contoso.com".to_string()))] {
            let f = Fields { owner: owner.clone(), ..Default::default() };
            let back: Fields = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
            assert_eq!(back.owner, owner);
        }
    }

    #[test]
    fn owned_labels_are_not_tags() {
        assert!(is_owned_label("Microsoft Defender XDR"));
        assert!(is_owned_label("Defender owner: x@y.com"));
        assert!(!is_owned_label("VIP"));
        assert!(is_owned_label("Defender tenant: Contoso"), "the tenant label never goes back as a tag");
    }
}

/// The Defender PATCH that brings Defender from `current` to `target` (only changed fields).
pub fn defender_patch(
    target: &Fields,
    current: &Fields,
    kept: Option<&Determination>,
    sentinel_reason: Option<&ClassificationReason>,
) -> super::defender::DefenderIncidentPatch {
    let mut p = super::defender::DefenderIncidentPatch::default();
    if let (Some(t), true) = (target.status, target.status != current.status) {
        p.status = Some(status_to_defender(t));
    }
    if let (Some(v), true) = (target.verdict, target.verdict != current.verdict) {
        let (c, d) = verdict_to_defender(v, kept, sentinel_reason);
        p.classification = Some(c);
        p.determination = Some(d);
    }
    if let (Some(o), true) = (&target.owner, target.owner != current.owner) {
        p.assigned_to = Some(o.clone());
    }
    if let (Some(l), true) = (target.severity, target.severity != current.severity) {
        p.severity = Some(level_to_defender(l));
    }
    if let (Some(t), true) = (&target.tags, target.tags != current.tags) {
        p.custom_tags = Some(t.iter().cloned().collect());
    }
    p
}

#[cfg(test)]
mod patch_tests {
    use super::*;

    #[test]
    fn patch_holds_only_what_changed() {
        let cur = Fields {
            status: Some(Status::Open),
            verdict: Some(Verdict::Undetermined),
            owner: Some(None),
            severity: Some(Level::High),
            tags: Some(Default::default()),
        };
        assert!(defender_patch(&cur, &cur, None, None).is_empty());
        let mut t = cur.clone();
        t.status = Some(Status::Closed);
        t.verdict = Some(Verdict::TruePositive);
        t.owner = Some(Some("bob@contoso.com".into()));
        let p =
            defender_patch(&t, &cur, Some(&Determination::Malware), Some(&ClassificationReason::SuspiciousActivity));
        assert_eq!(p.status, Some(IncidentStatus::Resolved));
        assert_eq!(p.classification, Some(Classification::TruePositive));
        assert_eq!(p.determination, Some(Determination::Malware));
        assert_eq!(p.assigned_to, Some(Some("bob@contoso.com".into())));
        assert_eq!(p.severity, None);
        assert_eq!(p.custom_tags, None);
    }
}
