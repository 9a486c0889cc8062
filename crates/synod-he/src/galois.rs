//! Rotation (Galois) key generation (RTG), Mouchet et al., PETS 2021, §4.4
//! (Lattigo `multiparty.GaloisKeyGenProtocol`).
//!
//! For a Galois element `g` (the automorphism `σ_g: X ↦ X^g`) and common
//! random `a_g[k]`, participant `i` publishes
//! `h_i[k] = −a_g[k]·s_i + w_k·σ_g(s_i) + e`; the key is `(Σ h_i, a_g)`, since
//! `Σ h_i + s·a_g = w·σ_g(s) + small`. The protocol is linear in the secret,
//! so after thresholdisation any `t` participants can run it with their
//! Lagrange-weighted shares `λ_j·S_j` (DESIGN.md §2): rotation keys can be made
//! after parties have left.

use std::collections::BTreeMap;

use fhe::bfv::EvaluationKey;
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::crp::{CommonRandomness, CrpPurpose};
use crate::gadget::{OwnRow, SwitchingKey};
use crate::ntt::FusedProduct;
use crate::ring::WirePoly;
use crate::secret::LinearSecret;
use crate::shamir::EvaluationPoint;
use crate::{glue, round, Error, Params, Result};

/// The Galois elements needed to sum all slots (`inner_sum` in fhe.rs):
/// the row swap `2N − 1` and the column rotations by powers of two.
pub fn inner_sum_elements(params: &Params) -> Vec<u32> {
    let n = params.degree() as u64;
    let two_n = 2 * n;
    let mut out = vec![(two_n - 1) as u32];
    let mut i = 1u64;
    while i < n / 2 {
        out.push(pow_mod(3, i, two_n) as u32);
        i *= 2;
    }
    out
}

/// The Galois elements `2^j + 1`, `j = 1..=log2 N`, of the field trace
/// ([`GaloisKeys::trace`]) and of packing traces ([`GaloisKeys::pack_traces`]).
pub fn trace_elements(params: &Params) -> Vec<u32> {
    (1..=params.degree().trailing_zeros())
        .map(|j| (1u32 << j) + 1)
        .collect()
}

/// Where [`GaloisKeys::pack_traces`] puts its inputs' traces: `count`
/// inputs go to `2^depth` leaves (`depth = ⌈log2 count⌉`), input `i` to
/// leaf `bitrev(i)` (so that the padding leaves form whole subtrees, which
/// cost nothing), and leaf `r` to coefficient `r·stride`, `stride = N/2^depth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TraceLayout {
    /// Coefficients between neighbouring leaves.
    pub stride: usize,
    /// Merge depth: `2^depth` leaves.
    pub depth: u32,
    /// Inputs.
    pub count: usize,
}

impl TraceLayout {
    /// The layout of `count` traces in one ciphertext of `params`.
    pub fn new(params: &Params, count: usize) -> Result<Self> {
        let n = params.degree();
        if count == 0 || count > n {
            return Err(Error::Parameters(format!(
                "{count} traces cannot be packed into the {n} coefficients of one ciphertext"
            )));
        }
        let depth = count.next_power_of_two().trailing_zeros();
        Ok(Self {
            stride: n >> depth,
            depth,
            count,
        })
    }

    /// The leaf of input `i` (`None` past `count`).
    fn leaf(&self, i: usize) -> Option<usize> {
        (i < self.count).then(|| match self.depth {
            0 => 0,
            d => i.reverse_bits() >> (usize::BITS - d),
        })
    }

    /// The coefficient that holds input `i`'s trace (`None` past `count`).
    pub fn coefficient(&self, i: usize) -> Option<usize> {
        self.leaf(i).map(|r| r * self.stride)
    }

    /// The `j`-th coefficient that is not a multiple of `stride`, where the
    /// packed plaintext is zero, so that something else may be added there
    /// (`None` when there are fewer).
    pub fn free_coefficient(&self, j: usize) -> Option<usize> {
        let per_gap = self.stride.checked_sub(1).filter(|&g| g > 0)?;
        let c = (j / per_gap)
            .checked_mul(self.stride)?
            .checked_add(1 + j % per_gap)?;
        (c < self.stride << self.depth).then_some(c)
    }
}

/// The Galois element that rotates the columns left by `steps` (`0 < steps < N/2`).
pub fn rotation_element(params: &Params, steps: usize) -> Result<u32> {
    let n = params.degree();
    if steps == 0 || steps >= n / 2 {
        return Err(Error::Parameters(format!(
            "rotation by {steps} is outside 1..{}",
            n / 2
        )));
    }
    Ok(pow_mod(3, steps as u64, 2 * n as u64) as u32)
}

/// `base^exp mod m`.
pub(crate) fn pow_mod(base: u64, mut exp: u64, m: u64) -> u64 {
    let mut acc = 1u128;
    let mut b = u128::from(base) % u128::from(m);
    while exp > 0 {
        if exp & 1 == 1 {
            acc = acc * b % u128::from(m);
        }
        b = b * b % u128::from(m);
        exp >>= 1;
    }
    acc as u64
}

/// One participant's shares of the Galois keys for several elements.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaloisKeyShare {
    /// Who made it.
    pub sender: EvaluationPoint,
    /// `(element, h_i[k] per gadget row)`, in increasing order of element.
    pub keys: Vec<(u32, Vec<WirePoly>)>,
}

