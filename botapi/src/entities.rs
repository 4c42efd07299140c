//! Message entities: the Bot API's JSON `MessageEntity` and Telegram's `MessageEntity`, both
//! ways, and the two `parse_mode`s that write them inside the text (`HTML` and
//! `MarkdownV2`, by the rules of core.telegram.org/bots/api#formatting-options).
//!
//! Offsets and lengths are in UTF-16 code units on both sides, as both APIs define them. A
//! text that does not parse gets the official server's answer, `Bad Request: can't parse
//! entities: ...`. Parsing is linear, bounded by [`MAX_ENTITIES`] and a nesting depth of
//! [`MAX_DEPTH`], and never panics.

use columba_mtproto::tl::api::{enums, types};
use serde_json::{Value, json};

use crate::reply::BotApiError;

/// The most entities of one text (Telegram keeps 100).
pub const MAX_ENTITIES: usize = 100;
/// The deepest nesting of formatting tags.
pub const MAX_DEPTH: usize = 16;

fn parse_error(what: impl std::fmt::Display) -> BotApiError {
    BotApiError::bad_request(format!("can't parse entities: {what}"))
}

/// The length of `text` in UTF-16 code units.
pub fn utf16_len(text: &str) -> i32 {
    i32::try_from(text.encode_utf16().count()).unwrap_or(i32::MAX)
}

/// The kind of an entity, with what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `bold`.
    Bold,
    /// `italic`.
    Italic,
    /// `underline`.
    Underline,
    /// `strikethrough`.
    Strike,
    /// `spoiler`.
    Spoiler,
    /// `code`.
    Code,
    /// `pre`, with its language.
    Pre(String),
    /// `text_link`, with its URL.
    TextLink(String),
    /// `text_mention`, with the user.
    TextMention(i64),
    /// `blockquote`.
    Blockquote,
    /// `bot_command`.
    BotCommand,
    /// `mention`.
    Mention,
    /// `hashtag`.
    Hashtag,
    /// `cashtag`.
    Cashtag,
    /// `url`.
    Url,
    /// `email`.
    Email,
    /// `phone_number`.
    Phone,
    /// `custom_emoji`, with its id.
    CustomEmoji(i64),
}

/// An entity: where in the text (UTF-16 units) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    /// Start, in UTF-16 code units.
    pub offset: i32,
    /// Length, in UTF-16 code units.
    pub length: i32,
    /// What it is.
    pub kind: Kind,
}

impl Entity {
    /// The Bot API's JSON of it.
    pub fn to_json(&self) -> Value {
        let (kind, extra) = match &self.kind {
            Kind::Bold => ("bold", None),
            Kind::Italic => ("italic", None),
            Kind::Underline => ("underline", None),
            Kind::Strike => ("strikethrough", None),
            Kind::Spoiler => ("spoiler", None),
            Kind::Code => ("code", None),
            Kind::Pre(language) if language.is_empty() => ("pre", None),
            Kind::Pre(language) => ("pre", Some(("language", json!(language)))),
            Kind::TextLink(url) => ("text_link", Some(("url", json!(url)))),
            Kind::TextMention(user) => ("text_mention", Some(("user", json!({"id": user})))),
            Kind::Blockquote => ("blockquote", None),
            Kind::BotCommand => ("bot_command", None),
            Kind::Mention => ("mention", None),
            Kind::Hashtag => ("hashtag", None),
            Kind::Cashtag => ("cashtag", None),
            Kind::Url => ("url", None),
            Kind::Email => ("email", None),
            Kind::Phone => ("phone_number", None),
            Kind::CustomEmoji(id) => (
                "custom_emoji",
                Some(("custom_emoji_id", json!(id.to_string()))),
            ),
        };
        let mut value = json!({"type": kind, "offset": self.offset, "length": self.length});
        if let (Some((name, extra)), Value::Object(members)) = (extra, &mut value) {
            members.insert(name.to_owned(), extra);
        }
        value
    }

