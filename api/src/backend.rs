//! [`Backend`]: what the stock modules work on (the stores, the access secret, the DC
//! list), and the lookups several modules share (users as a viewer sees them, `InputPeer`
//! and `InputUser` checked against their access hashes).

use std::collections::BTreeSet;
use std::sync::Arc;

use columba_mtproto::tl::api::enums;
use columba_store::message::{Peer, StoredMessage};
use columba_store::{
    AuthKeyStore, FileStore, MemorySecretStore, MessageStore, SecretStore, UserStore,
};

use crate::access::AccessSecret;
use crate::error::ApiError;
use crate::objects::{self, DcList, Relation};

/// The stores and settings behind the stock modules. Shared (`Arc`) by every handler.
#[non_exhaustive]
pub struct Backend {
    /// Boxes, the update log, history.
    pub messages: Arc<dyn MessageStore>,
    /// File parts and finished files.
    pub files: Arc<dyn FileStore>,
    /// Auth keys (sign-in binds a key to its user).
    pub keys: Arc<dyn AuthKeyStore>,
    /// People: accounts, contacts, blocks, authorizations, devices.
    pub users: Arc<dyn UserStore>,
    /// The secret-chat relay: chats between devices, their queues.
    pub secrets: Arc<dyn SecretStore>,
    /// The secret behind access hashes.
    pub access: AccessSecret,
    /// The DCs clients are told about.
    pub dcs: DcList,
    /// The members of each channel present on this node (who a post goes to).
    pub present: crate::channels::PresentMembers,
    /// Which users are bots, remembered.
    kinds: crate::bots::kinds::AccountKinds,
    /// The feeds of bots served by a front inside the server (the Bot API).
    pub bot_feeds: crate::bots::BotFeeds,
    /// Button presses waiting for their bots' answers.
    pub(crate) presses: crate::bots::callbacks::Pending,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("dcs", &self.dcs)
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// A backend over these stores, with the secret-chat relay's state in memory (see
    /// [`Self::with_secrets`]).
    pub fn new(
        messages: Arc<dyn MessageStore>,
        files: Arc<dyn FileStore>,
        keys: Arc<dyn AuthKeyStore>,
        users: Arc<dyn UserStore>,
        access: AccessSecret,
        dcs: DcList,
    ) -> Arc<Self> {
        Self::with_secrets(
            messages,
            files,
            keys,
            users,
            Arc::new(MemorySecretStore::new()),
            access,
            dcs,
        )
    }

    /// A backend over these stores, the secret-chat relay's included.
    pub fn with_secrets(
        messages: Arc<dyn MessageStore>,
        files: Arc<dyn FileStore>,
        keys: Arc<dyn AuthKeyStore>,
        users: Arc<dyn UserStore>,
        secrets: Arc<dyn SecretStore>,
        access: AccessSecret,
        dcs: DcList,
    ) -> Arc<Self> {
        Arc::new(Self {
            messages,
            files,
            keys,
            users,
            secrets,
            access,
            dcs,
            present: crate::channels::PresentMembers::default(),
            kinds: crate::bots::kinds::AccountKinds::default(),
            bot_feeds: crate::bots::BotFeeds::default(),
            presses: crate::bots::callbacks::Pending::default(),
        })
    }

    /// Whether user `id` is a bot (an unknown id is not). Remembered after the first read,
    /// which may block.
    pub fn is_bot(&self, id: i64) -> Result<bool, ApiError> {
        Ok(self.kinds.is_bot(self.users.as_ref(), id)?)
    }

    /// How `viewer` and user `id` know each other: whether each has the other as contact.
    pub fn relation(&self, viewer: i64, id: i64) -> Result<Relation, ApiError> {
        if viewer == id {
            return Ok(Relation::default());
        }
        let mine = self.users.contact(viewer, id)?;
        let theirs = self.users.contact(id, viewer)?.is_some();
        Ok(Relation {
            contact: mine.is_some(),
            mutual: mine.is_some() && theirs,
            phone_visible: theirs || mine.is_some_and(|contact| contact.phone_known),
        })
    }

    /// User `id` as `viewer` sees it, if it exists (deleted accounts included, as
    /// Telegram shows them).
    pub fn user_object(&self, id: i64, viewer: i64) -> Result<Option<enums::User>, ApiError> {
        let Some(account) = self.users.account(id)? else {
            return Ok(None);
        };
        let relation = self.relation(viewer, id)?;
        Ok(Some(objects::user(
            &account,
            viewer,
            relation,
            &self.access,
            &self.dcs,
            objects::now_unix(),
        )))
    }

    /// The account `id` as a recipient: `USER_ID_INVALID` when there is none,
    /// `INPUT_USER_DEACTIVATED` when it was deleted.
    pub fn recipient(&self, id: i64) -> Result<(), ApiError> {
        match self.users.account(id)? {
            Some(account) if account.deleted => {
                Err(ApiError::bad_request("INPUT_USER_DEACTIVATED"))
            }
            Some(_) => Ok(()),
            None => Err(ApiError::bad_request("USER_ID_INVALID")),
        }
    }

