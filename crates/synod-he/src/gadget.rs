//! The key-switching gadget: how relinearisation and rotation keys split
//! the ciphertext modulus `Q = q_0···q_{L−1}` into digits.
//!
//! Digit `g` covers consecutive primes `G_g` (`Params::relin_digit_primes`
//! or `Params::rotation_digit_primes` of them, the last digit possibly fewer), with `Q_g = ∏_{k∈G_g} q_k`. A key
//! row `g` encrypts `w_g·s'` for the CRT idempotent `w_g` (1 modulo the
//! primes of `G_g`, 0 modulo the others), so `w_g·s'` is just the residues
//! of `s'` in the rows of `G_g`. To switch `c`, its digit `X_g ∈ [0, Q_g)`
//! (the exact CRT value of `c`'s residues at `G_g`, by Garner's mixed radix)
//! is reduced modulo every prime and multiplied by key row `g`; since
//! `Σ_g X_g·w_g ≡ c (mod Q)`, the sum is `c·s' + Σ_g X_g·e_g`. This is the
//! digit decomposition of hybrid key switching (Han and Ki, CT-RSA 2020;
//! Lattigo's and OpenFHE's `dnum`) without its special modulus `P`, which
//! log q = 218 at N = 8192 leaves no room for (a special prime would push
//! log QP past the 128-bit bound); with one prime per digit it is the RNS
//! decomposition of Bajard, Eynard, Hasan and Zucca (SAC 2016).
//!
//! One prime per digit is fhe.rs's RNS gadget (`L` rows, digits below one
//! prime, 2^44 at N = 8192). Two primes per digit cut the rows to `⌈L/2⌉`
//! (and the NTTs of every key switch and of both relinearisation-key
//! rounds) at the price of digits of two primes, i.e. key-switching noise
//! larger by about one prime (2^44 at N = 8192, 2^49 at N = 16384), which
//! the noise model (`synod-circuit`) accounts for when a plan chooses it.
//! The ring-LWE instance, hence security, is the same either way.

use std::ops::Range;

use fhe_math::zq::Modulus;

use crate::kernels::{
    dot2_add_into, dot_const_rows, key_companions, mul_key_add_into, placement, Placed, RingOps,
    Shoup52, PAGE_WORDS,
};
use crate::ntt::Ntt;
use crate::{Error, Result};

/// The digits of one modulus chain (level 0).
#[derive(Clone, Debug)]
pub(crate) struct Gadget {
    moduli: Vec<Modulus>,
    groups: Vec<Range<usize>>,
    /// Per prime `k` at position `m ≥ 1` of its group: `(q_first···q_{k−1})^{-1}
    /// mod q_k`, Garner's constant; 0 at the first prime of each group.
    garner: Vec<u64>,
}

impl Gadget {
    /// The relinearisation key's gadget under `params`.
    pub(crate) fn relin(params: &crate::Params) -> Result<Self> {
        Self::of(params, params.relin_digit_primes())
    }

    /// The rotation keys' gadget under `params`.
    pub(crate) fn rotation(params: &crate::Params) -> Result<Self> {
        Self::of(params, params.rotation_digit_primes())
    }

    fn of(params: &crate::Params, digit_primes: usize) -> Result<Self> {
        let moduli = params
            .moduli()
            .iter()
            .map(|&q| Modulus::new(q))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Self::new(&moduli, digit_primes)
    }