    /// Reads the Bot API's JSON of an entity.
    pub fn from_json(value: &Value) -> Result<Self, BotApiError> {
        let invalid = || BotApiError::bad_request("can't parse entities: invalid entity");
        let field = |name: &str| value.get(name).and_then(Value::as_i64);
        let offset = field("offset")
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(invalid)?;
        let length = field("length")
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(invalid)?;
        let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
        let kind = match value
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(invalid)?
        {
            "bold" => Kind::Bold,
            "italic" => Kind::Italic,
            "underline" => Kind::Underline,
            "strikethrough" => Kind::Strike,
            "spoiler" => Kind::Spoiler,
            "code" => Kind::Code,
            "pre" => Kind::Pre(text("language").unwrap_or_default()),
            "text_link" => Kind::TextLink(text("url").ok_or_else(invalid)?),
            "text_mention" => Kind::TextMention(
                value
                    .get("user")
                    .and_then(|user| user.get("id"))
                    .and_then(Value::as_i64)
                    .ok_or_else(invalid)?,
            ),
            "blockquote" | "expandable_blockquote" => Kind::Blockquote,
            "bot_command" => Kind::BotCommand,
            "mention" => Kind::Mention,
            "hashtag" => Kind::Hashtag,
            "cashtag" => Kind::Cashtag,
            "url" => Kind::Url,
            "email" => Kind::Email,
            "phone_number" => Kind::Phone,
            "custom_emoji" => Kind::CustomEmoji(
                text("custom_emoji_id")
                    .and_then(|id| id.parse().ok())
                    .ok_or_else(invalid)?,
            ),
            _ => return Err(invalid()),
        };
        if offset < 0 || length <= 0 {
            return Err(invalid());
        }
        Ok(Self {
            offset,
            length,
            kind,
        })
    }

    /// Telegram's entity.
    pub fn to_tl(&self) -> enums::MessageEntity {
        let (offset, length) = (self.offset, self.length);
        match &self.kind {
            Kind::Bold => types::MessageEntityBold { offset, length }.into(),
            Kind::Italic => types::MessageEntityItalic { offset, length }.into(),
            Kind::Underline => types::MessageEntityUnderline { offset, length }.into(),
            Kind::Strike => types::MessageEntityStrike { offset, length }.into(),
            Kind::Spoiler => types::MessageEntitySpoiler { offset, length }.into(),
            Kind::Code => types::MessageEntityCode { offset, length }.into(),
            Kind::Pre(language) => types::MessageEntityPre {
                offset,
                length,
                language: language.clone(),
            }
            .into(),
            Kind::TextLink(url) => types::MessageEntityTextUrl {
                offset,
                length,
                url: url.clone(),
            }
            .into(),
            Kind::TextMention(user_id) => types::MessageEntityMentionName {
                offset,
                length,
                user_id: *user_id,
            }
            .into(),
            Kind::Blockquote => types::MessageEntityBlockquote {
                collapsed: false,
                offset,
                length,
            }
            .into(),
            Kind::BotCommand => types::MessageEntityBotCommand { offset, length }.into(),
            Kind::Mention => types::MessageEntityMention { offset, length }.into(),
            Kind::Hashtag => types::MessageEntityHashtag { offset, length }.into(),
            Kind::Cashtag => types::MessageEntityCashtag { offset, length }.into(),
            Kind::Url => types::MessageEntityUrl { offset, length }.into(),
            Kind::Email => types::MessageEntityEmail { offset, length }.into(),
            Kind::Phone => types::MessageEntityPhone { offset, length }.into(),
            Kind::CustomEmoji(document_id) => types::MessageEntityCustomEmoji {
                offset,
                length,
                document_id: *document_id,
            }
            .into(),
        }
    }

