//! Ciphertext multiplication with relinearisation: fhe.rs's
//! `Multiplicator::default` algorithm (exact RNS base extension to
//! `Q ∪ P`, tensor product, exact scaling by `p/Q`, RNS-gadget key switching of
//! the third component), step for step and with the library's own exact
//! scalers, so its results are bit-for-bit those of `Multiplicator` (tests
//! check it). What changes is the schedule: every step that is independent
//! across RNS primes, across the four input polynomials or across blocks of
//! coefficients runs in parallel (rayon), the scalers run on coefficient
//! blocks (scaling is coefficient-wise, so a degree-`B` context with the same
//! primes scales a block of `B` coefficients), and nothing is converted to a
//! representation it does not need.
//!
//! The inputs are ciphertexts, which are public; the only secret-derived
//! operand is the relinearisation key, itself public.

use std::sync::Arc;

use fhe::bfv::{BfvParameters, Ciphertext, RelinearizationKey};
use fhe::proto::bfv as pb;
use fhe_math::rns::ScalingFactor;
use fhe_math::rq::scaler::Scaler;
use fhe_math::rq::{traits::TryConvertFrom, Context, Poly, Representation};
use fhe_traits::{DeserializeWithContext, Serialize as _};
use ndarray::Array2;
use num_bigint::BigUint;
use prost::Message;
use rayon::prelude::*;

use crate::kernels::{NttView, RingOps};
use crate::{Error, Params, Result};

/// Coefficient blocks per scaled polynomial: one per thread would leave the
/// last of the three scalings alone on one core, so two per thread; a
/// single block (no copies) on one thread.
fn blocks_for(threads: usize, n: usize) -> usize {
    if threads <= 1 {
        1
    } else {
        (2 * threads).next_power_of_two().min(n / 8)
    }
}

pub(crate) struct FastMul {
    par: Arc<BfvParameters>,
    base: Arc<Context>,
    ops_base: Arc<RingOps>,
    ops_mul: Arc<RingOps>,
    /// `|Q|` and `|Q ∪ P|` (primes).
    k: usize,
    km: usize,
    block: usize,
    base_block: Arc<Context>,
    mul_block: Arc<Context>,
    extend: Scaler,
    down: Scaler,
    /// Key rows `c0[i]`, `c1[i]` (NTT, `k × N` each).
    key0: Vec<Vec<u64>>,
    key1: Vec<Vec<u64>>,
    /// Their Shoup companions (`⌊x·2^64/q⌋`), per prime.
    key0_shoup: Vec<Vec<u64>>,
    key1_shoup: Vec<Vec<u64>>,
}

impl FastMul {
    pub(crate) fn new(params: &Params, rlk: &RelinearizationKey) -> Result<Self> {
        Self::with_blocks(
            params,
            rlk,
            blocks_for(rayon::current_num_threads(), params.degree()),
        )
    }

    /// With the scalings split into `blocks` coefficient blocks (a power of two ≤ N/8).
    pub(crate) fn with_blocks(
        params: &Params,
        rlk: &RelinearizationKey,
        blocks: usize,
    ) -> Result<Self> {
        let par = params.bfv().clone();
        let base = params.ctx(0)?.clone();
        let n = params.degree();
        let k = base.moduli().len();
        // The extended basis of `Multiplicator::default`.
        let modulus_size: usize = par.moduli_sizes().iter().take(k).sum();
        let n_moduli = (modulus_size + 60).div_ceil(62);
        let mut extended: Vec<u64> = base.moduli().to_vec();
        let mut upper = 1u64 << 62;
        while extended.len() != k + n_moduli {
            upper = fhe_math::zq::primes::generate_prime(62, 2 * n as u64, upper)
                .ok_or_else(|| Error::Parameters("no prime for the extended basis".into()))?;
            if !extended.contains(&upper) {
                extended.push(upper);
            }
        }
        let mul = Context::new_arc(&extended, n)?;
        if !blocks.is_power_of_two() || blocks > n / 8 {
            return Err(Error::Parameters(format!(
                "{blocks} scaling blocks for N = {n}"
            )));
        }
        let block = n / blocks;
        let base_block = Context::new_arc(base.moduli(), block)?;
        let mul_block = Context::new_arc(&extended, block)?;
        let extend = Scaler::new(&base_block, &mul_block, ScalingFactor::one())?;
        let down = Scaler::new(
            &mul_block,
            &base_block,
            ScalingFactor::new(&BigUint::from(params.plaintext()), base.modulus()),
        )?;
        let (key0, key1) = key_rows(rlk, &base)?;
        let ops_base = RingOps::of(&base)?;
        let shoup = |rows: &[Vec<u64>]| -> Vec<Vec<u64>> {
            rows.iter()
                .map(|m| {
                    m.chunks(n)
                        .zip(ops_base.moduli())
                        .flat_map(|(row, q)| q.shoup_vec(row))
                        .collect()
                })
                .collect()
        };
        let (key0_shoup, key1_shoup) = (shoup(&key0), shoup(&key1));
        Ok(Self {
            par,
            ops_base,
            ops_mul: RingOps::of(&mul)?,
            base,
            k,
            km: extended.len(),
            block,
            base_block,
            mul_block,
            extend,
            down,
            key0,
            key1,
            key0_shoup,
            key1_shoup,
        })
    }

