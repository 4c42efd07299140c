//! The x86-64 SIMD paths: AES-256-IGE with the AES-NI instructions and a two-lane SHA-256
//! with the SHA-NI ones. This is the one module of the crate that uses `unsafe`.
//!
//! Why it exists: IGE is serial inside a message, so a single stream is bound by the latency
//! of the AES rounds, and the only way to approach that bound is to keep the round keys in
//! registers and the chain free of calls. Several independent messages (different keys) can
//! then share the AES units by interleaving their rounds, which the `aes` crate's API cannot
//! express (its parallel path takes one key). Everything here is reached only after
//! [`available`] confirmed the CPU has AES-NI and SSE2.
//!
//! What is unsafe, and why it is sound:
//! - calling `#[target_feature(enable = "aes,sse2")]` functions: every entry takes an
//!   [`AesNi`] token, which only [`AesNi::detect`] makes, after the CPU reported both features;
//! - `_mm_loadu_si128` / `_mm_storeu_si128` through `&[u8; 16]` / `&mut [u8; 16]`: in bounds
//!   by type, and the `u` variants need no alignment.
//!
//! - the SHA-NI functions likewise take a [`ShaNi`] token, made only after detecting SHA,
//!   SSE2, SSSE3 and SSE4.1.
//!
//! Everything else (key expansion, the IGE chaining, the lane scheduler, the SHA-256 message
//! schedule) is ordinary code over `__m128i` values. The module is cross-checked against the portable implementation and the
//! published vectors by the tests in `ige.rs`.

#![allow(
    unsafe_code,
    reason = "AES-NI intrinsics; see the module documentation"
)]
#![allow(
    clippy::indexing_slicing,
    clippy::needless_range_loop,
    reason = "indices run over 0..LANES and 0..15 on arrays of exactly those sizes; the index \
              loops fix the interleaving order (every lane's round r before any lane's r + 1)"
)]

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_aesdec_si128, _mm_aesdeclast_si128, _mm_aesenc_si128,
    _mm_aesenclast_si128, _mm_aesimc_si128, _mm_aeskeygenassist_si128, _mm_alignr_epi8,
    _mm_blend_epi16, _mm_loadu_si128, _mm_set_epi64x, _mm_setzero_si128, _mm_sha256msg1_epu32,
    _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32, _mm_shuffle_epi8, _mm_shuffle_epi32,
    _mm_slli_si128, _mm_storeu_si128, _mm_xor_si128,
};

use super::ige::IgeJob;

/// Proof that this CPU has AES-NI and SSE2: the entries of this module require it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AesNi {
    _detected: (),
}

impl AesNi {
    /// The token, if the CPU has the instructions (detection is cached by `std`).
    pub(crate) fn detect() -> Option<Self> {
        available().then_some(Self { _detected: () })
    }
}