    /// The entity of Telegram's, if the Bot API has its kind.
    pub fn from_tl(entity: &enums::MessageEntity) -> Option<Self> {
        use enums::MessageEntity as E;
        let (offset, length, kind) = match entity {
            E::MessageEntityBold(e) => (e.offset, e.length, Kind::Bold),
            E::MessageEntityItalic(e) => (e.offset, e.length, Kind::Italic),
            E::MessageEntityUnderline(e) => (e.offset, e.length, Kind::Underline),
            E::MessageEntityStrike(e) => (e.offset, e.length, Kind::Strike),
            E::MessageEntitySpoiler(e) => (e.offset, e.length, Kind::Spoiler),
            E::MessageEntityCode(e) => (e.offset, e.length, Kind::Code),
            E::MessageEntityPre(e) => (e.offset, e.length, Kind::Pre(e.language.clone())),
            E::MessageEntityTextUrl(e) => (e.offset, e.length, Kind::TextLink(e.url.clone())),
            E::MessageEntityMentionName(e) => (e.offset, e.length, Kind::TextMention(e.user_id)),
            E::MessageEntityBlockquote(e) => (e.offset, e.length, Kind::Blockquote),
            E::MessageEntityBotCommand(e) => (e.offset, e.length, Kind::BotCommand),
            E::MessageEntityMention(e) => (e.offset, e.length, Kind::Mention),
            E::MessageEntityHashtag(e) => (e.offset, e.length, Kind::Hashtag),
            E::MessageEntityCashtag(e) => (e.offset, e.length, Kind::Cashtag),
            E::MessageEntityUrl(e) => (e.offset, e.length, Kind::Url),
            E::MessageEntityEmail(e) => (e.offset, e.length, Kind::Email),
            E::MessageEntityPhone(e) => (e.offset, e.length, Kind::Phone),
            E::MessageEntityCustomEmoji(e) => {
                (e.offset, e.length, Kind::CustomEmoji(e.document_id))
            }
            _ => return None,
        };
        Some(Self {
            offset,
            length,
            kind,
        })
    }
}

/// Reads an `entities` parameter (a JSON array), bounded.
pub fn from_json_list(value: &Value) -> Result<Vec<Entity>, BotApiError> {
    let list = value
        .as_array()
        .ok_or_else(|| parse_error("entities must be an array"))?;
    if list.len() > MAX_ENTITIES {
        return Err(parse_error("too many entities"));
    }
    list.iter().map(Entity::from_json).collect()
}

/// Builds text and entities while a formatted text is read.
#[derive(Default)]
struct Builder {
    text: String,
    units: i32,
    entities: Vec<Entity>,
    open: Vec<(i32, Kind, usize)>,
}

impl Builder {
    fn push(&mut self, c: char) {
        self.text.push(c);
        self.units = self
            .units
            .saturating_add(i32::try_from(c.len_utf16()).unwrap_or(2));
    }

    fn open(&mut self, kind: Kind, tag: usize) -> Result<(), BotApiError> {
        if self.open.len() >= MAX_DEPTH {
            return Err(parse_error("too deep nesting"));
        }
        self.open.push((self.units, kind, tag));
        Ok(())
    }

    /// Closes the innermost entity, which must have tag `tag`.
    fn close(&mut self, tag: usize, name: &str) -> Result<(), BotApiError> {
        match self.open.pop() {
            Some((start, kind, open_tag)) if open_tag == tag => {
                let length = self.units.saturating_sub(start);
                if length > 0 {
                    if self.entities.len() >= MAX_ENTITIES {
                        return Err(parse_error("too many entities"));
                    }
                    self.entities.push(Entity {
                        offset: start,
                        length,
                        kind,
                    });
                }
                Ok(())
            }
            _ => Err(parse_error(format!("unmatched end tag {name}"))),
        }
    }

    fn finish(mut self) -> Result<(String, Vec<Entity>), BotApiError> {
        if let Some((_, kind, _)) = self.open.last() {
            return Err(parse_error(format!("can't find end of {kind:?} entity")));
        }
        self.entities
            .sort_by_key(|entity| (entity.offset, std::cmp::Reverse(entity.length)));
        Ok((self.text, self.entities))
    }
}

