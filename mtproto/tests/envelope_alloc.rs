//! In the steady state, sealing and opening a message allocate nothing: the caller's buffer is
//! reused and the work happens in place. A counting global allocator checks it, counting only
//! the test's own thread (the test harness's other threads may allocate at any moment).

#![allow(clippy::unwrap_used, reason = "test")]
#![allow(
    unsafe_code,
    reason = "a GlobalAlloc implementation is unsafe by definition"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use columba_mtproto::crypto::{AuthKey, Direction};
use columba_mtproto::message::{ENCRYPTED_HEADROOM, EncryptedHeader, Padding, open, seal};
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Const-initialised and without a destructor: reading it never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator unchanged, counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn seal_and_open_allocate_nothing_per_message() {
    let key = AuthKey::from_bytes([9; 256]);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let body = [0x5au8; 512];
    let mut buf = BytesMut::with_capacity(4096);
    let mut round = |buf: &mut BytesMut, msg_id: i64| {
        buf.clear();
        buf.resize(ENCRYPTED_HEADROOM, 0);
        buf.extend_from_slice(&body);
        let header = EncryptedHeader {
            salt: 1,
            session_id: 2,
            msg_id,
            seq_no: 1,
        };
        seal(
            buf,
            &key,
            Direction::ServerToClient,
            &header,
            Padding::RandomBlocks { max: 15 },
            &mut rng,
        )
        .unwrap();
        let opened = open(buf, &key, Direction::ServerToClient).unwrap();
        assert_eq!(opened.header.msg_id, msg_id);
        assert_eq!(opened.body.len(), body.len());
    };
    round(&mut buf, 0); // warm-up: CPU feature detection and the like
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|counting| counting.set(true));
    for i in 1..=1000 {
        round(&mut buf, i << 2);
    }
    COUNTING.with(|counting| counting.set(false));
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(
        after - before,
        0,
        "allocations during 1000 seal+open rounds"
    );
}
