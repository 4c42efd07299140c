//! The echo server's API: requests decoded with the generated Telegram types, answered from
//! the stores. Store calls block (RocksDB syncs), so each request runs on tokio's blocking
//! pool; what follows an answer (the echo's reply, updates to other users) runs after it.

// `EchoApp`'s methods, by subject; each file extends the one `impl` and takes this module's
// imports and helpers (`use super::*`).
mod chats;
mod login;
mod media;
mod updates;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use columba_mtproto::tl::api::{enums, functions, types};
use columba_mtproto::tl::{
    BOOL_TRUE_ID, Deserializable, Identifiable, RawObject, Reader, Serializable as _,
};
use columba_session::plugins::{BoxFuture, CodeSender, Service};
use columba_session::runtime::Server;
use columba_session::{RequestContext, RpcError, RpcOutcome};
use columba_store::file::{ContentId, FileInfo, FinishRequest};
use columba_store::message::{
    Affected, BoxId, Difference, HistoryQuery, Peer, SendRequest, StoredMessage, UpdateEntry,
    UpdateKind,
};
use columba_store::{AuthKeyStore, FileError, FileStore, MessageError, MessageStore};
use rand::Rng as _;
use subtle::ConstantTimeEq as _;

use super::secrets::Secret;
use super::users::{ECHO_USER_ID, Users, normalize_phone};
use super::{image, tl};

use login::PendingCode;

/// Wrappers (`invokeWithLayer`, `initConnection`, ...) unwrapped at most.
const MAX_WRAPPERS: usize = 4;

/// `invokeWithoutUpdates#bf9459b7`.
const INVOKE_WITHOUT_UPDATES_ID: u32 = 0xbf94_59b7;

/// Settings of the echo application.
#[derive(Debug, Clone)]
pub struct EchoSettings {
    /// The address clients are told to connect to (`help.getConfig`).
    pub address: SocketAddr,
    /// Every login code is this one (tests and demos only: anyone who knows it signs in as
    /// any phone number).
    pub fixed_code: Option<String>,
}

/// The application state behind [`EchoService`].
pub struct EchoApp {
    settings: EchoSettings,
    users: Users,
    secret: Secret,
    messages: Arc<dyn MessageStore>,
    files: Arc<dyn FileStore>,
    keys: Arc<dyn AuthKeyStore>,
    codes: Mutex<HashMap<String, PendingCode>>,
    code_sender: Arc<dyn CodeSender>,
    /// The runtime, once attached (a cycle while serving: the server holds the service;
    /// [`EchoApp::detach`] breaks it).
    server: Mutex<Option<Server>>,
}

impl std::fmt::Debug for EchoApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoApp")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What to do once an answer is on its way.
enum After {
    /// The echo user answers `user`'s message `source` with the same text and media.
    Echo {
        user: i64,
        text: Vec<u8>,
        media: Option<Vec<u8>>,
        source: i32,
    },
    /// Tell the owners of these boxes what changed in them (a new message, an edit, ...).
    Notify(Vec<Affected>),
}

type Handled = Result<(Vec<u8>, Vec<After>), RpcError>;

/// A private message from `sender` to user `target`, dated now.
fn private_message(
    sender: i64,
    target: i64,
    random_id: i64,
    body: Vec<u8>,
    media: Option<Vec<u8>>,
) -> SendRequest {
    SendRequest {
        sender,
        peer: Peer::User(target),
        random_id,
        date: now_unix(),
        body,
        media,
        flags: 0,
        members: Vec::new(),
    }
}

fn now_unix() -> i32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    i32::try_from(secs).unwrap_or(i32::MAX)
}

fn bad_request(name: &str) -> RpcError {
    RpcError::new(400, name)
}

fn internal(error: impl std::fmt::Display) -> RpcError {
    tracing::error!(%error, "echo server: store failure");
    RpcError::new(500, "INTERNAL")
}

fn message_error(error: MessageError) -> RpcError {
    match error {
        MessageError::Backend(_) | MessageError::Exhausted => internal(error),
        other => bad_request(&other.to_string()),
    }
}

fn file_error(error: FileError) -> RpcError {
    let (code, name) = error.rpc_error();
    if code >= 500 {
        tracing::error!(%error, "echo server: file store failure");
    }
    RpcError::new(code, &name)
}

