//! `help`: the configuration and the nearest DC, callable before sign-in.

use std::sync::{Arc, Mutex, PoisonError};

use columba_mtproto::tl::api::{enums, functions, types};

use crate::answer::Encoded;
use crate::backend::Backend;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::objects;
use crate::router::Router;

/// `help.getConfig` and `help.getNearestDc`.
pub fn router(backend: Arc<Backend>) -> Router {
    Router::new()
        .public_with(Arc::new(ConfigCache::new(backend.clone())), get_config)
        .public_with(backend, get_nearest_dc)
}

/// The configuration, encoded once per second. Every client asks for it on every
/// connection and it changes only in its `date` (and `expires`), so it is built and encoded
/// when the second changes, not for every caller.
#[derive(Debug)]
pub struct ConfigCache {
    backend: Arc<Backend>,
    current: Mutex<Option<(i32, Encoded<enums::Config>)>>,
}

impl ConfigCache {
    /// A cache of `backend`'s configuration (nothing is built until asked).
    pub fn new(backend: Arc<Backend>) -> Self {
        Self {
            backend,
            current: Mutex::new(None),
        }
    }

    /// The configuration dated `now` (Unix seconds).
    pub fn at(&self, now: i32) -> Encoded<enums::Config> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        match &*current {
            Some((date, config)) if *date == now => config.clone(),
            _ => {
                let config = Encoded::new(&objects::config(&self.backend.dcs, now));
                *current = Some((now, config.clone()));
                config
            }
        }
    }
}

/// `help.getConfig`: the DC list and Telegram's usual limits.
pub async fn get_config(
    _: Ctx,
    cache: Arc<ConfigCache>,
    _: functions::help::GetConfig,
) -> Result<Encoded<enums::Config>, ApiError> {
    Ok(cache.at(objects::now_unix()))
}

/// `help.getNearestDc`: this DC (no geography is known).
pub async fn get_nearest_dc(
    _: Ctx,
    backend: Arc<Backend>,
    _: functions::help::GetNearestDc,
) -> Result<enums::NearestDc, ApiError> {
    Ok(types::NearestDc {
        country: "ZZ".to_owned(),
        this_dc: backend.dcs.this_dc,
        nearest_dc: backend.dcs.this_dc,
    }
    .into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use columba_mtproto::tl::{Deserializable as _, Serializable as _};
    use columba_store::{MemoryAuthKeyStore, MemoryFileStore, MemoryMessageStore, MemoryUserStore};

    use super::*;
    use crate::access::AccessSecret;
    use crate::objects::DcList;

    #[test]
    fn the_cached_configuration_is_the_built_one_and_follows_the_clock() {
        let backend = Backend::new(
            Arc::new(MemoryMessageStore::new()),
            Arc::new(MemoryFileStore::new()),
            Arc::new(MemoryAuthKeyStore::new()),
            Arc::new(MemoryUserStore::new()),
            AccessSecret::new([1; 32]),
            DcList::single(2, "127.0.0.1:443".parse().unwrap()),
        );
        let cache = ConfigCache::new(backend.clone());
        let first = cache.at(1_000);
        assert_eq!(
            first.bytes().as_ref(),
            objects::config(&backend.dcs, 1_000).to_bytes().as_slice()
        );
        assert_eq!(cache.at(1_000).bytes(), first.bytes());
        let later = cache.at(1_001);
        let enums::Config::Config(config) = enums::Config::from_bytes(later.bytes()).unwrap();
        assert_eq!((config.date, config.this_dc), (1_001, 2));
    }
}
