//! A small Telegram-API client over Columba's client runtime, for the echo server's own
//! client, the load generator and the tests: typed calls, sign-in, messages, uploads and
//! downloads, and the updates the server pushes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use columba_mtproto::crypto::RsaPublicKey;
use columba_mtproto::handshake;
use columba_mtproto::tl::api::{enums, functions, types};
use columba_mtproto::tl::{Deserializable, RemoteCall};
use columba_mtproto::transport::{ClientConfig as FramingConfig, Framing};
use columba_session::RpcError;
use columba_session::runtime::{
    Client, ClientError, ClientOptions, Connector, SavedKey, TcpConnector,
};
use rand::Rng as _;
use tokio::sync::mpsc;

use crate::echo::ECHO_USERNAME;
use crate::echo::THIS_DC;

/// The part size of uploads (what Telethon uses for files up to 100 MB).
pub const PART_SIZE: usize = 128 * 1024;
/// Files larger than this go up as big-file parts.
pub const BIG_FILE: usize = 10 * 1024 * 1024;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The connection or the request failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The server answered with an error.
    #[error("rpc error {}: {}", .0.code, .0.message)]
    Rpc(RpcError),
    /// The answer did not decode as the call's result, or lacked what it should hold.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

/// A connected, possibly signed-in client.
#[derive(Debug)]
pub struct EchoClient {
    client: Client,
    updates: Option<mpsc::Receiver<Bytes>>,
}

/// How to reach the server.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its address.
    pub address: SocketAddr,
    /// Its RSA public key.
    pub key: RsaPublicKey,
    /// The framing.
    pub framing: Framing,
    /// Whether to obfuscate.
    pub obfuscated: bool,
    /// Reconnection attempts after a broken connection before calls fail (0: fail at once).
    pub reconnect_attempts: u32,
}

impl Target {
    /// `address` with `key`, over the intermediate framing, reconnecting up to 5 times.
    pub fn new(address: SocketAddr, key: RsaPublicKey) -> Self {
        Self {
            address,
            key,
            framing: Framing::Intermediate,
            obfuscated: false,
            reconnect_attempts: 5,
        }
    }
}

impl EchoClient {
    /// Connects (creating an auth key unless `saved` is given).
    pub async fn connect(target: &Target, saved: Option<SavedKey>) -> Result<Self, CallError> {
        Self::connect_through(Arc::new(TcpConnector::new(target.address)), target, saved).await
    }

    /// [`Self::connect`] through another connector (a test's stream that stops reading).
    pub async fn connect_through(
        connector: Arc<dyn Connector>,
        target: &Target,
        saved: Option<SavedKey>,
    ) -> Result<Self, CallError> {
        let mut options = ClientOptions::new(
            FramingConfig::new(target.framing, target.obfuscated),
            handshake::ClientConfig::new(vec![target.key.clone()], THIS_DC),
        );
        options.request_timeout = Duration::from_secs(30);
        options.reconnect_attempts = target.reconnect_attempts;
        let client = Client::connect(connector, options, saved).await?;
        let updates = client.updates();
        Ok(Self { client, updates })
    }

    /// The key to reuse next time.
    pub fn saved_key(&self) -> SavedKey {
        self.client.saved_key()
    }

    /// Closes the connection.
    pub async fn close(&self) {
        self.client.close().await;
    }

    /// Sends a request as raw bytes and returns the raw answer.
    pub async fn call_raw(&self, body: Bytes) -> Result<Bytes, CallError> {
        self.client.invoke(body).await?.map_err(CallError::Rpc)
    }

    /// Calls a function and decodes its result.
    pub async fn call<F: RemoteCall>(&self, function: &F) -> Result<F::Return, CallError> {
        let answer = self.call_raw(Bytes::from(function.to_bytes())).await?;
        F::Return::from_bytes(&answer).map_err(|error| CallError::Unexpected(error.to_string()))
    }

