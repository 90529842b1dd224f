//! Comment copying rules (ARCHITECTURE.md: “The three-way merge”), pure: what to copy each way, with a source prefix so a
//! copied comment is never copied back, deterministic Sentinel comment ids so a retry writes the
//! same comment, and Sentinel's 100-comment cap respected (the overflow summarised once).

use uuid::Uuid;

use super::defender::AlertComment;
use super::names::sentinel_comment_name;
use super::sentinel::SentinelComment;
use super::time_fmt;

pub const FROM_DEFENDER: &str = "[Defender] ";
pub const FROM_SENTINEL: &str = "[Sentinel] ";
pub const FROM_XDRSYNC: &str = "[xdrsync] ";
pub const SENTINEL_MAX_COMMENTS: usize = 100;
pub const SENTINEL_MAX_COMMENT_CHARS: usize = 30_000;
/// Defender documents no limit; stay well inside any.
pub const DEFENDER_MAX_COMMENT_CHARS: usize = 10_000;

fn cut(s: &str, max: usize) -> String {
    super::mirror::truncate_chars(s, max)
}

/// A Sentinel comment to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSentinelComment {
    pub name: Uuid,
    pub message: String,
}

/// A Defender comment's identity: when it was written and a digest of its text. Comments are
/// matched by identity, never by position, so the order Graph returns them in does not matter.
pub fn defender_comment_key(c: &AlertComment) -> String {
    let text = c.comment.as_deref().unwrap_or_default();
    let when = c.written_at().map(time_fmt::format).unwrap_or_default();
    let digest = super::alerts::combined_digest([(when.as_str(), text)]);
    format!("defender:{when}:{digest}")
}

/// A short, stable fingerprint of a comment key, for the sync state (keeps the row small).
pub fn fingerprint(key: &str) -> String {
    super::alerts::combined_digest([(key, "")])[..16].to_string()
}

/// Whether a Defender comment is worth copying to Sentinel: not empty, not our own copy.
pub fn copyable_from_defender(c: &AlertComment) -> bool {
    c.comment
        .as_deref()
        .is_some_and(|t| !t.trim().is_empty() && !t.starts_with(FROM_SENTINEL) && !t.starts_with(FROM_XDRSYNC))
}

/// The Sentinel comments for the `pending` Defender comments, keeping the total ≤ 100 (the last
/// slot is the overflow note, written once).
pub fn defender_to_sentinel(
    incident: &Uuid,
    pending: &[&AlertComment],
    sentinel_count: usize,
    cap_noted: bool,
    defender_link: &str,
) -> (Vec<NewSentinelComment>, bool) {
    let room = (SENTINEL_MAX_COMMENTS - 1).saturating_sub(sentinel_count);
    let mut out: Vec<NewSentinelComment> = pending
        .iter()
        .take(room)
        .map(|c| {
            let text = c.comment.as_deref().unwrap_or_default();
            let author = c.author().unwrap_or("Defender");
            NewSentinelComment {
                name: sentinel_comment_name(incident, &defender_comment_key(c)),
                message: cut(&format!("{FROM_DEFENDER}{author}: {text}"), SENTINEL_MAX_COMMENT_CHARS),
            }
        })
        .collect();
    let overflow = pending.len().saturating_sub(room);
    let mut noted = cap_noted;
    if overflow > 0 && !cap_noted && sentinel_count + out.len() < SENTINEL_MAX_COMMENTS {
        out.push(NewSentinelComment {
            name: sentinel_comment_name(incident, "comment-cap"),
            message: format!(
                "{FROM_XDRSYNC}Sentinel's limit of {SENTINEL_MAX_COMMENTS} comments is reached; later Defender comments are not copied here. Read them in Defender: {defender_link}"
            ),
        });
        noted = true;
    }
    (out, noted)
}