/// Whether this CPU can run the functions of this module.
fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("sse2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// How many independent chains the batch functions interleave.
const LANES: usize = 8;

#[cfg(target_arch = "x86_64")]
type Schedule = [__m128i; 15];

#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "sse2")]
fn load(bytes: &[u8; 16]) -> __m128i {
    // SAFETY: 16 readable bytes by type; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
}

#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "sse2")]
fn store(bytes: &mut [u8; 16], value: __m128i) {
    // SAFETY: 16 writable bytes by type; `storeu` has no alignment requirement.
    unsafe { _mm_storeu_si128(bytes.as_mut_ptr().cast(), value) }
}

/// The IGE chaining values of an IV: `c_0` (first half) and `p_0` (second half).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "sse2")]
fn chain_start(iv: &[u8; 32]) -> (__m128i, __m128i) {
    let (c0, p0) = halves(iv);
    (load(c0), load(p0))
}

/// The two halves of a 32-byte key or IV.
fn halves(bytes: &[u8; 32]) -> (&[u8; 16], &[u8; 16]) {
    let (a, b) = bytes.split_at(16);
    match (a.first_chunk::<16>(), b.first_chunk::<16>()) {
        (Some(a), Some(b)) => (a, b),
        // Unreachable: split_at(16) of 32 bytes gives two 16-byte halves.
        _ => (&[0; 16], &[0; 16]),
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "sse2")]
fn shift_xor(mut a: __m128i) -> __m128i {
    // a ^ (a << 32) ^ (a << 64) ^ (a << 96): the word-wise prefix XOR of the key schedule.
    let mut t = _mm_slli_si128::<4>(a);
    a = _mm_xor_si128(a, t);
    t = _mm_slli_si128::<4>(t);
    a = _mm_xor_si128(a, t);
    t = _mm_slli_si128::<4>(t);
    _mm_xor_si128(a, t)
}

/// The AES-256 encryption key schedule (FIPS-197 §5.2, computed with AESKEYGENASSIST as in
/// Intel's AES-NI white paper).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "aes,sse2")]
fn expand_encrypt(key: &[u8; 32]) -> Schedule {
    let mut rk = [_mm_setzero_si128(); 15];
    let (lo, hi) = halves(key);
    let mut a = load(lo);
    let mut b = load(hi);
    rk[0] = a;
    rk[1] = b;
    // Each step derives the next two round keys; the last step needs only the first.
    macro_rules! first {
        ($rcon:literal) => {
            a = _mm_xor_si128(
                shift_xor(a),
                _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<$rcon>(b)),
            );
        };
    }
    macro_rules! second {
        () => {
            b = _mm_xor_si128(
                shift_xor(b),
                _mm_shuffle_epi32::<0xaa>(_mm_aeskeygenassist_si128::<0>(a)),
            );
        };
    }
    first!(0x01);
    rk[2] = a;
    second!();
    rk[3] = b;
    first!(0x02);
    rk[4] = a;
    second!();
    rk[5] = b;
    first!(0x04);
    rk[6] = a;
    second!();
    rk[7] = b;
    first!(0x08);
    rk[8] = a;
    second!();
    rk[9] = b;
    first!(0x10);
    rk[10] = a;
    second!();
    rk[11] = b;
    first!(0x20);
    rk[12] = a;
    second!();
    rk[13] = b;
    first!(0x40);
    rk[14] = a;
    rk
}

/// The equivalent inverse cipher's schedule (FIPS-197 §5.3.5) for AESDEC.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "aes,sse2")]
fn expand_decrypt(key: &[u8; 32]) -> Schedule {
    let rk = expand_encrypt(key);
    let mut dk = [_mm_setzero_si128(); 15];
    dk[0] = rk[14];
    for i in 1..14 {
        dk[i] = _mm_aesimc_si128(rk[14 - i]);
    }
    dk[14] = rk[0];
    dk
}

#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "aes,sse2")]
fn encrypt_block(rk: &Schedule, block: __m128i) -> __m128i {
    let mut x = _mm_xor_si128(block, rk[0]);
    for key in &rk[1..14] {
        x = _mm_aesenc_si128(x, *key);
    }
    _mm_aesenclast_si128(x, rk[14])
}

#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "aes,sse2")]
fn decrypt_block(dk: &Schedule, block: __m128i) -> __m128i {
    let mut x = _mm_xor_si128(block, dk[0]);
    for key in &dk[1..14] {
        x = _mm_aesdec_si128(x, *key);
    }
    _mm_aesdeclast_si128(x, dk[14])
}

/// IGE-encrypts `data` (a multiple of 16 bytes) in place.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "aes,sse2")]
fn encrypt_one(data: &mut [u8], key: &[u8; 32], iv: &[u8; 32]) {
    let rk = expand_encrypt(key);
    let (mut prev_c, mut prev_p) = chain_start(iv);
    for chunk in data.chunks_exact_mut(16) {
        let Some(chunk) = chunk.first_chunk_mut::<16>() else {
            continue;
        };
        let p = load(chunk);
        let c = _mm_xor_si128(encrypt_block(&rk, _mm_xor_si128(p, prev_c)), prev_p);
        store(chunk, c);
        prev_c = c;
        prev_p = p;
    }
}

/// IGE-decrypts `data` (a multiple of 16 bytes) in place.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "aes,sse2")]
fn decrypt_one(data: &mut [u8], key: &[u8; 32], iv: &[u8; 32]) {
    let dk = expand_decrypt(key);
    let (mut prev_c, mut prev_p) = chain_start(iv);
    decrypt_chain(&dk, &mut prev_c, &mut prev_p, data);
}

/// IGE-decrypts the 16-byte blocks of `data` in place, continuing the chain in `prev_c` and
/// `prev_p`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "aes,sse2")]
fn decrypt_chain(dk: &Schedule, prev_c: &mut __m128i, prev_p: &mut __m128i, data: &mut [u8]) {
    for chunk in data.chunks_exact_mut(16) {
        let Some(chunk) = chunk.first_chunk_mut::<16>() else {
            continue;
        };
        let c = load(chunk);
        let p = _mm_xor_si128(decrypt_block(dk, _mm_xor_si128(c, *prev_p)), *prev_c);
        store(chunk, p);
        *prev_c = c;
        *prev_p = p;
    }
}

