//! Storage keys and values read back from bytes: what a corrupted or hostile database holds.
//!
//! Every decoder of `columba_store::keys`, `columba_store::codec` and the user store's values
//! gets the input. Checked:
//! no panic, no allocation beyond the input's size, and whatever decodes re-encodes to exactly
//! the input (so a decoder never accepts two spellings of one record).

#![no_main]

use columba_store::hooks::{codec, keys, user_values};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((box_id, id)) = keys::decode_message(data) {
        assert_eq!(keys::message(box_id, id), data);
    }
    if let Ok((box_id, peer, id)) = keys::decode_chat(data) {
        assert_eq!(keys::chat(box_id, peer, id), data);
    }
    if let Ok((box_id, pts)) = keys::decode_log(data) {
        assert_eq!(keys::log(box_id, pts), data);
    }
    if let Ok(box_id) = keys::decode_box_meta(data) {
        assert_eq!(keys::box_meta(box_id), data);
    }
    if let Ok((box_id, peer)) = keys::decode_dialog(data) {
        assert_eq!(keys::dialog(box_id, peer), data);
    }
    if let Ok((box_id, top, peer)) = keys::decode_dialog_order(data) {
        assert_eq!(keys::dialog_order(box_id, top, peer), data);
    }
    if let Ok((box_id, peer, ordinal)) = keys::decode_deleted(data) {
        assert_eq!(keys::deleted(box_id, peer, ordinal), data);
    }
    if let Ok((sender, peer, random_id)) = keys::decode_send(data) {
        assert_eq!(keys::send(sender, peer, random_id), data);
    }
    if let Ok((sender, peer, random_id, target)) = keys::decode_pending(data) {
        assert_eq!(keys::pending(sender, peer, random_id, target), data);
    }
    if let Ok(record) = codec::decode_message(data) {
        assert_eq!(codec::encode_message(&record), data);
    }
    if let Ok(peer) = codec::decode_location(data) {
        assert_eq!(codec::encode_location(peer), data);
    }
    if let Ok(dialog) = codec::decode_dialog(data) {
        assert_eq!(codec::encode_dialog(&dialog), data);
    }
    if let Ok(ops) = codec::decode_ops(data) {
        assert_eq!(codec::encode_ops(&ops), data);
    }
    if let Ok(record) = codec::decode_auth_key(data) {
        assert_eq!(codec::encode_auth_key(&record), data);
    }
    if let Ok((perm, expires_at)) = codec::decode_binding(data) {
        assert_eq!(codec::encode_binding(perm, expires_at), data);
    }
    if let Ok(id) = codec::decode_key_id(data) {
        assert_eq!(codec::encode_key_id(id), data);
    }
    for prefix in [keys::Prefix::AuthKey, keys::Prefix::TempBinding, keys::Prefix::PermBinding] {
        if let Ok(id) = keys::decode_auth_key(prefix, data) {
            assert_eq!(keys::auth_key(prefix, id), data);
        }
    }
    if let Ok((expires_at, id)) = keys::decode_key_expiry(data) {
        assert_eq!(keys::key_expiry(expires_at, id), data);
    }
    if let Ok((blob, part)) = keys::decode_part(data) {
        assert_eq!(keys::part(blob, part), data);
    }
    for prefix in [keys::Prefix::Upload, keys::Prefix::FileRow] {
        if let Ok((owner, file_id)) = keys::decode_owned_file(prefix, data) {
            assert_eq!(keys::owned_file(prefix, owner, file_id), data);
        }
    }
    if let Ok((touched, owner, file_id)) = keys::decode_upload_expiry(data) {
        assert_eq!(keys::upload_expiry(touched, owner, file_id), data);
    }
    if let Ok(upload) = codec::decode_upload(data) {
        assert_eq!(codec::encode_upload(&upload), data);
    }
    if let Ok(content) = codec::decode_content(data) {
        assert_eq!(codec::encode_content(&content), data);
    }
    if let Ok(file) = codec::decode_file(data) {
        assert_eq!(codec::encode_file(&file), data);
    }
    if let Ok(part) = codec::decode_part(data) {
        assert_eq!(codec::encode_part(&part), data);
    }
    if let Ok(hashes) = codec::decode_hashes(data) {
        assert_eq!(codec::encode_hashes(&hashes), data);
    }
    if let Ok(meta) = codec::decode_box_meta(data) {
        assert_eq!(codec::encode_box_meta(&meta), data);
    }
    if let Ok(entry) = codec::decode_update(data) {
        assert_eq!(codec::encode_update(&entry), data);
    }
    if let Ok(deliveries) = codec::decode_deliveries(data) {
        assert_eq!(codec::encode_deliveries(&deliveries), data);
    }
    if let Ok(account) = user_values::decode_account(data) {
        assert_eq!(user_values::encode_account(&account), data);
    }
    if let Ok(photo) = user_values::decode_photo(data) {
        assert_eq!(user_values::encode_photo(&photo), data);
    }
    if let Ok(contact) = user_values::decode_contact(data) {
        assert_eq!(user_values::encode_contact(&contact), data);
    }
    if let Ok(entry) = user_values::decode_phone_book(data) {
        assert_eq!(user_values::encode_phone_book(&entry), data);
    }
    if let Ok(row) = user_values::decode_authorization(data) {
        assert_eq!(user_values::encode_authorization(&row), data);
    }
    if let Ok(device) = user_values::decode_device(data) {
        assert_eq!(user_values::encode_device(&device), data);
    }
    for prefix in [keys::Prefix::NameWord, keys::Prefix::Importer] {
        if let Ok((text, id)) = keys::decode_text_id_row(prefix, data) {
            assert_eq!(keys::text_id_row(prefix, &text, id), data);
        }
    }
    if let Ok([owner, user]) = keys::decode_user_row::<2>(keys::Prefix::Contact, data) {
        assert_eq!(keys::user_row(keys::Prefix::Contact, &[owner, user]), data);
    }
});
