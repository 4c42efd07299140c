//! Reply markups: the Bot API's JSON (`InlineKeyboardMarkup`, `ReplyKeyboardMarkup`,
//! `ReplyKeyboardRemove`, `ForceReply`) and Telegram's `ReplyMarkup` (layer 229), both ways.
//!
//! Inline buttons may carry `callback_data` (1 to [`MAX_CALLBACK_DATA`] bytes), a `url`, or
//! `copy_text`; reply-keyboard buttons are text, or ask for the person's phone or location.
//! Other kinds (web apps, games, payments, inline queries) are refused with `Bad Request`.
//! Sizes are bounded: [`MAX_ROWS`] rows of [`MAX_BUTTONS_PER_ROW`] buttons.

use columba_mtproto::tl::api::{enums, types};
use serde_json::{Value, json};

use crate::reply::BotApiError;

/// The longest callback data, in bytes (the Bot API's limit).
pub const MAX_CALLBACK_DATA: usize = 64;
/// The most rows of a keyboard.
pub const MAX_ROWS: usize = 100;
/// The most buttons of a row.
pub const MAX_BUTTONS_PER_ROW: usize = 12;
/// The longest button label, in characters.
pub const MAX_LABEL_CHARS: usize = 256;

fn invalid(what: &str) -> BotApiError {
    BotApiError::bad_request(format!(
        "can't parse reply keyboard markup JSON object: {what}"
    ))
}

fn rows_of(value: &Value, name: &str) -> Result<Vec<Vec<Value>>, BotApiError> {
    let rows = value
        .get(name)
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(&format!("field \"{name}\" must be an array")))?;
    if rows.len() > MAX_ROWS {
        return Err(invalid("too many rows"));
    }
    rows.iter()
        .map(|row| {
            let row = row
                .as_array()
                .ok_or_else(|| invalid("a row must be an array"))?;
            if row.len() > MAX_BUTTONS_PER_ROW {
                return Err(invalid("too many buttons in a row"));
            }
            Ok(row.clone())
        })
        .collect()
}

fn label(button: &Value) -> Result<String, BotApiError> {
    let text = match button {
        Value::String(text) => text.clone(),
        _ => button
            .get("text")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("a button without text"))?
            .to_owned(),
    };
    if text.chars().count() > MAX_LABEL_CHARS {
        return Err(invalid("a button's text is too long"));
    }
    Ok(text)
}

