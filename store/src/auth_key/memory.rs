//! The in-memory [`AuthKeyStore`].

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::{AuthKeyError, AuthKeyRecord, AuthKeyStore, KeyLifetime, ResolvedKey};

#[derive(Default)]
struct Inner {
    keys: HashMap<i64, AuthKeyRecord>,
    /// temporary key -> (permanent key, binding expiry)
    temp_to_perm: HashMap<i64, (i64, i64)>,
    /// permanent key -> its current temporary key
    perm_to_temp: HashMap<i64, i64>,
}

impl Inner {
    fn unbind_temp(&mut self, temp: i64) {
        if let Some((perm, _)) = self.temp_to_perm.remove(&temp) {
            if self.perm_to_temp.get(&perm) == Some(&temp) {
                self.perm_to_temp.remove(&perm);
            }
        }
    }

    fn unbind_perm(&mut self, perm: i64) {
        if let Some(temp) = self.perm_to_temp.remove(&perm) {
            self.temp_to_perm.remove(&temp);
        }
    }
}

/// Keys in a `HashMap` behind a mutex: for tests and for servers that do not need keys to
/// survive a restart.
#[derive(Default)]
pub struct MemoryAuthKeyStore {
    inner: Mutex<Inner>,
}

impl core::fmt::Debug for MemoryAuthKeyStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemoryAuthKeyStore").finish_non_exhaustive()
    }
}

impl MemoryAuthKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied change: every method
        // validates before it mutates.
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl AuthKeyStore for MemoryAuthKeyStore {
    fn insert(&self, record: AuthKeyRecord) -> Result<(), AuthKeyError> {
        let mut inner = self.lock();
        if inner.keys.contains_key(&record.auth_key_id) {
            return Err(AuthKeyError::AlreadyExists(record.auth_key_id));
        }
        inner.keys.insert(record.auth_key_id, record);
        Ok(())
    }

    fn contains(&self, auth_key_id: i64) -> Result<bool, AuthKeyError> {
        Ok(self.lock().keys.contains_key(&auth_key_id))
    }

    fn get(&self, auth_key_id: i64) -> Result<Option<AuthKeyRecord>, AuthKeyError> {
        Ok(self.lock().keys.get(&auth_key_id).cloned())
    }

    fn remove(&self, auth_key_id: i64) -> Result<bool, AuthKeyError> {
        let mut inner = self.lock();
        inner.unbind_temp(auth_key_id);
        inner.unbind_perm(auth_key_id);
        Ok(inner.keys.remove(&auth_key_id).is_some())
    }

    fn bind_temp(
        &self,
        temp_auth_key_id: i64,
        perm_auth_key_id: i64,
        expires_at: i64,
        now: i64,
    ) -> Result<(), AuthKeyError> {
        let mut inner = self.lock();
        let temp = inner
            .keys
            .get(&temp_auth_key_id)
            .ok_or(AuthKeyError::NotFound(temp_auth_key_id))?;
        let KeyLifetime::Temporary {
            expires_at: key_expires_at,
        } = temp.lifetime
        else {
            return Err(AuthKeyError::NotTemporary(temp_auth_key_id));
        };
        if key_expires_at <= now {
            return Err(AuthKeyError::Expired(temp_auth_key_id));
        }
        let perm = inner
            .keys
            .get(&perm_auth_key_id)
            .ok_or(AuthKeyError::NotFound(perm_auth_key_id))?;
        if perm.lifetime != KeyLifetime::Permanent {
            return Err(AuthKeyError::NotPermanent(perm_auth_key_id));
        }
        if let Some((bound_to, _)) = inner.temp_to_perm.get(&temp_auth_key_id) {
            if *bound_to != perm_auth_key_id {
                return Err(AuthKeyError::AlreadyBound(temp_auth_key_id));
            }
        }
        inner.unbind_perm(perm_auth_key_id);
        let expires_at = expires_at.min(key_expires_at);
        inner
            .temp_to_perm
            .insert(temp_auth_key_id, (perm_auth_key_id, expires_at));
        inner
            .perm_to_temp
            .insert(perm_auth_key_id, temp_auth_key_id);
        Ok(())
    }

    fn resolve(&self, auth_key_id: i64, now: i64) -> Result<ResolvedKey, AuthKeyError> {
        let inner = self.lock();
        let record = inner
            .keys
            .get(&auth_key_id)
            .ok_or(AuthKeyError::NotFound(auth_key_id))?;
        match record.lifetime {
            KeyLifetime::Permanent => Ok(ResolvedKey {
                auth_key_id,
                perm_auth_key_id: auth_key_id,
                user_id: record.user_id,
            }),
            KeyLifetime::Temporary { expires_at } => {
                if expires_at <= now {
                    return Err(AuthKeyError::Expired(auth_key_id));
                }
                let (perm, binding_expires) = *inner
                    .temp_to_perm
                    .get(&auth_key_id)
                    .ok_or(AuthKeyError::Unbound(auth_key_id))?;
                if binding_expires <= now {
                    return Err(AuthKeyError::Expired(auth_key_id));
                }
                let perm_record = inner
                    .keys
                    .get(&perm)
                    .ok_or(AuthKeyError::Unbound(auth_key_id))?;
                Ok(ResolvedKey {
                    auth_key_id,
                    perm_auth_key_id: perm,
                    user_id: perm_record.user_id,
                })
            }
        }
    }

    fn set_user(&self, perm_auth_key_id: i64, user_id: Option<i64>) -> Result<(), AuthKeyError> {
        let mut inner = self.lock();
        let record = inner
            .keys
            .get_mut(&perm_auth_key_id)
            .ok_or(AuthKeyError::NotFound(perm_auth_key_id))?;
        if record.lifetime != KeyLifetime::Permanent {
            return Err(AuthKeyError::NotPermanent(perm_auth_key_id));
        }
        record.user_id = user_id;
        Ok(())
    }

    fn remove_expired(&self, now: i64) -> Result<usize, AuthKeyError> {
        let mut inner = self.lock();
        let expired: Vec<i64> = inner
            .keys
            .values()
            .filter(|record| matches!(record.lifetime, KeyLifetime::Temporary { expires_at } if expires_at <= now))
            .map(|record| record.auth_key_id)
            .collect();
        for id in &expired {
            inner.unbind_temp(*id);
            inner.keys.remove(id);
        }
        Ok(expired.len())
    }

    fn remove_unsigned(
        &self,
        created_before: i64,
        in_use: &dyn Fn(i64) -> bool,
    ) -> Result<usize, AuthKeyError> {
        let unsigned = |record: &AuthKeyRecord| {
            record.lifetime == KeyLifetime::Permanent
                && record.user_id.is_none()
                && record.created_at < created_before
        };
        let candidates: Vec<i64> = {
            let inner = self.lock();
            inner
                .keys
                .values()
                .filter(|record| unsigned(record))
                .map(|record| record.auth_key_id)
                .collect()
        };
        // Asked with the lock released: the caller's check takes its own locks, which may
        // be held by someone waiting for this store.
        let idle: Vec<i64> = candidates.into_iter().filter(|id| !in_use(*id)).collect();
        let mut inner = self.lock();
        let mut removed = 0;
        for id in idle {
            // Signed in meanwhile: it stays.
            if inner.keys.get(&id).is_some_and(unsigned) {
                inner.unbind_perm(id);
                inner.keys.remove(&id);
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_passes_the_conformance_suite() {
        super::super::conformance::run_all(&|| Box::new(MemoryAuthKeyStore::new()));
    }
}
