//! The echo server's API: requests decoded with the generated Telegram types, answered from
//! the stores. Store calls block (RocksDB syncs), so each request runs on tokio's blocking
//! pool; what follows an answer (the echo's reply, updates to other users) runs after it.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
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

/// How long a login code lives.
const CODE_TTL: Duration = Duration::from_secs(300);
/// Wrong codes before a code is dropped.
const CODE_ATTEMPTS: u32 = 5;
/// Login codes waiting at once (each `auth.sendCode` adds one; the oldest go first).
const MAX_PENDING_CODES: usize = 10_000;
/// Wrappers (`invokeWithLayer`, `initConnection`, ...) unwrapped at most.
const MAX_WRAPPERS: usize = 4;
/// The longest text message, in characters (`message_length_max` of the config).
const MAX_TEXT_CHARS: usize = 4096;
/// Entries of the update log a `getDifference` answer carries at most.
const DIFFERENCE_LIMIT: usize = 100;

/// The one size of a photo: the original.
const PHOTO_SIZE: &str = "y";

/// `invokeWithoutUpdates#bf9459b7`.
const INVOKE_WITHOUT_UPDATES_ID: u32 = 0xbf94_59b7;

struct PendingCode {
    hash: String,
    code: String,
    sent: Instant,
    attempts: u32,
}

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