fn flag(value: &Value, name: &str) -> bool {
    value.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// Telegram's markup of a Bot API `reply_markup`.
pub fn from_json(value: &Value) -> Result<enums::ReplyMarkup, BotApiError> {
    if value.get("inline_keyboard").is_some() {
        let rows = rows_of(value, "inline_keyboard")?
            .iter()
            .map(|row| {
                let buttons = row
                    .iter()
                    .map(inline_button)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(types::KeyboardInlineButtonRow { buttons }.into())
            })
            .collect::<Result<Vec<_>, BotApiError>>()?;
        return Ok(types::ReplyInlineMarkup {
            force_reply: false,
            rows,
        }
        .into());
    }
    if value.get("keyboard").is_some() {
        let rows = rows_of(value, "keyboard")?
            .iter()
            .map(|row| {
                let buttons = row
                    .iter()
                    .map(|button| {
                        let r#type: enums::ButtonType = if flag(button, "request_contact") {
                            types::ButtonTypeRequestPhone {}.into()
                        } else if flag(button, "request_location") {
                            types::ButtonTypeRequestGeoLocation {}.into()
                        } else {
                            types::ButtonTypeDefault {}.into()
                        };
                        Ok(types::KeyboardButton {
                            style: None,
                            text: label(button)?,
                            r#type,
                        }
                        .into())
                    })
                    .collect::<Result<Vec<_>, BotApiError>>()?;
                Ok(types::KeyboardButtonRow { buttons }.into())
            })
            .collect::<Result<Vec<_>, BotApiError>>()?;
        return Ok(types::ReplyKeyboardMarkup {
            resize: flag(value, "resize_keyboard"),
            single_use: flag(value, "one_time_keyboard"),
            selective: flag(value, "selective"),
            persistent: flag(value, "is_persistent"),
            force_reply: false,
            rows,
            placeholder: value
                .get("input_field_placeholder")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
        .into());
    }
    if flag(value, "remove_keyboard") {
        return Ok(types::ReplyKeyboardHide {
            selective: flag(value, "selective"),
        }
        .into());
    }
    if flag(value, "force_reply") {
        return Ok(types::ReplyKeyboardForceReply {
            single_use: false,
            selective: flag(value, "selective"),
            placeholder: value
                .get("input_field_placeholder")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
        .into());
    }
    Err(invalid("unknown markup"))
}

fn inline_button(button: &Value) -> Result<enums::KeyboardInlineButton, BotApiError> {
    let text = label(button)?;
    let r#type: enums::InlineButtonType =
        if let Some(data) = button.get("callback_data").and_then(Value::as_str) {
            if data.is_empty() || data.len() > MAX_CALLBACK_DATA {
                return Err(BotApiError::bad_request("BUTTON_DATA_INVALID"));
            }
            types::InlineButtonTypeCallback {
                requires_password: false,
                data: data.as_bytes().to_vec(),
            }
            .into()
        } else if let Some(url) = button.get("url").and_then(Value::as_str) {
            types::InlineButtonTypeUrl {
                url: url.to_owned(),
            }
            .into()
        } else if let Some(copy) = button
            .get("copy_text")
            .and_then(|copy| copy.get("text"))
            .and_then(Value::as_str)
        {
            types::InlineButtonTypeCopy {
                copy_text: copy.to_owned(),
            }
            .into()
        } else {
            return Err(invalid("an inline button of a kind not served"));
        };
    Ok(types::KeyboardInlineButton {
        style: None,
        text,
        r#type,
    }
    .into())
}

/// The Bot API's JSON of Telegram's markup (an inline keyboard: what messages show bots;
/// other kinds are not shown in `Message`, as in the Bot API).
pub fn to_json(markup: &enums::ReplyMarkup) -> Option<Value> {
    let enums::ReplyMarkup::ReplyInlineMarkup(markup) = markup else {
        return None;
    };
    let rows: Vec<Value> = markup
        .rows
        .iter()
        .map(|row| {
            let enums::KeyboardInlineButtonRow::KeyboardInlineButtonRow(row) = row;
            Value::Array(
                row.buttons
                    .iter()
                    .map(|button| {
                        let enums::KeyboardInlineButton::KeyboardInlineButton(button) = button;
                        let mut json = json!({ "text": button.text });
                        let extra = match &button.r#type {
                            enums::InlineButtonType::InlineButtonTypeCallback(callback) => Some((
                                "callback_data",
                                json!(String::from_utf8_lossy(&callback.data)),
                            )),
                            enums::InlineButtonType::InlineButtonTypeUrl(url) => {
                                Some(("url", json!(url.url)))
                            }
                            enums::InlineButtonType::InlineButtonTypeCopy(copy) => {
                                Some(("copy_text", json!({ "text": copy.copy_text })))
                            }
                            _ => None,
                        };
                        if let (Some((name, value)), Value::Object(members)) = (extra, &mut json) {
                            members.insert(name.to_owned(), value);
                        }
                        json
                    })
                    .collect(),
            )
        })
        .collect();
    Some(json!({ "inline_keyboard": rows }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn inline_keyboards_go_both_ways() {
        let json = json!({"inline_keyboard": [[
            {"text": "Yes", "callback_data": "y"},
            {"text": "Site", "url": "http://x.org"}
        ], [{"text": "Copy", "copy_text": {"text": "c"}}]]});
        let markup = from_json(&json).unwrap();
        assert_eq!(to_json(&markup).unwrap(), json);
    }

    #[test]
    fn other_markups_and_limits() {
        let keyboard = from_json(&json!({"keyboard": [["a", {"text": "b", "request_contact": true}]], "resize_keyboard": true})).unwrap();
        let enums::ReplyMarkup::ReplyKeyboardMarkup(keyboard) = keyboard else {
            unreachable!("a keyboard");
        };
        assert!(keyboard.resize && keyboard.rows.len() == 1);
        assert!(matches!(
            from_json(&json!({"remove_keyboard": true})).unwrap(),
            enums::ReplyMarkup::ReplyKeyboardHide(_)
        ));
        assert!(matches!(
            from_json(&json!({"force_reply": true})).unwrap(),
            enums::ReplyMarkup::ReplyKeyboardForceReply(_)
        ));
        let long = "x".repeat(MAX_CALLBACK_DATA + 1);
        for bad in [
            json!({"inline_keyboard": [[{"text": "a", "callback_data": long}]]}),
            json!({"inline_keyboard": [[{"text": "a"}]]}),
            json!({"inline_keyboard": "x"}),
            json!({"nothing": 1}),
            json!({"inline_keyboard": vec![json!([]); MAX_ROWS + 1]}),
        ] {
            assert!(from_json(&bad).is_err(), "{bad}");
        }
    }
}