fn decode<T: Deserializable>(body: &[u8]) -> Result<T, RpcError> {
    T::from_bytes(body).map_err(|_| bad_request("INPUT_FETCH_ERROR"))
}

/// The constructor id a request starts with.
fn constructor(body: &[u8]) -> Option<u32> {
    Reader::new(body).peek_u32()
}

/// Takes off `invokeWithLayer`, `initConnection` and `invokeWithoutUpdates`.
fn unwrap_request(mut body: Bytes) -> Result<Bytes, RpcError> {
    for _ in 0..MAX_WRAPPERS {
        let inner = match constructor(&body) {
            Some(functions::InvokeWithLayer::<RawObject>::CONSTRUCTOR_ID) => {
                decode::<functions::InvokeWithLayer<RawObject>>(&body)?.query
            }
            Some(functions::InitConnection::<RawObject>::CONSTRUCTOR_ID) => {
                decode::<functions::InitConnection<RawObject>>(&body)?.query
            }
            Some(INVOKE_WITHOUT_UPDATES_ID) => {
                decode::<functions::InvokeWithoutUpdates<RawObject>>(&body)?.query
            }
            _ => return Ok(body),
        };
        body = Bytes::from(inner.0);
    }
    Err(bad_request("INPUT_REQUEST_TOO_LONG"))
}

impl EchoApp {
    /// The application over these stores.
    pub fn new(
        settings: EchoSettings,
        users: Users,
        secret: Secret,
        messages: Arc<dyn MessageStore>,
        files: Arc<dyn FileStore>,
        keys: Arc<dyn AuthKeyStore>,
        code_sender: Arc<dyn CodeSender>,
    ) -> Arc<Self> {
        Arc::new(Self {
            settings,
            users,
            secret,
            messages,
            files,
            keys,
            codes: Mutex::new(HashMap::new()),
            code_sender,
            server: Mutex::new(None),
        })
    }

    /// Gives the application the server it answers for (to send updates and refresh keys).
    pub fn attach(&self, server: Server) {
        *self.server.lock().unwrap_or_else(PoisonError::into_inner) = Some(server);
    }

