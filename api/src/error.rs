//! Telegram's error convention in one place: an HTTP-like code and an upper-case name
//! (`400 PEER_ID_INVALID`, `401 AUTH_KEY_UNREGISTERED`, `420 FLOOD_WAIT_30`), and the
//! conversions from the stores' errors, so that a handler can use `?` on a store call.
//!
//! Who is at fault is in the code: 4xx errors are the client's (answered as they are), 5xx
//! the server's (logged with their source, answered as `500 INTERNAL` without details).

use std::borrow::Cow;

use columba_mtproto::tl::DecodeError;
use columba_session::RpcError;
use columba_store::{AuthKeyError, FileError, MessageError, UserError};

/// What a handler answers instead of a result: an `rpc_error` in Telegram's convention.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {name}")]
pub struct ApiError {
    code: i32,
    name: Cow<'static, str>,
}

impl ApiError {
    /// An error with any code and name.
    pub fn new(code: i32, name: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            name: name.into(),
        }
    }

    /// `400 name`: the request is wrong (`PEER_ID_INVALID`, `MESSAGE_EMPTY`, ...).
    pub fn bad_request(name: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, name)
    }

    /// `401 name`: the caller is not signed in, or its key is not usable for this.
    pub fn unauthorized(name: impl Into<Cow<'static, str>>) -> Self {
        Self::new(401, name)
    }

    /// `403 name`: a privacy or rights refusal.
    pub fn forbidden(name: impl Into<Cow<'static, str>>) -> Self {
        Self::new(403, name)
    }

    /// `420 FLOOD_WAIT_<seconds>`: the client must wait this long before asking again
    /// (at least one second: `FLOOD_WAIT_0` would make clients spin).
    pub fn flood_wait(seconds: u64) -> Self {
        Self::new(420, format!("FLOOD_WAIT_{}", seconds.max(1)))
    }

    /// `500 INTERNAL` for a failure of the server: `source` is logged, never sent.
    pub fn internal(source: &dyn std::error::Error) -> Self {
        tracing::error!(error = %source, "internal error answered as 500 INTERNAL");
        Self::new(500, "INTERNAL")
    }

    /// `401 AUTH_KEY_UNREGISTERED`: what every method but the login ones gets before sign-in.
    pub fn auth_key_unregistered() -> Self {
        Self::unauthorized("AUTH_KEY_UNREGISTERED")
    }

    /// `400 INPUT_METHOD_INVALID`: no handler for the constructor id.
    pub fn method_invalid() -> Self {
        Self::bad_request("INPUT_METHOD_INVALID")
    }

    /// `400 INPUT_FETCH_ERROR`: the request does not decode as its constructor says.
    pub fn fetch_error() -> Self {
        Self::bad_request("INPUT_FETCH_ERROR")
    }

    /// The code (400, 401, 403, 420, 500, ...).
    pub fn code(&self) -> i32 {
        self.code
    }

    /// The name (`PEER_ID_INVALID`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the server is at fault (a 5xx code).
    pub fn is_internal(&self) -> bool {
        self.code >= 500
    }
}

impl From<ApiError> for RpcError {
    fn from(error: ApiError) -> Self {
        Self::new(error.code, error.name)
    }
}

impl From<RpcError> for ApiError {
    fn from(error: RpcError) -> Self {
        Self::new(error.code, error.message)
    }
}

impl From<DecodeError> for ApiError {
    fn from(_: DecodeError) -> Self {
        Self::fetch_error()
    }
}

