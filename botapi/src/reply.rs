//! Answers as the Bot API gives them: `{"ok": true, "result": ...}`, or
//! `{"ok": false, "error_code": N, "description": "...", "parameters": {...}}` with the HTTP
//! status of the error code and the official server's description prefixes (`Bad Request: `,
//! `Unauthorized`, `Forbidden: `, `Not Found`, `Conflict: `, `Too Many Requests: retry after
//! N`), and Telegram's MTProto errors turned into them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use columba_api::ApiError;
use serde_json::{Value, json};

/// An error answer of the Bot API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {description}")]
pub struct BotApiError {
    /// The error code (also the HTTP status).
    pub code: u16,
    /// What went wrong, with the official prefix.
    pub description: String,
    /// For 429: seconds to wait.
    pub retry_after: Option<u64>,
}

impl BotApiError {
    fn new(code: u16, description: String) -> Self {
        Self {
            code,
            description,
            retry_after: None,
        }
    }

    /// 400 `Bad Request: <what>`.
    pub fn bad_request(what: impl Into<String>) -> Self {
        Self::new(400, format!("Bad Request: {}", what.into()))
    }

    /// 401 `Unauthorized` (a bad token).
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized".to_owned())
    }

    /// 403 `Forbidden: <what>`.
    pub fn forbidden(what: impl Into<String>) -> Self {
        Self::new(403, format!("Forbidden: {}", what.into()))
    }

    /// 404 `Not Found` (a path the Bot API does not have).
    pub fn not_found() -> Self {
        Self::new(404, "Not Found".to_owned())
    }

    /// 404 `Not Found: method not found`.
    pub fn method_not_found() -> Self {
        Self::new(404, "Not Found: method not found".to_owned())
    }

    /// 409 `Conflict: <what>`.
    pub fn conflict(what: impl Into<String>) -> Self {
        Self::new(409, format!("Conflict: {}", what.into()))
    }

    /// 413: a request larger than the server takes.
    pub fn too_large() -> Self {
        Self::new(413, "Request Entity Too Large".to_owned())
    }

    /// 429 `Too Many Requests: retry after N`.
    pub fn too_many(seconds: u64) -> Self {
        Self {
            retry_after: Some(seconds),
            ..Self::new(429, format!("Too Many Requests: retry after {seconds}"))
        }
    }

    /// 500 `Internal Server Error`.
    pub fn internal() -> Self {
        Self::new(500, "Internal Server Error".to_owned())
    }

    /// The JSON body.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "ok": false,
            "error_code": self.code,
            "description": self.description,
        });
        if let (Some(seconds), Value::Object(members)) = (self.retry_after, &mut body) {
            members.insert("parameters".to_owned(), json!({ "retry_after": seconds }));
        }
        body
    }
}

/// The Bot API's words for Telegram's errors the methods here meet; others keep their
/// name (lower case, as the official server shows unknown ones).
fn description_of(name: &str) -> String {
    match name {
        "PEER_ID_INVALID" | "USER_ID_INVALID" | "CHAT_ID_INVALID" | "INPUT_USER_DEACTIVATED" => {
            "chat not found".to_owned()
        }
        "MESSAGE_EMPTY" => "message text is empty".to_owned(),
        "MESSAGE_TOO_LONG" => "message is too long".to_owned(),
        "MESSAGE_ID_INVALID" => "message not found".to_owned(),
        "MESSAGE_NOT_MODIFIED" => "message is not modified: specified new message content and \
                                   reply markup are exactly the same as a current content and \
                                   reply markup of the message"
            .to_owned(),
        "QUERY_ID_INVALID" => {
            "query is too old and response timeout expired or query ID is invalid".to_owned()
        }
        "REPLY_MESSAGE_ID_INVALID" => "message to be replied not found".to_owned(),
        "BOT_COMMAND_INVALID" => "BOT_COMMAND_INVALID".to_owned(),
        "BOT_COMMAND_DESCRIPTION_INVALID" => "BOT_COMMAND_DESCRIPTION_INVALID".to_owned(),
        other => other.to_owned(),
    }
}

impl From<ApiError> for BotApiError {
    fn from(error: ApiError) -> Self {
        let name = error.name();
        if let Some(seconds) = name
            .strip_prefix("FLOOD_WAIT_")
            .and_then(|seconds| seconds.parse().ok())
        {
            return Self::too_many(seconds);
        }
        match error.code() {
            403 => Self::forbidden(description_of(name)),
            401 => Self::unauthorized(),
            500 => Self::internal(),
            // Unknown MTProto error codes become 400, as the official server does.
            _ => Self::bad_request(description_of(name)),
        }
    }
}

impl IntoResponse for BotApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::BAD_REQUEST);
        let retry_after = self.retry_after;
        let mut response = (status, json_body(&self.to_json())).into_response();
        if let Some(seconds) = retry_after {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// A JSON body with its content type.
pub fn json_body(value: &Value) -> Response {
    let mut response = value.to_string().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A successful answer.
pub fn ok(result: Value) -> Response {
    json_body(&json!({ "ok": true, "result": result }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_the_official_server_writes_them() {
        let flood = BotApiError::from(ApiError::flood_wait(7));
        assert_eq!(
            flood.to_json(),
            json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7", "parameters": {"retry_after": 7}})
        );
        let missing = BotApiError::from(ApiError::bad_request("PEER_ID_INVALID"));
        assert_eq!(missing.description, "Bad Request: chat not found");
        assert_eq!(BotApiError::unauthorized().code, 401);
        let response = flood.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }
}
