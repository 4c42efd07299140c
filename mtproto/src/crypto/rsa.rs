//! RSA-2048 for the handshake: key pairs in PKCS#1 PEM, Telegram's key fingerprint, the
//! blinded constant-time private operation, RSA_PAD and the legacy SHA-1 form.
//!
//! Threat model. The server's private key answers every `req_DH_params` a stranger sends, so
//! the private operation is the classic target of timing attacks (Kocher; Bleichenbacher and
//! its modern form, the Marvin attack, which is why the `rsa` crate is not used here: its
//! RUSTSEC-2023-0071 is exactly this). Here:
//! - the exponentiations are constant-time (fixed window, full table scans, no branch on a
//!   secret; see `bignum`), on fixed-size numbers, with the CRT exponents padded to 128 bytes;
//! - the input is blinded by `r^e` (and the output unblinded by `r^-1`) with a random `r`
//!   refreshed every [`BLINDING_REFRESH`] uses and squared in between, as OpenSSL does, so the
//!   values exponentiated are unrelated to what the peer sent;
//! - the result is checked by re-encrypting it (a fault in the CRT would otherwise leak a
//!   factor of the modulus: the Bellcore attack);
//! - every decoding failure after the private operation is one error value
//!   ([`RsaPadError::Rejected`]), and the RSA_PAD hash is compared in constant time.

use std::sync::Mutex;

use rand_core::{CryptoRng, RngCore};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use super::bignum::{self, Monty, U1024, U2048, Uint};
use super::{ct_eq, decrypt_ige, encrypt_ige, minimal_be, pem};

/// Bytes in an RSA-2048 block.
pub const RSA_BLOCK_LEN: usize = 256;
/// The longest data RSA_PAD carries.
pub const RSA_PAD_MAX_DATA: usize = 144;
/// The public exponent of generated keys.
pub const DEFAULT_PUBLIC_EXPONENT: u32 = 65_537;
/// Private operations between two refreshes of the blinding factor.
pub const BLINDING_REFRESH: u32 = 32;

const PUBLIC_LABEL: &str = "RSA PUBLIC KEY";
const PRIVATE_LABEL: &str = "RSA PRIVATE KEY";
/// Miller-Rabin rounds for generated RSA primes (error below 2^-100 for random 1024-bit
/// candidates, FIPS 186-5 table B.1 asks for fewer).
const KEYGEN_ROUNDS: u32 = 16;

/// Why a key could not be loaded or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RsaKeyError {
    /// No PEM block with the expected label, or bad base64.
    #[error("not a PEM block with the expected label")]
    Pem,
    /// The DER inside is not the PKCS#1 structure.
    #[error("malformed PKCS#1 DER")]
    Der,
    /// A well-formed key this implementation does not handle (MTProto uses RSA-2048).
    #[error("unsupported RSA key: {0}")]
    Unsupported(&'static str),
    /// The private key's numbers do not agree with each other.
    #[error("inconsistent RSA private key")]
    Inconsistent,
}

/// Why RSA_PAD (or the legacy form) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RsaPadError {
    /// The data to encrypt is longer than [`RSA_PAD_MAX_DATA`] (our fault, not the peer's).
    #[error("RSA_PAD data longer than 144 bytes")]
    DataTooLong,
    /// The block does not decrypt to a valid message. One value for every reason, so that
    /// the reason does not become an oracle.
    #[error("encrypted data rejected")]
    Rejected,
}

/// Which of the two encodings a client used for `req_DH_params`' encrypted data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaEncoding {
    /// RSA_PAD (current clients).
    Pad,
    /// `SHA1(data) + data + padding` to 255 bytes, then raw RSA (Telethon, Pyrogram and
    /// other older clients). No integrity beyond SHA-1 and no randomised padding structure:
    /// only accept it for compatibility.
    LegacySha1,
}

/// An RSA-2048 public key, as clients embed it.
#[derive(Clone)]
pub struct RsaPublicKey {
    n: U2048,
    e: u64,
    monty: Monty<32>,
    fingerprint: i64,
}

impl core::fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RsaPublicKey")
            .field(
                "fingerprint",
                &format_args!("{:016x}", self.fingerprint as u64),
            )
            .field("e", &self.e)
            .finish_non_exhaustive()
    }
}

impl PartialEq for RsaPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.n == other.n && self.e == other.e
    }
}

impl Eq for RsaPublicKey {}

