//! A claim on copying Sentinel comments into one Defender incident. Defender's comment POST is
//! not idempotent, and two instances may reconcile the same incident at once (two queue messages
//! on two hosts): each would read Defender's comments, find the copy missing and post it. Only
//! the holder of this short lease (a `Leases` row, written with an ETag guard) posts, after it
//! has re-read Defender's comments; the other gets a conflict, its message comes back after a
//! short delay, and its next reconcile finds the copies already there.

use std::time::Duration;

use crate::domain::defender::AlertComment;
use crate::error::PortError;
use crate::ports::Table;
use crate::records::Lease;
use crate::state::{modify, RowKey};
use crate::usecase::Ports;

/// Longer than any run of comment posts; a holder that crashed blocks copies for at most this.
pub const CLAIM_TTL: Duration = Duration::from_secs(60);

/// A held claim: release it when the posts are done.
pub struct Claim {
    key: RowKey,
    owner: String,
}

fn key(s: &Ports, incident_id: &str) -> Result<RowKey, PortError> {
    RowKey::new(&format!("comment-claims-{}", s.config.tenant_id), incident_id)
}

/// Takes the claim on `incident_id`'s comment copies, or answers a conflict (retry later) while
/// another instance holds it.
pub async fn acquire(s: &Ports, incident_id: &str) -> Result<Claim, PortError> {
    let now = s.clock.now();
    let expires = now + time::Duration::try_from(CLAIM_TTL).unwrap_or(time::Duration::minutes(1));
    let owner = uuid::Uuid::new_v4().to_string();
    let key = key(s, incident_id)?;
    let held = modify::<Lease, _>(s.store.as_ref(), Table::Leases, &key, |current| match current {
        Some(l) if l.owner != owner && l.expires > now => None,
        _ => Some(Lease { owner: owner.clone(), expires }),
    })
    .await?;
    if held.is_some_and(|l| l.owner == owner) {
        Ok(Claim { key, owner })
    } else {
        Err(PortError::conflict(
            "xdrsync",
            format!("another instance is copying comments into Defender incident {incident_id}"),
        ))
    }
}

/// Gives the claim up (best effort: it expires by itself).
pub async fn release(s: &Ports, claim: Claim) {
    let now = s.clock.now();
    let r = modify::<Lease, _>(s.store.as_ref(), Table::Leases, &claim.key, |current| match current {
        Some(l) if l.owner == claim.owner => Some(Lease { owner: claim.owner.clone(), expires: now }),
        _ => None,
    })
    .await;
    if let Err(e) = r {
        tracing::debug!(error.message = %e, "could not release the comment claim; it expires by itself");
    }
}

/// The texts still missing from Defender's `present` comments, with their index in `texts`
/// (pure: the copies another instance posted are skipped).
pub fn still_missing<'a>(texts: &'a [String], present: &[AlertComment]) -> Vec<(usize, &'a String)> {
    texts
        .iter()
        .enumerate()
        .filter(|(_, t)| !present.iter().any(|c| c.comment.as_deref() == Some(t.as_str())))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn ports() -> Ports {
        let mut s = crate::usecase::test_ports();
        s.store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
        s
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_a_released_claim_is_free_again() {
        let s = ports();
        let first = acquire(&s, "29").await.expect("free");
        let second = acquire(&s, "29").await.err().expect("held elsewhere");
        assert!(second.is_conflict(), "{second}");
        assert!(acquire(&s, "30").await.is_ok(), "claims are per incident");
        release(&s, first).await;
        assert!(acquire(&s, "29").await.is_ok(), "free after release");
    }

    #[test]
    fn copies_already_in_defender_are_not_posted_again() {
        let texts = vec!["[Sentinel] Bob: a".to_string(), "[Sentinel] Bob: b".to_string()];
        let present = vec![AlertComment { comment: Some("[Sentinel] Bob: a".into()), ..Default::default() }];
        let missing = still_missing(&texts, &present);
        assert_eq!(missing, vec![(1, &texts[1])]);
    }
}