/// Makes this participant's shares for the Galois `elements`.
///
/// Row `k` is `−a_g[k]·s + w_k·σ_g(s) + e`; since the gadget value `w_k` is 1
/// modulo the primes of digit `k` and 0 modulo the others
/// ([`crate::gadget`]), `w_k·σ_g(s)` is just those primes' rows of
/// `σ_g(s)`. Rows are computed in parallel.
pub fn galois_key_share<S: LinearSecret, R: RngCore + CryptoRng>(
    params: &Params,
    crs: &CommonRandomness,
    secret: &S,
    elements: &[u32],
    sender: EvaluationPoint,
    rng: &mut R,
) -> Result<GaloisKeyShare> {
    use crate::kernels::{contiguous_rows, NttView, RingOps};
    use rayon::prelude::*;
    let ctx = params.ctx(0)?;
    let ops = RingOps::of(ctx)?;
    let l = ops.len();
    let gadget = crate::gadget::Gadget::rotation(params)?;
    let digits = gadget.digits();
    let s_view = NttView::of(secret.secret_ntt())?;
    let s = s_view.rows(l)?;
    let mut elements = elements.to_vec();
    elements.sort_unstable();
    elements.dedup();
    // Errors for every (element, row), drawn in order before parallel work.
    let errors = crate::relin::sample_errors(params, elements.len() * digits, rng)?;
    let mut keys = Vec::new();
    for (e_index, &g) in elements.iter().enumerate() {
        // σ_g(s) in NTT form: its residues permuted (as a rotation permutes
        // a ciphertext's), into a buffer wiped on drop.
        let s_g_rows = zeroize::Zeroizing::new(permuted(&ntt_permutation(ops.degree(), g)?, s));
        let s_g_rows = s_g_rows.as_slice();
        let rows = (0..digits)
            .into_par_iter()
            .map(|k| {
                let group = gadget.group(k);
                let a = crs.poly(CrpPurpose::Galois {
                    exponent: g,
                    row: u32::try_from(k).unwrap_or(u32::MAX),
                })?;
                let a = contiguous_rows(a.coefficients(), l)?;
                let e = errors
                    .get(e_index * digits + k)
                    .ok_or_else(|| Error::Parameters("missing error sample".into()))?;
                let h = ops.small_forward(
                    &e.coeffs(),
                    |i| Some(FusedProduct::Sub(ops.row(a, i), ops.row(s, i))),
                    |i, q, row| {
                        if group.contains(&i) {
                            q.add_vec(row, ops.row(s_g_rows, i));
                        }
                    },
                );
                Ok(WirePoly::from_residues(0, h))
            })
            .collect::<Result<Vec<_>>>()?;
        keys.push((g, rows));
    }
    Ok(GaloisKeyShare { sender, keys })
}

/// Sums the shares of exactly `expected`, for exactly the Galois `elements`,
/// into an `fhe` evaluation key.
pub fn aggregate_galois_keys(
    params: &Params,
    crs: &CommonRandomness,
    expected: &[EvaluationPoint],
    elements: &[u32],
    shares: impl IntoIterator<Item = GaloisKeyShare>,
) -> Result<EvaluationKey> {
    aggregate_galois_key_rows(params, crs, expected, elements, shares)?.to_fhe()
}

/// Galois keys held as residue matrices, with this crate's own key switching
/// (the algorithm of fhe.rs's `GaloisKey::relinearize` with the parameters'
/// gadget, [`crate::gadget`]: digits, NTT per prime, products with
/// precomputed Shoup constants), so that keys aggregated from shares are used
/// directly, without a round trip through fhe.rs's protobuf constructors,
/// and the per-prime work runs in parallel. With one prime per digit the
/// results are bit-identical to fhe.rs's `EvaluationKey` (tested).
pub struct GaloisKeys {
    params: Params,
    ops: std::sync::Arc<crate::kernels::RingOps>,
    gadget: crate::gadget::Gadget,
    keys: BTreeMap<u32, KeyRows>,
}

/// One Galois key: the automorphism's NTT permutation and the
/// key-switching rows.
struct KeyRows {
    /// The automorphism on NTT rows: `σ(p)[d] = p[perm[d]]`.
    perm: Vec<u32>,
    key: crate::gadget::SwitchingKey,
}