/// IGE-decrypts `data` (at least 32 bytes, a multiple of 16) and returns SHA-256(`prefix` ‖
/// plaintext). Each 64-byte hash block is compressed after the next 64 bytes have been sent
/// to the AES units: the two chains are independent, so the core overlaps them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "aes,sse2")]
fn decrypt_hash(data: &mut [u8], key: &[u8; 32], iv: &[u8; 32], prefix: &[u8; 32]) -> [u8; 32] {
    let dk = expand_decrypt(key);
    let (mut prev_c, mut prev_p) = chain_start(iv);
    let total_bits = ((32 + data.len()) as u64) * 8;
    let mut state = super::kdf::SHA256_H0;
    let (head, rest) = data.split_at_mut(data.len().min(32));
    decrypt_chain(&dk, &mut prev_c, &mut prev_p, head);
    let mut pending = [0u8; 64];
    pending[..32].copy_from_slice(prefix);
    if let Some(slot) = pending.get_mut(32..32 + head.len()) {
        slot.copy_from_slice(head);
    }
    let mut chunks = rest.chunks_exact_mut(64);
    for chunk in chunks.by_ref() {
        decrypt_chain(&dk, &mut prev_c, &mut prev_p, chunk);
        sha2::compress256(&mut state, &[pending.into()]);
        pending.copy_from_slice(chunk);
    }
    sha2::compress256(&mut state, &[pending.into()]);
    let tail = chunks.into_remainder();
    decrypt_chain(&dk, &mut prev_c, &mut prev_p, tail);
    let mut last = [0u8; 64];
    last[..tail.len()].copy_from_slice(tail);
    last[tail.len()] = 0x80;
    if tail.len() >= 56 {
        sha2::compress256(&mut state, &[last.into()]);
        last = [0u8; 64];
    }
    last[56..].copy_from_slice(&total_bits.to_be_bytes());
    sha2::compress256(&mut state, &[last.into()]);
    super::kdf::digest_bytes(state)
}

/// One interleaved chain: which job it runs, how far it is, and its chaining values.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Lane {
    job: usize,
    offset: usize,
    prev_c: __m128i,
    prev_p: __m128i,
}

