//! Parameter sets (DESIGN.md §4).
//!
//! The plaintext modulus is called `p` everywhere (the letter `t` is the
//! threshold). `p` is a batching prime (`p ≡ 1 mod 2N`) whose size is chosen
//! for the circuit's declared input bounds; the ciphertext moduli are the
//! `fhe` library's 128-bit-secure moduli for the degree.

use std::fmt;
use std::sync::Arc;

use fhe::bfv::{BfvParameters, BfvParametersBuilder};
use fhe_math::rq::Context;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The named parameter sets synod knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParameterSet {
    /// N = 8192, log q = 218 (five primes), about 128-bit security.
    Bfv8192,
    /// N = 16384, log q = 438 (nine primes), about 128-bit security.
    Bfv16384,
    /// N = 2048 with a modulus far too large for that degree: **insecure**,
    /// for fast tests only. Refused unless the `insecure-test-params` feature
    /// is enabled.
    InsecureTestN2048,
}

impl ParameterSet {
    /// Ring degree N.
    pub const fn degree(self) -> usize {
        match self {
            ParameterSet::Bfv8192 => 8192,
            ParameterSet::Bfv16384 => 16384,
            ParameterSet::InsecureTestN2048 => 2048,
        }
    }

    /// Whether this set gives the claimed security level.
    pub const fn is_secure(self) -> bool {
        !matches!(self, ParameterSet::InsecureTestN2048)
    }

    /// The ciphertext moduli, largest level first.
    pub(crate) fn moduli(self) -> &'static [u64] {
        match self {
            // fhe.rs `default_parameters_128` for N = 8192 (log q = 218).
            ParameterSet::Bfv8192 => &[
                0x7fffffd8001,
                0x7fffffc8001,
                0xfffffffc001,
                0xffffff6c001,
                0xfffffebc001,
            ],
            // fhe.rs `default_parameters_128` for N = 16384 (log q = 438).
            ParameterSet::Bfv16384 => &[
                0xfffffffd8001,
                0xfffffffa0001,
                0xfffffff00001,
                0x1fffffff68001,
                0x1fffffff50001,
                0x1ffffffee8001,
                0x1ffffffea0001,
                0x1ffffffe88001,
                0x1ffffffe48001,
            ],
            // The N = 8192 primes are ≡ 1 mod 2·8192, hence ≡ 1 mod 2·2048:
            // the same modulus chain at a quarter of the degree. Insecure.
            ParameterSet::InsecureTestN2048 => &[
                0x7fffffd8001,
                0x7fffffc8001,
                0xfffffffc001,
                0xffffff6c001,
                0xfffffebc001,
            ],
        }
    }

    /// The largest plaintext modulus size this set supports: fhe.rs needs
    /// `p` below its smallest ciphertext prime.
    pub fn max_plaintext_bits(self) -> u32 {
        let smallest = self.moduli().iter().copied().min().unwrap_or(0);
        (64 - smallest.leading_zeros())
            .saturating_sub(1)
            .min(MAX_PLAINTEXT_BITS)
    }

    /// Parses a name as printed by [`fmt::Display`].
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "bfv-8192" => Ok(ParameterSet::Bfv8192),
            "bfv-16384" => Ok(ParameterSet::Bfv16384),
            "insecure-test-n2048" => Ok(ParameterSet::InsecureTestN2048),
            other => Err(Error::Parameters(format!(
                "unknown parameter set {other:?} (known: bfv-8192, bfv-16384)"
            ))),
        }
    }
}

impl fmt::Display for ParameterSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParameterSet::Bfv8192 => "bfv-8192",
            ParameterSet::Bfv16384 => "bfv-16384",
            ParameterSet::InsecureTestN2048 => "insecure-test-n2048",
        })
    }
}

