//! [`AuthKeyStore`] on RocksDB: keys, bindings and an expiry index in one instance.
//!
//! Writes are serialised by one mutex (keys change at handshakes and binds, rarely next to
//! messages) and each is one synced `WriteBatch`; reads go to the database without locking.
//! Rows (`docs/storage-format.md`): `0a` the key record, `0b` a temporary key's binding,
//! `0c` a permanent key's current temporary key, `0d` temporary keys by expiry (for the
//! sweep).

use crate::BackendError;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use super::instance::{Instance, Reader, Tuning};
use super::shards::{Durability, OpenError};
use crate::auth_key::{AuthKeyError, AuthKeyRecord, AuthKeyStore, KeyLifetime, ResolvedKey};
use crate::codec::{
    BatchOp, decode_auth_key, decode_binding, decode_key_id, encode_auth_key, encode_binding,
    encode_key_id,
};
use crate::keys::{self, Prefix};
use crate::message::MessageError;

/// Authorization keys in a RocksDB database of their own.
#[derive(Debug)]
pub struct RocksAuthKeyStore {
    instance: Instance,
    writer: Mutex<()>,
}

fn backend(error: MessageError) -> AuthKeyError {
    match error {
        MessageError::Backend(cause) => AuthKeyError::Backend(cause),
        MessageError::Poisoned { cause, .. } => AuthKeyError::Poisoned(cause),
        other => AuthKeyError::Backend(BackendError::with_source("key store", other)),
    }
}