impl RsaPublicKey {
    /// A key from its modulus and public exponent (big-endian). The modulus must be exactly
    /// 2048 bits and odd, the exponent odd, at least 3 and at most 64 bits.
    pub fn from_components(modulus: &[u8], exponent: &[u8]) -> Result<Self, RsaKeyError> {
        let n = U2048::from_be_bytes(modulus)
            .ok_or(RsaKeyError::Unsupported("modulus over 2048 bits"))?;
        if n.bits_vartime() != 2048 {
            return Err(RsaKeyError::Unsupported("modulus is not 2048 bits"));
        }
        let e = Uint::<1>::from_be_bytes(exponent)
            .ok_or(RsaKeyError::Unsupported("public exponent over 64 bits"))?
            .0[0];
        if e < 3 || e % 2 == 0 {
            return Err(RsaKeyError::Unsupported(
                "public exponent must be odd and at least 3",
            ));
        }
        let monty = Monty::new(n).ok_or(RsaKeyError::Unsupported("even modulus"))?;
        let mut serialized = Vec::with_capacity(RSA_BLOCK_LEN + 16);
        let n_bytes = n.be_bytes_vec();
        crate::tl::write_bytes(&mut serialized, minimal_be(&n_bytes));
        crate::tl::write_bytes(&mut serialized, minimal_be(&e.to_be_bytes()));
        let digest = Sha1::digest(&serialized);
        let mut tail = [0u8; 8];
        tail.copy_from_slice(digest.get(12..20).unwrap_or(&[0; 8]));
        Ok(Self {
            n,
            e,
            monty,
            fingerprint: i64::from_le_bytes(tail),
        })
    }

    /// Reads a PKCS#1 `-----BEGIN RSA PUBLIC KEY-----` block.
    pub fn from_pem(text: &str) -> Result<Self, RsaKeyError> {
        let der = pem::decode(text, PUBLIC_LABEL)?;
        let mut outer = pem::DerReader::new(&der);
        let mut fields = outer.sequence()?;
        let n = fields.unsigned()?;
        let e = fields.unsigned()?;
        if !fields.is_empty() || !outer.is_empty() {
            return Err(RsaKeyError::Der);
        }
        Self::from_components(n, e)
    }

    /// The PKCS#1 PEM form (`-----BEGIN RSA PUBLIC KEY-----`), the one clients embed.
    pub fn to_pem(&self) -> String {
        pem::encode(&self.to_der(), PUBLIC_LABEL)
    }

    fn to_der(&self) -> Vec<u8> {
        let mut fields = Vec::with_capacity(RSA_BLOCK_LEN + 16);
        pem::push_unsigned(&mut fields, &self.n.be_bytes_vec());
        pem::push_unsigned(&mut fields, &self.e.to_be_bytes());
        pem::sequence(&fields)
    }

    /// The fingerprint clients and servers name the key by: the low 64 bits of
    /// SHA1(TL bytes(n) + TL bytes(e)), as a little-endian `long`.
    pub fn fingerprint(&self) -> i64 {
        self.fingerprint
    }

    /// The public exponent.
    pub fn exponent(&self) -> u64 {
        self.e
    }

    /// The modulus, 256 bytes big-endian.
    pub fn modulus(&self) -> [u8; RSA_BLOCK_LEN] {
        let mut out = [0u8; RSA_BLOCK_LEN];
        // Always fits: the modulus is 2048 bits.
        let _ = self.n.write_be_bytes(&mut out);
        out
    }

    /// Whether a big-endian block is below the modulus.
    fn below_modulus(&self, block: &[u8; RSA_BLOCK_LEN]) -> bool {
        U2048::from_be_bytes(block).is_some_and(|x| x.lt_vartime(&self.n))
    }

    /// Raw RSA: `block^e mod n`, for a block below the modulus (else `None`).
    fn encrypt_raw(&self, block: &[u8; RSA_BLOCK_LEN]) -> Option<[u8; RSA_BLOCK_LEN]> {
        let x = U2048::from_be_bytes(block)?;
        if !x.lt_vartime(&self.n) {
            return None;
        }
        let y = self.power_e(&x);
        let mut out = [0u8; RSA_BLOCK_LEN];
        y.write_be_bytes(&mut out)?;
        Some(out)
    }

    /// `x^e mod n` for `x < n` (public exponent, variable time in `e` only).
    fn power_e(&self, x: &U2048) -> U2048 {
        let xm = self.monty.convert_in(x);
        self.monty
            .convert_out(&self.monty.pow_vartime(&xm, &Uint::<1>::from_u64(self.e)))
    }
}

/// The blinding pair: `a = r^e mod n` and `a_inv = r^-1 mod n`.
struct Blinding {
    a: U2048,
    a_inv: U2048,
    uses: u32,
}

impl Drop for Blinding {
    fn drop(&mut self) {
        self.a.zeroize();
        self.a_inv.zeroize();
    }
}

