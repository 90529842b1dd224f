//! Owner resolution: a Defender UPN to an Entra objectId through Graph `/users/{upn}`, cached in
//! Table Storage with an expiry. Unknown users (and a Graph that refuses the lookup) resolve to
//! `object_id: None`: the owner is kept in a label and reported, never dropped.

use crate::domain::mirror::ResolvedOwner;
use crate::ports::Table;
use crate::records::CachedUser;
use crate::state::{load, put, RowKey, Versioned};
use crate::usecase::Ports;

use super::UseCaseError;

pub async fn resolve(s: &Ports, upn: &str) -> Result<ResolvedOwner, UseCaseError> {
    let now = s.clock.now();
    let key = RowKey::new(&s.config.tenant_id, upn)?;
    let ttl = time::Duration::try_from(s.config.user_cache_ttl).unwrap_or(time::Duration::hours(24));
    let cached: Option<Versioned<CachedUser>> = load(s.store.as_ref(), Table::Users, &key).await?;
    if let Some(c) = cached {
        // Unknown users are re-checked sooner: they may have just been created.
        let ttl = if c.value.object_id.is_some() { ttl } else { ttl.min(time::Duration::hours(1)) };
        if c.value.checked_at + ttl > now {
            return Ok(ResolvedOwner { upn: upn.to_string(), object_id: c.value.object_id });
        }
    }
    let object_id = match s.defender.find_user(upn).await {
        Ok(u) => u.map(|u| u.id),
        Err(e) if e.is_retryable() => return Err(e.into()),
        Err(e) => {
            tracing::warn!(owner.upn = %upn, error.message = %e, "owner lookup refused; keeping the UPN in a label");
            None
        }
    };
    if object_id.is_none() {
        tracing::warn!(owner.upn = %upn, "Defender owner is not an Entra user; kept as a label");
    }
    put(s.store.as_ref(), Table::Users, &key, &CachedUser { object_id: object_id.clone(), checked_at: now }, &[])
        .await?;
    Ok(ResolvedOwner { upn: upn.to_string(), object_id })
}