/// Reads a text with `parse_mode=HTML`: `b`/`strong`, `i`/`em`, `u`/`ins`,
/// `s`/`strike`/`del`, `span class="tg-spoiler"`/`tg-spoiler`, `a href`, `code`, `pre` (with
/// an inner `code class="language-..."`), `blockquote`, `tg-emoji emoji-id`, and the
/// entities `&lt;`, `&gt;`, `&amp;`, `&quot;` and numeric ones.
pub fn parse_html(input: &str) -> Result<(String, Vec<Entity>), BotApiError> {
    let mut out = Builder::default();
    // Tags by the order they were opened: (name, index in `out.open`).
    let mut names: Vec<String> = Vec::new();
    let mut rest = input;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let end = rest
                    .find('>')
                    .ok_or_else(|| parse_error("unclosed start tag"))?;
                let inside = rest.get(1..end).unwrap_or_default();
                rest = rest.get(end + 1..).unwrap_or_default();
                if let Some(name) = inside.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    // `</code>` right inside `<pre>` closes the language tag, which made no
                    // entity of its own.
                    if name == "code" && names.last().is_some_and(|last| last == "pre-code") {
                        names.pop();
                        continue;
                    }
                    let open = names.pop().unwrap_or_default();
                    if open != name {
                        return Err(parse_error(format!("unmatched end tag {name}")));
                    }
                    out.close(names.len(), &name)?;
                    continue;
                }
                let (name, attributes) = match inside.split_once(char::is_whitespace) {
                    Some((name, attributes)) => (name, attributes.trim()),
                    None => (inside.trim_end_matches('/'), ""),
                };
                let name = name.to_ascii_lowercase();
                let attribute = |wanted: &str| attribute(attributes, wanted);
                if name == "code" && names.last().is_some_and(|last| last == "pre") {
                    if let Some(language) = attribute("class")
                        .as_deref()
                        .and_then(|class| class.strip_prefix("language-"))
                    {
                        if let Some((_, Kind::Pre(pre), _)) = out.open.last_mut() {
                            *pre = language.to_owned();
                        }
                    }
                    names.push("pre-code".to_owned());
                    continue;
                }
                let kind = match name.as_str() {
                    "b" | "strong" => Kind::Bold,
                    "i" | "em" => Kind::Italic,
                    "u" | "ins" => Kind::Underline,
                    "s" | "strike" | "del" => Kind::Strike,
                    "tg-spoiler" => Kind::Spoiler,
                    "span" if attribute("class").as_deref() == Some("tg-spoiler") => Kind::Spoiler,
                    "code" => Kind::Code,
                    "pre" => Kind::Pre(String::new()),
                    "blockquote" => Kind::Blockquote,
                    "a" => {
                        let href =
                            attribute("href").ok_or_else(|| parse_error("a link without href"))?;
                        match href.strip_prefix("tg://user?id=") {
                            Some(id) => Kind::TextMention(
                                id.parse().map_err(|_| parse_error("bad user id in link"))?,
                            ),
                            None => Kind::TextLink(href),
                        }
                    }
                    "tg-emoji" => Kind::CustomEmoji(
                        attribute("emoji-id")
                            .and_then(|id| id.parse().ok())
                            .ok_or_else(|| parse_error("tg-emoji without emoji-id"))?,
                    ),
                    other => return Err(parse_error(format!("unsupported start tag \"{other}\""))),
                };
                out.open(kind, names.len())?;
                names.push(name);
            }
            '&' => {
                // An entity is short: look no further than its longest form (`&#x10FFFF;`).
                let end = rest.bytes().take(11).position(|byte| byte == b';');
                let decoded = end.and_then(|end| {
                    let name = rest.get(1..end)?;
                    let c = match name {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "quot" => '"',
                        _ => {
                            let number = name.strip_prefix('#')?;
                            let code = match number.strip_prefix(['x', 'X']) {
                                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                                None => number.parse().ok()?,
                            };
                            char::from_u32(code)?
                        }
                    };
                    Some((c, end))
                });
                match decoded {
                    Some((c, end)) => {
                        out.push(c);
                        rest = rest.get(end + 1..).unwrap_or_default();
                    }
                    // An `&` that starts no entity is itself (the official server's rule).
                    None => {
                        out.push('&');
                        rest = rest.get(1..).unwrap_or_default();
                    }
                }
            }
            c => {
                out.push(c);
                rest = rest.get(c.len_utf8()..).unwrap_or_default();
            }
        }
    }
    if let Some(name) = names.last() {
        return Err(parse_error(format!(
            "can't find end tag corresponding to start tag {name}"
        )));
    }
    out.finish()
}

/// The value of attribute `wanted` in a tag's attributes (`name="value"`, `name='value'` or
/// `name=value`), entities in it decoded.
fn attribute(attributes: &str, wanted: &str) -> Option<String> {
    let mut rest = attributes;
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let name = name.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = match after.chars().next()? {
            quote @ ('"' | '\'') => {
                let inner = after.get(1..)?;
                let end = inner.find(quote)?;
                (inner.get(..end)?, inner.get(end + 1..)?)
            }
            _ => match after.split_once(char::is_whitespace) {
                Some((value, next)) => (value, next),
                None => (after, ""),
            },
        };
        if name == wanted {
            return Some(
                value
                    .replace("&quot;", "\"")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&"),
            );
        }
        rest = next.trim_start();
    }
    None
}