impl From<MessageError> for ApiError {
    fn from(error: MessageError) -> Self {
        match error {
            MessageError::Backend(_) | MessageError::Poisoned { .. } | MessageError::Exhausted => {
                Self::internal(&error)
            }
            MessageError::RandomIdDuplicate => Self::bad_request("RANDOM_ID_DUPLICATE"),
            MessageError::MessageIdInvalid => Self::bad_request("MESSAGE_ID_INVALID"),
            MessageError::MessageAuthorRequired => Self::forbidden("MESSAGE_AUTHOR_REQUIRED"),
            MessageError::PeerIdInvalid => Self::bad_request("PEER_ID_INVALID"),
            MessageError::LimitInvalid => Self::bad_request("LIMIT_INVALID"),
            MessageError::MessageTooLong => Self::bad_request("MESSAGE_TOO_LONG"),
            MessageError::MessageNotModified => Self::bad_request("MESSAGE_NOT_MODIFIED"),
            MessageError::ReactionInvalid => Self::bad_request("REACTION_INVALID"),
            MessageError::ReactionsTooMany => Self::bad_request("REACTIONS_TOO_MANY"),
            MessageError::UserIdInvalid => Self::bad_request("USER_ID_INVALID"),
            MessageError::AdminRankInvalid => Self::bad_request("ADMIN_RANK_INVALID"),
            MessageError::UsersTooMuch => Self::bad_request("USERS_TOO_MUCH"),
            MessageError::ChannelsTooMuch => Self::bad_request("CHANNELS_TOO_MUCH"),
            other => Self::internal(&other),
        }
    }
}

impl From<FileError> for ApiError {
    fn from(error: FileError) -> Self {
        let (code, name) = error.rpc_error();
        if code >= 500 {
            return Self::internal(&error);
        }
        Self::new(code, name)
    }
}

impl From<AuthKeyError> for ApiError {
    fn from(error: AuthKeyError) -> Self {
        Self::internal(&error)
    }
}

impl From<UserError> for ApiError {
    fn from(error: UserError) -> Self {
        let name = match error {
            UserError::UserIdInvalid => "USER_ID_INVALID",
            UserError::PhoneNumberInvalid => "PHONE_NUMBER_INVALID",
            UserError::PhoneNumberOccupied(_) => "PHONE_NUMBER_OCCUPIED",
            UserError::FirstNameInvalid => "FIRSTNAME_INVALID",
            UserError::LastNameInvalid => "LASTNAME_INVALID",
            UserError::AboutTooLong => "ABOUT_TOO_LONG",
            UserError::UsernameInvalid => "USERNAME_INVALID",
            UserError::UsernameOccupied => "USERNAME_OCCUPIED",
            UserError::UsernameNotModified => "USERNAME_NOT_MODIFIED",
            UserError::ChannelInvalid => "CHANNEL_INVALID",
            UserError::ContactIdInvalid => "CONTACT_ID_INVALID",
            UserError::ContactsTooMuch => "CONTACTS_TOO_MUCH",
            UserError::BlockedTooMuch => "BLOCKED_TOO_MUCH",
            UserError::PhotoInvalid => "PHOTO_INVALID",
            UserError::TokenInvalid => "TOKEN_INVALID",
            UserError::BotInvalid => "BOT_INVALID",
            UserError::BotCommandInvalid => "BOT_COMMAND_INVALID",
            // Telegram answers a full list of sessions or devices with a flood wait.
            UserError::TooMany => return Self::flood_wait(60),
            _ => return Self::internal(&error),
        };
        Self::bad_request(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_keep_telegram_names_and_hide_server_faults() {
        let error = ApiError::from(MessageError::PeerIdInvalid);
        assert_eq!((error.code(), error.name()), (400, "PEER_ID_INVALID"));
        let error = ApiError::from(MessageError::Backend(columba_store::BackendError::new(
            "disk on fire",
        )));
        assert_eq!((error.code(), error.name()), (500, "INTERNAL"));
        assert!(error.is_internal());
        let error = ApiError::from(FileError::FilePartsInvalid);
        assert_eq!((error.code(), error.name()), (400, "FILE_PARTS_INVALID"));
        let error = ApiError::from(UserError::UsernameOccupied);
        assert_eq!((error.code(), error.name()), (400, "USERNAME_OCCUPIED"));
        let error = ApiError::from(UserError::Poisoned(columba_store::BackendError::new("x")));
        assert_eq!((error.code(), error.name()), (500, "INTERNAL"));
        let rpc = RpcError::from(ApiError::flood_wait(0));
        assert_eq!((rpc.code, rpc.message.as_str()), (420, "FLOOD_WAIT_1"));
    }
}
