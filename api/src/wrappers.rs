//! The wrappers a client puts around its requests, taken off once, here, with the generated
//! types: `invokeWithLayer`, `initConnection`, `invokeWithoutUpdates`,
//! `invokeWithMessagesRange` (the range only narrows what the client wants; the query is
//! answered whole), and the verification wrappers (`invokeWithGooglePlayIntegrity`,
//! `invokeWithApnsSecret`, `invokeWithReCaptcha`, whose tokens only Telegram's own servers
//! check). `invokeWithTakeout` is refused with `TAKEOUT_INVALID`: no takeout session can
//! exist here (`account.initTakeoutSession` is not served). `invokeAfterMsg(s)` never
//! reaches this layer: the session layer orders those.

use bytes::Bytes;
use columba_mtproto::tl::api::functions;
use columba_mtproto::tl::{Deserializable, Identifiable, Reader};

use crate::error::ApiError;
use crate::info::{ClientInfo, SessionInfo};

/// What the wrappers of one request said.
#[derive(Debug, Default)]
pub(crate) struct Unwrapped {
    /// The query inside every wrapper.
    pub(crate) body: Bytes,
    pub(crate) layer: Option<i32>,
    pub(crate) client: Option<ClientInfo>,
    pub(crate) without_updates: bool,
}

impl Unwrapped {
    /// Whether the wrappers say something that `info`, what the session keeps, does not.
    pub(crate) fn changes(&self, info: &SessionInfo) -> bool {
        self.layer.is_some_and(|layer| info.layer != Some(layer))
            || self
                .client
                .as_ref()
                .is_some_and(|client| info.client.as_ref() != Some(client))
            || (self.without_updates && !info.without_updates)
    }
}

/// A wrapper's query, decoded as the offset where it starts. The query is every wrapper's
/// last field and runs to the end of the request, so it is cut from the request's bytes
/// without a copy.
struct QueryAt(usize);

impl Deserializable for QueryAt {
    const MIN_WIRE_SIZE: usize = 0;

    fn deserialize(r: &mut Reader<'_>) -> Result<Self, columba_mtproto::tl::DecodeError> {
        let at = r.position();
        r.read_rest();
        Ok(Self(at))
    }
}

/// The query of `body`, decoded as wrapper `T` (whose `query` field `query` gives).
fn inner<T: Deserializable>(
    body: &Bytes,
    query: impl FnOnce(&T) -> &QueryAt,
) -> Result<Bytes, ApiError> {
    let wrapper = T::from_bytes(body)?;
    Ok(rest(body, query(&wrapper)))
}

/// `body` from the query's start on.
fn rest(body: &Bytes, query: &QueryAt) -> Bytes {
    // The offset is where the reader stood inside `body`, so never past its end; `min`
    // keeps `slice` from panicking even so.
    body.slice(query.0.min(body.len())..)
}

/// Takes off at most `max_depth` wrappers; a request wrapped deeper is refused with
/// `INPUT_REQUEST_TOO_LONG`.
pub(crate) fn unwrap(body: Bytes, max_depth: usize) -> Result<Unwrapped, ApiError> {
    let mut out = Unwrapped {
        body,
        ..Unwrapped::default()
    };
    for _ in 0..=max_depth {
        let body = &out.body;
        let next = match Reader::new(body).peek_u32() {
            Some(functions::InvokeWithLayer::<QueryAt>::CONSTRUCTOR_ID) => {
                let wrapper = functions::InvokeWithLayer::<QueryAt>::from_bytes(body)?;
                out.layer = Some(wrapper.layer);
                rest(body, &wrapper.query)
            }
            Some(functions::InitConnection::<QueryAt>::CONSTRUCTOR_ID) => {
                let wrapper = functions::InitConnection::<QueryAt>::from_bytes(body)?;
                let next = rest(body, &wrapper.query);
                out.client = Some(ClientInfo {
                    api_id: wrapper.api_id,
                    device_model: wrapper.device_model,
                    system_version: wrapper.system_version,
                    app_version: wrapper.app_version,
                    system_lang_code: wrapper.system_lang_code,
                    lang_pack: wrapper.lang_pack,
                    lang_code: wrapper.lang_code,
                });
                next
            }
            Some(functions::InvokeWithoutUpdates::<QueryAt>::CONSTRUCTOR_ID) => {
                out.without_updates = true;
                inner(body, |w: &functions::InvokeWithoutUpdates<QueryAt>| {
                    &w.query
                })?
            }
            Some(functions::InvokeWithMessagesRange::<QueryAt>::CONSTRUCTOR_ID) => {
                inner(body, |w: &functions::InvokeWithMessagesRange<QueryAt>| {
                    &w.query
                })?
            }
            Some(functions::InvokeWithGooglePlayIntegrity::<QueryAt>::CONSTRUCTOR_ID) => inner(
                body,
                |w: &functions::InvokeWithGooglePlayIntegrity<QueryAt>| &w.query,
            )?,
            Some(functions::InvokeWithApnsSecret::<QueryAt>::CONSTRUCTOR_ID) => {
                inner(body, |w: &functions::InvokeWithApnsSecret<QueryAt>| {
                    &w.query
                })?
            }
            Some(functions::InvokeWithReCaptcha::<QueryAt>::CONSTRUCTOR_ID) => {
                inner(body, |w: &functions::InvokeWithReCaptcha<QueryAt>| &w.query)?
            }
            Some(functions::InvokeWithTakeout::<QueryAt>::CONSTRUCTOR_ID) => {
                return Err(ApiError::bad_request("TAKEOUT_INVALID"));
            }
            _ => return Ok(out),
        };
        out.body = next;
    }
    Err(ApiError::bad_request("INPUT_REQUEST_TOO_LONG"))
}