/// The document id of a content: its first eight bytes.
fn document_id(content: &ContentId) -> i64 {
    let mut head = [0u8; 8];
    for (out, byte) in head.iter_mut().zip(content.0.iter()) {
        *out = *byte;
    }
    i64::from_le_bytes(head)
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
                    Some(tl::encode_media(&media)),
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
                done(self.dialogs(user, request.limit)?)
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

    fn state(pts: i32) -> enums::updates::State {
        types::updates::State {
            pts,
            qts: 0,
            date: now_unix(),
            seq: 0,
            unread_count: 0,
        }
        .into()
    }

    async fn send_code(&self, body: &[u8]) -> RpcOutcome {
        let request: functions::auth::SendCode = decode(body)?;
        let phone = normalize_phone(&request.phone_number)
            .ok_or_else(|| bad_request("PHONE_NUMBER_INVALID"))?;
        let (code, hash) = {
            let mut rng = rand::rng();
            let code = match &self.settings.fixed_code {
                Some(code) => code.clone(),
                None => format!("{:05}", rng.random_range(0..100_000u32)),
            };
            let hash: String = (0..16)
                .map(|_| format!("{:x}", rng.random_range(0..16u8)))
                .collect();
            (code, hash)
        };
        {
            let mut codes = self.codes.lock().unwrap_or_else(PoisonError::into_inner);
            codes.retain(|_, pending| pending.sent.elapsed() < CODE_TTL);
            if codes.len() >= MAX_PENDING_CODES {
                return Err(RpcError::new(420, "FLOOD_WAIT_60"));
            }
            codes.insert(
                phone.clone(),
                PendingCode {
                    hash: hash.clone(),
                    code: code.clone(),
                    sent: Instant::now(),
                    attempts: 0,
                },
            );
        }
        if let Err(error) = self.code_sender.send_code(&phone, &code).await {
            tracing::warn!(%error, "the code sender failed");
            return Err(RpcError::new(500, "SEND_CODE_UNAVAILABLE"));
        }
        let sent = enums::auth::SentCode::from(types::auth::SentCode {
            r#type: types::auth::SentCodeTypeApp {
                length: i32::try_from(code.len()).unwrap_or(5),
            }
            .into(),
            phone_code_hash: hash,
            next_type: None,
            timeout: None,
        });
        Ok(Bytes::from(sent.to_bytes()))
    }

    fn sign_in(&self, context: RequestContext, body: &[u8]) -> Result<Vec<u8>, RpcError> {
        let request: functions::auth::SignIn = decode(body)?;
        let phone = normalize_phone(&request.phone_number)
            .ok_or_else(|| bad_request("PHONE_NUMBER_INVALID"))?;
        let given = request
            .phone_code
            .filter(|code| !code.is_empty())
            .ok_or_else(|| bad_request("PHONE_CODE_EMPTY"))?;
        let perm = context
            .perm_auth_key_id
            .ok_or_else(|| RpcError::new(401, "AUTH_KEY_PERM_EMPTY"))?;
        {
            let mut codes = self.codes.lock().unwrap_or_else(PoisonError::into_inner);
            let pending = codes
                .get_mut(&phone)
                .filter(|pending| pending.sent.elapsed() < CODE_TTL)
                .ok_or_else(|| bad_request("PHONE_CODE_EXPIRED"))?;
            if !bool::from(
                pending
                    .hash
                    .as_bytes()
                    .ct_eq(request.phone_code_hash.as_bytes()),
            ) {
                return Err(bad_request("PHONE_CODE_HASH_INVALID"));
            }
            if !bool::from(pending.code.as_bytes().ct_eq(given.as_bytes())) {
                pending.attempts += 1;
                if pending.attempts >= CODE_ATTEMPTS {
                    codes.remove(&phone);
                }
                return Err(bad_request("PHONE_CODE_INVALID"));
            }
            codes.remove(&phone);
        }
        let record = self.users.sign_in(&phone).map_err(internal)?;
        self.keys
            .set_user(perm, Some(record.id))
            .map_err(internal)?;
        if let Some(server) = self.server() {
            server.refresh_key(perm);
        }
        tracing::info!(user_id = record.id, "signed in");
        Ok(
            enums::auth::Authorization::from(types::auth::Authorization {
                setup_password_required: false,
                otherwise_relogin_days: None,
                tmp_sessions: None,
                future_auth_token: None,
                user: tl::user(&record, record.id, &self.secret),
            })
            .to_bytes(),
        )
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

    fn send(
        &self,
        user: i64,
        target: i64,
        random_id: i64,
        text: Vec<u8>,
        media: Option<Vec<u8>>,
    ) -> Handled {
        if String::from_utf8_lossy(&text).chars().count() > MAX_TEXT_CHARS {
            return Err(bad_request("MESSAGE_TOO_LONG"));
        }
        let outcome = self
            .messages
            .send(&SendRequest {
                sender: user,
                peer: Peer::User(target),
                random_id,
                date: now_unix(),
                body: text.clone(),
                media: media.clone(),
                flags: 0,
                members: Vec::new(),
            })
            .map_err(message_error)?;
        let mine = outcome
            .deliveries
            .first()
            .ok_or_else(|| internal("a send with no delivery"))?;
        let stored = self
            .messages
            .get_messages(BoxId::User(user), &[mine.message_id])
            .map_err(message_error)?;
        let message = stored
            .first()
            .ok_or_else(|| internal("a sent message is missing"))?;
        let answer = tl::updates(
            vec![
                types::UpdateMessageID {
                    id: mine.message_id,
                    random_id,
                }
                .into(),
                types::UpdateNewMessage {
                    message: tl::message(message),
                    pts: mine.pts,
                    pts_count: 1,
                }
                .into(),
            ],
            self.user_objects([user, target], user),
            message.date,
        );
        let mut after = Vec::new();
        if !outcome.repeated {
            if target == ECHO_USER_ID && user != ECHO_USER_ID {
                after.push(After::Echo {
                    user,
                    text,
                    media,
                    source: mine.message_id,
                });
            } else if let Some(theirs) = outcome.deliveries.get(1) {
                after.push(After::Notify(vec![Affected {
                    box_id: theirs.box_id,
                    pts: theirs.pts,
                    pts_count: 1,
                }]));
            }
        }
        Ok((answer.to_bytes(), after))
    }

    /// The `MessageMedia` for an `InputMedia`: uploaded documents (their upload finished
    /// here), or media already on the server.
    fn media(&self, user: i64, input: &enums::InputMedia) -> Result<enums::MessageMedia, RpcError> {
        match input {
            enums::InputMedia::InputMediaUploadedDocument(uploaded) => {
                let info = self.finish_upload(user, &uploaded.file)?;
                let mut attributes = uploaded.attributes.clone();
                let named = attributes.iter().any(|attribute| {
                    matches!(
                        attribute,
                        enums::DocumentAttribute::DocumentAttributeFilename(_)
                    )
                });
                if !named {
                    attributes.push(
                        types::DocumentAttributeFilename {
                            file_name: info.name.clone(),
                        }
                        .into(),
                    );
                }
                Ok(self.document_media(&info, uploaded.mime_type.clone(), attributes))
            }
            enums::InputMedia::InputMediaUploadedPhoto(uploaded) => {
                // A photo of one size, the original (no thumbnails: nothing is decoded); a
                // file that is not a JPEG or PNG image is kept as a document.
                let info = self.finish_upload(user, &uploaded.file)?;
                let head_len = i32::try_from(image::HEAD_BYTES).unwrap_or(i32::MAX);
                let head = self
                    .files
                    .get_file(info.content, 0, head_len, false)
                    .map_err(file_error)?;
                match image::dimensions(&head) {
                    Some((width, height)) => Ok(self.photo_media(&info, width, height)),
                    None => {
                        let attributes = vec![
                            types::DocumentAttributeFilename {
                                file_name: info.name.clone(),
                            }
                            .into(),
                        ];
                        Ok(self.document_media(
                            &info,
                            "application/octet-stream".to_owned(),
                            attributes,
                        ))
                    }
                }
            }
            _ => Err(bad_request("MEDIA_INVALID")),
        }
    }

    fn finish_upload(&self, user: i64, file: &enums::InputFile) -> Result<FileInfo, RpcError> {
        let request = match file {
            enums::InputFile::InputFile(file) => FinishRequest {
                owner: user,
                file_id: file.id,
                parts: file.parts,
                name: file.name.clone(),
                md5_checksum: Some(file.md5_checksum.clone()),
            },
            enums::InputFile::InputFileBig(file) => FinishRequest {
                owner: user,
                file_id: file.id,
                parts: file.parts,
                name: file.name.clone(),
                md5_checksum: None,
            },
            _ => return Err(bad_request("MEDIA_INVALID")),
        };
        // A send repeated after its upload was finished finds the file already there.
        if let Some(info) = self.files.file(user, request.file_id).map_err(file_error)? {
            return Ok(info);
        }
        self.files
            .finish(&request, i64::from(now_unix()))
            .map_err(file_error)
    }

    fn document_media(
        &self,
        info: &FileInfo,
        mime_type: String,
        attributes: Vec<enums::DocumentAttribute>,
    ) -> enums::MessageMedia {
        let document = types::Document {
            id: document_id(&info.content),
            access_hash: self.secret.document_hash(&info.content),
            file_reference: info.content.0.to_vec(),
            date: now_unix(),
            mime_type,
            size: i64::try_from(info.size).unwrap_or(i64::MAX),
            thumbs: None,
            video_thumbs: None,
            dc_id: tl::THIS_DC,
            attributes,
        };
        types::MessageMediaDocument {
            nopremium: false,
            spoiler: false,
            video: false,
            round: false,
            voice: false,
            document: Some(document.into()),
            alt_documents: None,
            video_cover: None,
            video_timestamp: None,
            ttl_seconds: None,
        }
        .into()
    }

    fn photo_media(&self, info: &FileInfo, width: u32, height: u32) -> enums::MessageMedia {
        let photo = types::Photo {
            has_stickers: false,
            id: document_id(&info.content),
            access_hash: self.secret.document_hash(&info.content),
            file_reference: info.content.0.to_vec(),
            date: now_unix(),
            sizes: vec![
                types::PhotoSize {
                    r#type: PHOTO_SIZE.to_owned(),
                    w: i32::try_from(width).unwrap_or(i32::MAX),
                    h: i32::try_from(height).unwrap_or(i32::MAX),
                    size: i32::try_from(info.size).unwrap_or(i32::MAX),
                }
                .into(),
            ],
            video_sizes: None,
            dc_id: tl::THIS_DC,
        };
        types::MessageMediaPhoto {
            spoiler: false,
            live_photo: false,
            photo: Some(photo.into()),
            ttl_seconds: None,
            video: None,
        }
        .into()
    }

    fn get_file(&self, request: &functions::upload::GetFile) -> Result<Vec<u8>, RpcError> {
        // Documents and photos alike: the file reference is the content id, the access hash
        // a keyed hash of it; a photo has one size, the original.
        let (id, access_hash, file_reference) = match &request.location {
            enums::InputFileLocation::InputDocumentFileLocation(location) => {
                (location.id, location.access_hash, &location.file_reference)
            }
            enums::InputFileLocation::InputPhotoFileLocation(location)
                if location.thumb_size == PHOTO_SIZE =>
            {
                (location.id, location.access_hash, &location.file_reference)
            }
            _ => return Err(bad_request("LOCATION_INVALID")),
        };
        let content = <[u8; 32]>::try_from(file_reference.as_slice())
            .map(ContentId)
            .map_err(|_| bad_request("FILE_REFERENCE_INVALID"))?;
        if id != document_id(&content) || !self.secret.check_document_hash(&content, access_hash) {
            return Err(bad_request("FILE_REFERENCE_INVALID"));
        }
        let bytes = self
            .files
            .get_file(content, request.offset, request.limit, request.precise)
            .map_err(file_error)?;
        Ok(enums::upload::File::from(types::upload::File {
            r#type: types::storage::FileUnknown {}.into(),
            mtime: 0,
            bytes,
        })
        .to_bytes())
    }

    fn history(
        &self,
        user: i64,
        request: &functions::messages::GetHistory,
    ) -> Result<Vec<u8>, RpcError> {
        let target = self.input_peer(user, &request.peer)?;
        let page = self
            .messages
            .get_history(
                BoxId::User(user),
                Peer::User(target),
                &HistoryQuery {
                    offset_id: request.offset_id,
                    offset_date: request.offset_date,
                    add_offset: request.add_offset,
                    limit: request.limit,
                    max_id: request.max_id,
                    min_id: request.min_id,
                },
            )
            .map_err(message_error)?;
        let users = self.users_of(&page.messages, user);
        let messages: Vec<enums::Message> = page.messages.iter().map(tl::message).collect();
        let answer: enums::messages::Messages = if messages.len() == page.count {
            types::messages::Messages {
                messages,
                topics: Vec::new(),
                chats: Vec::new(),
                users,
            }
            .into()
        } else {
            types::messages::MessagesSlice {
                inexact: false,
                count: i32::try_from(page.count).unwrap_or(i32::MAX),
                next_rate: None,
                offset_id_offset: Some(i32::try_from(page.offset_id_offset).unwrap_or(i32::MAX)),
                search_flood: None,
                messages,
                topics: Vec::new(),
                chats: Vec::new(),
                users,
            }
            .into()
        };
        Ok(answer.to_bytes())
    }

    /// `messages.getMessages`: the messages asked for by id, `messageEmpty` for those missing.
    fn messages_by_id(&self, user: i64, ids: &[enums::InputMessage]) -> Result<Vec<u8>, RpcError> {
        if ids.len() > 200 {
            return Err(bad_request("LIMIT_INVALID"));
        }
        let wanted: Vec<i32> = ids
            .iter()
            .filter_map(|input| match input {
                enums::InputMessage::InputMessageID(input) => Some(input.id),
                _ => None,
            })
            .collect();
        let found = self
            .messages
            .get_messages(BoxId::User(user), &wanted)
            .map_err(message_error)?;
        let messages = wanted
            .iter()
            .map(|id| match found.iter().find(|message| message.id == *id) {
                Some(message) => tl::message(message),
                None => types::MessageEmpty {
                    id: *id,
                    peer_id: None,
                }
                .into(),
            })
            .collect();
        Ok(enums::messages::Messages::from(types::messages::Messages {
            messages,
            topics: Vec::new(),
            chats: Vec::new(),
            users: self.users_of(&found, user),
        })
        .to_bytes())
    }

    fn dialogs(&self, user: i64, limit: i32) -> Result<Vec<u8>, RpcError> {
        let limit = usize::try_from(limit.clamp(1, 100)).unwrap_or(100);
        let dialogs = self.messages.dialogs(user, limit).map_err(message_error)?;
        let tops: Vec<i32> = dialogs.iter().map(|dialog| dialog.top_message).collect();
        let messages = self
            .messages
            .get_messages(BoxId::User(user), &tops)
            .map_err(message_error)?;
        let users = self.users_of(&messages, user);
        let answer = types::messages::Dialogs {
            dialogs: dialogs
                .iter()
                .map(|dialog| {
                    types::Dialog {
                        pinned: false,
                        unread_mark: false,
                        view_forum_as_messages: false,
                        peer: tl::peer(dialog.peer),
                        top_message: dialog.top_message,
                        read_inbox_max_id: dialog.read_inbox_max_id,
                        read_outbox_max_id: dialog.read_outbox_max_id,
                        unread_count: dialog.unread_count,
                        unread_mentions_count: 0,
                        unread_reactions_count: 0,
                        unread_poll_votes_count: 0,
                        notify_settings: tl::notify_settings(),
                        pts: None,
                        draft: None,
                        folder_id: None,
                        ttl_period: None,
                    }
                    .into()
                })
                .collect(),
            messages: messages.iter().map(tl::message).collect(),
            chats: Vec::new(),
            users,
        };
        Ok(enums::messages::Dialogs::from(answer).to_bytes())
    }

    fn edit(&self, user: i64, request: functions::messages::EditMessage) -> Handled {
        let box_id = BoxId::User(user);
        let current = self
            .messages
            .get_messages(box_id, &[request.id])
            .map_err(message_error)?;
        let current = current
            .first()
            .ok_or_else(|| bad_request("MESSAGE_ID_INVALID"))?;
        let body = match request.message {
            Some(text) => text.into_bytes(),
            None => current.body.clone(),
        };
        if body == current.body && request.media.is_none() {
            return Err(bad_request("MESSAGE_NOT_MODIFIED"));
        }
        let media = match &request.media {
            Some(input) => Some(tl::encode_media(&self.media(user, input)?)),
            None => current.media.clone(),
        };
        let affected = self
            .messages
            .edit(user, box_id, request.id, body, media, now_unix())
            .map_err(message_error)?;
        let (mine, others): (Vec<Affected>, Vec<Affected>) = affected
            .into_iter()
            .partition(|affected| affected.box_id == box_id);
        let edited = self
            .messages
            .get_messages(box_id, &[request.id])
            .map_err(message_error)?;
        let edited = edited
            .first()
            .ok_or_else(|| bad_request("MESSAGE_ID_INVALID"))?;
        let (pts, pts_count) = mine
            .first()
            .map_or((0, 0), |affected| (affected.pts, affected.pts_count));
        let answer = tl::updates(
            vec![
                types::UpdateEditMessage {
                    message: tl::message(edited),
                    pts,
                    pts_count,
                }
                .into(),
            ],
            self.users_of(std::slice::from_ref(edited), user),
            now_unix(),
        );
        Ok((answer.to_bytes(), vec![After::Notify(others)]))
    }

    /// `messages.affectedMessages` for the caller's box; the other boxes are told.
    fn affected(&self, user: i64, affected: Vec<Affected>) -> Handled {
        let box_id = BoxId::User(user);
        let (mine, others): (Vec<Affected>, Vec<Affected>) = affected
            .into_iter()
            .partition(|affected| affected.box_id == box_id);
        let (pts, pts_count) = match mine.first() {
            Some(affected) => (affected.pts, affected.pts_count),
            None => (self.messages.state(box_id).map_err(message_error)?.pts, 0),
        };
        let answer = enums::messages::AffectedMessages::from(types::messages::AffectedMessages {
            pts,
            pts_count,
        });
        Ok((answer.to_bytes(), vec![After::Notify(others)]))
    }

    /// The update of one log entry, as the box's owner sees it (`messages` holds the
    /// messages new-message and edit entries refer to).
    fn update_of(entry: &UpdateEntry, messages: &[StoredMessage]) -> Option<enums::Update> {
        let find = |id: i32| messages.iter().find(|message| message.id == id);
        let (pts, pts_count) = (entry.pts, entry.pts_count);
        Some(match &entry.kind {
            UpdateKind::NewMessage { id } => types::UpdateNewMessage {
                message: tl::message(find(*id)?),
                pts,
                pts_count,
            }
            .into(),
            UpdateKind::EditMessage { id } => types::UpdateEditMessage {
                message: tl::message(find(*id)?),
                pts,
                pts_count,
            }
            .into(),
            UpdateKind::DeleteMessages { ids } => types::UpdateDeleteMessages {
                messages: ids.clone(),
                pts,
                pts_count,
            }
            .into(),
            UpdateKind::ReadInbox { peer, max_id } => types::UpdateReadHistoryInbox {
                folder_id: None,
                peer: tl::peer(*peer),
                top_msg_id: None,
                max_id: *max_id,
                still_unread_count: 0,
                pts,
                pts_count,
            }
            .into(),
            UpdateKind::ReadOutbox { peer, max_id } => types::UpdateReadHistoryOutbox {
                peer: tl::peer(*peer),
                max_id: *max_id,
                pts,
                pts_count,
            }
            .into(),
        })
    }

    fn difference(&self, user: i64, pts: i32) -> Result<Vec<u8>, RpcError> {
        let box_id = BoxId::User(user);
        let answer: enums::updates::Difference = match self
            .messages
            .get_difference(box_id, pts, DIFFERENCE_LIMIT)
            .map_err(message_error)?
        {
            Difference::Empty { .. } => types::updates::DifferenceEmpty {
                date: now_unix(),
                seq: 0,
            }
            .into(),
            Difference::TooLong { pts } => types::updates::DifferenceTooLong { pts }.into(),
            Difference::Changes {
                entries,
                messages,
                complete,
                pts: box_pts,
            } => {
                let mut new_messages = Vec::new();
                let mut other_updates = Vec::new();
                for entry in &entries {
                    match (&entry.kind, Self::update_of(entry, &messages)) {
                        (
                            UpdateKind::NewMessage { .. },
                            Some(enums::Update::UpdateNewMessage(update)),
                        ) => {
                            new_messages.push(update.message);
                        }
                        (_, Some(update)) => other_updates.push(update),
                        (_, None) => {}
                    }
                }
                let users = self.users_of(&messages, user);
                let reached = entries.last().map_or(box_pts, |entry| entry.pts);
                if complete {
                    types::updates::Difference {
                        new_messages,
                        new_encrypted_messages: Vec::new(),
                        other_updates,
                        chats: Vec::new(),
                        users,
                        state: Self::state(box_pts),
                    }
                    .into()
                } else {
                    types::updates::DifferenceSlice {
                        new_messages,
                        new_encrypted_messages: Vec::new(),
                        other_updates,
                        chats: Vec::new(),
                        users,
                        intermediate_state: Self::state(reached),
                    }
                    .into()
                }
            }
        };
        Ok(answer.to_bytes())
    }

    /// Sends the owner of a box the updates of its log from `pts - pts_count` to `pts`.
    fn notify(&self, affected: Affected) {
        let BoxId::User(owner) = affected.box_id else {
            return;
        };
        if owner == ECHO_USER_ID {
            // The echo user has no client to tell.
            return;
        }
        let from = affected.pts - affected.pts_count;
        let limit = usize::try_from(affected.pts_count.clamp(1, 100)).unwrap_or(1);
        let Ok(Difference::Changes {
            entries, messages, ..
        }) = self.messages.get_difference(affected.box_id, from, limit)
        else {
            return;
        };
        let updates: Vec<enums::Update> = entries
            .iter()
            .filter(|entry| entry.pts <= affected.pts)
            .filter_map(|entry| Self::update_of(entry, &messages))
            .collect();
        if updates.is_empty() {
            return;
        }
        let users = self.users_of(&messages, owner);
        self.push(owner, tl::updates(updates, users, now_unix()));
    }

    fn push(&self, user: i64, updates: enums::Updates) {
        if let Some(server) = self.server() {
            server.send_update(user, Bytes::from(updates.to_bytes()));
        }
    }

    fn run_after(&self, job: After) {
        match job {
            After::Echo {
                user,
                text,
                media,
                source,
            } => {
                // The reply's random id follows from the message it answers, so that
                // echoing the same message twice stores one reply.
                let random_id = (user as u64)
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    .wrapping_add(source as u64) as i64;
                let sent = self.messages.send(&SendRequest {
                    sender: ECHO_USER_ID,
                    peer: Peer::User(user),
                    random_id,
                    date: now_unix(),
                    body: text,
                    media,
                    flags: 0,
                    members: Vec::new(),
                });
                match sent {
                    Ok(outcome) if !outcome.repeated => {
                        if let Some(theirs) = outcome.deliveries.get(1) {
                            self.notify(Affected {
                                box_id: theirs.box_id,
                                pts: theirs.pts,
                                pts_count: 1,
                            });
                        }
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "the echo could not answer"),
                }
            }
            After::Notify(affected) => {
                for affected in affected {
                    self.notify(affected);
                }
            }
        }
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