/// An RSA-2048 private key with two 1024-bit primes, used through CRT.
pub struct RsaPrivateKey {
    public: RsaPublicKey,
    d: U2048,
    p: U1024,
    q: U1024,
    /// `d mod (p - 1)` and `d mod (q - 1)`, as 128 big-endian bytes each so that the
    /// exponentiation's length never depends on them.
    dp: Zeroizing<Vec<u8>>,
    dq: Zeroizing<Vec<u8>>,
    /// `q^-1 mod p` in Montgomery form modulo p (multiplying by it in Montgomery form yields
    /// a plain product).
    q_inv_monty: U1024,
    monty_p: Monty<16>,
    monty_q: Monty<16>,
    blinding: Mutex<Option<Blinding>>,
}

impl core::fmt::Debug for RsaPrivateKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RsaPrivateKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Drop for RsaPrivateKey {
    fn drop(&mut self) {
        self.d.zeroize();
        self.p.zeroize();
        self.q.zeroize();
        self.q_inv_monty.zeroize();
        self.monty_p.zeroize();
        self.monty_q.zeroize();
    }
}

/// `x^-1 mod m` for a small odd prime `m` and `x` not divisible by it (Fermat).
fn small_inverse(x: u64, m: u64) -> u64 {
    let m128 = u128::from(m);
    let mut result = 1u128;
    let mut base = u128::from(x) % m128;
    let mut exp = m.saturating_sub(2);
    while exp > 0 {
        if exp & 1 == 1 {
            result = result * base % m128;
        }
        base = base * base % m128;
        exp >>= 1;
    }
    result as u64
}

/// `e^-1 mod modulus` for a prime `e` that does not divide `modulus`:
/// `(1 + t * modulus) / e` with `t = -modulus^-1 mod e`.
fn inverse_of_prime_exponent<const N: usize>(e: u64, modulus: &Uint<N>) -> Uint<N> {
    let residue = u64::from(modulus.rem_u32_vartime(e as u32));
    let t = (e - small_inverse(residue, e)) % e;
    let (product, carry) = modulus.mul_small_add(t, 1);
    // The quotient is below `modulus`; the carried limb becomes the first remainder.
    let mut limbs = [0u64; N];
    let mut rem = u128::from(carry);
    for (i, limb) in product.0.iter().enumerate().rev() {
        let current = (rem << 64) | u128::from(*limb);
        if let Some(slot) = limbs.get_mut(i) {
            *slot = (current / u128::from(e)) as u64;
        }
        rem = current % u128::from(e);
    }
    Uint(limbs)
}