    pub(crate) fn multiply(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        let (k, km, n) = (self.k, self.km, self.ops_base.degree());
        for ct in [a, b] {
            if ct.len() != 2 {
                return Err(Error::Parameters(
                    "multiplication needs ciphertexts of 2 polynomials".into(),
                ));
            }
            if ct.iter().any(|p| !Arc::ptr_eq(p.ctx(), &self.base)) {
                return Err(Error::Parameters(
                    "multiplication needs ciphertexts at level 0 of these parameters".into(),
                ));
            }
        }
        let inputs: Vec<&Poly> = a.iter().chain(b.iter()).collect();
        let views: Vec<NttView<'_>> = inputs.iter().map(|p| NttView::of(p)).collect();
        let ntt_in: Vec<&[u64]> = views.iter().map(|v| v.rows(k)).collect::<Result<_>>()?;

        // 1. Extend each input to Q ∪ P: power basis (inverse NTT), exact
        //    extension per coefficient block, forward NTT of the new primes.
        let extended: Vec<Vec<u64>> = ntt_in
            .par_iter()
            .map(|x| {
                let mut pb = x.to_vec();
                self.ops_base
                    .par_rows(&mut pb, |_, _, ntt, row| ntt.backward(row));
                let new_rows = self.scale_blocks(pb, k, &self.base_block, &self.extend, km, k)?;
                let mut out = Vec::with_capacity(km * n);
                out.extend_from_slice(x);
                out.extend_from_slice(&new_rows);
                self.ops_mul.par_rows(&mut out, |j, _, ntt, row| {
                    if j >= k {
                        ntt.forward(row);
                    }
                });
                Ok(out)
            })
            .collect::<Result<_>>()?;
        let (a0, a1, b0, b1) = match extended.as_slice() {
            [a0, a1, b0, b1] => (a0, a1, b0, b1),
            _ => return Err(Error::Parameters("internal: four extended inputs".into())),
        };

        // 2. Tensor product in Q ∪ P, back to power basis.
        let mut c0 = vec![0u64; km * n];
        let mut c1 = vec![0u64; km * n];
        let mut c2 = vec![0u64; km * n];
        let ops = &self.ops_mul;
        ops.par_rows(&mut c0, |j, q, ntt, row| {
            mul_into(q, row, ops.row(a0, j), ops.row(b0, j));
            ntt.backward(row);
        });
        ops.par_rows(&mut c1, |j, q, ntt, row| {
            mul_into(q, row, ops.row(a0, j), ops.row(b1, j));
            let mut t = vec![0u64; row.len()];
            mul_into(q, &mut t, ops.row(a1, j), ops.row(b0, j));
            q.add_vec(row, &t);
            ntt.backward(row);
        });
        ops.par_rows(&mut c2, |j, q, ntt, row| {
            mul_into(q, row, ops.row(a1, j), ops.row(b1, j));
            ntt.backward(row);
        });

        // 3. Scale by p/Q back to Q (exact, rounded), per block in parallel.
        let scaled: Vec<Vec<u64>> = vec![c0, c1, c2]
            .into_par_iter()
            .map(|c| self.scale_blocks(c, km, &self.mul_block, &self.down, k, 0))
            .collect::<Result<_>>()?;
        let (mut d0, mut d1, d2) = match <[Vec<u64>; 3]>::try_from(scaled) {
            Ok([d0, d1, d2]) => (d0, d1, d2),
            Err(_) => return Err(Error::Parameters("internal: three scaled parts".into())),
        };

        // 4. Relinearise: key-switch d2 with the RNS gadget (row i of d2,
        //    lifted to every prime, times key row i), while d0, d1 go to NTT.
        let ob = &self.ops_base;
        let mut ks0 = vec![0u64; k * n];
        let mut ks1 = vec![0u64; k * n];
        rayon::join(
            || {
                ob.par_rows(&mut d0, |_, _, ntt, row| ntt.forward(row));
                ob.par_rows(&mut d1, |_, _, ntt, row| ntt.forward(row));
            },
            || {
                ks0.par_chunks_mut(n)
                    .zip(ks1.par_chunks_mut(n))
                    .enumerate()
                    .for_each(|(j, (acc0, acc1))| self.key_switch_row(j, &d2, acc0, acc1));
            },
        );
        ob.par_rows(&mut d0, |j, q, _, row| q.add_vec(row, ob.row(&ks0, j)));
        ob.par_rows(&mut d1, |j, q, _, row| q.add_vec(row, ob.row(&ks1, j)));
        let to_poly = |m: Vec<u64>| -> Result<Poly> {
            let arr =
                Array2::from_shape_vec((k, n), m).map_err(|e| Error::Parameters(e.to_string()))?;
            Ok(Poly::try_convert_from(
                arr,
                &self.base,
                false,
                Representation::Ntt,
            )?)
        };
        Ok(Ciphertext::new(
            vec![to_poly(d0)?, to_poly(d1)?],
            &self.par,
        )?)
    }

