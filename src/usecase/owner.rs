//! Owner resolution: a UPN to an Entra objectId through Graph `/users/{upn}`, cached in Table
//! Storage with an expiry. Unknown users (and a Graph that refuses the lookup) resolve to
//! `object_id: None`: the owner is kept in a label and reported, never dropped.
//!
//! With many tenants (ARCHITECTURE.md: “Tenants”) Sentinel owners are users of the workspace's
//! tenant, so a Defender owner is looked up there; a Sentinel owner on its way to a customer's
//! Defender is looked up in that customer tenant (a member by UPN, or a B2B guest by `mail`).

use std::sync::Arc;

use crate::domain::mirror::ResolvedOwner;
use crate::ports::{DefenderApi, Table};
use crate::records::CachedUser;
use crate::state::{load, put, RowKey, Versioned};
use crate::usecase::Ports;

use super::UseCaseError;

/// The Entra user behind a Defender owner, in the directory Sentinel's owners come from.
pub async fn resolve(s: &Ports, upn: &str) -> Result<ResolvedOwner, UseCaseError> {
    let (graph, partition): (Arc<dyn DefenderApi>, &str) = match &s.tenants.workspace_users {
        Some(g) if s.is_multi_tenant() => (g.clone(), &s.tenants.workspace_tenant_id),
        _ => (s.defender.clone(), &s.config.tenant_id),
    };
    let object_id = lookup(s, graph.as_ref(), partition, upn, false).await?;
    if object_id.is_none() {
        tracing::warn!(owner.upn = %upn, "Defender owner is not an Entra user; kept as a label");
    }
    Ok(ResolvedOwner { upn: upn.to_string(), object_id })
}

/// Whether this scope's (customer) tenant knows `upn`, as a member or a B2B guest. `None` when
/// Graph refused to say (never fails the sync: the caller keeps Defender's assignment).
pub async fn known_in_customer(s: &Ports, upn: &str) -> Result<Option<bool>, UseCaseError> {
    match lookup(s, s.defender.as_ref(), &s.config.tenant_id, upn, true).await {
        Ok(id) => Ok(Some(id.is_some())),
        Err(e) if matches!(&e, UseCaseError::Retry(p) if p.is_retryable()) => Err(e),
        Err(e) => {
            tracing::warn!(owner.upn = %upn, error.message = %e, "could not look the owner up in the Defender tenant");
            Ok(None)
        }
    }
}

async fn lookup(
    s: &Ports,
    graph: &dyn DefenderApi,
    partition: &str,
    upn: &str,
    guests: bool,
) -> Result<Option<String>, UseCaseError> {
    let now = s.clock.now();
    let key = RowKey::new(partition, upn)?;
    let ttl = time::Duration::try_from(s.config.user_cache_ttl).unwrap_or(time::Duration::hours(24));
    let cached: Option<Versioned<CachedUser>> = load(s.store.as_ref(), Table::Users, &key).await?;
    if let Some(c) = cached {
        // Unknown users are re-checked sooner: they may have just been created.
        let ttl = if c.value.object_id.is_some() { ttl } else { ttl.min(time::Duration::hours(1)) };
        if c.value.checked_at + ttl > now {
            return Ok(c.value.object_id);
        }
    }
    let found = match graph.find_user(upn).await {
        Ok(Some(u)) => Ok(Some(u)),
        Ok(None) if guests => graph.find_guest(upn).await,
        other => other,
    };
    let object_id = match found {
        Ok(u) => u.map(|u| u.id),
        Err(e) if e.is_retryable() => return Err(e.into()),
        Err(e) => {
            tracing::warn!(owner.upn = %upn, error.message = %e, "owner lookup refused; treating the user as unknown");
            None
        }
    };
    put(s.store.as_ref(), Table::Users, &key, &CachedUser { object_id: object_id.clone(), checked_at: now }, &[])
        .await?;
    Ok(object_id)
}