impl RsaPrivateKey {
    /// Generates a fresh RSA-2048 key pair with e = 65537 (takes a few hundred milliseconds).
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let e = u64::from(DEFAULT_PUBLIC_EXPONENT);
        loop {
            let p = random_prime(rng, e);
            let q = random_prime(rng, e);
            if p == q {
                continue;
            }
            let n = bignum::mul_wide(&p, &q);
            let (p1, _) = p.sbb(&U1024::from_u64(1));
            let (q1, _) = q.sbb(&U1024::from_u64(1));
            let phi = bignum::mul_wide(&p1, &q1);
            let d = inverse_of_prime_exponent(e, &phi);
            if let Ok(key) = Self::from_parts(&n.be_bytes_vec(), &e.to_be_bytes(), &d, &p, &q) {
                return key;
            }
        }
    }

    /// Builds the key from n, e, d, p and q, computing the CRT values; checks that they agree.
    fn from_parts(
        n: &[u8],
        e: &[u8],
        d: &U2048,
        p: &U1024,
        q: &U1024,
    ) -> Result<Self, RsaKeyError> {
        let public = RsaPublicKey::from_components(n, e)?;
        if p.bits_vartime() != 1024 || q.bits_vartime() != 1024 {
            return Err(RsaKeyError::Unsupported("primes are not 1024 bits each"));
        }
        if bignum::mul_wide(p, q) != public.n {
            return Err(RsaKeyError::Inconsistent);
        }
        let monty_p = Monty::new(*p).ok_or(RsaKeyError::Inconsistent)?;
        let monty_q = Monty::new(*q).ok_or(RsaKeyError::Inconsistent)?;
        let (p1, _) = p.sbb(&U1024::from_u64(1));
        let (q1, _) = q.sbb(&U1024::from_u64(1));
        // d mod (p - 1): d < n < 2^2048; reduce the 2048-bit d with a schoolbook remainder on
        // public-size loops (the bits of d are secret, the loop count is not).
        let dp = reduce_secret(d, &p1);
        let dq = reduce_secret(d, &q1);
        let mut dp_bytes = Zeroizing::new(vec![0u8; 128]);
        let mut dq_bytes = Zeroizing::new(vec![0u8; 128]);
        dp.write_be_bytes(&mut dp_bytes)
            .ok_or(RsaKeyError::Inconsistent)?;
        dq.write_be_bytes(&mut dq_bytes)
            .ok_or(RsaKeyError::Inconsistent)?;
        // q^-1 mod p = q^(p-2) mod p (p is prime).
        let q_mod_p = monty_p.reduce_once(q);
        let (p2, _) = p.sbb(&U1024::from_u64(2));
        // pow_ct answers in Montgomery form, the form Garner's step wants.
        let q_inv_monty = monty_p.pow_ct(&monty_p.convert_in(&q_mod_p), &p2.be_bytes_vec());
        let key = Self {
            public,
            d: *d,
            p: *p,
            q: *q,
            dp: dp_bytes,
            dq: dq_bytes,
            q_inv_monty,
            monty_p,
            monty_q,
            blinding: Mutex::new(None),
        };
        // A key whose numbers disagree fails this round trip.
        let probe = U2048::from_u64(0x0123_4567_89ab_cdef);
        let encrypted = key.public.power_e(&probe);
        if key.crt_power(&encrypted) != probe {
            return Err(RsaKeyError::Inconsistent);
        }
        Ok(key)
    }

    /// Reads a PKCS#1 `-----BEGIN RSA PRIVATE KEY-----` block.
    pub fn from_pem(text: &str) -> Result<Self, RsaKeyError> {
        let der = pem::decode(text, PRIVATE_LABEL)?;
        let mut outer = pem::DerReader::new(&der);
        let mut fields = outer.sequence()?;
        if fields.unsigned()? != [0] {
            return Err(RsaKeyError::Unsupported("multi-prime or unknown version"));
        }
        let n = fields.unsigned()?;
        let e = fields.unsigned()?;
        let d = fields.unsigned()?;
        let p = fields.unsigned()?;
        let q = fields.unsigned()?;
        // dp, dq and qinv are recomputed from p, q and d rather than trusted.
        for _ in 0..3 {
            fields.unsigned()?;
        }
        if !fields.is_empty() || !outer.is_empty() {
            return Err(RsaKeyError::Der);
        }
        let d = U2048::from_be_bytes(d).ok_or(RsaKeyError::Inconsistent)?;
        let p = U1024::from_be_bytes(p)
            .ok_or(RsaKeyError::Unsupported("primes are not 1024 bits each"))?;
        let q = U1024::from_be_bytes(q)
            .ok_or(RsaKeyError::Unsupported("primes are not 1024 bits each"))?;
        Self::from_parts(n, e, &d, &p, &q)
    }

    /// The PKCS#1 PEM form (`-----BEGIN RSA PRIVATE KEY-----`); keep it secret.
    pub fn to_pem(&self) -> Zeroizing<String> {
        let mut fields = Zeroizing::new(Vec::with_capacity(1200));
        pem::push_unsigned(&mut fields, &[0]);
        pem::push_unsigned(&mut fields, &self.public.n.be_bytes_vec());
        pem::push_unsigned(&mut fields, &self.public.e.to_be_bytes());
        pem::push_unsigned(&mut fields, &Zeroizing::new(self.d.be_bytes_vec()));
        pem::push_unsigned(&mut fields, &Zeroizing::new(self.p.be_bytes_vec()));
        pem::push_unsigned(&mut fields, &Zeroizing::new(self.q.be_bytes_vec()));
        pem::push_unsigned(&mut fields, &self.dp);
        pem::push_unsigned(&mut fields, &self.dq);
        let q_inv = self.monty_p.convert_out(&self.q_inv_monty);
        pem::push_unsigned(&mut fields, &Zeroizing::new(q_inv.be_bytes_vec()));
        let der = Zeroizing::new(pem::sequence(&fields));
        Zeroizing::new(pem::encode(&der, PRIVATE_LABEL))
    }

    /// The public half.
    pub fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    /// `x^d mod n` through the CRT, constant-time in `x`, `d`, `p` and `q`.
    fn crt_power(&self, x: &U2048) -> U2048 {
        self.crt_apply(x, &self.dp, &self.dq)
    }

    /// `r^-1 mod n` for `r` coprime to n, via Fermat modulo each prime and CRT (constant time).
    fn invert(&self, r: &U2048) -> U2048 {
        let (p2, _) = self.p.sbb(&U1024::from_u64(2));
        let (q2, _) = self.q.sbb(&U1024::from_u64(2));
        self.crt_apply(r, &p2.be_bytes_vec(), &q2.be_bytes_vec())
    }

    /// The number below n that is `x^ep mod p` and `x^eq mod q` (exponents big-endian, secret),
    /// recombined with Garner's formula: `m = mq + q * ((mp - mq) * q^-1 mod p)`.
    fn crt_apply(&self, x: &U2048, ep: &[u8], eq: &[u8]) -> U2048 {
        let (low, high) = bignum::split(x);
        let half = |monty: &Monty<16>, exponent: &[u8]| {
            // x mod prime = high * 2^1024 + low; a 1024-bit half is below twice the prime,
            // and convert_in(high) = high * R = high * 2^1024 mod prime, in plain form.
            let reduced = monty.add(
                &monty.convert_in(&monty.reduce_once(&high)),
                &monty.reduce_once(&low),
            );
            monty.convert_out(&monty.pow_ct(&monty.convert_in(&reduced), exponent))
        };
        let mp = half(&self.monty_p, ep);
        let mq = half(&self.monty_q, eq);
        let mq_mod_p = self.monty_p.reduce_once(&mq);
        let h = self
            .monty_p
            .mul(&self.monty_p.sub(&mp, &mq_mod_p), &self.q_inv_monty);
        bignum::mul_wide(&self.q, &h).adc(&bignum::widen(&mq)).0
    }

    /// The next blinding pair: fresh every [`BLINDING_REFRESH`] uses, squared in between.
    fn next_blinding<R: RngCore + CryptoRng + ?Sized>(&self, rng: &mut R) -> (U2048, U2048) {
        let mut guard = match self.blinding.lock() {
            Ok(guard) => guard,
            // A panic elsewhere while holding the lock leaves a usable value (or none).
            Err(poisoned) => poisoned.into_inner(),
        };
        let monty = &self.public.monty;
        match guard.as_mut() {
            Some(blinding) if blinding.uses < BLINDING_REFRESH => {
                // (r^2)^e = (r^e)^2 and (r^2)^-1 = (r^-1)^2. A Montgomery product of x in
                // Montgomery form and x in plain form is x^2 in plain form.
                blinding.a = monty.mul(&monty.convert_in(&blinding.a), &blinding.a);
                blinding.a_inv = monty.mul(&monty.convert_in(&blinding.a_inv), &blinding.a_inv);
                blinding.uses += 1;
                (blinding.a, blinding.a_inv)
            }
            _ => {
                let (a, a_inv) = loop {
                    let r = U2048::random_below(rng, &self.public.n);
                    if r.bits_vartime() < 2 {
                        continue;
                    }
                    let a_inv = self.invert(&r);
                    // r shares a factor with n only with negligible probability; check anyway.
                    let check = monty.mul(&monty.convert_in(&r), &a_inv);
                    if check == U2048::from_u64(1) {
                        break (self.public.power_e(&r), a_inv);
                    }
                };
                *guard = Some(Blinding { a, a_inv, uses: 1 });
                (a, a_inv)
            }
        }
    }

    /// Raw RSA decryption of a 256-byte block, blinded and checked; `None` if the block is not
    /// below the modulus or the result fails the re-encryption check.
    fn decrypt_raw<R: RngCore + CryptoRng + ?Sized>(
        &self,
        block: &[u8],
        rng: &mut R,
    ) -> Option<Zeroizing<[u8; RSA_BLOCK_LEN]>> {
        if block.len() != RSA_BLOCK_LEN {
            return None;
        }
        let c = U2048::from_be_bytes(block)?;
        if !c.lt_vartime(&self.public.n) {
            return None;
        }
        let monty = &self.public.monty;
        let (a, a_inv) = self.next_blinding(rng);
        // mul(x in Montgomery form, y plain) = x * y plain.
        let blinded = monty.mul(&monty.convert_in(&c), &a);
        let mut m_blinded = self.crt_power(&blinded);
        let mut m = monty.mul(&monty.convert_in(&m_blinded), &a_inv);
        m_blinded.zeroize();
        let verified = self.public.power_e(&m) == c;
        let mut out = Zeroizing::new([0u8; RSA_BLOCK_LEN]);
        let written = m.write_be_bytes(out.as_mut_slice());
        m.zeroize();
        (verified && written.is_some()).then_some(out)
    }
}