    /// Lets go of the server (after it stopped), so that the stores can close.
    pub fn detach(&self) {
        self.server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    fn server(&self) -> Option<Server> {
        self.server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn user_object(&self, id: i64, viewer: i64) -> Option<enums::User> {
        self.users
            .get(id)
            .map(|record| tl::user(&record, viewer, &self.secret))
    }

    fn user_objects(&self, ids: impl IntoIterator<Item = i64>, viewer: i64) -> Vec<enums::User> {
        ids.into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter_map(|id| self.user_object(id, viewer))
            .collect()
    }

    fn users_of(&self, messages: &[StoredMessage], viewer: i64) -> Vec<enums::User> {
        let ids = messages.iter().flat_map(|message| {
            let peer = match message.peer {
                Peer::User(id) => Some(id),
                _ => None,
            };
            [Some(message.from), peer, Some(viewer)]
                .into_iter()
                .flatten()
        });
        self.user_objects(ids.chain([viewer]), viewer)
    }

    /// The user an `InputPeer` names, checked.
    fn input_peer(&self, user: i64, peer: &enums::InputPeer) -> Result<i64, RpcError> {
        let target = match peer {
            enums::InputPeer::InputPeerSelf(_) => user,
            enums::InputPeer::InputPeerUser(peer) => {
                if !self.secret.check_user_hash(peer.user_id, peer.access_hash) {
                    return Err(bad_request("PEER_ID_INVALID"));
                }
                peer.user_id
            }
            _ => return Err(bad_request("PEER_ID_INVALID")),
        };
        self.users
            .get(target)
            .map(|record| record.id)
            .ok_or_else(|| bad_request("PEER_ID_INVALID"))
    }

    /// The user an `InputUser` names, checked.
    fn input_user(&self, user: i64, input: &enums::InputUser) -> Result<i64, RpcError> {
        let target = match input {
            enums::InputUser::InputUserSelf(_) => user,
            enums::InputUser::InputUser(input) => {
                if !self
                    .secret
                    .check_user_hash(input.user_id, input.access_hash)
                {
                    return Err(bad_request("USER_ID_INVALID"));
                }
                input.user_id
            }
            _ => return Err(bad_request("USER_ID_INVALID")),
        };
        self.users
            .get(target)
            .map(|record| record.id)
            .ok_or_else(|| bad_request("USER_ID_INVALID"))
    }

    /// Answers one request.
    async fn call(self: Arc<Self>, context: RequestContext, request: Bytes) -> RpcOutcome {
        let body = unwrap_request(request)?;
        let id = constructor(&body).ok_or_else(|| bad_request("INPUT_FETCH_ERROR"))?;
        if id == functions::auth::SendCode::CONSTRUCTOR_ID {
            return self.send_code(&body).await;
        }
        let app = self.clone();
        let (answer, after) = tokio::task::spawn_blocking(move || app.handle(context, id, &body))
            .await
            .map_err(internal)??;
        if !after.is_empty() {
            let app = self.clone();
            tokio::task::spawn_blocking(move || {
                for job in after {
                    app.run_after(job);
                }
            });
        }
        Ok(Bytes::from(answer))
    }

    fn handle(&self, context: RequestContext, id: u32, body: &[u8]) -> Handled {
        let done = |bytes: Vec<u8>| Ok((bytes, Vec::new()));
        match id {
            functions::help::GetConfig::CONSTRUCTOR_ID => {
                done(tl::config(self.settings.address, now_unix()).to_bytes())
            }
            functions::help::GetNearestDc::CONSTRUCTOR_ID => done(
                enums::NearestDc::from(types::NearestDc {
                    country: "ZZ".to_owned(),
                    this_dc: tl::THIS_DC,
                    nearest_dc: tl::THIS_DC,
                })
                .to_bytes(),
            ),
            functions::auth::SignIn::CONSTRUCTOR_ID => done(self.sign_in(context, body)?),
            _ => {
                let user = context
                    .user_id
                    .ok_or_else(|| RpcError::new(401, "AUTH_KEY_UNREGISTERED"))?;
                self.handle_signed_in(user, id, body)
            }
        }
    }

    fn handle_signed_in(&self, user: i64, id: u32, body: &[u8]) -> Handled {
        let done = |bytes: Vec<u8>| Ok((bytes, Vec::new()));
        match id {
            functions::users::GetUsers::CONSTRUCTOR_ID => {
                let request: functions::users::GetUsers = decode(body)?;
                let users: Vec<enums::User> = request
                    .id
                    .iter()
                    .filter_map(|input| self.input_user(user, input).ok())
                    .filter_map(|id| self.user_object(id, user))
                    .collect();
                done(users.to_bytes())
            }
            functions::users::GetFullUser::CONSTRUCTOR_ID => {
                let request: functions::users::GetFullUser = decode(body)?;
                let target = self.input_user(user, &request.id)?;
                done(self.full_user(target, user)?)
            }
            functions::contacts::ResolveUsername::CONSTRUCTOR_ID => {
                let request: functions::contacts::ResolveUsername = decode(body)?;
                let found = self
                    .users
                    .by_username(&request.username)
                    .ok_or_else(|| bad_request("USERNAME_NOT_OCCUPIED"))?;
                done(
                    enums::contacts::ResolvedPeer::from(types::contacts::ResolvedPeer {
                        peer: tl::peer_user(found.id),
                        chats: Vec::new(),
                        users: self.user_objects([found.id], user),
                    })
                    .to_bytes(),
                )
            }
            functions::updates::GetState::CONSTRUCTOR_ID => {
                let state = self
                    .messages
                    .state(BoxId::User(user))
                    .map_err(message_error)?;
                done(Self::state(state.pts).to_bytes())
            }
            functions::updates::GetDifference::CONSTRUCTOR_ID => {
                let request: functions::updates::GetDifference = decode(body)?;
                done(self.difference(user, request.pts)?)
            }
            functions::messages::SendMessage::CONSTRUCTOR_ID => {
                let request: functions::messages::SendMessage = decode(body)?;
                if request.message.is_empty() {
                    return Err(bad_request("MESSAGE_EMPTY"));
                }
                let target = self.input_peer(user, &request.peer)?;
                self.send(
                    user,
                    target,
                    request.random_id,
                    request.message.into_bytes(),
                    None,
                )
            }
            functions::messages::SendMedia::CONSTRUCTOR_ID => {
                let request: functions::messages::SendMedia = decode(body)?;
                let target = self.input_peer(user, &request.peer)?;
                let media = self.media(user, &request.media)?;
                self.send(
                    user,
                    target,
                    request.random_id,
                    request.message.into_bytes(),
                    Some(media.to_bytes()),
                )
            }
            functions::messages::GetHistory::CONSTRUCTOR_ID => {
                let request: functions::messages::GetHistory = decode(body)?;
                done(self.history(user, &request)?)
            }
            functions::messages::GetMessages::CONSTRUCTOR_ID => {
                let request: functions::messages::GetMessages = decode(body)?;
                done(self.messages_by_id(user, &request.id)?)
            }
            functions::messages::GetDialogs::CONSTRUCTOR_ID => {
                let request: functions::messages::GetDialogs = decode(body)?;
                done(self.dialogs(user, request.offset_id, request.limit)?)
            }
            functions::messages::ReadHistory::CONSTRUCTOR_ID => {
                let request: functions::messages::ReadHistory = decode(body)?;
                let target = self.input_peer(user, &request.peer)?;
                let affected = self
                    .messages
                    .read_history(user, Peer::User(target), request.max_id)
                    .map_err(message_error)?;
                self.affected(user, affected)
            }
            functions::messages::DeleteMessages::CONSTRUCTOR_ID => {
                let request: functions::messages::DeleteMessages = decode(body)?;
                let affected = self
                    .messages
                    .delete(BoxId::User(user), &request.id, request.revoke)
                    .map_err(message_error)?;
                self.affected(user, affected)
            }
            functions::messages::EditMessage::CONSTRUCTOR_ID => {
                let request: functions::messages::EditMessage = decode(body)?;
                self.edit(user, request)
            }
            functions::upload::SaveFilePart::CONSTRUCTOR_ID => {
                let request: functions::upload::SaveFilePart = decode(body)?;
                self.files
                    .save_part(
                        user,
                        request.file_id,
                        request.file_part,
                        &request.bytes,
                        i64::from(now_unix()),
                    )
                    .map_err(file_error)?;
                done(BOOL_TRUE_ID.to_le_bytes().to_vec())
            }
            functions::upload::SaveBigFilePart::CONSTRUCTOR_ID => {
                let request: functions::upload::SaveBigFilePart = decode(body)?;
                self.files
                    .save_big_part(
                        user,
                        request.file_id,
                        request.file_part,
                        request.file_total_parts,
                        &request.bytes,
                        i64::from(now_unix()),
                    )
                    .map_err(file_error)?;
                done(BOOL_TRUE_ID.to_le_bytes().to_vec())
            }
            functions::upload::GetFile::CONSTRUCTOR_ID => {
                let request: functions::upload::GetFile = decode(body)?;
                done(self.get_file(&request)?)
            }
            _ => Err(bad_request("INPUT_METHOD_INVALID")),
        }
    }

    fn full_user(&self, target: i64, viewer: i64) -> Result<Vec<u8>, RpcError> {
        let user = self
            .user_object(target, viewer)
            .ok_or_else(|| bad_request("USER_ID_INVALID"))?;
        // `userFull` with no flag set: id, settings, notify_settings, common_chats_count.
        let mut full = Vec::new();
        full.extend_from_slice(&types::UserFull::CONSTRUCTOR_ID.to_le_bytes());
        full.extend_from_slice(&0u32.to_le_bytes());
        full.extend_from_slice(&0u32.to_le_bytes());
        full.extend_from_slice(&target.to_le_bytes());
        enums::PeerSettings::from(types::PeerSettings::default()).serialize(&mut full);
        tl::notify_settings().serialize(&mut full);
        full.extend_from_slice(&0i32.to_le_bytes());
        let full_user = enums::UserFull::from_bytes(&full).map_err(internal)?;
        Ok(enums::users::UserFull::from(types::users::UserFull {
            full_user,
            chats: Vec::new(),
            users: vec![user],
        })
        .to_bytes())
    }
}

/// The echo server's [`Service`].
#[derive(Debug, Clone)]
pub struct EchoService(pub Arc<EchoApp>);

impl Service for EchoService {
    fn call(&self, context: RequestContext, request: Bytes) -> BoxFuture<'_, RpcOutcome> {
        let app = self.0.clone();
        Box::pin(app.call(context, request))
    }
}
