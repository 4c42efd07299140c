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
use columba_mtproto::tl::{Deserializable, Identifiable, RawObject, Reader};

use crate::error::ApiError;
use crate::info::ClientInfo;

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
    /// Whether a wrapper changed something the session keeps.
    pub(crate) fn has_news(&self) -> bool {
        self.layer.is_some() || self.client.is_some() || self.without_updates
    }
}

fn inner<T: Deserializable>(
    body: &[u8],
    query: impl FnOnce(T) -> RawObject,
) -> Result<Bytes, ApiError> {
    Ok(Bytes::from(query(T::from_bytes(body)?).0))
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
            Some(functions::InvokeWithLayer::<RawObject>::CONSTRUCTOR_ID) => {
                let wrapper = functions::InvokeWithLayer::<RawObject>::from_bytes(body)?;
                out.layer = Some(wrapper.layer);
                Bytes::from(wrapper.query.0)
            }
            Some(functions::InitConnection::<RawObject>::CONSTRUCTOR_ID) => {
                let wrapper = functions::InitConnection::<RawObject>::from_bytes(body)?;
                out.client = Some(ClientInfo {
                    api_id: wrapper.api_id,
                    device_model: wrapper.device_model,
                    system_version: wrapper.system_version,
                    app_version: wrapper.app_version,
                    system_lang_code: wrapper.system_lang_code,
                    lang_pack: wrapper.lang_pack,
                    lang_code: wrapper.lang_code,
                });
                Bytes::from(wrapper.query.0)
            }
            Some(functions::InvokeWithoutUpdates::<RawObject>::CONSTRUCTOR_ID) => {
                out.without_updates = true;
                inner(body, |w: functions::InvokeWithoutUpdates<RawObject>| {
                    w.query
                })?
            }
            Some(functions::InvokeWithMessagesRange::<RawObject>::CONSTRUCTOR_ID) => {
                inner(body, |w: functions::InvokeWithMessagesRange<RawObject>| {
                    w.query
                })?
            }
            Some(functions::InvokeWithGooglePlayIntegrity::<RawObject>::CONSTRUCTOR_ID) => inner(
                body,
                |w: functions::InvokeWithGooglePlayIntegrity<RawObject>| w.query,
            )?,
            Some(functions::InvokeWithApnsSecret::<RawObject>::CONSTRUCTOR_ID) => {
                inner(body, |w: functions::InvokeWithApnsSecret<RawObject>| {
                    w.query
                })?
            }
            Some(functions::InvokeWithReCaptcha::<RawObject>::CONSTRUCTOR_ID) => {
                inner(body, |w: functions::InvokeWithReCaptcha<RawObject>| w.query)?
            }
            Some(functions::InvokeWithTakeout::<RawObject>::CONSTRUCTOR_ID) => {
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
    use columba_mtproto::tl::Serializable as _;

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
        let out = unwrap(Bytes::from(body), 4).unwrap();
        assert_eq!(out.body.as_ref(), get_config().as_slice());
        assert_eq!(out.layer, Some(198));
        assert_eq!(out.client.unwrap().device_model, "Test");
        assert!(!out.without_updates);
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
        assert!(!plain.has_news());
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