    /// `auth.sendCode` then `auth.signIn` with `code`; the signed-in user.
    pub async fn sign_in(&self, phone: &str, code: &str) -> Result<types::User, CallError> {
        let sent = self
            .call(&functions::auth::SendCode {
                phone_number: phone.to_owned(),
                api_id: 1,
                api_hash: "0".repeat(32),
                settings: types::CodeSettings::default().into(),
            })
            .await?;
        let enums::auth::SentCode::SentCode(sent) = sent else {
            return Err(CallError::Unexpected("not auth.sentCode".into()));
        };
        let authorization = self
            .call(&functions::auth::SignIn {
                phone_number: phone.to_owned(),
                phone_code_hash: sent.phone_code_hash,
                phone_code: Some(code.to_owned()),
                email_verification: None,
            })
            .await?;
        match authorization {
            enums::auth::Authorization::Authorization(authorization) => match authorization.user {
                enums::User::User(user) => Ok(*user),
                enums::User::UserEmpty(_) => Err(CallError::Unexpected("userEmpty".into())),
            },
            enums::auth::Authorization::AuthorizationSignUpRequired(_) => {
                Err(CallError::Unexpected("sign-up required".into()))
            }
        }
    }

    /// The echo user as an input peer.
    pub async fn echo_peer(&self) -> Result<enums::InputPeer, CallError> {
        let resolved = self
            .call(&functions::contacts::ResolveUsername {
                username: ECHO_USERNAME.to_owned(),
                referer: None,
            })
            .await?;
        let enums::contacts::ResolvedPeer::ResolvedPeer(resolved) = resolved;
        resolved
            .users
            .into_iter()
            .find_map(|user| match user {
                enums::User::User(user) if user.username.as_deref() == Some(ECHO_USERNAME) => Some(
                    types::InputPeerUser {
                        user_id: user.id,
                        access_hash: user.access_hash.unwrap_or(0),
                    }
                    .into(),
                ),
                _ => None,
            })
            .ok_or_else(|| CallError::Unexpected("no echo user".into()))
    }

    /// Sends a text message; the message as stored in the sender's box.
    pub async fn send_text(
        &self,
        peer: &enums::InputPeer,
        text: &str,
        random_id: i64,
    ) -> Result<types::Message, CallError> {
        let updates = self
            .call(&functions::messages::SendMessage {
                no_webpage: false,
                silent: false,
                background: false,
                clear_draft: false,
                noforwards: false,
                update_stickersets_order: false,
                invert_media: false,
                allow_paid_floodskip: false,
                peer: peer.clone(),
                reply_to: None,
                message: text.to_owned(),
                random_id,
                reply_markup: None,
                entities: None,
                schedule_date: None,
                schedule_repeat_period: None,
                send_as: None,
                quick_reply_shortcut: None,
                effect: None,
                allow_paid_stars: None,
                suggested_post: None,
                rich_message: None,
            })
            .await?;
        new_messages(&updates)
            .into_iter()
            .next()
            .ok_or_else(|| CallError::Unexpected("no new message in the answer".into()))
    }

    /// Sends an uploaded file as a document with `caption`; the server's `Updates`.
    pub async fn send_document(
        &self,
        peer: &enums::InputPeer,
        file: enums::InputFile,
        caption: &str,
        random_id: i64,
    ) -> Result<enums::Updates, CallError> {
        self.call(&functions::messages::SendMedia {
            silent: false,
            background: false,
            clear_draft: false,
            noforwards: false,
            update_stickersets_order: false,
            invert_media: false,
            allow_paid_floodskip: false,
            peer: peer.clone(),
            reply_to: None,
            media: types::InputMediaUploadedDocument {
                nosound_video: false,
                force_file: true,
                spoiler: false,
                file,
                thumb: None,
                mime_type: "application/octet-stream".to_owned(),
                attributes: Vec::new(),
                stickers: None,
                video_cover: None,
                video_timestamp: None,
                ttl_seconds: None,
            }
            .into(),
            message: caption.to_owned(),
            random_id,
            reply_markup: None,
            entities: None,
            schedule_date: None,
            schedule_repeat_period: None,
            send_as: None,
            quick_reply_shortcut: None,
            effect: None,
            allow_paid_stars: None,
            suggested_post: None,
        })
        .await
    }

