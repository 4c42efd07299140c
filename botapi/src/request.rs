//! What a Bot API request says: its route (`/bot<token>/<method>` or
//! `/file/bot<token>/<path>`) and its parameters, from the query string and from a body in
//! any of the four encodings the Bot API takes (`application/x-www-form-urlencoded`,
//! `application/json`, `multipart/form-data`, or none).
//!
//! Parameters are kept as they came: a text (query, form, multipart field) or a JSON value
//! (a JSON body's members). A structured parameter (`reply_markup`, `entities`,
//! `allowed_updates`) may come either way: as JSON text in a form (what python-telegram-bot
//! sends) or as a JSON value. Files come only in multipart bodies. Every count and size is
//! bounded ([`Limits`]) before anything is kept, and nothing here panics.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::Value;

use crate::reply::BotApiError;

/// Bounds on what one request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Parameters (fields and files) in one request.
    pub max_params: usize,
    /// The longest parameter name, in bytes.
    pub max_name_len: usize,
    /// The largest text parameter, in bytes.
    pub max_text_len: usize,
    /// Files in one request.
    pub max_files: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_params: 64,
            max_name_len: 64,
            max_text_len: 1 << 20,
            max_files: 10,
        }
    }
}

/// A file sent in a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The part's file name, if it gave one.
    pub file_name: Option<String>,
    /// The part's content type, if it gave one.
    pub content_type: Option<String>,
    /// The bytes.
    pub bytes: Bytes,
}

/// One parameter's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// Text (query string, form, multipart field).
    Text(String),
    /// A member of a JSON body.
    Json(Value),
}

/// A request's parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    values: HashMap<String, Param>,
    files: HashMap<String, Upload>,
}

fn bad(description: impl Into<String>) -> BotApiError {
    BotApiError::bad_request(description)
}

impl Params {
    fn insert(&mut self, limits: &Limits, name: String, value: Param) -> Result<(), BotApiError> {
        if name.len() > limits.max_name_len {
            return Err(bad("parameter name is too long"));
        }
        if !self.values.contains_key(&name)
            && self.values.len().saturating_add(self.files.len()) >= limits.max_params
        {
            return Err(bad("too many parameters"));
        }
        if let Param::Text(text) = &value {
            if text.len() > limits.max_text_len {
                return Err(bad(format!("parameter \"{name}\" is too long")));
            }
        }
        self.values.insert(name, value);
        Ok(())
    }

    /// Adds the pairs of a query string or form body.
    pub fn add_form(&mut self, limits: &Limits, form: &[u8]) -> Result<(), BotApiError> {
        for (name, value) in form_urlencoded::parse(form) {
            self.insert(limits, name.into_owned(), Param::Text(value.into_owned()))?;
        }
        Ok(())
    }