#[cfg(test)]
mod tests {
    use columba_mtproto::tl::{RawObject, Serializable as _};

    use super::*;

    fn get_config() -> Vec<u8> {
        functions::help::GetConfig {}.to_bytes()
    }

    fn init(query: Vec<u8>) -> Vec<u8> {
        functions::InitConnection {
            api_id: 6,
            device_model: "Test".to_owned(),
            system_version: "Linux".to_owned(),
            app_version: "1.0".to_owned(),
            system_lang_code: "en".to_owned(),
            lang_pack: String::new(),
            lang_code: "en".to_owned(),
            proxy: None,
            params: None,
            query: RawObject(query),
        }
        .to_bytes()
    }

    #[test]
    fn layer_and_connection_are_taken_off_and_kept() {
        let body = functions::InvokeWithLayer {
            layer: 198,
            query: RawObject(init(get_config())),
        }
        .to_bytes();
        let body = Bytes::from(body);
        let out = unwrap(body.clone(), 4).unwrap();
        assert_eq!(out.body.as_ref(), get_config().as_slice());
        let tail = body.len() - out.body.len();
        assert_eq!(
            out.body.as_ptr(),
            body[tail..].as_ptr(),
            "the query is cut from the request, not copied"
        );
        assert_eq!(out.layer, Some(198));
        assert!(!out.without_updates);
        let mut info = SessionInfo::default();
        assert!(out.changes(&info));
        info.layer = Some(198);
        assert!(out.changes(&info), "the client is not known yet");
        info.client = out.client.clone();
        assert!(
            !out.changes(&info),
            "the same wrappers again change nothing"
        );
        info.layer = Some(229);
        assert!(out.changes(&info), "a new layer is news");
        assert_eq!(out.client.unwrap().device_model, "Test");
    }

    #[test]
    fn without_updates_is_noted_and_plain_requests_pass() {
        let body = functions::InvokeWithoutUpdates {
            query: RawObject(get_config()),
        }
        .to_bytes();
        let out = unwrap(Bytes::from(body), 4).unwrap();
        assert!(out.without_updates && out.layer.is_none());
        let plain = unwrap(Bytes::from(get_config()), 4).unwrap();
        assert!(!plain.changes(&SessionInfo::default()));
        assert_eq!(plain.body.as_ref(), get_config().as_slice());
    }

    #[test]
    fn deep_nesting_truncation_and_takeout_are_refused() {
        let mut body = get_config();
        for _ in 0..6 {
            body = functions::InvokeWithoutUpdates {
                query: RawObject(body),
            }
            .to_bytes();
        }
        assert_eq!(
            unwrap(Bytes::from(body), 4).unwrap_err().name(),
            "INPUT_REQUEST_TOO_LONG"
        );
        let mut cut = init(get_config());
        cut.truncate(20);
        assert_eq!(
            unwrap(Bytes::from(cut), 4).unwrap_err().name(),
            "INPUT_FETCH_ERROR"
        );
        let takeout = functions::InvokeWithTakeout {
            takeout_id: 1,
            query: RawObject(get_config()),
        }
        .to_bytes();
        assert_eq!(
            unwrap(Bytes::from(takeout), 4).unwrap_err().name(),
            "TAKEOUT_INVALID"
        );
    }
}