/// fhe.rs asserts (panics) when two objects of one operation hold different
/// `Arc`s of equal parameters, and building parameters costs ~100 ms (NTT
/// tables for every level). So every `Params` of one (set, p) in a process
/// shares one `Arc`.
fn cached_bfv(set: ParameterSet, p: u64) -> Result<Arc<BfvParameters>> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Cache = Mutex<HashMap<(ParameterSet, u64), Arc<BfvParameters>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = cache
        .lock()
        .map_err(|_| Error::Parameters("parameter cache poisoned".into()))?;
    if let Some(bfv) = guard.get(&(set, p)) {
        return Ok(bfv.clone());
    }
    let bfv = BfvParametersBuilder::new()
        .set_degree(set.degree())
        .set_plaintext_modulus(p)
        .set_moduli(set.moduli())
        .build_arc()?;
    guard.insert((set, p), bfv.clone());
    Ok(bfv)
}

/// Smallest and largest plaintext modulus sizes we build, in bits.
pub const MIN_PLAINTEXT_BITS: u32 = 16;
/// See [`MIN_PLAINTEXT_BITS`]. fhe.rs scales through `u64`, so stay well below 64.
pub const MAX_PLAINTEXT_BITS: u32 = 60;

/// A built parameter set: the named set plus the plaintext modulus `p`.
#[derive(Clone)]
pub struct Params {
    set: ParameterSet,
    plaintext_bits: u32,
    /// Ciphertext primes per key-switching digit of the relinearisation
    /// key and of the rotation keys ([`crate::gadget`]).
    relin_digit_primes: usize,
    rotation_digit_primes: usize,
    bfv: Arc<BfvParameters>,
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Params")
            .field("set", &self.set)
            .field("p", &self.plaintext())
            .field("log_q", &self.log_q(0))
            .field("relin_digit_primes", &self.relin_digit_primes)
            .field("rotation_digit_primes", &self.rotation_digit_primes)
            .finish()
    }
}

impl PartialEq for Params {
    fn eq(&self, other: &Self) -> bool {
        self.set == other.set
            && self.plaintext() == other.plaintext()
            && self.relin_digit_primes == other.relin_digit_primes
            && self.rotation_digit_primes == other.rotation_digit_primes
    }
}
impl Eq for Params {}

impl Params {
    /// Builds `set` with the largest batching prime `p < 2^plaintext_bits`.
    pub fn new(set: ParameterSet, plaintext_bits: u32) -> Result<Self> {
        if !set.is_secure() && !cfg!(feature = "insecure-test-params") {
            return Err(Error::Parameters(format!(
                "parameter set {set} is insecure and only available to tests \
                 (feature insecure-test-params)"
            )));
        }
        if !(MIN_PLAINTEXT_BITS..=MAX_PLAINTEXT_BITS).contains(&plaintext_bits) {
            return Err(Error::Parameters(format!(
                "plaintext modulus of {plaintext_bits} bits is outside \
                 {MIN_PLAINTEXT_BITS}..={MAX_PLAINTEXT_BITS}"
            )));
        }
        let max_bits = set.max_plaintext_bits();
        if plaintext_bits > max_bits {
            return Err(Error::Parameters(format!(
                "{set} holds a plaintext modulus of at most {max_bits} bits \
                 (p must stay below the smallest ciphertext prime), not {plaintext_bits}"
            )));
        }
        let degree = set.degree();
        let upper = (1u64 << plaintext_bits) - 1;
        let p = ntt_prime(plaintext_bits as usize, 2 * degree as u64, upper).ok_or_else(|| {
            Error::Parameters(format!(
                "no {plaintext_bits}-bit prime p ≡ 1 mod {} exists",
                2 * degree
            ))
        })?;
        let bfv = cached_bfv(set, p)?;
        Ok(Self {
            set,
            plaintext_bits,
            relin_digit_primes: 1,
            rotation_digit_primes: 1,
            bfv,
        })
    }

