//! Deterministic names: the same Defender incident always maps to the same Sentinel resource name,
//! so a retried or duplicated create is an update of one incident, never a second incident.

use uuid::Uuid;

/// Fixed namespace for xdrsync's UUIDv5 names. Changing it would orphan every existing mirror.
pub const NAMESPACE: Uuid = uuid::uuid!("6f1c2a7e-3b5d-5e8f-9a0b-4c7d2e1f0a93");

/// Sentinel incident name (`incidentId`) for a Defender incident: UUIDv5 of `{tenant}:{id}`.
/// The tenant id is lower-cased because Entra GUIDs arrive in either case.
pub fn sentinel_incident_name(tenant_id: &str, defender_incident_id: &str) -> Uuid {
    let key = format!("{}:{}", tenant_id.to_ascii_lowercase(), defender_incident_id.trim());
    Uuid::new_v5(&NAMESPACE, key.as_bytes())
}

/// Sentinel comment name for a comment that xdrsync copies, keyed by where it came from.
pub fn sentinel_comment_name(incident_name: &Uuid, source_key: &str) -> Uuid {
    let key = format!("comment:{incident_name}:{source_key}");
    Uuid::new_v5(&NAMESPACE, key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_incident_same_name_regardless_of_tenant_case() {
        let a = sentinel_incident_name("72F988BF-86F1-41AF-91AB-2D7CD011DB47", "29");
        let b = sentinel_incident_name("72f988bf-86f1-41af-91ab-2d7cd011db47", "29");
        assert_eq!(a, b);
        assert_eq!(a.get_version_num(), 5);
    }

    #[test]
    fn different_incidents_or_tenants_get_different_names() {
        let t = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        assert_ne!(sentinel_incident_name(t, "29"), sentinel_incident_name(t, "290"));
        assert_ne!(
            sentinel_incident_name(t, "29"),
            sentinel_incident_name("00000000-0000-0000-0000-000000000001", "29")
        );
    }

    /// Golden values. Every Sentinel mirror in production is named by these functions; if a
    /// change moves these literals, the next sync of every incident finds no mirror under the new
    /// name: every existing mirror is orphaned (no longer updated) and every incident is created
    /// a second time in Sentinel, with copied comments written again. Do not update the
    /// literals to make this pass; change the code back (or plan a migration of every mirror).
    #[test]
    fn names_are_pinned() {
        let incident = sentinel_incident_name("72f988bf-86f1-41af-91ab-2d7cd011db47", "123");
        assert_eq!(incident, uuid::uuid!("7268556e-76a5-5994-94d9-6a7dc6600637"));
        assert_eq!(
            sentinel_comment_name(&incident, "comment-cap"),
            uuid::uuid!("913d23bb-b6ba-5e25-8144-32bc399fa745")
        );
    }
}