    /// Output prime `j` of the key switch of `d2` (power basis, `k × N`).
    fn key_switch_row(&self, j: usize, d2: &[u64], acc0: &mut [u64], acc1: &mut [u64]) {
        let ob = &self.ops_base;
        let (Some(q), Some(ntt)) = (ob.moduli().get(j), ob.ntt().get(j)) else {
            return;
        };
        let mut t = vec![0u64; acc0.len()];
        let mut u = vec![0u64; acc0.len()];
        for (i, ((k0, k0s), (k1, k1s))) in self
            .key0
            .iter()
            .zip(&self.key0_shoup)
            .zip(self.key1.iter().zip(&self.key1_shoup))
            .enumerate()
        {
            t.copy_from_slice(ob.row(d2, i));
            q.reduce_vec(&mut t);
            ntt.forward(&mut t);
            u.copy_from_slice(&t);
            q.mul_shoup_vec(&mut u, ob.row(k0, j), ob.row(k0s, j));
            q.add_vec(acc0, &u);
            q.mul_shoup_vec(&mut t, ob.row(k1, j), ob.row(k1s, j));
            q.add_vec(acc1, &t);
        }
    }

    /// Applies `scaler` (from `from_block`, `rows_in` primes) to the power-basis
    /// matrix `m` block by block, and returns the output rows `skip..rows_out`.
    fn scale_blocks(
        &self,
        m: Vec<u64>,
        rows_in: usize,
        from_block: &Arc<Context>,
        scaler: &Scaler,
        rows_out: usize,
        skip: usize,
    ) -> Result<Vec<u64>> {
        let n = self.ops_base.degree();
        let block = self.block;
        let full = Array2::from_shape_vec((rows_in, n), m)
            .map_err(|e| Error::Parameters(e.to_string()))?;
        let scale = |part: Array2<u64>| -> Result<Poly> {
            let p = Poly::try_convert_from(part, from_block, false, Representation::PowerBasis)?;
            Ok(p.scale(scaler)?)
        };
        let blocks: Vec<Poly> = if block == n {
            vec![scale(full)?]
        } else {
            (0..n / block)
                .into_par_iter()
                .map(|c| {
                    scale(
                        full.slice_axis(
                            ndarray::Axis(1),
                            ndarray::Slice::from(c * block..(c + 1) * block),
                        )
                        .to_owned(),
                    )
                })
                .collect::<Result<_>>()?
        };
        let mut out = vec![0u64; (rows_out - skip) * n];
        for (c, p) in blocks.iter().enumerate() {
            let coeffs = p.coefficients();
            for (r, row) in out.chunks_mut(n).enumerate() {
                let src = coeffs.row(r + skip);
                if let Some(dst) = row.get_mut(c * block..(c + 1) * block) {
                    match src.to_slice() {
                        Some(src) => dst.copy_from_slice(src),
                        None => dst.iter_mut().zip(src.iter()).for_each(|(d, s)| *d = *s),
                    }
                }
            }
        }
        Ok(out)
    }
}

/// `row = a ⊙ b mod q`, with fhe-math's SIMD-dispatched vector product
/// (its scalar `Modulus::mul` is not inlined across crates).
fn mul_into(q: &fhe_math::zq::Modulus, row: &mut [u64], a: &[u64], b: &[u64]) {
    row.copy_from_slice(a);
    q.mul_vec(row, b);
}

/// One `k × N` NTT residue matrix per gadget row.
type KeyRows = Vec<Vec<u64>>;

/// The gadget rows of `rlk` (NTT residues at level 0), from its protobuf
/// form; only the layout synod's keys have (RNS gadget, level 0, no seed).
fn key_rows(rlk: &RelinearizationKey, base: &Arc<Context>) -> Result<(KeyRows, KeyRows)> {
    let unsupported = |why: &str| Error::Parameters(format!("relinearisation key layout: {why}"));
    let proto = pb::RelinearizationKey::decode(rlk.to_bytes().as_slice())
        .map_err(|e| unsupported(&e.to_string()))?;
    let ksk = proto
        .ksk
        .ok_or_else(|| unsupported("no key-switching key"))?;
    if ksk.log_base != 0 || ksk.ciphertext_level != 0 || ksk.ksk_level != 0 || !ksk.seed.is_empty()
    {
        return Err(unsupported("only level-0 RNS-gadget keys without seed"));
    }
    let k = base.moduli().len();
    if ksk.c0.len() != k || ksk.c1.len() != k {
        return Err(unsupported("one gadget row per prime expected"));
    }
    let rows = |v: &[Vec<u8>]| -> Result<Vec<Vec<u64>>> {
        v.iter()
            .map(|bytes| {
                let p = Poly::from_bytes(bytes, base)?;
                let view = NttView::of(&p);
                Ok(view.rows(k)?.to_vec())
            })
            .collect()
    };
    Ok((rows(&ksk.c0)?, rows(&ksk.c1)?))
}