/// Loads the next job with data into `lane`, or leaves it idle when none remain.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "aes,sse2")]
fn refill(
    lane: &mut Option<Lane>,
    keys: &mut Schedule,
    next: &mut usize,
    jobs: &[IgeJob<'_>],
    decrypt: bool,
) {
    *lane = None;
    while let Some(job) = jobs.get(*next) {
        let index = *next;
        *next += 1;
        if job.data.is_empty() {
            continue;
        }
        *keys = if decrypt {
            expand_decrypt(job.key)
        } else {
            expand_encrypt(job.key)
        };
        let (prev_c, prev_p) = chain_start(job.iv);
        *lane = Some(Lane {
            job: index,
            offset: 0,
            prev_c,
            prev_p,
        });
        return;
    }
}

/// The 16 bytes of `job` at `offset`, if in range.
fn block_of<'a>(jobs: &'a mut [IgeJob<'_>], job: usize, offset: usize) -> Option<&'a mut [u8; 16]> {
    jobs.get_mut(job)?
        .data
        .get_mut(offset..)?
        .first_chunk_mut::<16>()
}

/// IGE over many jobs, `LANES` chains at a time: each round of AES is issued for every lane
/// before the next round, so the rounds of independent chains overlap in the AES units. A lane
/// whose job ends takes the next job; idle lanes compute on zeros and store nothing.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "aes,sse2")]
fn batch(jobs: &mut [IgeJob<'_>], decrypt: bool) {
    let zero = _mm_setzero_si128();
    let mut keys = [[zero; 15]; LANES];
    let mut lanes: [Option<Lane>; LANES] = [None; LANES];
    let mut next = 0usize;
    for l in 0..LANES {
        refill(&mut lanes[l], &mut keys[l], &mut next, jobs, decrypt);
    }

    let mut x = [zero; LANES];
    let mut input = [zero; LANES];
    while lanes.iter().any(Option::is_some) {
        for l in 0..LANES {
            let (block, chain) = match &lanes[l] {
                Some(lane) => {
                    let block = block_of(jobs, lane.job, lane.offset).map_or(zero, |b| load(b));
                    (block, if decrypt { lane.prev_p } else { lane.prev_c })
                }
                None => (zero, zero),
            };
            input[l] = block;
            x[l] = _mm_xor_si128(_mm_xor_si128(block, chain), keys[l][0]);
        }
        if decrypt {
            for r in 1..14 {
                for l in 0..LANES {
                    x[l] = _mm_aesdec_si128(x[l], keys[l][r]);
                }
            }
            for l in 0..LANES {
                x[l] = _mm_aesdeclast_si128(x[l], keys[l][14]);
            }
        } else {
            for r in 1..14 {
                for l in 0..LANES {
                    x[l] = _mm_aesenc_si128(x[l], keys[l][r]);
                }
            }
            for l in 0..LANES {
                x[l] = _mm_aesenclast_si128(x[l], keys[l][14]);
            }
        }
        for l in 0..LANES {
            let Some(lane) = lanes[l].as_mut() else {
                continue;
            };
            let out = if decrypt {
                let p = _mm_xor_si128(x[l], lane.prev_c);
                lane.prev_c = input[l];
                lane.prev_p = p;
                p
            } else {
                let c = _mm_xor_si128(x[l], lane.prev_p);
                lane.prev_c = c;
                lane.prev_p = input[l];
                c
            };
            let (job, offset) = (lane.job, lane.offset);
            lane.offset += 16;
            let done = match block_of(jobs, job, offset) {
                Some(block) => {
                    store(block, out);
                    block_of(jobs, job, offset + 16).is_none()
                }
                None => true,
            };
            if done {
                refill(&mut lanes[l], &mut keys[l], &mut next, jobs, decrypt);
            }
        }
    }
}

/// Encrypts `data` (a multiple of 16 bytes; a partial tail is left alone) in place.
pub(crate) fn ige_encrypt(_cpu: AesNi, data: &mut [u8], key: &[u8; 32], iv: &[u8; 32]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the `AesNi` token proves the CPU has AES-NI and SSE2.
    unsafe {
        encrypt_one(data, key, iv)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, key, iv);
}

/// Decrypts `data` (a multiple of 16 bytes; a partial tail is left alone) in place.
pub(crate) fn ige_decrypt(_cpu: AesNi, data: &mut [u8], key: &[u8; 32], iv: &[u8; 32]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the `AesNi` token proves the CPU has AES-NI and SSE2.
    unsafe {
        decrypt_one(data, key, iv)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, key, iv);
}

/// Encrypts or decrypts every job in place, interleaved (jobs are multiples of 16 bytes; a
/// partial tail is left alone).
pub(crate) fn ige_batch(_cpu: AesNi, jobs: &mut [IgeJob<'_>], decrypt: bool) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the `AesNi` token proves the CPU has AES-NI and SSE2.
    unsafe {
        batch(jobs, decrypt)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (jobs, decrypt);
}

/// Decrypts `data` (a multiple of 16 bytes, at least 32) in place and returns SHA-256(`prefix`
/// ‖ plaintext), overlapping the two.
pub(crate) fn ige_decrypt_hash(
    _cpu: AesNi,
    data: &mut [u8],
    key: &[u8; 32],
    iv: &[u8; 32],
    prefix: &[u8; 32],
) -> [u8; 32] {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the `AesNi` token proves the CPU has AES-NI and SSE2.
    unsafe {
        decrypt_hash(data, key, iv, prefix)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (data, key, iv, prefix);
        [0; 32]
    }
}

/// Proof that this CPU has the SHA extensions and the SSE levels their code needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShaNi {
    _detected: (),
}

impl ShaNi {
    /// The token, if the CPU has SHA, SSE2, SSSE3 and SSE4.1 (detection is cached by `std`).
    pub(crate) fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            let has = std::arch::is_x86_feature_detected!("sha")
                && std::arch::is_x86_feature_detected!("sse2")
                && std::arch::is_x86_feature_detected!("ssse3")
                && std::arch::is_x86_feature_detected!("sse4.1");
            has.then_some(Self { _detected: () })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }
}

/// SHA-256 round constants (FIPS 180-4 §4.2.2), four per group of four rounds.
#[cfg(target_arch = "x86_64")]
const K256: [[u32; 4]; 16] = [
    [0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5],
    [0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5],
    [0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3],
    [0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174],
    [0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc],
    [0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da],
    [0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7],
    [0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967],
    [0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13],
    [0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85],
    [0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3],
    [0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070],
    [0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5],
    [0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3],
    [0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208],
    [0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2],
];

#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "sse2")]
fn words(k: &[u32; 4]) -> __m128i {
    let lo = (u64::from(k[1]) << 32) | u64::from(k[0]);
    let hi = (u64::from(k[3]) << 32) | u64::from(k[2]);
    _mm_set_epi64x(hi as i64, lo as i64)
}

/// Compresses one block into each of two independent SHA-256 states, statement by statement
/// interleaved: each `sha256rnds2` chain waits on its own latency, so two chains run in about
/// the time of one.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress_two(states: [&mut [u32; 8]; 2], blocks: [&[u8; 64]; 2]) {
    // Byte-swaps each 32-bit word: SHA-256 reads the block big-endian.
    let swap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
    let [sa, sb] = states;
    let mut abef = [_mm_setzero_si128(); 2];
    let mut cdgh = [_mm_setzero_si128(); 2];
    for (lane, state) in [&*sa, &*sb].into_iter().enumerate() {
        let (lo, hi) = state.split_at(4);
        // SAFETY (for the two loads): `lo` and `hi` are 4 u32 each, 16 readable bytes.
        let abcd = unsafe { _mm_loadu_si128(lo.as_ptr().cast()) };
        let efgh = unsafe { _mm_loadu_si128(hi.as_ptr().cast()) };
        let badc = _mm_shuffle_epi32::<0xb1>(abcd);
        let hgfe = _mm_shuffle_epi32::<0x1b>(efgh);
        abef[lane] = _mm_alignr_epi8::<8>(badc, hgfe);
        cdgh[lane] = _mm_blend_epi16::<0xf0>(hgfe, badc);
    }
    let saved = (abef, cdgh);
    let mut m = [[_mm_setzero_si128(); 4]; 2];
    for lane in 0..2 {
        for (j, chunk) in blocks[lane].chunks_exact(16).enumerate() {
            let Some(chunk) = chunk.first_chunk::<16>() else {
                continue;
            };
            m[lane][j] = _mm_shuffle_epi8(load(chunk), swap);
        }
    }
    for j in 0..16 {
        let k = words(&K256[j]);
        for lane in 0..2 {
            let w = _mm_add_epi32(m[lane][j % 4], k);
            cdgh[lane] = _mm_sha256rnds2_epu32(cdgh[lane], abef[lane], w);
            abef[lane] =
                _mm_sha256rnds2_epu32(abef[lane], cdgh[lane], _mm_shuffle_epi32::<0x0e>(w));
        }
        // The schedule: M[j+1] = msg2(msg1(M[j-3], M[j-2]) + alignr(M[j], M[j-1]), M[j]).
        if (3..15).contains(&j) {
            for lane in 0..2 {
                let t = _mm_sha256msg1_epu32(m[lane][(j + 1) % 4], m[lane][(j + 2) % 4]);
                let t = _mm_add_epi32(
                    t,
                    _mm_alignr_epi8::<4>(m[lane][j % 4], m[lane][(j + 3) % 4]),
                );
                m[lane][(j + 1) % 4] = _mm_sha256msg2_epu32(t, m[lane][j % 4]);
            }
        }
    }
    for (lane, state) in [sa, sb].into_iter().enumerate() {
        let abef = _mm_add_epi32(abef[lane], saved.0[lane]);
        let cdgh = _mm_add_epi32(cdgh[lane], saved.1[lane]);
        let feba = _mm_shuffle_epi32::<0x1b>(abef);
        let dchg = _mm_shuffle_epi32::<0xb1>(cdgh);
        let abcd = _mm_blend_epi16::<0xf0>(feba, dchg);
        let efgh = _mm_alignr_epi8::<8>(dchg, feba);
        let (lo, hi) = state.split_at_mut(4);
        // SAFETY (for the two stores): `lo` and `hi` are 4 u32 each, 16 writable bytes.
        unsafe { _mm_storeu_si128(lo.as_mut_ptr().cast(), abcd) };
        unsafe { _mm_storeu_si128(hi.as_mut_ptr().cast(), efgh) };
    }
}

/// Compresses `blocks[i]` into `states[i]` for both lanes at once.
pub(crate) fn sha256_compress_two(_cpu: ShaNi, states: [&mut [u32; 8]; 2], blocks: [&[u8; 64]; 2]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the `ShaNi` token proves the CPU has SHA, SSE2, SSSE3 and SSE4.1.
    unsafe {
        compress_two(states, blocks)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (states, blocks);
}