/// `x mod m` for a secret 2048-bit `x` and a 1024-bit `m` with its top bit set, by shifting in
/// one bit at a time with a masked subtraction (constant time; used at key load only).
fn reduce_secret(x: &U2048, m: &U1024) -> U1024 {
    let mut acc = U1024::ZERO;
    for index in (0..2048).rev() {
        let (shifted, carry) = {
            let (doubled, carry) = acc.adc(&acc);
            let bit = u64::from(x.bit(index));
            (doubled.adc(&U1024::from_u64(bit)).0, carry)
        };
        let (reduced, borrow) = shifted.sbb(m);
        let take = 0u64.wrapping_sub(carry | (borrow ^ 1));
        acc = Uint::select(take, &reduced, &shifted);
    }
    acc
}

/// A random 1024-bit prime with its two top bits set (so that the product of two is 2048
/// bits) and `e` not dividing `p - 1`.
fn random_prime<R: RngCore + CryptoRng + ?Sized>(rng: &mut R, e: u64) -> U1024 {
    loop {
        let mut bytes = Zeroizing::new([0u8; 128]);
        rng.fill_bytes(bytes.as_mut_slice());
        let Some(mut candidate) = U1024::from_be_bytes(bytes.as_slice()) else {
            continue;
        };
        // The two top bits and the lowest one.
        candidate.0[15] |= 0xc000_0000_0000_0000;
        candidate.0[0] |= 1;
        if bignum::has_small_factor(&candidate) {
            continue;
        }
        if candidate.rem_u32_vartime(e as u32) == 1 {
            continue;
        }
        if bignum::is_probable_prime(&candidate, KEYGEN_ROUNDS, rng) {
            return candidate;
        }
    }
}