/// Characters that must be escaped with `\` in MarkdownV2 text.
const MARKDOWN_SPECIAL: &str = "_*[]()~`>#+-=|{}.!\\";

/// Reads a text with `parse_mode=MarkdownV2`: `*bold*`, `_italic_`, `__underline__`,
/// `~strike~`, `||spoiler||`, `` `code` ``, ```` ```language\npre``` ````, `[text](url)`,
/// `>` block quotes at line starts, and `\` before any character to take it as it is; every
/// special character elsewhere must be escaped (the official rule).
pub fn parse_markdown_v2(input: &str) -> Result<(String, Vec<Entity>), BotApiError> {
    let mut out = Builder::default();
    // Open markers, innermost last: (marker, index in `out.open`).
    let mut markers: Vec<&'static str> = Vec::new();
    let mut chars = input.char_indices().peekable();
    let mut quote_open = false;
    let mut line_start = true;
    while let Some((at, c)) = chars.next() {
        let rest = input.get(at..).unwrap_or_default();
        if line_start && c == '>' {
            if !quote_open {
                out.open(Kind::Blockquote, usize::MAX)?;
                quote_open = true;
            }
            line_start = false;
            continue;
        }
        if line_start && quote_open {
            out.close(usize::MAX, "blockquote")?;
            quote_open = false;
        }
        line_start = c == '\n';
        match c {
            '\\' => {
                let (_, escaped) = chars.next().ok_or_else(|| parse_error("a \\ at the end"))?;
                out.push(escaped);
            }
            '`' if rest.starts_with("```") => {
                chars.next();
                chars.next();
                let body_start = at + 3;
                let body = input.get(body_start..).unwrap_or_default();
                let end = find_unescaped(body, "```")
                    .ok_or_else(|| parse_error("can't find end of pre entity"))?;
                let inner = body.get(..end).unwrap_or_default();
                let (language, code) = match inner.split_once('\n') {
                    Some((language, code)) if !language.contains(char::is_whitespace) => {
                        (language.to_owned(), code)
                    }
                    _ => (String::new(), inner),
                };
                out.open(Kind::Pre(language), usize::MAX - 1)?;
                push_code(&mut out, code)?;
                out.close(usize::MAX - 1, "pre")?;
                while chars.peek().is_some_and(|(i, _)| *i < body_start + end + 3) {
                    chars.next();
                }
            }
            '`' => {
                let body = input.get(at + 1..).unwrap_or_default();
                let end = find_unescaped(body, "`")
                    .ok_or_else(|| parse_error("can't find end of code entity"))?;
                out.open(Kind::Code, usize::MAX - 1)?;
                push_code(&mut out, body.get(..end).unwrap_or_default())?;
                out.close(usize::MAX - 1, "code")?;
                while chars.peek().is_some_and(|(i, _)| *i <= at + end + 1) {
                    chars.next();
                }
            }
            '[' => {
                out.open(Kind::TextLink(String::new()), markers.len())?;
                markers.push("[");
            }
            ']' => {
                if markers.last() != Some(&"[") {
                    return Err(parse_error("character ']' is reserved and must be escaped"));
                }
                let after = input.get(at + 1..).unwrap_or_default();
                let url_end = after
                    .strip_prefix('(')
                    .and_then(|url| find_unescaped(url, ")"))
                    .ok_or_else(|| parse_error("a link without its (url)"))?;
                let url = after
                    .get(1..=url_end)
                    .unwrap_or_default()
                    .replace("\\)", ")")
                    .replace("\\\\", "\\");
                if let Some((_, kind, _)) = out.open.last_mut() {
                    *kind = match url.strip_prefix("tg://user?id=") {
                        Some(id) => Kind::TextMention(
                            id.parse().map_err(|_| parse_error("bad user id in link"))?,
                        ),
                        None => Kind::TextLink(url),
                    };
                }
                markers.pop();
                out.close(markers.len(), "link")?;
                while chars
                    .peek()
                    .is_some_and(|(i, _)| *i <= at + 1 + url_end + 1)
                {
                    chars.next();
                }
            }
            '*' | '_' | '~' | '|' => {
                let marker: &'static str = match c {
                    '*' => "*",
                    '~' => "~",
                    '_' if rest.starts_with("__") => "__",
                    '_' => "_",
                    _ if rest.starts_with("||") => "||",
                    _ => return Err(parse_error("character '|' is reserved and must be escaped")),
                };
                if marker.len() == 2 {
                    chars.next();
                }
                if markers.last() == Some(&marker) {
                    markers.pop();
                    out.close(markers.len(), marker)?;
                } else if markers.contains(&marker) {
                    return Err(parse_error(format!("can't find end of {marker} entity")));
                } else {
                    let kind = match marker {
                        "*" => Kind::Bold,
                        "_" => Kind::Italic,
                        "__" => Kind::Underline,
                        "~" => Kind::Strike,
                        _ => Kind::Spoiler,
                    };
                    out.open(kind, markers.len())?;
                    markers.push(marker);
                }
            }
            c if MARKDOWN_SPECIAL.contains(c) => {
                return Err(parse_error(format!(
                    "character '{c}' is reserved and must be escaped with the preceding '\\'"
                )));
            }
            c => out.push(c),
        }
    }
    if quote_open {
        out.close(usize::MAX, "blockquote")?;
    }
    if let Some(marker) = markers.last() {
        return Err(parse_error(format!("can't find end of {marker} entity")));
    }
    out.finish()
}