/// The Defender comments for Sentinel comments not yet sent and not written by xdrsync.
pub fn sentinel_to_defender<'a>(comments: &'a [SentinelComment], already_sent: &[String]) -> Vec<(&'a str, String)> {
    comments
        .iter()
        .filter(|c| !already_sent.iter().any(|n| n.eq_ignore_ascii_case(&c.name)))
        .filter(|c| {
            let m = c.properties.message.as_str();
            !m.trim().is_empty() && !m.starts_with(FROM_DEFENDER) && !m.starts_with(FROM_XDRSYNC)
        })
        .map(|c| {
            let author = c
                .properties
                .author
                .as_ref()
                .and_then(|a| a.get("name").or_else(|| a.get("email")).and_then(|v| v.as_str()))
                .unwrap_or("Sentinel");
            (
                c.name.as_str(),
                cut(&format!("{FROM_SENTINEL}{author}: {}", c.properties.message), DEFENDER_MAX_COMMENT_CHARS),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sentinel::SentinelCommentProperties;

    fn dc(text: &str, secs: i64) -> AlertComment {
        AlertComment {
            comment: Some(text.into()),
            created_by_display_name: Some("alice@contoso.com".into()),
            created_date_time: Some(time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(secs)),
            ..Default::default()
        }
    }

    fn sc(name: &str, text: &str) -> SentinelComment {
        SentinelComment {
            id: String::new(),
            name: name.into(),
            etag: None,
            properties: SentinelCommentProperties {
                message: text.into(),
                created_time_utc: None,
                last_modified_time_utc: None,
                author: Some(serde_json::json!({"name": "Bob"})),
            },
        }
    }

    fn copyable(cs: &[AlertComment]) -> Vec<&AlertComment> {
        cs.iter().filter(|c| copyable_from_defender(c)).collect()
    }

    #[test]
    fn defender_comments_copy_with_stable_ids_whatever_their_order_and_skip_echoes() {
        let inc = Uuid::nil();
        let comments = vec![dc("first", 1), dc("[Sentinel] Bob: from sentinel", 2), dc("third", 3)];
        let (out, noted) = defender_to_sentinel(&inc, &copyable(&comments), 0, false, "link");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].message, "[Defender] alice@contoso.com: first");
        assert!(!noted);
        let reversed: Vec<AlertComment> = comments.iter().rev().cloned().collect();
        let (again, _) = defender_to_sentinel(&inc, &copyable(&reversed), 0, false, "link");
        let names = |v: &[NewSentinelComment]| v.iter().map(|c| c.name).collect::<std::collections::BTreeSet<_>>();
        assert_eq!(names(&out), names(&again), "same ids whatever the order");
        assert_ne!(defender_comment_key(&comments[0]), defender_comment_key(&comments[2]));
        assert_eq!(fingerprint(&defender_comment_key(&comments[0])).len(), 16);
    }

    #[test]
    fn the_cap_leaves_room_for_one_overflow_note() {
        let inc = Uuid::nil();
        let comments: Vec<AlertComment> = (0..10).map(|i| dc(&format!("c{i}"), i)).collect();
        let (out, noted) =
            defender_to_sentinel(&inc, &copyable(&comments), 95, false, "https://security.microsoft.com/x");
        assert_eq!(out.len(), 5, "4 comments + the note");
        assert!(out[4].message.starts_with("[xdrsync] Sentinel's limit of 100"));
        assert!(noted);
        let (out, noted) = defender_to_sentinel(&inc, &copyable(&comments[4..]), 100, true, "x");
        assert!(out.is_empty());
        assert!(noted);
    }

    #[test]
    fn sentinel_comments_copy_once_and_never_echo_back() {
        let cs = vec![
            sc("a", "analyst note"),
            sc("b", "[Defender] alice: x"),
            sc("c", "[xdrsync] conflict"),
            sc("d", "another"),
        ];
        let out = sentinel_to_defender(&cs, &["d".to_string()]);
        assert_eq!(out, vec![("a", "[Sentinel] Bob: analyst note".to_string())]);
    }

    /// Golden value: the Sentinel comment id of a copied Defender comment. A change here makes
    /// every Defender comment already copied look new: each is copied to Sentinel a second time
    /// (and the mirrors, named the same way in names.rs, would be orphaned and duplicated).
    /// Do not update the literal to make this pass; change the code back.
    #[test]
    fn copied_comment_ids_are_pinned() {
        let incident = crate::domain::names::sentinel_incident_name("72f988bf-86f1-41af-91ab-2d7cd011db47", "123");
        let comment = AlertComment {
            comment: Some("Isolated the device; waiting for the user.".into()),
            created_by_display_name: Some("alice@contoso.com".into()),
            created_date_time: Some(time::macros::datetime!(2026-01-02 03:04:05.678 UTC)),
            ..Default::default()
        };
        let (out, _) = defender_to_sentinel(&incident, &[&comment], 0, false, "link");
        assert_eq!(out[0].name, uuid::uuid!("54d40847-9b2e-5c7c-8f5a-f2dde93cc253"));
        assert_eq!(out[0].message, "[Defender] alice@contoso.com: Isolated the device; waiting for the user.");
    }
}
