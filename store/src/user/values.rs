//! How the user store's rows are written as bytes, and read back without trusting them (the
//! conventions of [`crate::codec`]: a version byte, little-endian integers, byte strings with
//! a 4-byte length). Layouts are in `docs/storage-format.md`.

use crate::codec::{Reader, ValueError, Writer};
use crate::file::ContentId;

use super::{
    Account, Authorization, BotCommand, BotProfile, Contact, Device, Presence, ProfilePhoto,
};

fn text(r: &mut Reader<'_>) -> Result<String, ValueError> {
    String::from_utf8(r.bytes()?).map_err(|_| r.error())
}

fn write_photo(w: &mut Writer, photo: &ProfilePhoto) {
    w.i64(photo.photo_id)
        .bytes(&photo.content.0)
        .i64(i64::try_from(photo.size).unwrap_or(i64::MAX))
        .u32(photo.width)
        .u32(photo.height)
        .i32(photo.date);
}

fn read_photo(r: &mut Reader<'_>) -> Result<ProfilePhoto, ValueError> {
    let photo_id = r.i64()?;
    let content = <[u8; 32]>::try_from(r.bytes()?.as_slice()).map_err(|_| r.error())?;
    let size = u64::try_from(r.i64()?).map_err(|_| r.error())?;
    Ok(ProfilePhoto {
        photo_id,
        content: ContentId(content),
        size,
        width: r.u32()?,
        height: r.u32()?,
        date: r.i32()?,
    })
}

/// Writes an account (`20` row).
pub fn encode_account(account: &Account) -> Vec<u8> {
    let mut w = Writer::new();
    w.i64(account.id)
        .bytes(account.phone.as_bytes())
        .bytes(account.first_name.as_bytes())
        .bytes(account.last_name.as_bytes())
        .bytes(account.about.as_bytes());
    match &account.username {
        Some(name) => w.u8(1).bytes(name.as_bytes()),
        None => w.u8(0),
    };
    match &account.photo {
        Some(photo) => {
            w.u8(1);
            write_photo(&mut w, photo);
        }
        None => {
            w.u8(0);
        }
    }
    match account.presence {
        Presence::Unknown => w.u8(0).i32(0),
        Presence::Online { expires } => w.u8(1).i32(expires),
        Presence::Offline { was_online } => w.u8(2).i32(was_online),
    };
    w.u8(u8::from(account.deleted));
    // The bot section is last and present only for bots, so that a person's row is as it
    // was before bots existed.
    if let Some(bot) = &account.bot {
        w.u8(1)
            .i64(bot.owner)
            .bytes(&bot.token_hash)
            .u32(bot.token_generation)
            .i32(bot.info_version)
            .bytes(bot.description.as_bytes())
            .u32(u32::try_from(bot.commands.len()).unwrap_or(u32::MAX));
        for command in &bot.commands {
            w.bytes(command.command.as_bytes())
                .bytes(command.description.as_bytes());
        }
    }
    w.finish()
}

fn read_bot(r: &mut Reader<'_>) -> Result<BotProfile, ValueError> {
    let owner = r.i64()?;
    let token_hash = <[u8; 32]>::try_from(r.bytes()?.as_slice()).map_err(|_| r.error())?;
    let token_generation = r.u32()?;
    let info_version = r.i32()?;
    let description = text(r)?;
    // Each command is at least its two lengths.
    let count = r.count(8)?;
    let commands = (0..count)
        .map(|_| {
            Ok(BotCommand {
                command: text(r)?,
                description: text(r)?,
            })
        })
        .collect::<Result<_, ValueError>>()?;
    Ok(BotProfile {
        owner,
        token_hash,
        token_generation,
        info_version,
        description,
        commands,
    })
}

/// Reads [`encode_account`].
pub fn decode_account(value: &[u8]) -> Result<Account, ValueError> {
    let mut r = Reader::new(value, "account")?;
    let id = r.i64()?;
    let phone = text(&mut r)?;
    let first_name = text(&mut r)?;
    let mut account = Account::new(id, phone, first_name);
    account.last_name = text(&mut r)?;
    account.about = text(&mut r)?;
    account.username = match r.u8()? {
        0 => None,
        1 => Some(text(&mut r)?),
        _ => return Err(r.error()),
    };
    account.photo = match r.u8()? {
        0 => None,
        1 => Some(read_photo(&mut r)?),
        _ => return Err(r.error()),
    };
    account.presence = match (r.u8()?, r.i32()?) {
        (0, 0) => Presence::Unknown,
        (1, expires) => Presence::Online { expires },
        (2, was_online) => Presence::Offline { was_online },
        _ => return Err(r.error()),
    };
    account.deleted = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(r.error()),
    };
    if !r.is_empty() {
        account.bot = match r.u8()? {
            1 => Some(read_bot(&mut r)?),
            _ => return Err(r.error()),
        };
    }
    r.end()?;
    Ok(account)
}

