//! The Bot API's request parsing: routes, parameters in every encoding (query string, form,
//! JSON, multipart), and what methods read from them (formatted text, reply markups,
//! entities, file ids). Nothing may panic or allocate past the limits.
#![no_main]

use std::cell::RefCell;

use bytes::Bytes;
use columba_api::AccessSecret;
use columba_botapi::files::FileRef;
use columba_botapi::request::{Limits, Params, route};
use columba_botapi::{entities, markup};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static RUNTIME: RefCell<tokio::runtime::Runtime> = RefCell::new(
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|_| std::process::abort()),
    );
}

const KINDS: [&str; 5] = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=XyZ",
    "multipart/form-data",
    "text/plain",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // The input is path \n query \n body.
    let mut parts = rest.splitn(3, |byte| *byte == b'\n');
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let query = parts.next().map(String::from_utf8_lossy);
    let body = Bytes::copy_from_slice(parts.next().unwrap_or_default());
    let _ = route(&path);
    let kind = KINDS.get(usize::from(selector) % KINDS.len()).copied();
    let params = RUNTIME.with(|runtime| {
        runtime
            .borrow()
            .block_on(Params::read(&Limits::default(), query.as_deref(), kind, body))
    });
    let Ok(params) = params else {
        return;
    };
    if let Some(text) = params.text("text") {
        let _ = entities::parse_html(&text);
        let _ = entities::parse_markdown_v2(&text);
        let _ = entities::bot_commands(&text);
        let _ = FileRef::from_file_id(&AccessSecret::new([1; 32]), 1, &text);
    }
    if let Ok(Some(value)) = params.json("reply_markup") {
        let _ = markup::from_json(&value);
    }
    if let Ok(Some(value)) = params.json("entities") {
        let _ = entities::from_json_list(&value);
    }
    let _ = params.int("chat_id");
});
