//! What a client said about itself in the wrappers of its requests (`invokeWithLayer`,
//! `initConnection`), kept per session so that every later request of the session sees it.
//!
//! The table is bounded ([`crate::ApiOptions::max_session_infos`]): when it is full the
//! oldest session's entry goes. A session that comes back after that simply has no info
//! until its client sends the wrappers again (clients send them on every new connection).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use columba_session::SessionKey;

/// The client of a session, as `initConnection` described it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientInfo {
    /// The application's api_id.
    pub api_id: i32,
    /// Device model (`"PC 64bit"`, `"iPhone 15"`).
    pub device_model: String,
    /// Operating system and version.
    pub system_version: String,
    /// The application's version.
    pub app_version: String,
    /// The system's language code.
    pub system_lang_code: String,
    /// The language pack (`"tdesktop"`, or empty).
    pub lang_pack: String,
    /// The language the client shows.
    pub lang_code: String,
}

/// What is known about one session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The API layer the client speaks (`invokeWithLayer`), if it said.
    pub layer: Option<i32>,
    /// The client, if it sent `initConnection`.
    pub client: Option<ClientInfo>,
    /// The session asked for no updates (`invokeWithoutUpdates`); from then on the runtime
    /// pushes it none (`ServerHandle::set_receives_updates`).
    pub without_updates: bool,
    /// What the session's queries say about its updates ([`Subscription`]).
    pub subscription: Subscription,
}

/// Whether a session takes updates, from what it asked (core.telegram.org/api/updates,
/// "Subscribing to updates": any query but the file methods associates the session with its
/// user; a client may open sessions for file transfers that take none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subscription {
    /// No query yet.
    #[default]
    Unknown,
    /// Only file transfers so far: it takes no updates.
    FilesOnly,
    /// It made another query: it takes updates (unless it asked for none).
    Subscribed,
}

/// The file methods, which do not subscribe a session to updates (`upload.*`).
pub(crate) fn is_file_method(constructor: u32) -> bool {
    use columba_mtproto::tl::Identifiable as _;
    use columba_mtproto::tl::api::functions::upload;
    [
        upload::SaveFilePart::CONSTRUCTOR_ID,
        upload::SaveBigFilePart::CONSTRUCTOR_ID,
        upload::GetFile::CONSTRUCTOR_ID,
        upload::GetFileHashes::CONSTRUCTOR_ID,
        upload::GetCdnFile::CONSTRUCTOR_ID,
        upload::GetCdnFileHashes::CONSTRUCTOR_ID,
        upload::ReuploadCdnFile::CONSTRUCTOR_ID,
        upload::GetWebFile::CONSTRUCTOR_ID,
    ]
    .contains(&constructor)
}

/// Independently locked parts of the table, so that sessions on different worker threads
/// rarely wait for each other.
const STRIPES: usize = 16;

#[derive(Default)]
struct Stripe {
    infos: HashMap<SessionKey, Arc<SessionInfo>>,
    /// Insertion order, for eviction; each session appears once.
    order: VecDeque<SessionKey>,
}

/// The bounded table of [`SessionInfo`]s.
pub(crate) struct SessionInfos {
    stripes: Vec<Mutex<Stripe>>,
    per_stripe: usize,
    empty: Arc<SessionInfo>,
}

impl SessionInfos {
    /// A table of at most about `capacity` sessions.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
            per_stripe: capacity.div_ceil(STRIPES).max(1),
            empty: Arc::new(SessionInfo::default()),
        }
    }

    fn stripe(&self, session: SessionKey) -> MutexGuard<'_, Stripe> {
        // Session ids are random (client-chosen, but a client choosing them only crowds
        // its own stripe, which is bounded like the others).
        let index = (session.session_id as u64 ^ session.auth_key_id as u64) as usize % STRIPES;
        #[allow(clippy::indexing_slicing, reason = "index < STRIPES = stripes.len()")]
        self.stripes[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The session's info (an empty one if nothing is known).
    pub(crate) fn get(&self, session: SessionKey) -> Arc<SessionInfo> {
        self.stripe(session)
            .infos
            .get(&session)
            .cloned()
            .unwrap_or_else(|| self.empty.clone())
    }

    /// Changes the session's info with `change` and returns the new one.
    pub(crate) fn update(
        &self,
        session: SessionKey,
        change: impl FnOnce(&mut SessionInfo),
    ) -> Arc<SessionInfo> {
        let mut stripe = self.stripe(session);
        if let Some(info) = stripe.infos.get_mut(&session) {
            change(Arc::make_mut(info));
            return info.clone();
        }
        while stripe.infos.len() >= self.per_stripe {
            let Some(oldest) = stripe.order.pop_front() else {
                break;
            };
            stripe.infos.remove(&oldest);
        }
        let mut info = SessionInfo::default();
        change(&mut info);
        let info = Arc::new(info);
        stripe.infos.insert(session, info.clone());
        stripe.order.push_back(session);
        info
    }

    /// Forgets every session of a key (destroyed, or logged out).
    pub(crate) fn forget_key(&self, auth_key_id: i64) {
        for stripe in &self.stripes {
            let mut stripe = stripe.lock().unwrap_or_else(PoisonError::into_inner);
            stripe
                .infos
                .retain(|session, _| session.auth_key_id != auth_key_id);
            let Stripe { infos, order } = &mut *stripe;
            order.retain(|session| infos.contains_key(session));
        }
    }

    /// Sessions with an entry now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.stripes
            .iter()
            .map(|stripe| {
                stripe
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .infos
                    .len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(session_id: i64) -> SessionKey {
        SessionKey {
            auth_key_id: 1,
            session_id,
        }
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_oldest() {
        let infos = SessionInfos::new(32);
        for id in 0..1000 {
            infos.update(key(id), |info| info.layer = Some(229));
        }
        assert!(infos.len() <= 32, "{} entries", infos.len());
        assert_eq!(infos.get(key(999)).layer, Some(229));
        assert_eq!(infos.get(key(0)).layer, None, "the oldest went");
    }

    #[test]
    fn updates_change_one_session_and_keys_are_forgotten() {
        let infos = SessionInfos::new(100);
        infos.update(key(1), |info| info.layer = Some(198));
        infos.update(key(1), |info| info.without_updates = true);
        infos.update(key(2), |info| info.layer = Some(229));
        let one = infos.get(key(1));
        assert_eq!((one.layer, one.without_updates), (Some(198), true));
        assert!(!infos.get(key(2)).without_updates);
        infos.forget_key(1);
        assert_eq!(infos.len(), 0);
    }
}