/// AES-256-IGE with a zero IV over whole blocks (RSA_PAD's inner encryption).
fn ige_zero_iv(data: &mut [u8], key: &[u8; 32], encrypt: bool) {
    let iv = [0u8; 32];
    // Lengths here are fixed multiples of 16, so this cannot fail.
    let _ = if encrypt {
        encrypt_ige(data, key, &iv)
    } else {
        decrypt_ige(data, key, &iv)
    };
}

/// RSA_PAD-encrypts at most 144 bytes of handshake data for `key`
/// (core.telegram.org/mtproto/auth_key, step 4.1).
pub fn rsa_pad_encrypt<R: RngCore + CryptoRng + ?Sized>(
    key: &RsaPublicKey,
    data: &[u8],
    rng: &mut R,
) -> Result<[u8; RSA_BLOCK_LEN], RsaPadError> {
    if data.len() > RSA_PAD_MAX_DATA {
        return Err(RsaPadError::DataTooLong);
    }
    let mut with_padding = Zeroizing::new([0u8; 192]);
    {
        let (head, tail) = with_padding.split_at_mut(data.len());
        head.copy_from_slice(data);
        rng.fill_bytes(tail);
    }
    loop {
        let mut temp_key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(temp_key.as_mut_slice());
        let mut block = Zeroizing::new([0u8; RSA_BLOCK_LEN]);
        {
            let (key_part, aes_part) = block.split_at_mut(32);
            let (reversed_part, hash_part) = aes_part.split_at_mut(192);
            // data_with_hash = reverse(data_with_padding) + SHA256(temp_key + data_with_padding).
            for (dst, src) in reversed_part.iter_mut().zip(with_padding.iter().rev()) {
                *dst = *src;
            }
            let mut hasher = Sha256::new();
            hasher.update(temp_key.as_slice());
            hasher.update(with_padding.as_slice());
            hash_part.copy_from_slice(&hasher.finalize());
            ige_zero_iv(aes_part, &temp_key, true);
            // temp_key_xor = temp_key XOR SHA256(aes_encrypted).
            let digest = Sha256::digest(&*aes_part);
            for ((dst, k), h) in key_part.iter_mut().zip(temp_key.iter()).zip(digest.iter()) {
                *dst = k ^ h;
            }
        }
        if !key.below_modulus(&block) {
            continue;
        }
        if let Some(out) = key.encrypt_raw(&block) {
            return Ok(out);
        }
    }
}

/// The legacy form: `SHA1(data) + data + random padding` to 255 bytes, then raw RSA. Only for
/// talking to, or testing, servers that predate RSA_PAD.
pub fn rsa_legacy_encrypt<R: RngCore + CryptoRng + ?Sized>(
    key: &RsaPublicKey,
    data: &[u8],
    rng: &mut R,
) -> Result<[u8; RSA_BLOCK_LEN], RsaPadError> {
    if data.len() > 255 - 20 {
        return Err(RsaPadError::DataTooLong);
    }
    let mut block = Zeroizing::new([0u8; RSA_BLOCK_LEN]);
    {
        let (_zero, rest) = block.split_at_mut(1);
        let (hash, rest) = rest.split_at_mut(20);
        let (object, padding) = rest.split_at_mut(data.len());
        hash.copy_from_slice(&Sha1::digest(data));
        object.copy_from_slice(data);
        rng.fill_bytes(padding);
    }
    // A leading zero byte keeps the block below any 2048-bit modulus.
    key.encrypt_raw(&block).ok_or(RsaPadError::Rejected)
}