    /// Adds the members of a JSON object body.
    pub fn add_json(&mut self, limits: &Limits, body: &[u8]) -> Result<(), BotApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let Value::Object(members) =
            serde_json::from_slice::<Value>(body).map_err(|_| bad("can't parse JSON object"))?
        else {
            return Err(bad("can't parse JSON object"));
        };
        for (name, value) in members {
            let value = match value {
                Value::String(text) => Param::Text(text),
                other => Param::Json(other),
            };
            self.insert(limits, name, value)?;
        }
        Ok(())
    }

    /// Adds a file.
    pub fn add_file(
        &mut self,
        limits: &Limits,
        name: String,
        upload: Upload,
    ) -> Result<(), BotApiError> {
        if name.len() > limits.max_name_len {
            return Err(bad("parameter name is too long"));
        }
        if self.files.len() >= limits.max_files
            || self.values.len().saturating_add(self.files.len()) >= limits.max_params
        {
            return Err(bad("too many files"));
        }
        self.files.insert(name, upload);
        Ok(())
    }

    /// Adds a multipart body's fields and files.
    pub async fn add_multipart(
        &mut self,
        limits: &Limits,
        boundary: &str,
        body: Bytes,
    ) -> Result<(), BotApiError> {
        let stream = futures_once(body);
        let mut multipart = multer::Multipart::new(stream, boundary);
        loop {
            let field = match multipart.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => break,
                Err(_) => return Err(bad("can't parse multipart body")),
            };
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let content_type = field.content_type().map(ToString::to_string);
            let bytes = field
                .bytes()
                .await
                .map_err(|_| bad("can't parse multipart body"))?;
            if file_name.is_some() {
                let upload = Upload {
                    file_name,
                    content_type,
                    bytes,
                };
                self.add_file(limits, name, upload)?;
            } else {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| bad(format!("parameter \"{name}\" is not UTF-8")))?;
                self.insert(limits, name, Param::Text(text))?;
            }
        }
        Ok(())
    }

    /// Reads a request: the query string, then the body by its content type.
    pub async fn read(
        limits: &Limits,
        query: Option<&str>,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Self, BotApiError> {
        let mut params = Self::default();
        if let Some(query) = query {
            params.add_form(limits, query.as_bytes())?;
        }
        let media = content_type
            .and_then(|kind| kind.split(';').next())
            .map(|kind| kind.trim().to_ascii_lowercase());
        match media.as_deref() {
            _ if body.is_empty() => {}
            Some("application/json") => params.add_json(limits, &body)?,
            Some("multipart/form-data") => {
                let boundary = content_type
                    .and_then(|kind| multer::parse_boundary(kind).ok())
                    .ok_or_else(|| bad("multipart body without a boundary"))?;
                params.add_multipart(limits, &boundary, body).await?;
            }
            // The form is the default, as the official server takes it.
            _ => params.add_form(limits, &body)?,
        }
        Ok(params)
    }

    /// Whether the parameter is there.
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name) || self.files.contains_key(name)
    }

    /// A text parameter (a JSON number or boolean is taken as its text).
    pub fn text(&self, name: &str) -> Option<String> {
        match self.values.get(name)? {
            Param::Text(text) => Some(text.clone()),
            Param::Json(Value::Number(number)) => Some(number.to_string()),
            Param::Json(Value::Bool(value)) => Some(value.to_string()),
            Param::Json(_) => None,
        }
    }

    /// A required text parameter: `Bad Request: <name> is empty` without it.
    pub fn required_text(&self, name: &str) -> Result<String, BotApiError> {
        self.text(name)
            .filter(|text| !text.is_empty())
            .ok_or_else(|| bad(format!("parameter \"{name}\" is required")))
    }

    /// An integer parameter, if present; `Bad Request` if present but not an integer.
    pub fn int(&self, name: &str) -> Result<Option<i64>, BotApiError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(Param::Json(Value::Number(number))) => number
                .as_i64()
                .map(Some)
                .ok_or_else(|| bad(format!("parameter \"{name}\" is not a number"))),
            Some(Param::Text(text)) if text.is_empty() => Ok(None),
            Some(Param::Text(text)) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| bad(format!("parameter \"{name}\" is not a number"))),
            Some(Param::Json(_)) => Err(bad(format!("parameter \"{name}\" is not a number"))),
        }
    }

    /// A required integer parameter.
    pub fn required_int(&self, name: &str) -> Result<i64, BotApiError> {
        self.int(name)?
            .ok_or_else(|| bad(format!("parameter \"{name}\" is required")))
    }

    /// A boolean parameter (`true`/`false`, `1`/`0`, as the official server takes them);
    /// absent is `false`.
    pub fn flag(&self, name: &str) -> bool {
        match self.values.get(name) {
            Some(Param::Json(Value::Bool(value))) => *value,
            Some(Param::Json(Value::Number(number))) => number.as_i64().is_some_and(|n| n != 0),
            Some(Param::Text(text)) => matches!(text.trim(), "true" | "True" | "1"),
            _ => false,
        }
    }

    /// A structured parameter, given as a JSON value or as JSON text.
    pub fn json(&self, name: &str) -> Result<Option<Value>, BotApiError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(Param::Json(value)) => Ok(Some(value.clone())),
            Some(Param::Text(text)) if text.trim().is_empty() => Ok(None),
            Some(Param::Text(text)) => serde_json::from_str(text)
                .map(Some)
                .map_err(|_| bad(format!("can't parse {name} JSON object"))),
        }
    }

    /// A file part, by its name.
    pub fn file(&self, name: &str) -> Option<&Upload> {
        self.files.get(name)
    }
}

/// A stream of one chunk, for `multer`.
fn futures_once(
    body: Bytes,
) -> impl futures_core::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
    Once(Some(body))
}

struct Once(Option<Bytes>);