impl RocksAuthKeyStore {
    /// Opens (or creates) the key store at `path`. With [`Durability::Sync`] a key is on disk
    /// before the handshake that made it answers; [`Durability::Periodic`] is refused: a lost
    /// key would leave a client with a key the server no longer knows.
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> Result<Self, OpenError> {
        if durability != Durability::Sync {
            return Err(OpenError::Options("the key store writes synchronously"));
        }
        std::fs::create_dir_all(path.as_ref())?;
        let cache = rocksdb::Cache::new_lru_cache(8 << 20);
        let tuning = Tuning {
            statistics: false,
            write_buffer_bytes: 4 << 20,
            sync: true,
        };
        let instance = Instance::open(path.as_ref(), 0, &cache, tuning).map_err(|error| {
            OpenError::Engine {
                instance: 0,
                message: error.to_string(),
            }
        })?;
        Ok(Self {
            instance,
            writer: Mutex::new(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // Guards nothing but the order of writers.
        crate::lock(&self.writer)
    }

    fn write(&self, ops: &[BatchOp]) -> Result<(), AuthKeyError> {
        self.instance.write(ops, true).map_err(backend)
    }

    fn record(reader: &Reader<'_>, id: i64) -> Result<Option<AuthKeyRecord>, AuthKeyError> {
        reader
            .get(&keys::auth_key(Prefix::AuthKey, id), |value| {
                decode_auth_key(value).map_err(|error| {
                    MessageError::Backend(BackendError::with_source("key store", error))
                })
            })
            .map_err(backend)
    }

    fn binding(reader: &Reader<'_>, temp: i64) -> Result<Option<(i64, i64)>, AuthKeyError> {
        reader
            .get(&keys::auth_key(Prefix::TempBinding, temp), |value| {
                decode_binding(value).map_err(|error| {
                    MessageError::Backend(BackendError::with_source("key store", error))
                })
            })
            .map_err(backend)
    }

    fn temp_of(reader: &Reader<'_>, perm: i64) -> Result<Option<i64>, AuthKeyError> {
        reader
            .get(&keys::auth_key(Prefix::PermBinding, perm), |value| {
                decode_key_id(value).map_err(|error| {
                    MessageError::Backend(BackendError::with_source("key store", error))
                })
            })
            .map_err(backend)
    }

    /// The rows that undo a temporary key's binding.
    fn unbind_temp(
        reader: &Reader<'_>,
        temp: i64,
        ops: &mut Vec<BatchOp>,
    ) -> Result<(), AuthKeyError> {
        if let Some((perm, _)) = Self::binding(reader, temp)? {
            ops.push(BatchOp::delete(keys::auth_key(Prefix::TempBinding, temp)));
            if Self::temp_of(reader, perm)? == Some(temp) {
                ops.push(BatchOp::delete(keys::auth_key(Prefix::PermBinding, perm)));
            }
        }
        Ok(())
    }

    /// The rows that undo a permanent key's binding.
    fn unbind_perm(
        reader: &Reader<'_>,
        perm: i64,
        ops: &mut Vec<BatchOp>,
    ) -> Result<(), AuthKeyError> {
        if let Some(temp) = Self::temp_of(reader, perm)? {
            ops.push(BatchOp::delete(keys::auth_key(Prefix::PermBinding, perm)));
            ops.push(BatchOp::delete(keys::auth_key(Prefix::TempBinding, temp)));
        }
        Ok(())
    }
}

impl AuthKeyStore for RocksAuthKeyStore {
    fn insert(&self, record: AuthKeyRecord) -> Result<(), AuthKeyError> {
        let _writer = self.lock();
        let reader = self.instance.latest();
        let id = record.auth_key_id;
        if reader
            .contains(&keys::auth_key(Prefix::AuthKey, id))
            .map_err(backend)?
        {
            return Err(AuthKeyError::AlreadyExists(id));
        }
        let mut ops = vec![BatchOp::put(
            keys::auth_key(Prefix::AuthKey, id),
            encode_auth_key(&record),
        )];
        if let KeyLifetime::Temporary { expires_at } = record.lifetime {
            ops.push(BatchOp::put(keys::key_expiry(expires_at, id), Vec::new()));
        }
        self.write(&ops)
    }

    fn contains(&self, auth_key_id: i64) -> Result<bool, AuthKeyError> {
        self.instance
            .latest()
            .contains(&keys::auth_key(Prefix::AuthKey, auth_key_id))
            .map_err(backend)
    }

    fn get(&self, auth_key_id: i64) -> Result<Option<AuthKeyRecord>, AuthKeyError> {
        Self::record(&self.instance.latest(), auth_key_id)
    }

    fn remove(&self, auth_key_id: i64) -> Result<bool, AuthKeyError> {
        let _writer = self.lock();
        let reader = self.instance.latest();
        let Some(record) = Self::record(&reader, auth_key_id)? else {
            return Ok(false);
        };
        let mut ops = Vec::new();
        Self::unbind_temp(&reader, auth_key_id, &mut ops)?;
        Self::unbind_perm(&reader, auth_key_id, &mut ops)?;
        ops.push(BatchOp::delete(keys::auth_key(
            Prefix::AuthKey,
            auth_key_id,
        )));
        if let KeyLifetime::Temporary { expires_at } = record.lifetime {
            ops.push(BatchOp::delete(keys::key_expiry(expires_at, auth_key_id)));
        }
        self.write(&ops)?;
        Ok(true)
    }

    fn bind_temp(
        &self,
        temp_auth_key_id: i64,
        perm_auth_key_id: i64,
        expires_at: i64,
        now: i64,
    ) -> Result<(), AuthKeyError> {
        let _writer = self.lock();
        let reader = self.instance.latest();
        let temp = Self::record(&reader, temp_auth_key_id)?
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
        let perm = Self::record(&reader, perm_auth_key_id)?
            .ok_or(AuthKeyError::NotFound(perm_auth_key_id))?;
        if perm.lifetime != KeyLifetime::Permanent {
            return Err(AuthKeyError::NotPermanent(perm_auth_key_id));
        }
        if let Some((bound_to, _)) = Self::binding(&reader, temp_auth_key_id)? {
            if bound_to != perm_auth_key_id {
                return Err(AuthKeyError::AlreadyBound(temp_auth_key_id));
            }
        }
        let mut ops = Vec::new();
        Self::unbind_perm(&reader, perm_auth_key_id, &mut ops)?;
        ops.push(BatchOp::put(
            keys::auth_key(Prefix::TempBinding, temp_auth_key_id),
            encode_binding(perm_auth_key_id, expires_at.min(key_expires_at)),
        ));
        ops.push(BatchOp::put(
            keys::auth_key(Prefix::PermBinding, perm_auth_key_id),
            encode_key_id(temp_auth_key_id),
        ));
        self.write(&ops)
    }

    fn resolve(&self, auth_key_id: i64, now: i64) -> Result<ResolvedKey, AuthKeyError> {
        let reader = self.instance.snapshot();
        let record =
            Self::record(&reader, auth_key_id)?.ok_or(AuthKeyError::NotFound(auth_key_id))?;
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
                let (perm, binding_expires) = Self::binding(&reader, auth_key_id)?
                    .ok_or(AuthKeyError::Unbound(auth_key_id))?;
                if binding_expires <= now {
                    return Err(AuthKeyError::Expired(auth_key_id));
                }
                let perm_record =
                    Self::record(&reader, perm)?.ok_or(AuthKeyError::Unbound(auth_key_id))?;
                Ok(ResolvedKey {
                    auth_key_id,
                    perm_auth_key_id: perm,
                    user_id: perm_record.user_id,
                })
            }
        }
    }

    fn set_user(&self, perm_auth_key_id: i64, user_id: Option<i64>) -> Result<(), AuthKeyError> {
        let _writer = self.lock();
        let reader = self.instance.latest();
        let mut record = Self::record(&reader, perm_auth_key_id)?
            .ok_or(AuthKeyError::NotFound(perm_auth_key_id))?;
        if record.lifetime != KeyLifetime::Permanent {
            return Err(AuthKeyError::NotPermanent(perm_auth_key_id));
        }
        record.user_id = user_id;
        self.write(&[BatchOp::put(
            keys::auth_key(Prefix::AuthKey, perm_auth_key_id),
            encode_auth_key(&record),
        )])
    }

    fn remove_expired(&self, now: i64) -> Result<usize, AuthKeyError> {
        let _writer = self.lock();
        let reader = self.instance.latest();
        let mut expired = Vec::new();
        {
            let mut walk = reader.range(&[Prefix::KeyExpiry as u8]).map_err(backend)?;
            walk.first();
            while let Some((key, _)) = walk.item().map_err(backend)? {
                let (expires_at, id) = keys::decode_key_expiry(key).map_err(|error| {
                    AuthKeyError::Backend(BackendError::with_source("key store", error))
                })?;
                if expires_at > now {
                    break;
                }
                expired.push((expires_at, id));
                walk.next();
            }
        }
        let mut ops = Vec::new();
        for (expires_at, id) in &expired {
            Self::unbind_temp(&reader, *id, &mut ops)?;
            ops.push(BatchOp::delete(keys::auth_key(Prefix::AuthKey, *id)));
            ops.push(BatchOp::delete(keys::key_expiry(*expires_at, *id)));
        }
        if !ops.is_empty() {
            self.write(&ops)?;
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
        // The scan reads a snapshot and needs no lock; the caller's check is asked with
        // none held, as it takes its own locks, which may be held by someone waiting to
        // write here.
        let mut candidates = Vec::new();
        {
            let reader = self.instance.latest();
            let mut walk = reader.range(&[Prefix::AuthKey as u8]).map_err(backend)?;
            walk.first();
            while let Some((_, value)) = walk.item().map_err(backend)? {
                let record = decode_auth_key(value).map_err(|error| {
                    AuthKeyError::Backend(BackendError::with_source("key store", error))
                })?;
                if unsigned(&record) {
                    candidates.push(record.auth_key_id);
                }
                walk.next();
            }
        }
        candidates.retain(|id| !in_use(*id));
        let _writer = self.lock();
        let reader = self.instance.latest();
        let mut removed = 0;
        // In batches: one synced write per thousand keys, not one per key.
        for chunk in candidates.chunks(1000) {
            let mut ops = Vec::new();
            for &id in chunk {
                // Signed in or gone meanwhile: left alone.
                if !Self::record(&reader, id)?.as_ref().is_some_and(unsigned) {
                    continue;
                }
                Self::unbind_perm(&reader, id, &mut ops)?;
                ops.push(BatchOp::delete(keys::auth_key(Prefix::AuthKey, id)));
                removed += 1;
            }
            if !ops.is_empty() {
                self.write(&ops)?;
            }
        }
        if removed > 0 {
            self.instance
                .compact_prefix(&[Prefix::AuthKey as u8])
                .map_err(backend)?;
        }
        Ok(removed)
    }
}