/// Decrypts a client's `req_DH_params` data in either encoding.
///
/// Returns the data and the encoding found: for RSA_PAD the 192 bytes of data with padding,
/// for the legacy form exactly the bytes its SHA-1 covers (a TL object, so a multiple of 4
/// bytes). Both decodings are computed in full, and the legacy form's hash is tried against
/// every possible object length, so the time taken does not depend on what the block decrypts
/// to. Every failure is [`RsaPadError::Rejected`].
pub fn rsa_decrypt_handshake_data<R>(
    key: &RsaPrivateKey,
    encrypted: &[u8],
    rng: &mut R,
) -> Result<(Zeroizing<Vec<u8>>, RsaEncoding), RsaPadError>
where
    R: RngCore + CryptoRng + ?Sized,
{
    let block = key
        .decrypt_raw(encrypted, rng)
        .ok_or(RsaPadError::Rejected)?;
    let pad = rsa_pad_unwrap(&block);
    let legacy = legacy_unwrap(&block);
    match (pad, legacy) {
        (Some(data), _) => Ok((data, RsaEncoding::Pad)),
        (None, Some(data)) => Ok((data, RsaEncoding::LegacySha1)),
        (None, None) => Err(RsaPadError::Rejected),
    }
}

/// Inverts RSA_PAD on a decrypted block; `None` unless the SHA-256 matches.
fn rsa_pad_unwrap(block: &[u8; RSA_BLOCK_LEN]) -> Option<Zeroizing<Vec<u8>>> {
    let (key_xor, aes_encrypted) = block.split_at(32);
    let digest = Sha256::digest(aes_encrypted);
    let mut temp_key = Zeroizing::new([0u8; 32]);
    for ((dst, x), h) in temp_key.iter_mut().zip(key_xor).zip(digest.iter()) {
        *dst = x ^ h;
    }
    let mut data_with_hash = Zeroizing::new([0u8; 224]);
    data_with_hash.copy_from_slice(aes_encrypted);
    ige_zero_iv(data_with_hash.as_mut_slice(), &temp_key, false);
    let (reversed, hash) = data_with_hash.split_at(192);
    let data: Zeroizing<Vec<u8>> = Zeroizing::new(reversed.iter().rev().copied().collect());
    let mut hasher = Sha256::new();
    hasher.update(temp_key.as_slice());
    hasher.update(data.as_slice());
    ct_eq(&hasher.finalize(), hash).then_some(data)
}