/// Writes a profile photo (`24` row).
pub fn encode_photo(photo: &ProfilePhoto) -> Vec<u8> {
    let mut w = Writer::new();
    write_photo(&mut w, photo);
    w.finish()
}

/// Reads [`encode_photo`].
pub fn decode_photo(value: &[u8]) -> Result<ProfilePhoto, ValueError> {
    let mut r = Reader::new(value, "profile photo")?;
    let photo = read_photo(&mut r)?;
    r.end()?;
    Ok(photo)
}

/// Writes a contact (`25` row).
pub fn encode_contact(contact: &Contact) -> Vec<u8> {
    let mut w = Writer::new();
    w.i64(contact.user_id)
        .bytes(contact.first_name.as_bytes())
        .bytes(contact.last_name.as_bytes())
        .i32(contact.date)
        .u8(u8::from(contact.phone_known));
    w.finish()
}

/// Reads [`encode_contact`].
pub fn decode_contact(value: &[u8]) -> Result<Contact, ValueError> {
    let mut r = Reader::new(value, "contact")?;
    let contact = Contact {
        user_id: r.i64()?,
        first_name: text(&mut r)?,
        last_name: text(&mut r)?,
        date: r.i32()?,
        phone_known: match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(r.error()),
        },
    };
    r.end()?;
    Ok(contact)
}

/// A phone-book entry (`27` row): the names the importer gave and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneBookEntry {
    /// The first name the importer gave.
    pub first_name: String,
    /// The last name the importer gave.
    pub last_name: String,
    /// When it was imported.
    pub date: i32,
}

/// Writes a phone-book entry.
pub fn encode_phone_book(entry: &PhoneBookEntry) -> Vec<u8> {
    let mut w = Writer::new();
    w.bytes(entry.first_name.as_bytes())
        .bytes(entry.last_name.as_bytes())
        .i32(entry.date);
    w.finish()
}

/// Reads [`encode_phone_book`].
pub fn decode_phone_book(value: &[u8]) -> Result<PhoneBookEntry, ValueError> {
    let mut r = Reader::new(value, "phone-book entry")?;
    let entry = PhoneBookEntry {
        first_name: text(&mut r)?,
        last_name: text(&mut r)?,
        date: r.i32()?,
    };
    r.end()?;
    Ok(entry)
}

/// Writes a date (`29` row) or any other lone 32-bit value.
pub fn encode_i32(value: i32) -> Vec<u8> {
    let mut w = Writer::new();
    w.i32(value);
    w.finish()
}

/// Reads [`encode_i32`].
pub fn decode_i32(value: &[u8]) -> Result<i32, ValueError> {
    let mut r = Reader::new(value, "date")?;
    let value = r.i32()?;
    r.end()?;
    Ok(value)
}

/// Writes an id (`21`, `22` and `2f` rows).
pub fn encode_i64(value: i64) -> Vec<u8> {
    let mut w = Writer::new();
    w.i64(value);
    w.finish()
}

/// Reads [`encode_i64`].
pub fn decode_i64(value: &[u8]) -> Result<i64, ValueError> {
    let mut r = Reader::new(value, "id")?;
    let value = r.i64()?;
    r.end()?;
    Ok(value)
}

/// Writes an authorization (`2a` row).
pub fn encode_authorization(row: &Authorization) -> Vec<u8> {
    let mut w = Writer::new();
    w.i64(row.auth_key_id)
        .i64(row.hash)
        .i32(row.api_id)
        .bytes(row.device_model.as_bytes())
        .bytes(row.platform.as_bytes())
        .bytes(row.system_version.as_bytes())
        .bytes(row.app_version.as_bytes())
        .bytes(row.ip.as_bytes())
        .i32(row.created)
        .i32(row.active);
    w.finish()
}

/// Reads [`encode_authorization`].
pub fn decode_authorization(value: &[u8]) -> Result<Authorization, ValueError> {
    let mut r = Reader::new(value, "authorization")?;
    let auth_key_id = r.i64()?;
    let hash = r.i64()?;
    let mut row = Authorization::new(auth_key_id, hash, 0);
    row.api_id = r.i32()?;
    row.device_model = text(&mut r)?;
    row.platform = text(&mut r)?;
    row.system_version = text(&mut r)?;
    row.app_version = text(&mut r)?;
    row.ip = text(&mut r)?;
    row.created = r.i32()?;
    row.active = r.i32()?;
    r.end()?;
    Ok(row)
}

