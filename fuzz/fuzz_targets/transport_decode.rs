//! Feeds an arbitrary byte stream to a transport in arbitrary chunks.
//!
//! The first input byte picks the setup: the role (server with detection, or client with a
//! given framing), and a small frame limit. The second picks the chunk pattern. The rest is the
//! stream; for the server role it starts with whatever the fuzzer wrote (a tag, an obfuscated
//! init, HTTP...), so detection is fuzzed too.
//!
//! Invariants checked:
//! - decoding never panics, and nothing beyond the configured frame limit is reserved;
//! - bytes consumed never exceed the bytes fed;
//! - chunking does not matter: one-shot and chunked decoding give the same frames and fail at
//!   the same point;
//! - plain (non-obfuscated, non-padded) payloads re-encode to the bytes they were decoded from.

#![no_main]

use bytes::BytesMut;
use columba_mtproto::transport::{
    ClientConfig, Config, Frame, Framing, Outgoing, Transport,
};
use libfuzzer_sys::fuzz_target;
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

const MAX_FRAME: usize = 4096;

fn make(setup: u8) -> Transport {
    let mut rng = ChaCha20Rng::seed_from_u64(u64::from(setup));
    let mut config = Config::default();
    config.max_frame_len = MAX_FRAME;
    match setup % 5 {
        0 => Transport::server(config, &mut rng),
        n => {
            let framing = Framing::ALL[usize::from(n - 1)];
            let obfuscated = setup & 0x80 != 0;
            let mut client = ClientConfig::new(framing, obfuscated);
            client.config = config;
            Transport::client(client, &mut rng)
        }
    }
}

/// Decodes `stream` fed in pieces of `chunk` bytes; returns the frames, whether decoding failed,
/// and how many bytes were consumed.
fn run(setup: u8, stream: &[u8], chunk: usize) -> (Vec<Frame>, bool, usize) {
    let mut transport = make(setup);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    for piece in stream.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        loop {
            match transport.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(_) => return (frames, true, fed - buf.len()),
            }
            assert!(buf.len() <= fed);
        }
        assert!(buf.capacity() <= 2 * (MAX_FRAME + 64) + piece.len() + 64, "over-reserved");
    }
    (frames, false, fed - buf.len())
}

fuzz_target!(|data: &[u8]| {
    let [setup, pattern, stream @ ..] = data else { return };
    let chunk = usize::from(*pattern % 17) + 1;
    let whole = run(*setup, stream, stream.len());
    let split = run(*setup, stream, chunk);
    let one = run(*setup, stream, 1);
    assert_eq!(whole.0, split.0);
    assert_eq!(whole.1, split.1);
    assert_eq!(whole.0, one.0);
    assert_eq!(whole.1, one.1);
    assert!(whole.2 <= stream.len());

    // Plain server-side frames re-encode exactly: encode each payload with a client of the
    // detected framing and compare with the consumed bytes.
    let mut server = make(0);
    if *setup % 5 != 0 {
        return;
    }
    let mut buf = BytesMut::from(stream);
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = server.decode(&mut buf) {
        frames.push(frame);
    }
    let Some(detected) = server.detected() else { return };
    if detected.obfuscated || detected.framing == Framing::PaddedIntermediate || frames.is_empty() {
        return;
    }
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    let mut client = Transport::client(ClientConfig::new(detected.framing, false), &mut rng);
    let mut again = BytesMut::new();
    for frame in &frames {
        if let Frame::Payload { data, quick_ack } = frame {
            client.encode(Outgoing::Payload { data, quick_ack: *quick_ack }, &mut again).expect("a decoded payload re-encodes");
        }
    }
    let consumed = stream.len() - buf.len();
    // Abridged lengths have two encodings for 127 words and up only in the long form, which
    // the encoder also uses; every other field is fixed, so the bytes must agree.
    assert_eq!(&again[..], &stream[..consumed], "re-encoding differs");
});
