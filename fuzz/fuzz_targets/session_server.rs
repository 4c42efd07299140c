//! Arbitrary decrypted message sequences into a server session.
//!
//! The input is a script of operations (the first byte of each picks one): a message with a
//! msg_id near the session's clock (or a raw one), a seq_no, a salt right or wrong, and a
//! body taken from the input; time passing; the application answering a request; a new
//! connection; an update. After every step everything the session wants to send is taken.
//!
//! Checked: no panic; the limits of the configuration hold (running requests, messages
//! kept for re-sending); every message the server sends has an odd msg_id, strictly above
//! the previous one; the session never asks for more than one answer per request.

#![no_main]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use columba_mtproto::message::{ENCRYPTED_HEADROOM, EncryptedHeader};
use columba_mtproto::time::{Now, msg_id_at};
use columba_session::SaltSource;
use columba_session::{ServerEvent, ServerSession, SessionConfig};
use libfuzzer_sys::fuzz_target;

const KEY_ID: i64 = 0x1234;
const SESSION: i64 = 0x5678;

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }
    fn take(&mut self, len: usize) -> &'a [u8] {
        let len = len.min(self.0.len());
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        head
    }
}

fuzz_target!(|data: &[u8]| {
    let mut config = SessionConfig::default();
    config.msg_ids.window = 64;
    config.max_pending_requests = 16;
    config.max_unacked_messages = 32;
    config.max_unacked_bytes = 64 * 1024;
    config.max_unpacked_len = 64 * 1024;
    let config = Arc::new(config);
    let salts = Arc::new(SaltSource::new([9; 32]));
    let start = Instant::now();
    let base = Duration::from_secs(1_800_000_000);
    let mut elapsed = Duration::ZERO;
    let now = |elapsed: Duration| Now { monotonic: start + elapsed, unix: base + elapsed };
    let mut session = ServerSession::new(KEY_ID, SESSION, 1, config.clone(), salts.clone());
    let mut input = Input(data);
    let mut buf = BytesMut::new();
    let mut last_sent = 0i64;
    let mut requests: Vec<i64> = Vec::new();
    let mut handed_out: HashSet<i64> = HashSet::new();
    let mut next_id = msg_id_at(base);

    while let Some(op) = input.byte() {
        let t = now(elapsed);
        match op % 6 {
            0 | 1 => {
                let Some(delta) = input.u16() else { break };
                let Some(seq_no) = input.byte() else { break };
                let Some(flags) = input.byte() else { break };
                let Some(len) = input.u16() else { break };
                let body = input.take(usize::from(len) * 4);
                let msg_id = if flags & 1 == 0 {
                    next_id += i64::from(delta) << 2;
                    next_id
                } else {
                    // A raw id around the clock, any low bits.
                    msg_id_at(base + elapsed) + i64::from(delta) - 0x8000
                };
                let salt = if flags & 2 == 0 {
                    salts.current(KEY_ID, t.unix_secs()).salt
                } else {
                    i64::from(delta)
                };
                let header = EncryptedHeader { salt, session_id: SESSION, msg_id, seq_no: i32::from(seq_no) };
                session.handle_message(&header, body, t);
            }
            2 => {
                let Some(secs) = input.byte() else { break };
                elapsed += Duration::from_secs(u64::from(secs) * 4);
                session.handle_timeout(now(elapsed));
            }
            3 => {
                let Some(pick) = input.byte() else { break };
                if !requests.is_empty() {
                    let id = requests.swap_remove(usize::from(pick) % requests.len());
                    let outcome = if pick & 1 == 0 {
                        Ok(Bytes::from_static(&[1, 2, 3, 4]))
                    } else {
                        Err(columba_session::RpcError::new(400, "FUZZ_ERROR"))
                    };
                    session.answer(id, outcome, t);
                }
            }
            4 => session.handle_new_connection(),
            _ => {
                let len = usize::from(input.byte().unwrap_or(0)) * 4;
                session.push_update(Bytes::copy_from_slice(input.take(len)));
            }
        }
        while let Some(event) = session.poll_event() {
            if let ServerEvent::Request { msg_id, .. } = event {
                assert!(handed_out.insert(msg_id), "request {msg_id:#x} handed out twice");
                requests.push(msg_id);
            }
        }
        while let Some(header) = session.poll_transmit(now(elapsed), &mut buf) {
            assert_eq!(header.msg_id & 1, 1, "server msg_ids are odd");
            assert!(header.msg_id > last_sent, "server msg_ids increase");
            assert!(buf.len() >= ENCRYPTED_HEADROOM);
            last_sent = header.msg_id;
        }
        assert!(session.pending_requests() <= config.max_pending_requests);
        assert!(session.unacknowledged() <= config.max_unacked_messages);
    }
});