    /// Uploads `bytes` in parts; the `InputFile` that names the upload.
    pub async fn upload(&self, bytes: &[u8], name: &str) -> Result<enums::InputFile, CallError> {
        let file_id: i64 = rand::rng().random();
        let parts: Vec<&[u8]> = bytes.chunks(PART_SIZE).collect();
        let total = i32::try_from(parts.len().max(1))
            .map_err(|_| CallError::Unexpected("too many parts".into()))?;
        let big = bytes.len() > BIG_FILE;
        for (index, part) in parts.iter().enumerate() {
            let file_part = i32::try_from(index).unwrap_or(i32::MAX);
            let stored = if big {
                self.call(&functions::upload::SaveBigFilePart {
                    file_id,
                    file_part,
                    file_total_parts: total,
                    bytes: part.to_vec(),
                })
                .await?
            } else {
                self.call(&functions::upload::SaveFilePart {
                    file_id,
                    file_part,
                    bytes: part.to_vec(),
                })
                .await?
            };
            if !stored {
                return Err(CallError::Unexpected("a part was refused".into()));
            }
        }
        Ok(if big {
            types::InputFileBig {
                id: file_id,
                parts: total,
                name: name.to_owned(),
            }
            .into()
        } else {
            types::InputFile {
                id: file_id,
                parts: total,
                name: name.to_owned(),
                md5_checksum: String::new(),
            }
            .into()
        })
    }

    /// Downloads a document in 128 KiB windows.
    pub async fn download(&self, document: &types::Document) -> Result<Vec<u8>, CallError> {
        let size = usize::try_from(document.size).unwrap_or(0);
        let mut out = Vec::with_capacity(size);
        let limit = 128 * 1024;
        while out.len() < size {
            let file = self
                .call(&functions::upload::GetFile {
                    precise: false,
                    cdn_supported: false,
                    location: types::InputDocumentFileLocation {
                        id: document.id,
                        access_hash: document.access_hash,
                        file_reference: document.file_reference.clone(),
                        thumb_size: String::new(),
                    }
                    .into(),
                    offset: i64::try_from(out.len()).unwrap_or(i64::MAX),
                    limit,
                })
                .await?;
            let enums::upload::File::File(file) = file else {
                return Err(CallError::Unexpected("not upload.file".into()));
            };
            if file.bytes.is_empty() {
                break;
            }
            out.extend_from_slice(&file.bytes);
        }
        Ok(out)
    }

    /// The next update the server pushed, if one comes within `wait`.
    pub async fn next_update(&mut self, wait: Duration) -> Option<enums::Updates> {
        let updates = self.updates.as_mut()?;
        loop {
            let bytes = tokio::time::timeout(wait, updates.recv()).await.ok()??;
            if let Ok(decoded) = enums::Updates::from_bytes(&bytes) {
                return Some(decoded);
            }
        }
    }
}

/// The messages of the `updateNewMessage`s and `updateNewChannelMessage`s in an `Updates`.
pub fn new_messages(updates: &enums::Updates) -> Vec<types::Message> {
    let list: &[enums::Update] = match updates {
        enums::Updates::Updates(updates) => &updates.updates,
        enums::Updates::UpdatesCombined(updates) => &updates.updates,
        _ => &[],
    };
    list.iter()
        .filter_map(|update| match update {
            enums::Update::UpdateNewMessage(update) => match &update.message {
                enums::Message::Message(message) => Some((**message).clone()),
                _ => None,
            },
            enums::Update::UpdateNewChannelMessage(update) => match &update.message {
                enums::Message::Message(message) => Some((**message).clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}