/// The text of a code or pre entity: `\` escapes only `` ` `` and `\`.
fn push_code(out: &mut Builder, code: &str) -> Result<(), BotApiError> {
    let mut chars = code.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next().ok_or_else(|| parse_error("a \\ at the end"))?);
        } else {
            out.push(c);
        }
    }
    Ok(())
}

/// Where `needle` first occurs in `text` outside an escape.
fn find_unescaped(text: &str, needle: &str) -> Option<usize> {
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            continue;
        }
        if text.get(at..).is_some_and(|rest| rest.starts_with(needle)) {
            return Some(at);
        }
    }
    None
}

/// The `bot_command` entities Telegram adds to a message to a bot: a `/command` (with an
/// optional `@bot` suffix) at the text's start or after white space.
pub fn bot_commands(text: &str) -> Vec<Entity> {
    let mut entities = Vec::new();
    let mut units = 0i32;
    let mut previous_space = true;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c == '/' && previous_space {
            let rest = text.get(at + 1..).unwrap_or_default();
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '@'))
                .unwrap_or(rest.len());
            if len > 0 && len <= 64 && entities.len() < MAX_ENTITIES {
                let command = rest.get(..len).unwrap_or_default();
                let length = 1 + utf16_len(command);
                entities.push(Entity {
                    offset: units,
                    length,
                    kind: Kind::BotCommand,
                });
                units = units.saturating_add(length);
                for _ in 0..len {
                    chars.next();
                }
                previous_space = false;
                continue;
            }
        }
        units = units.saturating_add(i32::try_from(c.len_utf16()).unwrap_or(2));
        previous_space = c.is_whitespace();
    }
    entities
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

    use proptest::prelude::*;

    use super::*;

    fn entity(offset: i32, length: i32, kind: Kind) -> Entity {
        Entity {
            offset,
            length,
            kind,
        }
    }

    #[test]
    fn html_gives_text_and_entities_in_utf16_units() {
        let (text, entities) =
            parse_html("<b>bold <i>both</i></b> 😀 <a href=\"http://x.org/?a=1&amp;b=2\">link</a> &lt;tag&gt; <pre><code class=\"language-rust\">fn</code></pre>")
                .unwrap();
        assert_eq!(text, "bold both 😀 link <tag> fn");
        assert_eq!(
            entities,
            vec![
                entity(0, 9, Kind::Bold),
                entity(5, 4, Kind::Italic),
                entity(13, 4, Kind::TextLink("http://x.org/?a=1&b=2".into())),
                entity(24, 2, Kind::Pre("rust".into())),
            ]
        );
        let (_, mention) = parse_html("<a href='tg://user?id=42'>you</a>").unwrap();
        assert_eq!(mention, vec![entity(0, 3, Kind::TextMention(42))]);
        for bad in [
            "<b>open",
            "<b>x</i>",
            "<blink>x</blink>",
            "</b>",
            "<a>x</a>",
            "<b",
        ] {
            assert!(parse_html(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_html("a & b").unwrap().0, "a & b");
    }

    #[test]
    fn markdown_v2_gives_text_and_entities() {
        let (text, entities) =
            parse_markdown_v2("*bold _both_*, __under__ ~s~ ||sp|| `c\\`d` [a\\.b](http://x.org/\\)) \\. ```py\nx = 1```")
                .unwrap();
        assert_eq!(text, "bold both, under s sp c`d a.b . x = 1");
        assert_eq!(
            entities,
            vec![
                entity(0, 9, Kind::Bold),
                entity(5, 4, Kind::Italic),
                entity(11, 5, Kind::Underline),
                entity(17, 1, Kind::Strike),
                entity(19, 2, Kind::Spoiler),
                entity(22, 3, Kind::Code),
                entity(26, 3, Kind::TextLink("http://x.org/)".into())),
                entity(32, 5, Kind::Pre("py".into())),
            ]
        );
        let (quote, entities) = parse_markdown_v2(">quoted\n>more\nafter").unwrap();
        assert_eq!(quote, "quoted\nmore\nafter");
        assert_eq!(entities, vec![entity(0, 12, Kind::Blockquote)]);
        for bad in ["1.5", "*open", "_a*b_*", "[x](", "a|b", "end\\"] {
            assert!(parse_markdown_v2(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn commands_are_found_where_telegram_finds_them() {
        assert_eq!(
            bot_commands("/start ref"),
            vec![entity(0, 6, Kind::BotCommand)]
        );
        assert_eq!(
            bot_commands("hi /help@my_bot x/no"),
            vec![entity(3, 12, Kind::BotCommand)]
        );
        assert!(bot_commands("a/b / ").is_empty());
    }

    #[test]
    fn entities_go_both_ways() {
        for kind in [
            Kind::Bold,
            Kind::Pre("c".into()),
            Kind::TextLink("http://a".into()),
            Kind::TextMention(5),
            Kind::CustomEmoji(9),
            Kind::BotCommand,
            Kind::Blockquote,
        ] {
            let e = entity(1, 2, kind);
            assert_eq!(Entity::from_json(&e.to_json()).unwrap(), e);
            assert_eq!(Entity::from_tl(&e.to_tl()).unwrap(), e);
        }
        assert!(Entity::from_json(&json!({"type": "bold", "offset": -1, "length": 1})).is_err());
        assert!(from_json_list(&json!([{"type": "nope", "offset": 0, "length": 1}])).is_err());
    }

    /// Writes `text` (plain) with each segment's formatting as HTML, escaping as needed.
    fn html_of(segments: &[(String, u8)]) -> String {
        segments
            .iter()
            .map(|(text, style)| {
                let escaped = text
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;");
                match style {
                    0 => escaped,
                    1 => format!("<b>{escaped}</b>"),
                    2 => format!("<i>{escaped}</i>"),
                    _ => format!("<code>{escaped}</code>"),
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn html_formatting_reads_back_to_its_segments(
            segments in proptest::collection::vec(("[a-z<>&😀 ]{1,6}", 0u8..4), 0..8)
        ) {
            let (text, entities) = parse_html(&html_of(&segments)).unwrap();
            let plain: String = segments.iter().map(|(text, _)| text.as_str()).collect();
            prop_assert_eq!(&text, &plain);
            let mut offset = 0;
            let mut expected = Vec::new();
            for (segment, style) in &segments {
                let length = utf16_len(segment);
                let kind = match style {
                    0 => None,
                    1 => Some(Kind::Bold),
                    2 => Some(Kind::Italic),
                    _ => Some(Kind::Code),
                };
                if let Some(kind) = kind {
                    expected.push(entity(offset, length, kind));
                }
                offset += length;
            }
            prop_assert_eq!(entities, expected);
        }

        #[test]
        fn plain_text_escaped_for_markdown_reads_back(text in ".{0,40}") {
            let mut escaped = String::new();
            for c in text.chars() {
                if MARKDOWN_SPECIAL.contains(c) {
                    escaped.push('\\');
                }
                escaped.push(c);
            }
            let (read, entities) = parse_markdown_v2(&escaped).unwrap();
            prop_assert_eq!(read, text);
            prop_assert!(entities.is_empty());
        }

        #[test]
        fn any_text_parses_or_is_refused_without_panic(text in ".{0,80}") {
            let _ = parse_html(&text);
            let _ = parse_markdown_v2(&text);
            let _ = bot_commands(&text);
        }
    }
}