    /// Digits of `digit_primes` consecutive primes of `moduli`.
    pub(crate) fn new(moduli: &[Modulus], digit_primes: usize) -> Result<Self> {
        let l = moduli.len();
        if l == 0 || !(1..=l).contains(&digit_primes) {
            return Err(Error::Parameters(format!(
                "a key-switching digit covers 1..={l} primes, not {digit_primes}"
            )));
        }
        let groups: Vec<Range<usize>> = (0..l)
            .step_by(digit_primes)
            .map(|start| start..(start + digit_primes).min(l))
            .collect();
        let mut garner = vec![0u64; l];
        for group in &groups {
            for k in group.clone().skip(1) {
                let q = moduli
                    .get(k)
                    .ok_or_else(|| Error::Parameters("gadget prime index".into()))?;
                let prefix = moduli
                    .get(group.start..k)
                    .unwrap_or_default()
                    .iter()
                    .fold(1u64, |acc, p| q.mul(acc, q.reduce(**p)));
                let inverse = q.inv(prefix).ok_or_else(|| {
                    Error::Parameters("key-switching primes must be coprime".into())
                })?;
                if let Some(slot) = garner.get_mut(k) {
                    *slot = inverse;
                }
            }
        }
        Ok(Self {
            moduli: moduli.to_vec(),
            groups,
            garner,
        })
    }

    /// Number of digits (key rows).
    pub(crate) fn digits(&self) -> usize {
        self.groups.len()
    }

    /// The primes of digit `g`.
    pub(crate) fn group(&self, g: usize) -> Range<usize> {
        self.groups.get(g).cloned().unwrap_or(0..0)
    }

    /// Whether every digit is a single prime (fhe.rs's layout).
    pub(crate) fn is_per_prime(&self) -> bool {
        self.groups.iter().all(|g| g.len() == 1)
    }

    /// Garner's mixed-radix digits of `rows` (power-basis residues, `L × N`,
    /// row `k` below `q_k`): row `k` at position `m` of its group becomes
    /// `v_m < q_k` with `X_g = v_0 + q_{k0}·(v_1 + q_{k0+1}·(v_2 + …))`. Rows of
    /// the first prime of a group are unchanged (`v_0` is the residue
    /// itself). A no-op with one prime per digit.
    pub(crate) fn mixed_radix_in_place(&self, rows: &mut [u64], n: usize) {
        if self.is_per_prime() || n == 0 {
            return;
        }
        let mut t = vec![0u64; n];
        for group in &self.groups {
            for k in group.clone().skip(1) {
                let (Some(q), Some(&inverse)) = (self.moduli.get(k), self.garner.get(k)) else {
                    continue;
                };
                // The value of the digits so far, X_{<m} mod q_k, by Horner.
                self.horner_into(rows, n, group.start..k, q, &mut t);
                let Some(row) = rows.get_mut(k * n..(k + 1) * n) else {
                    continue;
                };
                q.sub_vec(row, &t);
                q.scalar_mul_vec(row, inverse);
            }
        }
    }

    /// `out = X_g mod q` for digit `g`, from the mixed-radix rows of
    /// [`Self::mixed_radix_in_place`] (power basis, `out.len() = N`).
    pub(crate) fn lift_into(&self, radix: &[u64], g: usize, q: &Modulus, out: &mut [u64]) {
        let n = out.len();
        self.horner_into(radix, n, self.group(g), q, out);
    }

    /// `out = v_0 + p_0·(v_1 + p_1·(… + p_{m−1}·v_m)) mod q` over the primes
    /// `range` (their mixed-radix rows `v`, each reduced modulo `q` first).
    fn horner_into(
        &self,
        radix: &[u64],
        n: usize,
        range: Range<usize>,
        q: &Modulus,
        out: &mut [u64],
    ) {
        let row = |k: usize| radix.get(k * n..(k + 1) * n).unwrap_or_default();
        // With IFMA or AVX2 + FMA: one pass, `Σ_m v_m·(p_0···p_{m−1} mod q)` (every
        // `v_m < 2^50`, Shoup constants modulo `q < 2^50`).
        let mut prefix = 1u64;
        let consts: Option<Vec<Shoup52>> = range
            .clone()
            .map(|k| {
                let c = Shoup52::new(prefix, **q);
                prefix = self
                    .moduli
                    .get(k)
                    .map_or(0, |p| q.mul(prefix, q.reduce(**p)));
                c
            })
            .collect();
        if let Some(consts) = consts {
            let rows: Vec<&[u64]> = range.clone().map(row).collect();
            if dot_const_rows(**q, out, &rows, &consts) {
                return;
            }
        }
        let mut primes = range.rev();
        let Some(top) = primes.next() else {
            out.fill(0);
            return;
        };
        out.copy_from_slice(row(top));
        q.reduce_vec(out);
        let mut t = vec![0u64; if primes.len() > 0 { n } else { 0 }];
        for k in primes {
            let p = self.moduli.get(k).map_or(0, |p| q.reduce(**p));
            q.scalar_mul_vec(out, p);
            t.copy_from_slice(row(k));
            q.reduce_vec(&mut t);
            q.add_vec(out, &t);
        }
    }
}