impl futures_core::Stream for Once {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.0.take().map(Ok))
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/bot<token>/<method>`: the method's name in lower case.
    Method {
        /// The token as given.
        token: String,
        /// The method, lower case.
        method: String,
    },
    /// `/file/bot<token>/<path>`: a file to download.
    File {
        /// The token as given.
        token: String,
        /// The file's path, as `getFile` gave it.
        path: String,
    },
}

/// `path` with its `%XX` escapes decoded (clients escape the token's `:`), if it decodes to
/// UTF-8.
fn percent_decoded(path: &str) -> Option<String> {
    if !path.contains('%') {
        return Some(path.to_owned());
    }
    let mut out = Vec::with_capacity(path.len());
    let mut bytes = path.bytes();
    while let Some(byte) = bytes.next() {
        if byte == b'%' {
            let high = char::from(bytes.next()?).to_digit(16)?;
            let low = char::from(bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(high * 16 + low).ok()?);
        } else {
            out.push(byte);
        }
    }
    String::from_utf8(out).ok()
}

/// The route of a request path, if it is one the Bot API serves (`None`: 404).
pub fn route(path: &str) -> Option<Route> {
    let path = percent_decoded(path)?;
    let path = path.as_str();
    if let Some(rest) = path.strip_prefix("/file/bot") {
        let (token, path) = rest.split_once('/')?;
        if token.is_empty() || path.is_empty() {
            return None;
        }
        return Some(Route::File {
            token: token.to_owned(),
            path: path.to_owned(),
        });
    }
    let rest = path.strip_prefix("/bot")?;
    let (token, method) = rest.split_once('/')?;
    // The official server also takes `/bot<token>/test/<method>` (the test environment);
    // there is one environment here.
    let method = method.strip_prefix("test/").unwrap_or(method);
    if token.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    Some(Route::Method {
        token: token.to_owned(),
        method: method.to_ascii_lowercase(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use proptest::prelude::*;

    use super::*;

    fn read(query: Option<&str>, kind: Option<&str>, body: &[u8]) -> Result<Params, BotApiError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(Params::read(
            &Limits::default(),
            query,
            kind,
            Bytes::copy_from_slice(body),
        ))
    }

    #[test]
    fn routes_are_read_from_paths() {
        assert_eq!(
            route("/bot123:abc/SendMessage"),
            Some(Route::Method {
                token: "123:abc".into(),
                method: "sendmessage".into()
            })
        );
        assert_eq!(
            route("/file/bot1:x/photos/a.jpg"),
            Some(Route::File {
                token: "1:x".into(),
                path: "photos/a.jpg".into()
            })
        );
        assert_eq!(
            route("/file/bot1%3Ax/photos/a.jpg"),
            Some(Route::File {
                token: "1:x".into(),
                path: "photos/a.jpg".into()
            }),
            "escapes are decoded"
        );
        for none in [
            "/",
            "/bot",
            "/bot/getMe",
            "/bot1:x/",
            "/bot1:x/a/b",
            "/other",
            "/file/bot1:x/",
            "/bot1%3/x",
            "/bot%FF/x",
        ] {
            assert_eq!(route(none), None, "{none}");
        }
    }

    #[test]
    fn every_encoding_gives_the_same_parameters() {
        let query = read(Some("chat_id=5&text=hi%20there"), None, b"").unwrap();
        let form = read(
            None,
            Some("application/x-www-form-urlencoded"),
            b"chat_id=5&text=hi+there",
        )
        .unwrap();
        let json = read(
            None,
            Some("application/json; charset=utf-8"),
            br#"{"chat_id": 5, "text": "hi there"}"#,
        )
        .unwrap();
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n5\r\n--XX\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhi there\r\n--XX\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\nPNG!\r\n--XX--\r\n";
        let multipart = read(None, Some("multipart/form-data; boundary=XX"), body).unwrap();
        for params in [&query, &form, &json, &multipart] {
            assert_eq!(params.required_int("chat_id").unwrap(), 5);
            assert_eq!(params.text("text").as_deref(), Some("hi there"));
        }
        let photo = multipart.file("photo").unwrap();
        assert_eq!(photo.bytes.as_ref(), b"PNG!");
        assert_eq!(photo.file_name.as_deref(), Some("a.png"));
    }

    #[test]
    fn structured_parameters_come_as_json_or_as_text() {
        let form = read(
            None,
            None,
            b"reply_markup=%7B%22a%22%3A1%7D&show_alert=true",
        )
        .unwrap();
        let json = read(
            None,
            Some("application/json"),
            br#"{"reply_markup": {"a": 1}, "show_alert": true}"#,
        )
        .unwrap();
        for params in [form, json] {
            assert_eq!(
                params.json("reply_markup").unwrap(),
                Some(serde_json::json!({"a": 1}))
            );
            assert!(params.flag("show_alert"));
            assert!(!params.flag("absent"));
        }
    }

    #[test]
    fn bad_or_oversized_requests_are_refused() {
        assert!(read(None, Some("application/json"), b"[1, 2]").is_err());
        assert!(read(None, Some("application/json"), b"{").is_err());
        assert!(read(None, Some("multipart/form-data"), b"x").is_err());
        assert!(
            read(Some("chat_id=x"), None, b"")
                .unwrap()
                .int("chat_id")
                .is_err()
        );
        let many: String = (0..100).map(|n| format!("p{n}=1&")).collect();
        assert!(read(Some(&many), None, b"").is_err());
        let long = format!("{}=1", "n".repeat(65));
        assert!(read(Some(&long), None, b"").is_err());
    }

    proptest! {
        #[test]
        fn any_request_is_read_or_refused_without_panic(
            query in proptest::option::of(".{0,64}"),
            kind in proptest::option::of(prop_oneof![
                Just("application/json".to_owned()),
                Just("multipart/form-data; boundary=b".to_owned()),
                Just("application/x-www-form-urlencoded".to_owned()),
                ".{0,20}",
            ]),
            body in proptest::collection::vec(any::<u8>(), 0..256),
            path in ".{0,40}",
        ) {
            let _ = read(query.as_deref(), kind.as_deref(), &body);
            let _ = route(&path);
        }
    }
}
