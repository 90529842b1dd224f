//! A Sentinel owner on its way to a customer tenant's Defender incident (ARCHITECTURE.md:
//! “Tenants”). Sentinel's analysts are usually users of the MSSP's tenant, not the customer's:
//! the owner is assigned in Defender only when the customer tenant knows the UPN (a member, or
//! a B2B guest); otherwise Defender's assignment is kept and a Defender comment records the
//! Sentinel owner. Never fails the sync over it.
//!
//! No ping-pong: without the owner in the PATCH, Defender keeps showing the assignment it had,
//! which the state row stores as Defender's view, so the merge does not ask again.

use crate::domain::defender::DefenderIncidentPatch;
use crate::domain::tenants::{owner_across_tenants, OwnerAcrossTenants};
use crate::usecase::{owner, Ports, UseCaseError};

type Patches = (Option<DefenderIncidentPatch>, Option<DefenderIncidentPatch>);

/// The patch (and its `inProgress` fallback) as they may be sent to this tenant's Defender.
pub async fn check(
    s: &Ports,
    incident_id: &str,
    patch: Option<DefenderIncidentPatch>,
    fallback: Option<DefenderIncidentPatch>,
) -> Result<Patches, UseCaseError> {
    let Some(Some(upn)) = patch.as_ref().and_then(|p| p.assigned_to.clone()) else {
        return Ok((patch, fallback));
    };
    if upn.trim().is_empty() {
        return Ok((patch, fallback));
    }
    let known = owner::known_in_customer(s, &upn).await?;
    match owner_across_tenants(&upn, known) {
        OwnerAcrossTenants::Assign => Ok((patch, fallback)),
        OwnerAcrossTenants::KeepWithComment(comment) => {
            tracing::info!(owner.upn = %upn, "Sentinel owner is not a user of the Defender tenant; assignment kept, comment added");
            if let Err(e) = s.defender.add_comment(incident_id, &comment).await {
                if e.is_retryable() {
                    return Err(e.into());
                }
                tracing::warn!(error.message = %e, "could not record the Sentinel owner in a Defender comment");
            }
            let strip = |p: Option<DefenderIncidentPatch>| {
                p.map(|mut p| {
                    p.assigned_to = None;
                    p
                })
                .filter(|p| p != &DefenderIncidentPatch::default())
            };
            Ok((strip(patch), strip(fallback)))
        }
    }
}