/// A polynomial's own residues modulo one prime, as a key switch gets them.
pub(crate) enum OwnRow<'a> {
    /// Already in NTT form (a rotation's `σ(c1)`).
    Ntt(&'a [u64]),
    /// In power basis (the product's `d2` after scaling).
    PowerBasis(&'a [u64]),
}

/// A key-switching key (relinearisation or one rotation): per digit `g`,
/// `c0[g]`, `c1[g]` (`L × N` NTT residues at level 0, `c0[g] + s·c1[g] ≈
/// w_g·s'`) and their Shoup companions (`kernels::key_companions`: empty
/// where the IFMA or the AVX2 + FMA kernels cover every prime).
///
/// Digit `g`'s matrices start on cache lines `2g` and `2g + 1` past a 4 KiB
/// boundary ([`Placed`]), and the lifted digits of a key switch on the
/// lines after them, so that the product's `3·digits + 2` streams do not
/// share an L1 set.
pub(crate) struct SwitchingKey {
    pub(crate) c0: Vec<Placed>,
    pub(crate) c1: Vec<Placed>,
    c0_shoup: Vec<Vec<u64>>,
    c1_shoup: Vec<Vec<u64>>,
}

impl SwitchingKey {
    /// The key with rows `c0`, `c1` for the primes of `ops`.
    pub(crate) fn new(ops: &RingOps, c0: Vec<Vec<u64>>, c1: Vec<Vec<u64>>) -> Self {
        use rayon::prelude::*;
        let companions = |rows: &[Vec<u64>]| -> Vec<Vec<u64>> {
            rows.par_iter().map(|m| key_companions(ops, m)).collect()
        };
        let (c0_shoup, c1_shoup) = (companions(&c0), companions(&c1));
        let place = |rows: Vec<Vec<u64>>, half: usize| -> Vec<Placed> {
            let rows = rows.iter().enumerate();
            rows.map(|(g, m)| Placed::copy_of(m, 2 * g + half))
                .collect()
        };
        Self {
            c0: place(c0, 0),
            c1: place(c1, 1),
            c0_shoup,
            c1_shoup,
        }
    }

    /// Number of digits (rows).
    pub(crate) fn digits(&self) -> usize {
        self.c0.len()
    }

    /// Adds output prime `i` (modulus `q`, transform `ntt`) of the key
    /// switch of a polynomial into `acc0`, `acc1` (NTT form):
    /// `Σ_g NTT_i(X_g mod q_i) ⊙ key[g]`. `radix` holds its mixed-radix
    /// digits in power basis ([`Gadget::mixed_radix_in_place`]); where `q_i`
    /// is one of digit `g`'s primes, `X_g mod q_i` is its own row `own`.
    /// `prepare` runs on the accumulators first, beside the digits' rows
    /// (the product's `d0`, `d1` go to NTT form there): each digit's row
    /// and `prepare` are separate parallel jobs, so that a few primes
    /// still keep every thread busy.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_row(
        &self,
        gadget: &Gadget,
        i: usize,
        q: &Modulus,
        ntt: &Ntt,
        own: OwnRow<'_>,
        radix: &[u64],
        acc0: &mut [u64],
        acc1: &mut [u64],
        prepare: impl FnOnce(&mut [u64], &mut [u64]) + Send,
    ) {
        use rayon::prelude::*;
        // Every digit's row first (lifted, in NTT form), then the products
        // with both key halves in one pass. The rows (ciphertext data, not
        // secret) go in this thread's scratch buffer, reused from call to
        // call: no fresh zeroed pages per prime.
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SCRATCH.with(|scratch| {
            // Re-entered on this thread (another prime's job taken up while
            // this one waits for its rows): a buffer of its own.
            let mut own_buffer = Vec::new();
            let mut borrowed = scratch.try_borrow_mut();
            let t = match borrowed.as_deref_mut() {
                Ok(t) => t,
                Err(_) => &mut own_buffer,
            };
            // Digit g's row on line 2·digits + g (a line's gap between rows).
            let n = acc0.len();
            let stride = n + 8;
            t.resize(PAGE_WORDS + stride * self.digits(), 0);
            let first = placement(t.as_ptr(), 2 * self.digits());
            let t = t
                .get_mut(first..first + stride * self.digits())
                .unwrap_or_default();
            rayon::join(
                || prepare(&mut *acc0, &mut *acc1),
                || {
                    t.par_chunks_exact_mut(stride)
                        .enumerate()
                        .for_each(|(g, t)| {
                            let t = t.get_mut(..n).unwrap_or_default();
                            match (&own, gadget.group(g).contains(&i)) {
                                (OwnRow::Ntt(own), true) => t.copy_from_slice(own),
                                (OwnRow::PowerBasis(own), true) => {
                                    t.copy_from_slice(own);
                                    ntt.forward(t);
                                }
                                (_, false) => {
                                    gadget.lift_into(radix, g, q, t);
                                    ntt.forward(t);
                                }
                            }
                        })
                },
            );
            let x: Vec<&[u64]> = t
                .chunks_exact(stride)
                .map(|r| r.get(..n).unwrap_or_default())
                .collect();
            let w0: Vec<&[u64]> = (0..self.digits()).map(|g| row(&self.c0, g, i, n)).collect();
            let w1: Vec<&[u64]> = (0..self.digits()).map(|g| row(&self.c1, g, i, n)).collect();
            if dot2_add_into(q, acc0, acc1, &x, &w0, &w1) {
                return;
            }
            for (g, t) in x.iter().enumerate() {
                let (w0s, w1s) = (row(&self.c0_shoup, g, i, n), row(&self.c1_shoup, g, i, n));
                mul_key_add_into(q, acc0, t, row(&self.c0, g, i, n), w0s);
                mul_key_add_into(q, acc1, t, row(&self.c1, g, i, n), w1s);
            }
        });
    }
}