/// Writes a push device (`2b` row).
pub fn encode_device(device: &Device) -> Vec<u8> {
    let mut w = Writer::new();
    w.i64(device.auth_key_id)
        .i32(device.token_type)
        .bytes(device.token.as_bytes())
        .u8(u8::from(device.app_sandbox))
        .bytes(&device.secret)
        .u32(u32::try_from(device.other_uids.len()).unwrap_or(u32::MAX));
    for uid in &device.other_uids {
        w.i64(*uid);
    }
    w.finish()
}

/// Reads [`encode_device`].
pub fn decode_device(value: &[u8]) -> Result<Device, ValueError> {
    let mut r = Reader::new(value, "device")?;
    let auth_key_id = r.i64()?;
    let token_type = r.i32()?;
    let token = text(&mut r)?;
    let mut device = Device::new(auth_key_id, token_type, token);
    device.app_sandbox = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(r.error()),
    };
    device.secret = r.bytes()?;
    let count = r.count(8)?;
    device.other_uids = (0..count).map(|_| r.i64()).collect::<Result<_, _>>()?;
    r.end()?;
    Ok(device)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    fn account() -> Account {
        let mut account = Account::new(7, "15550001", "Ann").with_username("Ann_1");
        account.last_name = "Lee".into();
        account.about = "hi".into();
        account.presence = Presence::Offline { was_online: 99 };
        account.photo = Some(ProfilePhoto {
            photo_id: -3,
            content: ContentId([9; 32]),
            size: 1234,
            width: 640,
            height: 480,
            date: 5,
        });
        account
    }

    #[test]
    fn rows_read_back_as_written() {
        let account = account();
        assert_eq!(decode_account(&encode_account(&account)).unwrap(), account);
        let mut bot = Account::new(9, "", "Helper").with_username("helper_bot");
        bot.bot = Some(BotProfile {
            owner: 7,
            token_hash: [3; 32],
            token_generation: 4,
            info_version: 2,
            description: "helps".into(),
            commands: vec![BotCommand {
                command: "start".into(),
                description: "begin".into(),
            }],
        });
        assert_eq!(decode_account(&encode_account(&bot)).unwrap(), bot);
        let bytes = encode_account(&bot);
        // Cut anywhere, the row is refused, but where the person's part ends (a row
        // written before bots existed reads as a person).
        let mut person = bot;
        person.bot = None;
        let person_len = encode_account(&person).len();
        for cut in 0..bytes.len() {
            match decode_account(&bytes[..cut]) {
                Ok(read) => assert!(cut == person_len && read == person, "cut at {cut}"),
                Err(_) => assert_ne!(cut, person_len),
            }
        }
        let mut deleted = Account::new(8, "", "");
        deleted.deleted = true;
        deleted.presence = Presence::Online { expires: 4 };
        assert_eq!(decode_account(&encode_account(&deleted)).unwrap(), deleted);
        let mut device = Device::new(1, 2, "tok");
        device.secret = vec![1, 2, 3];
        device.other_uids = vec![4, 5];
        device.app_sandbox = true;
        assert_eq!(decode_device(&encode_device(&device)).unwrap(), device);
        let mut auth = Authorization::new(11, 12, 13);
        auth.device_model = "pc".into();
        auth.ip = "127.0.0.1".into();
        assert_eq!(
            decode_authorization(&encode_authorization(&auth)).unwrap(),
            auth
        );
        let contact = Contact {
            user_id: 3,
            first_name: "A".into(),
            last_name: String::new(),
            date: 9,
            phone_known: true,
        };
        assert_eq!(decode_contact(&encode_contact(&contact)).unwrap(), contact);
        assert_eq!(decode_i64(&encode_i64(-5)).unwrap(), -5);
        assert_eq!(decode_i32(&encode_i32(-5)).unwrap(), -5);
    }

    #[test]
    fn truncated_or_padded_rows_are_errors() {
        let bytes = encode_account(&account());
        for cut in 0..bytes.len() {
            assert!(decode_account(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes;
        long.push(0);
        assert!(decode_account(&long).is_err());
        let mut device = encode_device(&Device::new(1, 2, "t"));
        // A count of other uids larger than what follows is refused before allocating.
        let len = device.len();
        device[len - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_device(&device).is_err());
    }
}