/// Inverts the legacy form; `None` unless the block starts with a zero byte and the SHA-1
/// after it matches some prefix of the data whose length is a multiple of 4 (a TL object).
/// Every candidate length is hashed and compared, so no step depends on the decrypted bytes.
fn legacy_unwrap(block: &[u8; RSA_BLOCK_LEN]) -> Option<Zeroizing<Vec<u8>>> {
    let (zero, rest) = block.split_first()?;
    let (hash, data) = rest.split_at(20);
    let mut hasher = Sha1::new();
    let mut found = 0usize;
    for (index, word) in data.chunks_exact(4).enumerate() {
        hasher.update(word);
        let length = (index + 1) * 4;
        let matches = usize::from(ct_eq(&hasher.clone().finalize(), hash));
        // found = matches ? length : found, without a branch.
        let mask = matches.wrapping_neg();
        found = (length & mask) | (found & !mask);
    }
    (*zero == 0 && found > 0)
        .then(|| Zeroizing::new(data.get(..found).unwrap_or_default().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    /// Telegram's production public key, as clients embed it (Telethon, TDLib and others);
    /// its fingerprint is well known as 0xd09d1d85de64fd85 and is the one the
    /// samples-auth_key page's client picks.
    pub(crate) const TELEGRAM_PRODUCTION_KEY: &str = "-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEA6LszBcC1LGzyr992NzE0ieY+BSaOW622Aa9Bd4ZHLl+TuFQ4lo4g
5nKaMBwK/BIb9xUfg0Q29/2mgIR6Zr9krM7HjuIcCzFvDtr+L0GQjae9H0pRB2OO
62cECs5HKhT5DZ98K33vmWiLowc621dQuwKWSQKjWf50XYFw42h21P2KXUGyp2y/
+aEyZ+uVgLLQbRA1dEjSDZ2iGRy12Mk5gpYc397aYp438fsJoHIgJ2lgMv5h7WY9
t6N/byY9Nw9p21Og3AoXSL2q/2IJ1WRUhebgAdGVMlV1fkuOQoEzR7EdpqtQD9Cs
5+bfo3Nhmcyvk5ftB0WkJ9z6bNZ7yxrP8wIDAQAB
-----END RSA PUBLIC KEY-----";

    fn test_key() -> RsaPrivateKey {
        RsaPrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(42))
    }

    #[test]
    fn telegram_production_key_has_its_published_fingerprint() {
        let key = RsaPublicKey::from_pem(TELEGRAM_PRODUCTION_KEY).unwrap();
        assert_eq!(key.fingerprint() as u64, 0xd09d_1d85_de64_fd85);
        assert_eq!(key.exponent(), 65_537);
        // Saving and loading gives the same key and the same PEM.
        let again = RsaPublicKey::from_pem(&key.to_pem()).unwrap();
        assert_eq!(again, key);
        let body: String = TELEGRAM_PRODUCTION_KEY
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let ours: String = key
            .to_pem()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert_eq!(ours, body);
    }

    #[test]
    fn generated_keys_round_trip_through_pem_and_decrypt() {
        let key = test_key();
        assert_eq!(key.public_key().modulus()[0] & 0x80, 0x80);
        let loaded = RsaPrivateKey::from_pem(&key.to_pem()).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        let public = RsaPublicKey::from_pem(&key.public_key().to_pem()).unwrap();
        assert_eq!(public.fingerprint(), key.public_key().fingerprint());

        let mut rng = ChaCha20Rng::seed_from_u64(1);
        // More uses than one blinding refresh period.
        for round in 0..(BLINDING_REFRESH + 3) {
            let data = vec![round as u8; 100 + round as usize % 44];
            let encrypted = rsa_pad_encrypt(key.public_key(), &data, &mut rng).unwrap();
            let (plain, encoding) =
                rsa_decrypt_handshake_data(&loaded, &encrypted, &mut rng).unwrap();
            assert_eq!(encoding, RsaEncoding::Pad);
            assert_eq!(&plain[..data.len()], &data[..]);
        }
    }

    #[test]
    fn legacy_form_decrypts_with_the_object_length() {
        let key = test_key();
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let data = [7u8; 96];
        let encrypted = rsa_legacy_encrypt(key.public_key(), &data, &mut rng).unwrap();
        let (plain, encoding) = rsa_decrypt_handshake_data(&key, &encrypted, &mut rng).unwrap();
        assert_eq!(encoding, RsaEncoding::LegacySha1);
        // Exactly the bytes the SHA-1 covers, whatever padding follows.
        assert_eq!(&plain[..], &data[..]);
        // A corrupted hash matches no prefix.
        let mut block = [0u8; RSA_BLOCK_LEN];
        block[1..21].copy_from_slice(&Sha1::digest(&data[..92]));
        block[1] ^= 1;
        block[21..117].copy_from_slice(&data);
        assert!(legacy_unwrap(&block).is_none());
        block[1] ^= 1;
        assert_eq!(legacy_unwrap(&block).unwrap().len(), 92);
    }

    #[test]
    fn tampering_is_rejected_with_one_error() {
        let key = test_key();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let encrypted = rsa_pad_encrypt(key.public_key(), &[1; 144], &mut rng).unwrap();
        for index in [0, 1, 100, 255] {
            let mut bad = encrypted;
            bad[index] ^= 0x01;
            assert_eq!(
                rsa_decrypt_handshake_data(&key, &bad, &mut rng).unwrap_err(),
                RsaPadError::Rejected
            );
        }
        // At or above the modulus, and the wrong length.
        let modulus = key.public_key().modulus();
        assert!(rsa_decrypt_handshake_data(&key, &modulus, &mut rng).is_err());
        assert!(rsa_decrypt_handshake_data(&key, &[0xff; 256], &mut rng).is_err());
        assert!(rsa_decrypt_handshake_data(&key, &encrypted[1..], &mut rng).is_err());
        assert_eq!(
            rsa_pad_encrypt(key.public_key(), &[0; 145], &mut rng).unwrap_err(),
            RsaPadError::DataTooLong
        );
    }

    #[test]
    fn keys_that_do_not_fit_are_refused() {
        // A 1024-bit modulus.
        assert!(matches!(
            RsaPublicKey::from_components(&[0xc5; 128], &[1, 0, 1]),
            Err(RsaKeyError::Unsupported(_))
        ));
        // Even exponent.
        let mut n = [0xc5u8; 256];
        n[255] = 0xc7;
        assert!(RsaPublicKey::from_components(&n, &[2]).is_err());
        // A private key whose p was altered.
        let key = test_key();
        let mut p = key.p;
        p.0[3] ^= 1;
        assert!(
            RsaPrivateKey::from_parts(&key.public.n.be_bytes_vec(), &[1, 0, 1], &key.d, &p, &key.q)
                .is_err()
        );
        assert!(RsaPublicKey::from_pem("junk").is_err());
    }
}