/// Row `i` (of length `n`) of digit `g`'s residue matrix in `m`; empty if
/// there is none.
fn row(m: &[impl AsRef<[u64]>], g: usize, i: usize, n: usize) -> &[u64] {
    m.get(g)
        .and_then(|r| r.as_ref().get(i * n..(i + 1) * n))
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use num_bigint::BigUint;
    use proptest::prelude::*;

    use crate::ParameterSet;

    /// The N = 8192 primes (43–44 bits).
    fn primes_8192() -> &'static [u64] {
        ParameterSet::Bfv8192.moduli()
    }

    /// The N = 16384 primes (48–49 bits, near the IFMA kernels' 2^50 bound).
    fn primes_16384() -> &'static [u64] {
        ParameterSet::Bfv16384.moduli()
    }

    fn moduli_of(primes: &[u64]) -> Vec<Modulus> {
        primes.iter().map(|&p| Modulus::new(p).unwrap()).collect()
    }

    fn moduli() -> Vec<Modulus> {
        moduli_of(primes_8192())
    }

    fn product(primes: &[u64]) -> BigUint {
        primes.iter().map(|&p| BigUint::from(p)).product()
    }

    /// The digit of `residues` (one coefficient, one residue per prime) as a
    /// big integer: the CRT value of the group's residues.
    fn crt(primes: &[u64], residues: &[u64], group: Range<usize>) -> BigUint {
        let q = product(&primes[group.clone()]);
        let mut x = BigUint::from(0u32);
        for k in group {
            let p = BigUint::from(primes[k]);
            let rest = &q / &p;
            let inv = rest.modpow(&(&p - 2u32), &p);
            x += BigUint::from(residues[k]) * &rest * inv;
        }
        x % q
    }

    /// Checks every digit of a random residue matrix (extreme values in the
    /// first columns) lifted to every prime against the big-integer CRT
    /// value, and `Σ_g X_g·w_g ≡` the coefficient (mod Q).
    fn check_lift(primes: &[u64], digit_primes: usize, seed: u64, edge: usize) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (l, n) = (primes.len(), 19);
        let moduli = moduli_of(primes);
        let gadget = Gadget::new(&moduli, digit_primes).unwrap();
        assert_eq!(gadget.digits(), l.div_ceil(digit_primes));
        let mut rows = vec![0u64; l * n];
        for (k, row) in rows.chunks_mut(n).enumerate() {
            for (c, x) in row.iter_mut().enumerate() {
                *x = match (c, edge) {
                    (0, _) => 0,
                    (1, _) => primes[k] - 1,
                    (2, 1) => 1,
                    _ => rng.random_range(0..primes[k]),
                };
            }
        }
        let original = rows.clone();
        let mut radix = rows;
        gadget.mixed_radix_in_place(&mut radix, n);
        let q = product(primes);
        let column = |c: usize| -> Vec<u64> { (0..l).map(|k| original[k * n + c]).collect() };
        let mut total = vec![BigUint::from(0u32); n];
        for g in 0..gadget.digits() {
            let group = gadget.group(g);
            // w_g = (Q/Q_g)·[(Q/Q_g)^{-1} mod Q_g], by Euler's theorem.
            let q_g = product(&primes[group.clone()]);
            let rest = &q / &q_g;
            let totient: BigUint = primes[group.clone()]
                .iter()
                .map(|&p| BigUint::from(p - 1))
                .product();
            let w = &rest * rest.modpow(&(totient - 1u32), &q_g);
            for (i, m) in moduli.iter().enumerate() {
                let mut out = vec![0u64; n];
                gadget.lift_into(&radix, g, m, &mut out);
                for (c, &got) in out.iter().enumerate() {
                    let x = crt(primes, &column(c), group.clone());
                    assert_eq!(
                        BigUint::from(got),
                        &x % BigUint::from(primes[i]),
                        "digit {g}, prime {i}, column {c}"
                    );
                    if i == 0 {
                        total[c] += x * &w;
                    }
                }
            }
        }
        for (c, t) in total.iter().enumerate() {
            assert_eq!(t % &q, crt(primes, &column(c), 0..l), "column {c}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn lifted_digits_are_the_crt_values(
            digit_primes in 1usize..=5,
            seed in any::<u64>(),
            edge in 0usize..3,
        ) {
            check_lift(primes_8192(), digit_primes, seed, edge);
        }

        #[test]
        fn lifted_digits_are_the_crt_values_for_49_bit_primes(
            digit_primes in 1usize..=9,
            seed in any::<u64>(),
            edge in 0usize..3,
        ) {
            check_lift(primes_16384(), digit_primes, seed, edge);
        }
    }

    #[test]
    fn digit_sizes_out_of_range_are_refused() {
        assert!(Gadget::new(&moduli(), 0).is_err());
        assert!(Gadget::new(&moduli(), 6).is_err());
        assert!(Gadget::new(&[], 1).is_err());
        let g = Gadget::new(&moduli(), 2).unwrap();
        assert_eq!(g.digits(), 3);
        assert_eq!(g.group(2), 4..5);
        assert!(!g.is_per_prime());
        assert!(Gadget::new(&moduli(), 1).unwrap().is_per_prime());
    }
}