    /// The same parameters with key-switching keys whose digits each cover
    /// `relin` (relinearisation key) and `rotation` (rotation keys)
    /// consecutive ciphertext primes (the last digit may cover fewer). One
    /// prime per digit is fhe.rs's RNS gadget and the default; more primes
    /// per digit mean fewer digits (smaller keys, fewer NTTs per key switch
    /// and per key-generation round) and a key-switching noise larger by the
    /// extra primes' bits ([`crate::gadget`]). Security does not depend on it.
    pub fn with_digit_primes(mut self, relin: usize, rotation: usize) -> Result<Self> {
        let l = self.moduli().len();
        for primes in [relin, rotation] {
            if !(1..=l).contains(&primes) {
                return Err(Error::Parameters(format!(
                    "a key-switching digit covers 1..={l} primes, not {primes}"
                )));
            }
        }
        self.relin_digit_primes = relin;
        self.rotation_digit_primes = rotation;
        Ok(self)
    }

    /// Ciphertext primes per digit of the relinearisation key (1 unless
    /// [`Params::with_digit_primes`] chose more).
    pub fn relin_digit_primes(&self) -> usize {
        self.relin_digit_primes
    }

    /// Ciphertext primes per digit of the rotation keys.
    pub fn rotation_digit_primes(&self) -> usize {
        self.rotation_digit_primes
    }

    /// Rows of the relinearisation key (digits at level 0).
    pub fn relin_digits(&self) -> usize {
        self.moduli().len().div_ceil(self.relin_digit_primes)
    }

    /// Rows of each rotation key (digits at level 0).
    pub fn rotation_digits(&self) -> usize {
        self.moduli().len().div_ceil(self.rotation_digit_primes)
    }

    /// The named set.
    pub fn set(&self) -> ParameterSet {
        self.set
    }

    /// The `fhe` parameters.
    pub fn bfv(&self) -> &Arc<BfvParameters> {
        &self.bfv
    }

    /// Ring degree N (also the number of SIMD slots).
    pub fn degree(&self) -> usize {
        self.bfv.degree()
    }

    /// Plaintext modulus `p`.
    pub fn plaintext(&self) -> u64 {
        self.bfv.plaintext()
    }

    /// Requested size of `p` in bits.
    pub fn plaintext_bits(&self) -> u32 {
        self.plaintext_bits
    }

    /// All ciphertext moduli (level 0).
    pub fn moduli(&self) -> &[u64] {
        self.bfv.moduli()
    }

    /// Deepest level (fewest primes).
    pub fn max_level(&self) -> usize {
        self.bfv.max_level()
    }

    /// The ring context at `level`.
    pub fn ctx(&self, level: usize) -> Result<&Arc<Context>> {
        Ok(self.bfv.context_at_level(level)?)
    }

    /// The moduli present at `level`.
    pub fn moduli_at(&self, level: usize) -> Result<&[u64]> {
        Ok(self.ctx(level)?.moduli())
    }

    /// log2 of the ciphertext modulus at `level`.
    pub fn log_q(&self, level: usize) -> f64 {
        self.bfv
            .context_at_level(level)
            .map(|ctx| ctx.moduli().iter().map(|&q| (q as f64).log2()).sum())
            .unwrap_or(0.0)
    }

    /// Standard deviation of the fresh error (centred binomial with the
    /// library's variance).
    pub fn error_std(&self) -> f64 {
        // fhe.rs samples errors and secrets with variance 10 by default.
        10f64.sqrt()
    }

    /// The `fhe` variance used for small polynomials.
    pub(crate) fn variance(&self) -> usize {
        10
    }
}