impl std::fmt::Debug for GaloisKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GaloisKeys")
            .field("elements", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl GaloisKeys {
    /// The Galois elements covered.
    pub fn elements(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// Whether the keys cover fhe.rs's inner-sum elements
    /// ([`Self::inner_sum`]; plans sum slots with [`Self::trace`] instead).
    pub fn supports_inner_sum(&self) -> bool {
        inner_sum_elements(&self.params)
            .iter()
            .all(|g| self.keys.contains_key(g))
    }

    /// Applies the automorphism `X ↦ X^g` to a level-0 ciphertext and
    /// switches it back to the collective key.
    pub fn apply(&self, ct: &fhe::bfv::Ciphertext, g: u32) -> Result<fhe::bfv::Ciphertext> {
        use rayon::prelude::*;
        let key = self
            .keys
            .get(&g)
            .ok_or_else(|| Error::Parameters(format!("no Galois key for element {g}")))?;
        let (c0, c1) = match (ct.first(), ct.get(1), ct.len()) {
            (Some(c0), Some(c1), 2) => (c0, c1),
            _ => {
                return Err(Error::Parameters(
                    "only 2-polynomial ciphertexts can be rotated".into(),
                ))
            }
        };
        let ctx = self.params.ctx(0)?;
        if c0.ctx() != ctx {
            return Err(Error::Parameters(
                "rotation needs a level-0 ciphertext".into(),
            ));
        }
        let ops = &self.ops;
        let (l, n) = (ops.len(), ops.degree());
        // σ(c0), σ(c1) in NTT form: a permutation of every row.
        let c0_view = crate::kernels::NttView::of(c0)?;
        let c1_view = crate::kernels::NttView::of(c1)?;
        let (c0_rows, c1_rows) = (c0_view.rows(l)?, c1_view.rows(l)?);
        let (c0g, c1g) = (permuted(&key.perm, c0_rows), permuted(&key.perm, c1_rows));
        // Digit k modulo one of its own primes i is row i of σ(c1) in NTT
        // form: keep those rows and skip their forward NTTs. The digits are
        // σ(c1) in power basis, then (several primes per digit) in Garner's
        // mixed radix.
        let mut digits = c1g.clone();
        ops.par_rows(&mut digits, |_, _, ntt, row| ntt.backward(row));
        self.gadget.mixed_radix_in_place(&mut digits, n);
        // Per prime i (in parallel): σ(c0) + Σ_k NTT_i(digit_k mod q_i) ⊙ key[k].
        let mut acc0 = c0g;
        let mut acc1 = vec![0u64; l * n];
        acc0.par_chunks_mut(n)
            .zip(acc1.par_chunks_mut(n))
            .zip(ops.moduli().par_iter().zip(ops.ntt().par_iter()))
            .enumerate()
            .for_each(|(i, ((a0, a1), (q, ntt)))| {
                let own = OwnRow::Ntt(c1g.get(i * n..(i + 1) * n).unwrap_or_default());
                key.key
                    .add_row(&self.gadget, i, q, ntt, own, &digits, a0, a1, |_, _| ());
            });
        let to_poly = |m: Vec<u64>| crate::kernels::ntt_poly(m, ctx);
        crate::ring::ciphertext_at(&self.params, 0, to_poly(acc0)?, to_poly(acc1)?)
    }

    /// Rotates the columns left by `steps` (`0 < steps < N/2`).
    pub fn rotate_columns(
        &self,
        ct: &fhe::bfv::Ciphertext,
        steps: usize,
    ) -> Result<fhe::bfv::Ciphertext> {
        self.apply(ct, rotation_element(&self.params, steps)?)
    }

    /// Sums all N slots into every slot (fhe.rs's `computes_inner_sum`).
    pub fn inner_sum(&self, ct: &fhe::bfv::Ciphertext) -> Result<fhe::bfv::Ciphertext> {
        let n = self.params.degree() as u64;
        let mut out = ct.clone();
        let mut i = 1u64;
        while i < n / 2 {
            let g = pow_mod(3, i, 2 * n) as u32;
            let r = self.apply(&out, g)?;
            out += &r;
            i *= 2;
        }
        let r = self.apply(&out, (2 * n - 1) as u32)?;
        out += &r;
        Ok(out)
    }

    /// The trace `Tr(m) = Σ_σ σ(m)` over all `N` automorphisms, in `log2 N`
    /// steps `ct + σ_{2^j+1}(ct)`, `j = log2 N, …, 1` (keys for
    /// [`trace_elements`]). For a batched plaintext it is the constant
    /// polynomial `N·m_0`, which is the sum of all slots in every slot: what
    /// [`Self::inner_sum`] computes with fhe.rs's rotation elements.
    pub fn trace(&self, ct: &fhe::bfv::Ciphertext) -> Result<fhe::bfv::Ciphertext> {
        self.partial_trace(ct.clone(), 0)
    }

    /// `Tr_{K/K_{2^ℓ}}`: the steps `ct + σ_{2^j+1}(ct)` for
    /// `j = log2 N, …, ℓ + 1`. It keeps the coefficients at multiples of
    /// `N/2^ℓ` (times `N/2^ℓ`) and zeroes the others.
    fn partial_trace(
        &self,
        mut ct: fhe::bfv::Ciphertext,
        ell: u32,
    ) -> Result<fhe::bfv::Ciphertext> {
        for j in (ell + 1..=self.params.degree().trailing_zeros()).rev() {
            let r = self.apply(&ct, (1u32 << j) + 1)?;
            ct += &r;
        }
        Ok(ct)
    }

    /// The traces of several ciphertexts in one: input `i`'s trace
    /// `N·m_i(0)` (its slot sum) lands in coefficient
    /// [`TraceLayout::coefficient`]`(i)` and every other coefficient of the plaintext
    /// is zero, so one threshold decryption opens them all and reveals
    /// nothing more. This is `PackLWEs` followed by a partial trace (Chen,
    /// Dai, Kim and Song, "Efficient Homomorphic Conversion Between (Ring)
    /// LWE Ciphertexts", ACNS 2021, Algorithms 1 and 2), applied to RLWE
    /// inputs, whose constant coefficients are the LWE ciphertexts there:
    /// with `k` inputs and `ℓ = ⌈log2 k⌉`, at most `2^ℓ − 1` merges (fewer:
    /// a subtree of padding costs nothing) and `log2 N − ℓ` trace steps,
    /// one automorphism each, instead of the `k·log2 N` of `k` traces (the
    /// demo's 11: 12 + 9 instead of 143). Merging two halves
    /// `a`, `b` at depth `ℓ'` computes `(a + X^{N/2^ℓ'}·b) +
    /// σ_{2^ℓ'+1}(a − X^{N/2^ℓ'}·b)`: the automorphism fixes the
    /// coefficients at even multiples of `N/2^ℓ'` and negates those at odd
    /// multiples, so `a`'s values and `b`'s shifted values double and the
    /// other half cancels. The maps are exact over the integers, so the
    /// noise of input `i` reaches its coefficient as `N·e_i(0)`, exactly as
    /// in a separate trace; the automorphisms' key-switching noise reaches
    /// each kept coefficient through one merge per depth and the partial
    /// trace, scaled so that their variance is that of one full trace's.
    /// Inputs must be level-0 relinearised ciphertexts (keys for
    /// [`trace_elements`]).
    pub fn pack_traces(&self, cts: &[&fhe::bfv::Ciphertext]) -> Result<fhe::bfv::Ciphertext> {
        self.pack_traces_with(cts, &[])
    }

    /// [`Self::pack_traces`] of `cts`, plus `constants`, ciphertexts whose
    /// plaintexts are constant polynomials (a slot sum already traced, a
    /// product of such), added as `X^c·ct` at the layout's free coefficients
    /// ([`TraceLayout::free_coefficient`]`(j)` for the `j`-th), where the
    /// traced plaintext is zero: a monomial only moves coefficients, so
    /// each adds its own noise and nothing else. All level 0 and
    /// relinearised.
    pub fn pack_traces_with(
        &self,
        cts: &[&fhe::bfv::Ciphertext],
        constants: &[&fhe::bfv::Ciphertext],
    ) -> Result<fhe::bfv::Ciphertext> {
        // Every input is checked before the (long) traced part starts.
        let layout = TraceLayout::new(&self.params, cts.len())?;
        let mut added = Vec::with_capacity(constants.len());
        for (j, &c) in constants.iter().enumerate() {
            let at = layout.free_coefficient(j).ok_or_else(|| {
                Error::Parameters(format!(
                    "no free coefficient for constant {j} beside {} traces",
                    cts.len()
                ))
            })?;
            if ciphertext_is_level0(&self.params, c).is_err() {
                return Err(Error::Parameters(format!(
                    "constant {j} is not a relinearised level-0 ciphertext of these parameters"
                )));
            }
            added.push((at, c));
        }
        let mut packed = self.traced_pack(cts, layout)?;
        for (at, c) in added {
            let x = crate::decrypt::monomial_ntt(&self.params, 0, at)?;
            packed += &crate::decrypt::times_ntt(&self.params, c, &x)?;
        }
        Ok(packed)
    }

    /// The traces of `cts` packed by `layout` ([`Self::pack_traces`]).
    fn traced_pack(
        &self,
        cts: &[&fhe::bfv::Ciphertext],
        layout: TraceLayout,
    ) -> Result<fhe::bfv::Ciphertext> {
        let ell = layout.depth;
        let mut leaves: Vec<Option<&fhe::bfv::Ciphertext>> = vec![None; 1 << ell];
        for (i, &ct) in cts.iter().enumerate() {
            // Checked before any arithmetic (fhe.rs's operators assert).
            if ciphertext_is_level0(&self.params, ct).is_err() {
                return Err(Error::Parameters(format!(
                    "input {i} is not a relinearised level-0 ciphertext of these parameters"
                )));
            }
            let slot = layout
                .leaf(i)
                .and_then(|r| leaves.get_mut(r))
                .ok_or_else(|| Error::Parameters(format!("no leaf for input {i}")))?;
            *slot = Some(ct);
        }
        // X^(N/2^d) in NTT form for each merge depth d = 1..=ell.
        let n = self.params.degree();
        let monomials = (1..=ell)
            .map(|d| crate::decrypt::monomial_ntt(&self.params, 0, n >> d))
            .collect::<Result<Vec<_>>>()?;
        let packed = self
            .merge(&leaves, ell, &monomials)?
            .ok_or_else(|| Error::Parameters("nothing to pack".into()))?;
        self.partial_trace(packed, ell)
    }

    /// PackLWEs' recursion on `2^ell` leaves (`None` for padding): the even
    /// and the odd leaves, each packed with stride `N/2^(ell−1)`, merged.
    /// `monomials[d − 1]` is `X^(N/2^d)` in NTT form.
    fn merge(
        &self,
        leaves: &[Option<&fhe::bfv::Ciphertext>],
        ell: u32,
        monomials: &[fhe_math::rq::Poly],
    ) -> Result<Option<fhe::bfv::Ciphertext>> {
        if ell == 0 {
            return Ok(leaves.first().copied().flatten().cloned());
        }
        let even: Vec<_> = leaves.iter().step_by(2).copied().collect();
        let odd: Vec<_> = leaves.iter().skip(1).step_by(2).copied().collect();
        let (a, b) = rayon::join(
            || self.merge(&even, ell - 1, monomials),
            || self.merge(&odd, ell - 1, monomials),
        );
        let x = monomials
            .get(ell as usize - 1)
            .ok_or_else(|| Error::Parameters(format!("no monomial for depth {ell}")))?;
        let xb = b?
            .map(|b| crate::decrypt::times_ntt(&self.params, &b, x))
            .transpose()?;
        let g = (1u32 << ell) + 1;
        // Sums in place into the owned halves (fhe.rs's `a + b` copies `a`).
        Ok(match (a?, xb) {
            (None, None) => None,
            (Some(mut a), None) => {
                let r = self.apply(&a, g)?;
                a += &r;
                Some(a)
            }
            (None, Some(mut xb)) => {
                let r = self.apply(&xb, g)?;
                xb -= &r;
                Some(xb)
            }
            (Some(mut a), Some(xb)) => {
                let r = self.apply(&(&a - &xb), g)?;
                a += &xb;
                a += &r;
                Some(a)
            }
        })
    }

    /// The same keys as an fhe.rs `EvaluationKey` (through its protobuf
    /// form); only keys with one prime per digit have fhe.rs's layout.
    pub fn to_fhe(&self) -> Result<EvaluationKey> {
        if !self.gadget.is_per_prime() {
            return Err(Error::Parameters(format!(
                "fhe.rs keys have one prime per digit, these have {}",
                self.params.rotation_digit_primes()
            )));
        }
        let to_polys = |rows: &[crate::kernels::Placed]| glue::shoup_polys(&self.params, rows);
        let mut keys = Vec::new();
        for (g, k) in &self.keys {
            keys.push((*g, to_polys(&k.key.c0)?, to_polys(&k.key.c1)?));
        }
        glue::evaluation_key(&self.params, &keys)
    }
}

/// `Ok` for a 2-polynomial ciphertext whose polynomials are at level 0 of
/// `params` (by context pointer, as every ciphertext made with them is).
fn ciphertext_is_level0(params: &Params, ct: &fhe::bfv::Ciphertext) -> Result<()> {
    let ctx = params.ctx(0)?;
    if ct.len() != 2 || ct.iter().any(|p| !std::sync::Arc::ptr_eq(p.ctx(), ctx)) {
        return Err(Error::Parameters(
            "not a relinearised level-0 ciphertext".into(),
        ));
    }
    Ok(())
}

/// The automorphism `X ↦ X^g` on a row of NTT residues (degree `n`, a
/// power of two) as a permutation: `σ(p)[d] = p[perm[d]]`. It is fhe-math's
/// `Poly::substitute` on NTT polynomials (the evaluation points permute;
/// tested equal), with the table made once per key instead of per call.
fn ntt_permutation(n: usize, g: u32) -> Result<Vec<u32>> {
    let g = g as usize % (2 * n);
    if !n.is_power_of_two() || g % 2 == 0 || u32::try_from(n).is_err() {
        return Err(Error::Parameters(format!(
            "Galois element {g} is not odd modulo 2·{n}"
        )));
    }
    let shift = n.leading_zeros() + 1;
    let mask = n - 1;
    let mut perm = vec![0u32; n];
    let mut power = (g - 1) / 2;
    for t in 0..n {
        let src = (power & mask).reverse_bits() >> shift;
        let dst = t.reverse_bits() >> shift;
        if let Some(slot) = perm.get_mut(dst) {
            *slot = src as u32;
        }
        power += g;
    }
    Ok(perm)
}

/// `out[d] = row[perm[d]]` for each row of `rows` (`perm.len()` words
/// each), written straight into a fresh vector: every word is set, so no
/// zeroed buffer first (2–3 % of a rotation at one and two threads).
fn permuted(perm: &[u32], rows: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows.chunks(perm.len().max(1)) {
        out.extend(
            perm.iter()
                .map(|&s| row.get(s as usize).copied().unwrap_or(0)),
        );
    }
    out
}

/// Sums the shares of exactly `expected` into [`GaloisKeys`] for the Galois
/// `elements` the caller asked for (in any order, repeats ignored): a share
/// covering any other set is rejected and names its sender, whatever the
/// other shares cover.
pub fn aggregate_galois_key_rows(
    params: &Params,
    crs: &CommonRandomness,
    expected: &[EvaluationPoint],
    elements: &[u32],
    shares: impl IntoIterator<Item = GaloisKeyShare>,
) -> Result<GaloisKeys> {
    use rayon::prelude::*;
    const WHAT: &str = "Galois key share";
    let shares = round::collect(
        expected,
        shares.into_iter().map(|s| (s.sender, s)),
        WHAT,
        "the rotation-key set",
    )?;
    let ctx = params.ctx(0)?;
    let ops = crate::kernels::RingOps::of(ctx)?;
    let gadget = crate::gadget::Gadget::rotation(params)?;
    let digits = gadget.digits();
    let mut wanted = elements.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    // The caller's own list: each element needs its permutation.
    let perms = wanted
        .iter()
        .map(|&g| ntt_permutation(ops.degree(), g))
        .collect::<Result<Vec<_>>>()?;
    // Validate every share's shape first (errors name the sender).
    for (sender, share) in &shares {
        let els: Vec<u32> = share.keys.iter().map(|(g, _)| *g).collect();
        let mut sorted = els.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != els.len() {
            return Err(Error::Malformed {
                sender: *sender,
                what: WHAT,
                reason: "an element appears twice".into(),
            });
        }
        for (_, rows) in &share.keys {
            if rows.len() != digits {
                return Err(Error::Malformed {
                    sender: *sender,
                    what: WHAT,
                    reason: format!("{} gadget rows where {digits} were expected", rows.len()),
                });
            }
            for r in rows {
                r.check(params, 0, *sender, WHAT)?;
            }
        }
        if sorted != wanted {
            return Err(Error::Malformed {
                sender: *sender,
                what: WHAT,
                reason: format!("covers Galois elements {sorted:?}, not {wanted:?}"),
            });
        }
    }
    // Each share's rows per element, taken out of the shares (validated
    // above), so that the sum starts from the first share's own rows.
    let mut shares: Vec<Vec<(u32, Vec<WirePoly>)>> =
        shares.into_values().map(|share| share.keys).collect();
    let mut keys = BTreeMap::new();
    for (g, perm) in wanted.into_iter().zip(perms) {
        // Per digit, every share's row (each share has one per digit,
        // checked above): the first to sum into, then the others.
        let mut by_digit: Vec<Vec<Vec<u64>>> = (0..digits).map(|_| Vec::new()).collect();
        for keys in &mut shares {
            let rows = keys
                .iter_mut()
                .find(|(e, _)| *e == g)
                .map(|(_, rows)| std::mem::take(rows))
                .ok_or_else(|| Error::Parameters("missing row".into()))?;
            for (digit, row) in by_digit.iter_mut().zip(rows) {
                digit.push(row.residues);
            }
        }
        let rows: Vec<(Vec<u64>, Vec<u64>)> = by_digit
            .into_par_iter()
            .enumerate()
            .map(|(k, rows)| {
                let mut rows = rows.into_iter();
                let mut c0 = rows
                    .next()
                    .ok_or_else(|| Error::Parameters("no Galois key shares".into()))?;
                for add in rows {
                    for ((acc, add), q) in c0
                        .chunks_mut(ops.degree())
                        .zip(add.chunks(ops.degree()))
                        .zip(ops.moduli())
                    {
                        q.add_vec(acc, add);
                    }
                }
                let c1 = crs.residues(CrpPurpose::Galois {
                    exponent: g,
                    row: u32::try_from(k).unwrap_or(u32::MAX),
                })?;
                Ok((c0, c1))
            })
            .collect::<Result<_>>()?;
        let (c0, c1): (Vec<_>, Vec<_>) = rows.into_iter().unzip();
        let k = KeyRows {
            perm,
            key: SwitchingKey::new(&ops, c0, c1),
        };
        keys.insert(g, k);
    }
    Ok(GaloisKeys {
        params: params.clone(),
        ops,
        gadget,
        keys,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::ring;
    use crate::secret::AdditiveKeyShare;
    use crate::ParameterSet;
    use fhe_math::rns::RnsContext;
    use fhe_math::rq::{Poly, Representation, SubstitutionExponent};
    use rand::SeedableRng;

    /// Our key switching gives exactly fhe.rs's rotations and inner sum with
    /// the same keys (`aggregate_galois_keys` hands them to fhe.rs).
    #[test]
    fn own_rotations_equal_fhe_rotations() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let crs = CommonRandomness::new(&params, [4; 32]);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let pts: Vec<_> = (1..=3).map(|x| EvaluationPoint::new(x).unwrap()).collect();
        let mut elements = inner_sum_elements(&params);
        elements.push(rotation_element(&params, 5).unwrap());
        let shares: Vec<_> = pts
            .iter()
            .map(|&x| {
                let sk = AdditiveKeyShare::generate(&params, &mut rng).unwrap();
                galois_key_share(&params, &crs, &sk, &elements, x, &mut rng).unwrap()
            })
            .collect();
        let ours =
            aggregate_galois_key_rows(&params, &crs, &pts, &elements, shares.clone()).unwrap();
        let theirs = aggregate_galois_keys(&params, &crs, &pts, &elements, shares).unwrap();
        let ctx = params.ctx(0).unwrap();
        let ct = fhe::bfv::Ciphertext::new(
            vec![
                Poly::random(ctx, Representation::Ntt, &mut rng),
                Poly::random(ctx, Representation::Ntt, &mut rng),
            ],
            params.bfv(),
        )
        .unwrap();
        // Compare residues (fhe.rs also carries variable-time flags).
        let same = |a: &fhe::bfv::Ciphertext, b: &fhe::bfv::Ciphertext| {
            a.len() == b.len()
                && a.iter().zip(b.iter()).all(|(x, y)| {
                    let (mut x, mut y) = (x.clone(), y.clone());
                    x.change_representation(Representation::Ntt);
                    y.change_representation(Representation::Ntt);
                    x.coefficients() == y.coefficients()
                })
        };
        assert!(ours.supports_inner_sum());
        let r1 = ours.apply(&ct, 4095).unwrap();
        let r2 = theirs.rotates_rows(&ct).unwrap();
        assert!(same(&r1, &r2), "row rotation");
        assert!(same(
            &ours.inner_sum(&ct).unwrap(),
            &theirs.computes_inner_sum(&ct).unwrap()
        ));
        assert!(same(
            &ours.rotate_columns(&ct, 5).unwrap(),
            &theirs.rotates_columns_by(&ct, 5).unwrap()
        ));
        assert!(ours.rotate_columns(&ct, 6).is_err(), "no key for 6");
    }

    /// The permutation equals fhe-math's `Poly::substitute` on NTT
    /// polynomials, for every element synod uses and others.
    #[test]
    fn ntt_permutation_is_substitution() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let ctx = params.ctx(0).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let p = Poly::random(ctx, Representation::Ntt, &mut rng);
        let l = params.moduli().len();
        let mut elements = inner_sum_elements(&params);
        elements.extend([3, 5, 4095, 2047, 1 + 2 * 2048]);
        for g in elements {
            let want = p
                .substitute(&SubstitutionExponent::new(ctx, g as usize).unwrap())
                .unwrap();
            let perm = ntt_permutation(2048, g).unwrap();
            let rows = crate::kernels::contiguous_rows(p.coefficients(), l).unwrap();
            let got = permuted(&perm, rows);
            assert_eq!(
                got,
                crate::kernels::contiguous_rows(want.coefficients(), l).unwrap(),
                "element {g}"
            );
        }
        assert!(ntt_permutation(2048, 4).is_err());
    }

    /// Three participants (points 1, 2, 3) and their additive key shares.
    fn three_parties(
        params: &Params,
        rng: &mut rand_chacha::ChaCha20Rng,
    ) -> (Vec<EvaluationPoint>, Vec<AdditiveKeyShare>) {
        let pts: Vec<_> = (1..=3).map(|x| EvaluationPoint::new(x).unwrap()).collect();
        let sks = pts
            .iter()
            .map(|_| AdditiveKeyShare::generate(params, rng).unwrap())
            .collect();
        (pts, sks)
    }

    /// With two primes per digit the keys have three rows, and rotations and
    /// the inner sum decrypt to what one prime per digit gives.
    #[test]
    fn grouped_digits_rotate_correctly() {
        use fhe::bfv::{Encoding, Plaintext};
        use fhe_traits::{FheDecoder, FheDecrypter, FheEncoder, FheEncrypter};
        let base = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let crs = CommonRandomness::new(&base, [6; 32]);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
        let (pts, sks) = three_parties(&base, &mut rng);
        let mut elements = inner_sum_elements(&base);
        elements.push(rotation_element(&base, 5).unwrap());
        let keys = |params: &Params, rng: &mut rand_chacha::ChaCha20Rng| {
            let shares: Vec<_> = pts
                .iter()
                .zip(&sks)
                .map(|(&x, sk)| galois_key_share(params, &crs, sk, &elements, x, rng).unwrap())
                .collect();
            assert_eq!(shares[0].keys[0].1.len(), params.rotation_digits());
            aggregate_galois_key_rows(params, &crs, &pts, &elements, shares).unwrap()
        };
        let reference = keys(&base, &mut rng);
        let sk = crate::oracle::WholeKey::from_shares(&base, &sks)
            .secret_key(&base)
            .unwrap();
        let p = base.plaintext();
        let x: Vec<u64> = (0..2048u64).map(|i| (i * i + 17) % p).collect();
        let pt = Plaintext::try_encode(&x, Encoding::simd(), base.bfv()).unwrap();
        let decrypt = |ct: &fhe::bfv::Ciphertext| {
            let pt = sk.try_decrypt(ct).unwrap();
            Vec::<u64>::try_decode(&pt, Encoding::simd()).unwrap()
        };
        let total = x.iter().fold(0u64, |acc, v| (acc + v) % p);
        let ct: fhe::bfv::Ciphertext = sk.try_encrypt(&pt, &mut rng).unwrap();
        for digit_primes in [2, 3] {
            let grouped = base.clone().with_digit_primes(1, digit_primes).unwrap();
            let ours = keys(&grouped, &mut rng);
            assert!(ours.to_fhe().is_err(), "fhe.rs has no such layout");
            assert_eq!(
                decrypt(&ours.rotate_columns(&ct, 5).unwrap()),
                decrypt(&reference.rotate_columns(&ct, 5).unwrap()),
                "{digit_primes} primes per digit"
            );
            assert_ne!(decrypt(&ours.rotate_columns(&ct, 5).unwrap()), x);
            assert_eq!(decrypt(&ours.inner_sum(&ct).unwrap()), vec![total; 2048]);
        }
    }

    /// `pack_traces` puts input `i`'s slot sum in its layout's coefficient
    /// and zeroes the rest, for counts that are and are not powers of two,
    /// with noise like separate traces'; inputs of another level are
    /// refused; `trace` sums the slots.
    #[test]
    fn packed_traces_open_as_slot_sums() {
        use fhe::bfv::{Encoding, Plaintext};
        use fhe_traits::{FheDecoder, FheDecrypter, FheEncoder, FheEncrypter};
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let crs = CommonRandomness::new(&params, [8; 32]);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(15);
        let (pts, sks) = three_parties(&params, &mut rng);
        let elements = trace_elements(&params);
        assert_eq!(elements.len(), 11);
        let shares: Vec<_> = pts
            .iter()
            .zip(&sks)
            .map(|(&x, sk)| galois_key_share(&params, &crs, sk, &elements, x, &mut rng).unwrap())
            .collect();
        let keys = aggregate_galois_key_rows(&params, &crs, &pts, &elements, shares).unwrap();
        let whole = crate::oracle::WholeKey::from_shares(&params, &sks);
        let sk = whole.secret_key(&params).unwrap();
        let p = params.plaintext();
        let inputs: Vec<Vec<u64>> = (0..11u64)
            .map(|i| (0..2048u64).map(|j| (j * j * (i + 3) + i) % p).collect())
            .collect();
        let cts: Vec<fhe::bfv::Ciphertext> = inputs
            .iter()
            .map(|x| {
                let pt = Plaintext::try_encode(x, Encoding::simd(), params.bfv()).unwrap();
                sk.try_encrypt(&pt, &mut rng).unwrap()
            })
            .collect();
        let sums: Vec<u64> = inputs
            .iter()
            .map(|x| x.iter().fold(0, |acc, v| (acc + v) % p))
            .collect();
        let traced = keys.trace(&cts[0]).unwrap();
        let slots = |ct: &fhe::bfv::Ciphertext| {
            Vec::<u64>::try_decode(&sk.try_decrypt(ct).unwrap(), Encoding::simd()).unwrap()
        };
        assert_eq!(slots(&traced), vec![sums[0]; 2048]);
        // The noise of each input's own trace (fhe.rs draws part of an
        // encryption's randomness itself, so these vary from run to run).
        let separate: Vec<f64> = cts
            .iter()
            .map(|ct| whole.noise_bits(&params, &keys.trace(ct).unwrap()).unwrap())
            .collect();
        let refs: Vec<&fhe::bfv::Ciphertext> = cts.iter().collect();
        for count in [1, 2, 3, 4, 5, 8, 11] {
            let packed = keys.pack_traces(&refs[..count]).unwrap();
            let layout = TraceLayout::new(&params, count).unwrap();
            assert_eq!(layout.stride, 2048 / count.next_power_of_two());
            let coeffs =
                Vec::<u64>::try_decode(&sk.try_decrypt(&packed).unwrap(), Encoding::poly())
                    .unwrap();
            let mut want = vec![0u64; 2048];
            for (i, sum) in sums.iter().take(count).enumerate() {
                let c = layout.coefficient(i).unwrap();
                assert_eq!(c % layout.stride, 0);
                want[c] = *sum;
            }
            assert_eq!(layout.coefficient(count), None);
            // The free coefficients are exactly the others, in order.
            let free: Vec<usize> = (0..).map_while(|j| layout.free_coefficient(j)).collect();
            assert_eq!(free.len(), 2048 - 2048 / layout.stride);
            assert!(free.windows(2).all(|w| w[0] < w[1]));
            assert!(free.iter().all(|c| c % layout.stride != 0));
            assert_eq!(layout.free_coefficient(usize::MAX), None);
            assert_eq!(coeffs, want, "{count} traces");
            // Coefficient `coefficient(i)` carries input i's noise exactly
            // as its own trace does (N·e_i(0)), plus key-switching noise of
            // the same variance as the trace's. The largest coefficient of
            // one sample moves by a few bits from run to run (3.6 bits seen
            // once in 1,500 runs), so this only catches growth with the pack;
            // the noise model is checked against packs in synod-local's
            // circuit tests.
            let noise = whole.noise_bits(&params, &packed).unwrap();
            let worst = separate[..count].iter().copied().fold(0.0, f64::max);
            assert!(noise < worst + 6.0, "{count}: 2^{noise:.1} vs 2^{worst:.1}");
        }
        // Traced slot sums with already-traced ones (constant plaintexts)
        // added at the free coefficients; one traced sum is the chunk of a
        // larger pack that holds a single sum.
        let done: Vec<_> = cts[3..5].iter().map(|ct| keys.trace(ct).unwrap()).collect();
        for traced in [3, 1] {
            let mixed = keys
                .pack_traces_with(&refs[..traced], &[&done[0], &done[1]])
                .unwrap();
            let layout = TraceLayout::new(&params, traced).unwrap();
            let coeffs =
                Vec::<u64>::try_decode(&sk.try_decrypt(&mixed).unwrap(), Encoding::poly()).unwrap();
            let mut want = vec![0u64; 2048];
            for (i, sum) in sums.iter().take(traced).enumerate() {
                want[layout.coefficient(i).unwrap()] = *sum;
            }
            for j in 0..2 {
                want[layout.free_coefficient(j).unwrap()] = sums[3 + j];
            }
            assert_eq!(coeffs, want, "{traced} traced, two added");
        }
        assert!(keys.pack_traces(&[]).is_err());
        assert!(TraceLayout::new(&params, 2049).is_err());
        // Inputs of another level or size are refused, not asserted on.
        let mut low = cts[1].clone();
        low.switch_to_level(1).unwrap();
        assert!(keys.pack_traces(&[&cts[0], &low]).is_err());
        assert!(keys.pack_traces(&[&low, &cts[0]]).is_err());
        let missing = aggregate_galois_key_rows(
            &params,
            &crs,
            &pts[..1],
            &elements[..1],
            vec![
                galois_key_share(&params, &crs, &sks[0], &elements[..1], pts[0], &mut rng).unwrap(),
            ],
        )
        .unwrap();
        assert!(missing.pack_traces(&refs[..2]).is_err(), "keys missing");
    }

    /// A share covering other elements than the ones asked for names its
    /// sender, even when it comes first (the honest shares are not blamed
    /// for differing from it), and an even element asked for is refused.
    #[test]
    fn a_share_for_other_elements_names_its_sender() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let crs = CommonRandomness::new(&params, [6; 32]);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(14);
        let pts: Vec<_> = (1..=3).map(|x| EvaluationPoint::new(x).unwrap()).collect();
        let wanted = [rotation_element(&params, 1).unwrap()];
        let other = [rotation_element(&params, 2).unwrap()];
        let shares: Vec<_> = pts
            .iter()
            .map(|&x| {
                let els: &[u32] = if x == pts[0] { &other } else { &wanted };
                let sk = AdditiveKeyShare::generate(&params, &mut rng).unwrap();
                galois_key_share(&params, &crs, &sk, els, x, &mut rng).unwrap()
            })
            .collect();
        let got = aggregate_galois_key_rows(&params, &crs, &pts, &wanted, shares.clone());
        assert!(
            matches!(&got, Err(Error::Malformed { sender, .. }) if *sender == pts[0]),
            "expected a malformed share from 1, got {:?}",
            got.err()
        );
        assert!(matches!(
            aggregate_galois_key_rows(&params, &crs, &pts, &[4], shares),
            Err(Error::Parameters(_))
        ));
    }

    /// A share made for another digit size is rejected and names its sender.
    #[test]
    fn shares_with_the_wrong_digit_count_name_their_sender() {
        let base = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let grouped = base.clone().with_digit_primes(1, 2).unwrap();
        let crs = CommonRandomness::new(&base, [6; 32]);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(13);
        let pts: Vec<_> = (1..=3).map(|x| EvaluationPoint::new(x).unwrap()).collect();
        let elements = [rotation_element(&base, 1).unwrap()];
        let shares: Vec<_> = pts
            .iter()
            .map(|&x| {
                let params = if x == pts[2] { &base } else { &grouped };
                let sk = AdditiveKeyShare::generate(&base, &mut rng).unwrap();
                galois_key_share(params, &crs, &sk, &elements, x, &mut rng).unwrap()
            })
            .collect();
        let got = aggregate_galois_key_rows(&grouped, &crs, &pts, &elements, shares);
        assert!(
            matches!(&got, Err(Error::Malformed { sender, .. }) if *sender == pts[2]),
            "expected a malformed share from 3, got {:?}",
            got.err()
        );
    }

    /// The row-wise kernel equals the textbook `Poly` computation
    /// `−a·s + g_k·σ(s) + e` with the big-integer Garner coefficient, for the
    /// same error samples.
    #[test]
    fn fast_share_equals_reference() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let crs = CommonRandomness::new(&params, [3; 32]);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let sk = AdditiveKeyShare::generate(&params, &mut rng).unwrap();
        let elements = vec![3u32, 4095];
        let sender = EvaluationPoint::new(1).unwrap();
        let mut rng_fast = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let fast = galois_key_share(&params, &crs, &sk, &elements, sender, &mut rng_fast).unwrap();

        let mut rng_ref = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let l = params.moduli().len();
        let errors =
            crate::relin::sample_errors(&params, elements.len() * l, &mut rng_ref).unwrap();
        let ctx = params.ctx(0).unwrap();
        let rns = RnsContext::new(params.moduli()).unwrap();
        for (ei, (g, rows)) in fast.keys.iter().enumerate() {
            assert_eq!(*g, elements[ei]);
            let s_g = sk
                .ntt()
                .substitute(&SubstitutionExponent::new(ctx, *g as usize).unwrap())
                .unwrap();
            for k in 0..l {
                let a = crs
                    .poly(CrpPurpose::Galois {
                        exponent: *g,
                        row: k as u32,
                    })
                    .unwrap();
                let mut h = -(a.as_ref() * sk.ntt());
                h += &ring::scalar_mul(&s_g, rns.get_garner(k).unwrap());
                h += &ring::small_to_ntt(&errors[ei * l + k].coeffs(), ctx).unwrap();
                assert_eq!(rows[k], WirePoly::from_poly(&h, 0), "element {g} row {k}");
            }
        }
    }
}
