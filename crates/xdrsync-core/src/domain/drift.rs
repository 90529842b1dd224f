//! The drift report of `xdrsync reconcile`, pure: for one mirrored pair, which synced fields
//! differ between Defender, Sentinel and the stored base, and what the reconcile would do about
//! each. It asks the reconcile's own decisions (`plan::glance`, the merge behind `plan::plan`),
//! so the report can never disagree with what the fix does.

use serde::Serialize;

use super::fields::{from_defender, from_sentinel, Fields};
use super::merge::{as_seen_by_merge, ConflictPolicy, Side};
use super::plan::{glance, merged, Glance, Observed};

/// One row of the drift table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDrift {
    pub field: &'static str,
    pub defender: String,
    pub sentinel: String,
    pub base: String,
    pub action: String,
}

/// What is missing or moved for one pair: no rows when the pair is in sync (or deliberately
/// left unmirrored).
pub fn drift(o: &Observed<'_>, policy: ConflictPolicy, mirror_sentinel_incidents: bool) -> Vec<FieldDrift> {
    if glance(o, mirror_sentinel_incidents) != Glance::Changed {
        return Vec::new();
    }
    let st = o.stored;
    let d_fields = from_defender(o.defender);
    let Some(cur) = o.sentinel else {
        if st.is_some_and(|s| s.not_mirrored) && !mirror_sentinel_incidents {
            return Vec::new();
        }
        let deleted = st.is_some_and(|s| s.indexed || s.sentinel_etag_seen.is_some());
        return vec![FieldDrift {
            field: "mirror",
            defender: o.defender.status.to_string(),
            sentinel: "missing".into(),
            base: if deleted { "mirrored".into() } else { "-".into() },
            action: if deleted { "recreate mirror (deleted in Sentinel)" } else { "create mirror" }.into(),
        }];
    };
    let s_fields = from_sentinel(cur);
    let base = st.and_then(|s| s.base.as_ref());
    let (target, conflicts) = merged(o, policy);
    let d_seen = as_seen_by_merge(&d_fields, st.and_then(|s| s.defender_view.as_ref()), base);
    let s_seen = as_seen_by_merge(&s_fields, st.and_then(|s| s.sentinel_view.as_ref()), base);
    let empty = Fields::default();
    let (t, d, s, b) = (cells(&target), cells(&d_seen), cells(&s_seen), cells(base.unwrap_or(&empty)));
    let (raw_d, raw_s) = (cells(&d_fields), cells(&s_fields));
    let mut rows = Vec::new();
    for i in 0..t.len() {
        let (field, Some(want)) = (&t[i].0, &t[i].1) else { continue };
        // A side without an opinion (None) is not written for this field.
        let to_sentinel = s[i].1.as_ref().is_some_and(|v| v != want);
        let to_defender = d[i].1.as_ref().is_some_and(|v| v != want);
        if !to_sentinel && !to_defender {
            continue;
        }
        let conflict = conflicts.iter().find(|c| c.field == *field);
        let action = match (conflict, to_sentinel, to_defender) {
            (Some(c), _, _) => match c.winner {
                Side::Defender => "conflict: Defender wins, write Sentinel".to_string(),
                Side::Sentinel => "conflict: Sentinel wins, write Defender".to_string(),
            },
            (None, true, true) => "write both".into(),
            (None, true, false) => "write Sentinel".into(),
            (None, false, _) => "write Defender".into(),
        };
        rows.push(FieldDrift {
            field,
            defender: show(&raw_d[i].1),
            sentinel: show(&raw_s[i].1),
            base: show(&b[i].1),
            action,
        });
    }
    if rows.is_empty() {
        rows.push(FieldDrift {
            field: "versions",
            defender: crate::domain::time_fmt::format(o.defender.last_update_date_time),
            sentinel: cur.etag.clone().unwrap_or_else(|| "-".into()),
            base: st.and_then(|s| s.sentinel_etag_seen.clone()).unwrap_or_else(|| "-".into()),
            action: "resync (title, description, comments or alerts may have changed)".into(),
        });
    }
    rows
}

fn show(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

/// The synced fields of one side as text, in a fixed order (`None` = no opinion).
fn cells(f: &Fields) -> [(&'static str, Option<String>); 5] {
    fn text<T: Serialize>(v: &T) -> String {
        match serde_json::to_value(v) {
            Ok(serde_json::Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(_) => "?".into(),
        }
    }
    [
        ("status", f.status.as_ref().map(text)),
        ("classification", f.verdict.as_ref().map(text)),
        ("owner", f.owner.as_ref().map(|o| o.clone().unwrap_or_else(|| "unassigned".into()))),
        ("severity", f.severity.as_ref().map(text)),
        ("tags", f.tags.as_ref().map(|t| t.iter().cloned().collect::<Vec<_>>().join(","))),
    ]
}