    /// The live account `id`: `USER_ID_INVALID` otherwise.
    pub fn live_user(&self, id: i64) -> Result<columba_store::user::Account, ApiError> {
        match self.users.account(id)? {
            Some(account) if !account.deleted => Ok(account),
            _ => Err(ApiError::bad_request("USER_ID_INVALID")),
        }
    }

    /// These users (each once, by id, missing ones left out) as `viewer` sees them.
    pub fn user_objects(
        &self,
        ids: impl IntoIterator<Item = i64>,
        viewer: i64,
    ) -> Result<Vec<enums::User>, ApiError> {
        let mut users = Vec::new();
        for id in ids.into_iter().collect::<BTreeSet<_>>() {
            users.extend(self.user_object(id, viewer)?);
        }
        Ok(users)
    }

    /// The users that `messages` name (senders, private peers) and the viewer.
    pub fn users_of(
        &self,
        messages: &[StoredMessage],
        viewer: i64,
    ) -> Result<Vec<enums::User>, ApiError> {
        let ids = messages.iter().flat_map(|message| {
            let peer = match message.peer {
                Peer::User(id) => Some(id),
                _ => None,
            };
            // A service message about a member names them.
            let named = match message.peer {
                Peer::User(_) => None,
                _ => crate::body::Body::decode(&message.body)
                    .action
                    .and_then(crate::body::Action::named_user),
            };
            [Some(message.from), peer, named].into_iter().flatten()
        });
        self.user_objects(ids.chain([viewer]), viewer)
    }

    /// The user an `InputPeer` names, checked (its access hash, its existence):
    /// `PEER_ID_INVALID` otherwise. Only users for now.
    pub fn input_peer(&self, viewer: i64, peer: &enums::InputPeer) -> Result<i64, ApiError> {
        let invalid = || ApiError::bad_request("PEER_ID_INVALID");
        let target = match peer {
            enums::InputPeer::InputPeerSelf(_) => viewer,
            enums::InputPeer::InputPeerUser(peer) => {
                if !self.access.check_user_hash(peer.user_id, peer.access_hash) {
                    return Err(invalid());
                }
                peer.user_id
            }
            _ => return Err(invalid()),
        };
        match self.users.account(target)? {
            Some(account) => Ok(account.id),
            None => Err(invalid()),
        }
    }

    /// The user an `InputUser` names, checked: `USER_ID_INVALID` otherwise.
    pub fn input_user(&self, viewer: i64, input: &enums::InputUser) -> Result<i64, ApiError> {
        let invalid = || ApiError::bad_request("USER_ID_INVALID");
        let target = match input {
            enums::InputUser::InputUserSelf(_) => viewer,
            enums::InputUser::InputUser(input) => {
                if !self
                    .access
                    .check_user_hash(input.user_id, input.access_hash)
                {
                    return Err(invalid());
                }
                input.user_id
            }
            _ => return Err(invalid()),
        };
        match self.users.account(target)? {
            Some(account) => Ok(account.id),
            None => Err(invalid()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]

    use columba_store::user::ImportContact;
    use columba_store::{MemoryAuthKeyStore, MemoryFileStore, MemoryMessageStore, MemoryUserStore};

    use super::*;

    fn phone_seen(backend: &Backend, id: i64, viewer: i64) -> Option<String> {
        match backend.user_object(id, viewer).unwrap().unwrap() {
            enums::User::User(user) => user.phone,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_phone_is_shown_to_whoever_found_it_and_to_the_owners_contacts_only() {
        let users = Arc::new(MemoryUserStore::new());
        let backend = Backend::new(
            Arc::new(MemoryMessageStore::new()),
            Arc::new(MemoryFileStore::new()),
            Arc::new(MemoryAuthKeyStore::new()),
            users.clone(),
            AccessSecret::new([3; 32]),
            DcList::single(1, "127.0.0.1:1".parse().unwrap()),
        );
        let ann = users.create_account("15550001", "Ann", "").unwrap();
        let bo = users.create_account("15550002", "Bo", "").unwrap();
        let cy = users.create_account("15550003", "Cy", "").unwrap();
        // Bo found Ann by her phone; Cy added Bo by id (from a search, say).
        let entry = ImportContact {
            client_id: 1,
            phone: "15550001".to_owned(),
            first_name: "Ann".to_owned(),
            last_name: String::new(),
        };
        users.import_contacts(bo.id, &[entry], 1).unwrap();
        users.add_contact(cy.id, bo.id, "Bo", "", 1).unwrap();
        assert_eq!(
            phone_seen(&backend, ann.id, bo.id).as_deref(),
            Some("15550001")
        );
        assert_eq!(
            phone_seen(&backend, bo.id, cy.id),
            None,
            "added by id: not revealed"
        );
        // Bo has Ann as contact, so Ann sees his phone (Telegram's "my contacts").
        assert_eq!(
            phone_seen(&backend, bo.id, ann.id).as_deref(),
            Some("15550002")
        );
        assert_eq!(phone_seen(&backend, ann.id, cy.id), None);
        assert_eq!(
            phone_seen(&backend, cy.id, cy.id).as_deref(),
            Some("15550003")
        );
    }
}