/// The largest `num_bits`-bit prime congruent to 1 modulo `modulo` and
/// below `upper_bound` (`num_bits` in `10..=62`, `upper_bound ≤
/// 2^num_bits`): fhe-math's `generate_prime`, the same search over the
/// same candidates, with tfhe-ntt's deterministic Miller–Rabin test for
/// 64-bit integers (`prime::is_prime64`) where fhe-math runs a big-integer
/// probable-prime test per candidate (0.5–0.7 ms of the product's first
/// use at N = 8192, which searches five extension primes).
pub(crate) fn ntt_prime(num_bits: usize, modulo: u64, upper_bound: u64) -> Option<u64> {
    if !(10..=62).contains(&num_bits) || modulo == 0 || upper_bound == 0 {
        return None;
    }
    let leading_zeros = (64 - num_bits) as u32;
    let mut candidate = upper_bound - 1;
    while candidate % modulo != 1 && candidate.leading_zeros() == leading_zeros {
        candidate -= 1;
    }
    while candidate.leading_zeros() == leading_zeros
        && !tfhe_ntt::prime::is_prime64(candidate)
        && candidate >= modulo
    {
        candidate -= modulo;
    }
    (candidate.leading_zeros() == leading_zeros && tfhe_ntt::prime::is_prime64(candidate))
        .then_some(candidate)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secure_sets_build_with_expected_log_q() {
        let p = Params::new(ParameterSet::Bfv8192, 20).unwrap();
        assert_eq!(p.degree(), 8192);
        assert!((p.log_q(0) - 218.0).abs() < 1.0, "{}", p.log_q(0));
        assert_eq!(p.plaintext() % (2 * 8192), 1);
        assert!(p.plaintext() < 1 << 20 && p.plaintext() > 1 << 19);
        assert_eq!(ParameterSet::Bfv8192.max_plaintext_bits(), 42);
        assert!(Params::new(ParameterSet::Bfv8192, 43).is_err());
        assert!(Params::new(ParameterSet::Bfv8192, 42).is_ok());
        let p = Params::new(ParameterSet::Bfv16384, 30).unwrap();
        assert!((p.log_q(0) - 438.0).abs() < 1.5, "{}", p.log_q(0));
    }

    #[test]
    fn equal_parameters_share_one_arc() {
        let a = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let b = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        assert!(Arc::ptr_eq(a.bfv(), b.bfv()));
        let c = Params::new(ParameterSet::InsecureTestN2048, 21).unwrap();
        assert!(!Arc::ptr_eq(a.bfv(), c.bfv()));
    }

    #[test]
    fn plaintext_bits_out_of_range_is_refused() {
        assert!(matches!(
            Params::new(ParameterSet::Bfv8192, 61),
            Err(Error::Parameters(_))
        ));
        assert!(Params::new(ParameterSet::Bfv8192, 8).is_err());
    }

    #[test]
    fn names_round_trip() {
        for s in [
            ParameterSet::Bfv8192,
            ParameterSet::Bfv16384,
            ParameterSet::InsecureTestN2048,
        ] {
            assert_eq!(ParameterSet::parse(&s.to_string()).unwrap(), s);
        }
        assert!(ParameterSet::parse("bfv-4096").is_err());
    }

    /// The prime search finds fhe-math's primes: the plaintext moduli of
    /// every width, the product's extension primes (descending chains at
    /// N = 8192 and 16384) and bounds where no prime exists. Fails with a
    /// test that rejects a prime or accepts a composite (the chains walk
    /// past both).
    #[test]
    fn prime_search_matches_fhe_math() {
        use fhe_math::zq::primes::generate_prime;
        for bits in 10..=40usize {
            for n in [2048u64, 8192, 16384] {
                let upper = (1u64 << bits) - 1;
                assert_eq!(
                    ntt_prime(bits, 2 * n, upper),
                    generate_prime(bits, 2 * n, upper),
                    "{bits} bits, N = {n}"
                );
            }
        }
        for (bits, n) in [(50usize, 8192u64), (50, 16384), (44, 8192), (62, 2048)] {
            let mut upper = 1u64 << bits;
            for _ in 0..8 {
                let want = generate_prime(bits, 2 * n, upper);
                assert_eq!(
                    ntt_prime(bits, 2 * n, upper),
                    want,
                    "{bits} bits below {upper}"
                );
                match want {
                    Some(p) => upper = p,
                    None => break,
                }
            }
        }
        assert_eq!(ntt_prime(9, 4, 1 << 9), None);
        assert_eq!(ntt_prime(63, 4, 1 << 62), None);
    }
}
