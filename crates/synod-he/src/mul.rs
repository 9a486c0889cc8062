//! Ciphertext multiplication with relinearisation in the RNS variant of
//! Halevi, Polyakov and Shoup (CT-RSA 2019; see [`crate::rns`]): extend both
//! ciphertexts from `Q` to `Q ∪ P` (fast base conversion with a
//! floating-point correction), tensor in NTT form over `Q ∪ P`, divide by
//! `Q` (rounding) straight into `P`, convert back to `Q` times `t`, then
//! key-switch the third component with the parameters' gadget
//! ([`crate::gadget`]; with one prime per digit, as fhe.rs's
//! `Multiplicator` does).
//! Where HPS (and fhe.rs) round `t·x/Q` for each tensor coefficient `x`,
//! this takes `t·round(x/Q)`, as Lattigo's BFV evaluator does: it differs
//! by at most `t/2` per coefficient, noise the tensor's own dwarfs (by
//! about the input noise over `n·σ²`; tested within a tenth of a bit of
//! fhe.rs's), and lets `P` leave out `t`: five extension primes instead
//! of six at N = 8192 (one transform fewer per input polynomial and per
//! part: 105 instead of 112), and the scaling is a conversion without
//! fractions. An input coefficient's lift can be off by `Q`
//! ([`crate::rns`], about `2^-49` per coefficient; HPS's Lemma 2 bounds the
//! extra noise), and so can the division's lift of `x mod Q` (that
//! coefficient then off by `t`). Tests
//! check the product against fhe.rs's (the unrelinearised parts within
//! `t/2 + 1` per coefficient, the noise, the decryption) and the
//! conversions against big-integer arithmetic. Every step that is
//! independent across RNS primes, input polynomials or coefficient blocks
//! runs in parallel (rayon).
//!
//! The inputs are ciphertexts, which are public; the only secret-derived
//! operand is the relinearisation key, itself public.

use std::sync::Arc;

use fhe::bfv::Ciphertext;
use fhe_math::rq::{Context, Poly};
use rayon::prelude::*;

use crate::gadget::{Gadget, OwnRow, SwitchingKey};
use crate::relin::RelinKey;

use crate::kernels::{NttView, RingOps};
use crate::rns::{BaseConverter, DivideDown, Scratch};
use crate::{Error, Params, Result};

/// Coefficients per block of the base conversions and scalings.
const BLOCK: usize = 512;

/// Bits of each prime of the extension basis `P`.
const EXTENSION_BITS: u64 = 50;

pub(crate) struct FastMul {
    /// The parameters' bases and conversion tables, shared by every
    /// multiplier of the same parameters ([`Tables::of`]).
    tables: Arc<Tables>,
    /// The relinearisation key (`None` for [`Self::tables`] alone).
    key: Option<SwitchingKey>,
}

/// What a multiplication needs besides the key: built once per process and
/// parameters (a few milliseconds: the extension primes, their NTT tables
/// and the conversions' constants).
struct Tables {
    /// The parameters the tables were first built for; others with the same
    /// set, `p` and relinearisation digits (their rotation digits may
    /// differ, which no multiplication reads) share them.
    params: Params,
    base: Arc<Context>,
    ops_base: Arc<RingOps>,
    /// Operators of `P`.
    ops_p: Arc<RingOps>,
    /// `Q → P`, `round(x/Q)` from `Q ∪ P` into `P`, and `P → Q` times `t`.
    to_p: BaseConverter,
    down: DivideDown,
    to_q: BaseConverter,
    /// The key's digits.
    gadget: Gadget,
    /// Buffers of public residues kept from earlier products (at most
    /// [`SPARE`]): the extension rows, which every product overwrites in
    /// full, without zeroing fresh memory for them each time.
    spare: std::sync::Mutex<Vec<Vec<u64>>>,
}

/// How many buffers [`Tables::spare`] keeps (four inputs' extension rows
/// and a square's two zero parts, for two products at once).
const SPARE: usize = 12;

impl FastMul {
    pub(crate) fn new(rlk: &RelinKey) -> Result<Self> {
        let mut me = Self::tables(rlk.params())?;
        let t = &*me.tables;
        let (key0, key1) = rlk.rows();
        let (key0, key1) = (key0.to_vec(), key1.to_vec());
        let size = t.ops_base.len() * t.ops_base.degree();
        if key0.len() != t.gadget.digits()
            || key1.len() != key0.len()
            || key0.iter().chain(&key1).any(|m| m.len() != size)
        {
            return Err(Error::Parameters(
                "relinearisation key rows of the wrong shape".into(),
            ));
        }
        me.key = Some(SwitchingKey::new(&t.ops_base, key0, key1));
        Ok(me)
    }

    /// The bases and conversion tables, without a relinearisation key (only
    /// [`Self::scaled_tensor`] works on such a value).
    pub(crate) fn tables(params: &Params) -> Result<Self> {
        Ok(Self {
            tables: Tables::of(params)?,
            key: None,
        })
    }

    /// The primes of the extension basis `P`.
    #[cfg(test)]
    pub(crate) fn extension_primes(&self) -> Vec<u64> {
        self.tables.ops_p.moduli().iter().map(|q| **q).collect()
    }

    pub(crate) fn multiply(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        let t = &*self.tables;
        let n = t.ops_base.degree();
        let Some(key) = self.key.as_ref() else {
            return Err(Error::Parameters("no relinearisation key".into()));
        };
        let [mut d0, mut d1, d2] = t.scaled_tensor(a, b)?;

        // 4. Relinearise: key-switch d2 with the gadget (digit g of d2,
        //    lifted to every prime, times key row g), while d0, d1 go to NTT.
        //    Per output prime: d0 and d1 to NTT form, the key switch added
        //    straight into them. Digits of several primes need Garner's
        //    mixed radix first (one pass, before the per-prime work).
        let radix = (!t.gadget.is_per_prime()).then(|| {
            let mut r = d2.clone();
            t.gadget.mixed_radix_in_place(&mut r, n);
            r
        });
        let radix = radix.as_deref().unwrap_or(&d2);
        let ob = &t.ops_base;
        // The output ciphertext's blank (a copy of a template's residues)
        // beside the key switch.
        let (blank, ()) = rayon::join(
            || crate::ring::Blank::of(&t.params, 0),
            || {
                d0.par_chunks_mut(n)
                    .zip(d1.par_chunks_mut(n))
                    .zip(ob.moduli().par_iter().zip(ob.ntt().par_iter()))
                    .enumerate()
                    .for_each(|(j, ((r0, r1), (q, ntt)))| {
                        let own = OwnRow::PowerBasis(ob.row(&d2, j));
                        key.add_row(&t.gadget, j, q, ntt, own, radix, r0, r1, |r0, r1| {
                            ntt.forward(r0);
                            ntt.forward(r1);
                        });
                    })
            },
        );
        let to_poly = |m: Vec<u64>| crate::kernels::ntt_poly(m, &t.base);
        blank?.fill(&t.params, to_poly(d0)?, to_poly(d1)?)
    }

    /// `t·round(a ⊗ b/Q)` before relinearisation ([`Tables::scaled_tensor`]).
    #[cfg(test)]
    pub(crate) fn scaled_tensor(&self, a: &Ciphertext, b: &Ciphertext) -> Result<[Vec<u64>; 3]> {
        self.tables.scaled_tensor(a, b)
    }
}

impl Tables {
    /// The tables of `params` (its set, plaintext modulus and relinearisation
    /// digits), built on first use and kept for the process, as the
    /// parameters themselves are.
    fn of(params: &Params) -> Result<Arc<Self>> {
        type Key = (crate::ParameterSet, u64, usize);
        static CACHE: crate::kernels::Memo<Key, Tables> = std::sync::OnceLock::new();
        let key = (
            params.set(),
            params.plaintext(),
            params.relin_digit_primes(),
        );
        crate::kernels::memo(&CACHE, key, || Self::new(params))
    }

    fn new(params: &Params) -> Result<Self> {
        let base = params.ctx(0)?.clone();
        let n = params.degree();
        let q = base.moduli().to_vec();
        // The scaling takes t·round(x/Q) (see `scaled_tensor`), so P must
        // hold round(x/Q) for a tensor coefficient x of centred inputs:
        // |x| ≤ N·Q²/2, so P > N·Q (and then Q·P > 2|x|, the tensor fits);
        // one bit to spare, and each 50-bit prime gives > 49 bits.
        // Primes below 2^50 rather than fewer 62-bit ones: tfhe-ntt's
        // IFMA NTT (primes < 2^52) is about three times faster, which more
        // than pays for one more prime. P is fixed by the parameters, never
        // by the machine, so every node computes the same product.
        let bits = |x: u64| u64::from(64 - x.leading_zeros());
        let need = bits(n as u64) + q.iter().map(|&qi| bits(qi)).sum::<u64>() + 1;
        let m = usize::try_from(need.div_ceil(EXTENSION_BITS - 1))
            .map_err(|_| Error::Parameters("extended basis too large".into()))?;
        let mut p = Vec::with_capacity(m);
        let mut upper = 1u64 << EXTENSION_BITS;
        while p.len() != m {
            upper = crate::params::ntt_prime(EXTENSION_BITS as usize, 2 * n as u64, upper)
                .ok_or_else(|| Error::Parameters("no prime for the extended basis".into()))?;
            if !q.contains(&upper) {
                p.push(upper);
            }
        }
        // The division's outputs come out times the conversion back's input
        // factors, which it then takes as they are.
        let to_q = BaseConverter::scaled(&p, &q, params.plaintext())?;
        let factors: Vec<u64> = (0..p.len()).map(|j| to_q.input_factor(j)).collect();
        Ok(Self {
            params: params.clone(),
            ops_base: RingOps::of(&base)?,
            ops_p: RingOps::for_moduli(&p, n)?,
            base,
            to_p: BaseConverter::new(&q, &p)?,
            down: DivideDown::scaled(&q, &p, &factors)?,
            to_q,
            gadget: Gadget::relin(params)?,
            spare: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// A buffer of `len` words whose contents are unspecified (an earlier
    /// product's public residues, or zeros): the caller overwrites it all.
    fn buffer(&self, len: usize) -> Vec<u64> {
        let reused = self.spare.lock().ok().and_then(|mut spare| {
            let i = spare.iter().position(|b| b.len() == len)?;
            Some(spare.swap_remove(i))
        });
        reused.unwrap_or_else(|| vec![0u64; len])
    }

    /// Keeps `buf` for [`Self::buffer`] (dropped when [`SPARE`] are kept).
    fn recycle(&self, buf: Vec<u64>) {
        if let Ok(mut spare) = self.spare.lock() {
            if spare.len() < SPARE {
                spare.push(buf);
            }
        }
    }

    /// `t·round(a ⊗ b/Q)` before relinearisation: three `k × N` residue
    /// matrices modulo `Q`, in power basis.
    pub(crate) fn scaled_tensor(&self, a: &Ciphertext, b: &Ciphertext) -> Result<[Vec<u64>; 3]> {
        let (k, m, n) = (
            self.ops_base.len(),
            self.ops_p.len(),
            self.ops_base.degree(),
        );
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
        // A square (`a` and `b` the same ciphertext, not just equal ones)
        // extends its two polynomials once: the same tensor as for a copy of
        // `a`, without two of the four extensions (ten inverse and ten
        // forward NTTs at N = 8192).
        let square = std::ptr::eq(a, b);
        let inputs: Vec<&Poly> = if square {
            a.iter().collect()
        } else {
            a.iter().chain(b.iter()).collect()
        };
        let views: Vec<NttView<'_>> = inputs
            .iter()
            .map(|p| NttView::of(p))
            .collect::<Result<_>>()?;
        let ntt_in: Vec<&[u64]> = views.iter().map(|v| v.rows(k)).collect::<Result<_>>()?;

        // 1. Extend each input to Q ∪ P: power basis (inverse NTT, on a
        //    copy, times the conversion's first factors with the
        //    normalisation), base conversion per coefficient block into the
        //    P rows, forward NTT of the new primes. The input's own NTT rows
        //    serve as its Q rows; the copy is free after the conversion and
        //    takes the tensor's Q rows.
        let extended: Vec<(Vec<u64>, Vec<u64>)> = ntt_in
            .par_iter()
            .map(|x| {
                let mut pb = x.to_vec();
                self.ops_base.par_rows(&mut pb, |i, q, ntt, row| {
                    ntt.backward_scaled(q, row, self.to_p.input_factor(i))
                });
                let mut p_rows = self.buffer(m * n);
                self.blockwise_into(&pb, &mut p_rows, |ins, outs, scratch| {
                    self.to_p.convert_prescaled(ins, outs, scratch)
                })?;
                self.ops_p
                    .par_rows(&mut p_rows, |_, _, ntt, row| ntt.forward(row));
                Ok((pb, p_rows))
            })
            .collect::<Result<_>>()?;
        // 2. Tensor product in Q ∪ P, back to power basis. Rows of Q from
        //    the inputs into the free copies (c0 = a0·b0, c1 = a0·b1 + a1·b0,
        //    c2 = a1·b1); rows of P in place (a0 becomes c0, a1 becomes c2,
        //    b0 becomes c1; with IFMA or FMA four fused products beat
        //    Karatsuba's three plus its extra passes over memory; a square
        //    takes three products and no copies of its inputs where the FMA
        //    kernel runs).
        let (x0, x1) = (ntt_in.first(), ntt_in.get(1));
        let (y0, y1) = if square {
            (x0, x1)
        } else {
            (ntt_in.get(2), ntt_in.get(3))
        };
        let (Some(&x0), Some(&x1), Some(&y0), Some(&y1)) = (x0, x1, y0, y1) else {
            return Err(Error::Parameters("internal: tensor inputs".into()));
        };
        let mut extended = extended.into_iter();
        let mut next = || {
            extended
                .next()
                .ok_or_else(|| Error::Parameters("internal: extended inputs".into()))
        };
        let ((mut q0, mut p0), (mut q2, mut p2)) = (next()?, next()?);
        let (mut q1, mut p1, b1) = if square {
            (self.buffer(k * n), self.buffer(m * n), None)
        } else {
            let ((q1, p1), (_, b1)) = (next()?, next()?);
            (q1, p1, Some(b1))
        };
        let ops_q = &self.ops_base;
        let q_part = || {
            q0.par_chunks_mut(n)
                .zip(q1.par_chunks_mut(n))
                .zip(q2.par_chunks_mut(n))
                .zip(ops_q.moduli().par_iter().zip(ops_q.ntt().par_iter()))
                .enumerate()
                .for_each(|(j, (((c0, c1), c2), (q, ntt)))| {
                    let (a0, a1) = (ops_q.row(x0, j), ops_q.row(x1, j));
                    let (b0, b1) = (ops_q.row(y0, j), ops_q.row(y1, j));
                    if !crate::kernels::tensor_into(q, a0, a1, b0, b1, c0, c1, c2) {
                        c0.copy_from_slice(a0);
                        c2.copy_from_slice(a1);
                        c1.copy_from_slice(b0);
                        tensor_row(q, c0, c2, c1, b1);
                    }
                    for row in [c0, c1, c2] {
                        ntt.backward_scaled(q, row, self.down.input_factor(j));
                    }
                })
        };
        let ops_p = &self.ops_p;
        let p_part = || {
            p0.par_chunks_mut(n)
                .zip(p2.par_chunks_mut(n))
                .zip(p1.par_chunks_mut(n))
                .zip(ops_p.moduli().par_iter().zip(ops_p.ntt().par_iter()))
                .enumerate()
                .for_each(|(j, (((r0, r2), r1), (q, ntt)))| {
                    match &b1 {
                        Some(b1) => tensor_row(q, r0, r2, r1, ops_p.row(b1, j)),
                        None => {
                            if !crate::kernels::square_in_place(q, r0, r2, r1) {
                                r1.copy_from_slice(r0);
                                let b1 = r2.to_vec();
                                tensor_row(q, r0, r2, r1, &b1);
                            }
                        }
                    }
                    for row in [r0, r1, r2] {
                        ntt.backward(row);
                    }
                })
        };
        rayon::join(q_part, p_part);
        if let Some(b1) = b1 {
            self.recycle(b1);
        }

        // 3. Divide by Q into P, and convert back to Q times t, block by
        //    block, into the Q rows (each block's columns are read in full
        //    before its result is written).
        let scaled: Vec<Vec<u64>> = vec![(q0, p0), (q1, p1), (q2, p2)]
            .into_par_iter()
            .map(|(mut c, mut of_p)| {
                self.blockwise_in_place(&mut [&mut c, &mut of_p], |rows, scratch| {
                    let len = rows.first().map_or(0, |r| r.len());
                    let mut in_p = std::mem::take(&mut scratch.block);
                    in_p.resize(m * len, 0);
                    let scaled = {
                        let ins: Vec<&[u64]> = rows.iter().map(|r| &**r).collect();
                        let mut outs: Vec<&mut [u64]> = in_p.chunks_mut(len.max(1)).collect();
                        self.down.divide_prescaled(&ins, &mut outs, scratch)
                    };
                    let of_p: Vec<&[u64]> = in_p.chunks(len.max(1)).collect();
                    let to_q = rows.get_mut(..k).unwrap_or_default();
                    let converted =
                        scaled.and_then(|()| self.to_q.convert_prescaled(&of_p, to_q, scratch));
                    scratch.block = in_p;
                    converted
                })?;
                self.recycle(of_p);
                Ok(c)
            })
            .collect::<Result<_>>()?;
        <[Vec<u64>; 3]>::try_from(scaled)
            .map_err(|_| Error::Parameters("internal: three scaled parts".into()))
    }

    /// Runs `f` on column blocks of the power-basis matrices `mats` (any
    /// number of rows of `N` each), in parallel: `f` gets every row's
    /// columns of one block, the matrices' rows in order, to read and
    /// overwrite.
    fn blockwise_in_place<F>(&self, mats: &mut [&mut Vec<u64>], f: F) -> Result<()>
    where
        F: Fn(&mut [&mut [u64]], &mut Scratch) -> Result<()> + Sync,
    {
        self.blocks(mats.iter_mut().map(|m| m.as_mut_slice()))
            .into_par_iter()
            .try_for_each_init(Scratch::default, |scratch, mut block| {
                f(&mut block, scratch)
            })
    }

    /// Every row's columns of each block of [`BLOCK`] columns, block by
    /// block, for the rows of `mats` in order.
    fn blocks<'a>(&self, mats: impl IntoIterator<Item = &'a mut [u64]>) -> Vec<Vec<&'a mut [u64]>> {
        let n = self.ops_base.degree();
        let block = BLOCK.min(n);
        let mut blocks: Vec<Vec<&mut [u64]>> = (0..n.div_ceil(block))
            .map(|_| Vec::with_capacity(self.ops_base.len() + self.ops_p.len()))
            .collect();
        for row in mats.into_iter().flat_map(|m| m.chunks_mut(n)) {
            for (dst, chunk) in blocks.iter_mut().zip(row.chunks_mut(block)) {
                dst.push(chunk);
            }
        }
        blocks
    }

    /// Runs `f` on column blocks of the power-basis matrix `input` (any
    /// number of rows of `N`), in parallel, into `out` (rows of `N`).
    fn blockwise_into<F>(&self, input: &[u64], out: &mut [u64], f: F) -> Result<()>
    where
        F: Fn(&[&[u64]], &mut [&mut [u64]], &mut Scratch) -> Result<()> + Sync,
    {
        let n = self.ops_base.degree();
        let block = BLOCK.min(n);
        self.blocks([out])
            .into_par_iter()
            .enumerate()
            .try_for_each_init(Scratch::default, |scratch, (c, mut outs)| {
                let cols = c * block..((c + 1) * block).min(n);
                let ins: Vec<&[u64]> = input
                    .chunks(n)
                    .map(|row| row.get(cols.clone()).unwrap_or(&[]))
                    .collect();
                f(&ins, &mut outs, scratch)
            })
    }
}

/// One prime's tensor, in place as [`crate::kernels::tensor_in_place`]:
/// its vector kernel, else Karatsuba.
fn tensor_row(
    q: &fhe_math::zq::Modulus,
    a0: &mut [u64],
    a1: &mut [u64],
    b0: &mut [u64],
    b1: &[u64],
) {
    if !crate::kernels::tensor_in_place(q, a0, a1, b0, b1) {
        karatsuba_in_place(q, a0, a1, b0, b1);
    }
}

/// [`crate::kernels::tensor_in_place`] without a vector kernel: Karatsuba
/// (`c1 = (a0 + a1)(b0 + b1) − c0 − c2`) with fhe-math's vector operations.
fn karatsuba_in_place(
    q: &fhe_math::zq::Modulus,
    a0: &mut [u64],
    a1: &mut [u64],
    b0: &mut [u64],
    b1: &[u64],
) {
    let (x0, x1, y0) = (a0.to_vec(), a1.to_vec(), b0.to_vec());
    mul_into(q, a0, &x0, &y0);
    mul_into(q, a1, &x1, b1);
    let mut sum_b = y0;
    q.add_vec(&mut sum_b, b1);
    b0.copy_from_slice(&x0);
    q.add_vec(b0, &x1);
    q.mul_vec(b0, &sum_b);
    q.sub_vec(b0, a0);
    q.sub_vec(b0, a1);
}

/// `row = a ⊙ b mod q`, with fhe-math's SIMD-dispatched vector product
/// (its scalar `Modulus::mul` is not inlined across crates).
fn mul_into(q: &fhe_math::zq::Modulus, row: &mut [u64], a: &[u64], b: &[u64]) {
    row.copy_from_slice(a);
    q.mul_vec(row, b);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::ParameterSet;
    use fhe_math::rq::{traits::TryConvertFrom, Representation};
    use ndarray::Array2;
    use num_bigint::BigInt;
    use num_integer::Integer;
    use num_traits::ToPrimitive;

    /// Karatsuba (for CPUs without a vector kernel), the dispatched kernel,
    /// the IFMA kernel into other rows and the AVX2 + FMA kernel all give
    /// the tensor's residues, and the FMA square kernel the square's, on
    /// synod's primes, on random and extreme values, with a tail.
    #[test]
    fn every_tensor_kernel_is_the_tensor() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for p in [0x7fffffd8001u64, 0xfffffffc001, 0x1ffffffea0001] {
            let q = fhe_math::zq::Modulus::new(p).unwrap();
            for extreme in [false, true] {
                let mut draw = || {
                    (0..67)
                        .map(|_| {
                            if extreme {
                                p - 1
                            } else {
                                rng.random_range(0..p)
                            }
                        })
                        .collect::<Vec<u64>>()
                };
                let (a0, a1, b0, b1) = (draw(), draw(), draw(), draw());
                let check = |name: &str, c0: &[u64], c2: &[u64], c1: &[u64]| {
                    for k in 0..a0.len() {
                        assert_eq!(c0[k], q.mul(a0[k], b0[k]), "{name}, p {p}");
                        assert_eq!(c2[k], q.mul(a1[k], b1[k]), "{name}, p {p}");
                        let cross = q.add(q.mul(a0[k], b1[k]), q.mul(a1[k], b0[k]));
                        assert_eq!(c1[k], cross, "{name}, p {p}");
                    }
                };
                let (mut c0, mut c2, mut c1) = (a0.clone(), a1.clone(), b0.clone());
                karatsuba_in_place(&q, &mut c0, &mut c2, &mut c1, &b1);
                check("Karatsuba", &c0, &c2, &c1);
                let (mut c0, mut c2, mut c1) = (a0.clone(), a1.clone(), b0.clone());
                if crate::kernels::tensor_in_place(&q, &mut c0, &mut c2, &mut c1, &b1) {
                    check("dispatched", &c0, &c2, &c1);
                }
                // Into other rows (IFMA), the inputs untouched.
                let mut out = vec![vec![u64::MAX; a0.len()]; 3];
                let [c0, c1, c2] = &mut out[..] else {
                    unreachable!()
                };
                if crate::kernels::tensor_into(&q, &a0, &a1, &b0, &b1, c0, c1, c2) {
                    check("into other rows", c0, c2, c1);
                } else {
                    assert!(!crate::kernels::has_ifma(), "IFMA without tensor_into");
                }
                #[cfg(target_arch = "x86_64")]
                if crate::kernels::fma::token().is_some() {
                    let (mut c0, mut c2, mut c1) = (a0.clone(), a1.clone(), b0.clone());
                    assert!(crate::kernels::fma::tensor_in_place(
                        &q, &mut c0, &mut c2, &mut c1, &b1
                    ));
                    check("FMA", &c0, &c2, &c1);
                    // The square of (a0, a1): a0², a1², 2·a0·a1.
                    let (mut s0, mut s2, mut s1) = (a0.clone(), a1.clone(), vec![0; a0.len()]);
                    assert!(crate::kernels::fma::square_in_place(
                        &q, &mut s0, &mut s2, &mut s1
                    ));
                    for k in 0..a0.len() {
                        assert_eq!(s0[k], q.mul(a0[k], a0[k]), "square, p {p}");
                        assert_eq!(s2[k], q.mul(a1[k], a1[k]), "square, p {p}");
                        let m = q.mul(a0[k], a1[k]);
                        assert_eq!(s1[k], q.add(m, m), "square, p {p}");
                    }
                } else {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "CI runs on AVX2 + FMA CPUs"
                    );
                }
            }
        }
    }

    /// A ciphertext whose two polynomials are the constant-coefficient
    /// polynomial `c·(1 + x + … + x^{N−1})` (power basis residues `res`).
    fn constant_ciphertext(params: &Params, res: &[u64]) -> Ciphertext {
        let ctx = params.ctx(0).unwrap();
        let n = params.degree();
        let m: Vec<u64> = res
            .iter()
            .flat_map(|&r| std::iter::repeat_n(r, n))
            .collect();
        let poly = || {
            let mut p = Poly::try_convert_from(
                Array2::from_shape_vec((res.len(), n), m.clone()).unwrap(),
                ctx,
                false,
                Representation::PowerBasis,
            )
            .unwrap();
            p.change_representation(Representation::Ntt);
            p
        };
        Ciphertext::new(vec![poly(), poly()], params.bfv()).unwrap()
    }

    const EVERY_SET: [ParameterSet; 3] = [
        ParameterSet::InsecureTestN2048,
        ParameterSet::Bfv8192,
        ParameterSet::Bfv16384,
    ];

    /// The largest tensor coefficients there can be (every input coefficient
    /// ±Q/2·(1 − 2^-39)) scale to `t·round(x/Q)` exactly, up to the
    /// documented lift off by one (`t` in the result), at the largest
    /// plaintext modulus of every parameter set: P is large enough.
    #[test]
    fn extreme_tensor_coefficients_scale_correctly() {
        for set in EVERY_SET {
            let params = Params::new(set, set.max_plaintext_bits()).unwrap();
            let tables = FastMul::tables(&params).unwrap();
            let ctx = params.ctx(0).unwrap();
            let q = BigInt::from(ctx.modulus().clone());
            let t = BigInt::from(params.plaintext());
            let n = params.degree();
            for sign in [1i32, -1] {
                // As large as an input lift can be while staying clear of
                // ±Q/2, where HPS may lift either way (both are valid).
                let c: BigInt = ((&q >> 1) - (&q >> 40)) * sign;
                let res: Vec<u64> = ctx
                    .moduli()
                    .iter()
                    .map(|&qi| c.mod_floor(&BigInt::from(qi)).to_u64().unwrap())
                    .collect();
                let ct = constant_ciphertext(&params, &res);
                let d = tables.scaled_tensor(&ct, &ct).unwrap();
                for j in [0, 1, n / 2 - 1, n / 2, n - 2, n - 1] {
                    // Negacyclic square of a constant polynomial:
                    // coefficient j is c²·(2j + 2 − N); c1 holds two such products.
                    let x0 = &c * &c * BigInt::from(2 * j as i64 + 2 - n as i64);
                    for (part, x) in [(0, x0.clone()), (1, &x0 * 2), (2, x0.clone())] {
                        let num: BigInt = &x * 2 + &q;
                        let want = num.div_floor(&(&q * 2)) * &t;
                        let got: Vec<u64> = (0..ctx.moduli().len())
                            .map(|i| d[part][i * n + j])
                            .collect();
                        let near = [&want, &(&want + &t), &(&want - &t)].iter().any(|w| {
                            ctx.moduli()
                                .iter()
                                .zip(&got)
                                .all(|(&qi, &g)| w.mod_floor(&BigInt::from(qi)) == BigInt::from(g))
                        });
                        assert!(near, "{set}: part {part}, coefficient {j}, sign {sign}");
                    }
                }
            }
        }
    }

    /// The scaled tensor is fhe.rs's (`&a * &b`, which rounds `t·x/Q`
    /// exactly) within `t/2 + 1` in every coefficient of every part: it
    /// takes `t·round(x/Q)`, and its lift may be off by one, `t` more, in
    /// a rare coefficient. On random ciphertexts and on a square, at every
    /// parameter set.
    #[test]
    fn the_scaled_tensor_is_fhe_rs_within_t() {
        use fhe::bfv::{Encoding, Plaintext, SecretKey};
        use fhe_traits::{FheEncoder, FheEncrypter};
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
        for set in EVERY_SET {
            let params = Params::new(set, set.max_plaintext_bits()).unwrap();
            let tables = FastMul::tables(&params).unwrap();
            let ctx = params.ctx(0).unwrap();
            let (n, t) = (params.degree(), params.plaintext());
            let q = BigInt::from(ctx.modulus().clone());
            let sk = SecretKey::random(params.bfv(), &mut rng);
            let pt =
                Plaintext::try_encode(&[3u64, 1, 4, 1, 5], Encoding::simd(), params.bfv()).unwrap();
            let a: Ciphertext = sk.try_encrypt(&pt, &mut rng).unwrap();
            let b: Ciphertext = sk.try_encrypt(&pt, &mut rng).unwrap();
            for (x, y) in [(&a, &b), (&a, &a)] {
                let ours = tables.scaled_tensor(x, y).unwrap();
                let theirs = x * y;
                assert_eq!(theirs.len(), 3);
                let mut rare = 0;
                // Both as integers below Q, through fhe-math's lift.
                let lift = |poly: &Poly| -> Vec<BigInt> {
                    Vec::<num_bigint::BigUint>::from(poly)
                        .into_iter()
                        .map(BigInt::from)
                        .collect()
                };
                for (part, poly) in ours.iter().zip(theirs.iter()) {
                    let mut poly = poly.clone();
                    poly.change_representation(Representation::PowerBasis);
                    let shape = (ctx.moduli().len(), n);
                    let got = Poly::try_convert_from(
                        Array2::from_shape_vec(shape, part.clone()).unwrap(),
                        ctx,
                        false,
                        Representation::PowerBasis,
                    )
                    .unwrap();
                    for (j, (g, w)) in lift(&got).iter().zip(lift(&poly)).enumerate() {
                        let mut d = (g - w).mod_floor(&q);
                        if &d * 2 > q {
                            d -= &q;
                        }
                        let d = num_traits::Signed::abs(&d).to_u64().unwrap();
                        assert!(d <= 3 * t / 2 + 1, "{set}: coefficient {j} off by {d}");
                        if d > t / 2 + 1 {
                            rare += 1;
                        }
                    }
                }
                assert!(rare <= 2, "{set}: {rare} coefficients lifted off by one");
            }
        }
    }

    /// Buffers kept from earlier products (`Tables::spare`) hold their
    /// residues, so every word of them must be written again: the same
    /// products and squares before and after products of other
    /// ciphertexts, which leave other residues in them, are the same bytes.
    #[test]
    fn kept_buffers_do_not_reach_a_later_product() {
        use fhe::bfv::{Encoding, Plaintext, SecretKey};
        use fhe_traits::{FheEncoder, FheEncrypter};
        use rand::SeedableRng;
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(13);
        let tables = FastMul::tables(&params).unwrap();
        let sk = SecretKey::random(params.bfv(), &mut rng);
        let mut encrypt = |v: &[u64]| -> Ciphertext {
            let pt = Plaintext::try_encode(v, Encoding::simd(), params.bfv()).unwrap();
            sk.try_encrypt(&pt, &mut rng).unwrap()
        };
        let (a, b, c, d) = (
            encrypt(&[1, 2]),
            encrypt(&[3, 4]),
            encrypt(&[5]),
            encrypt(&[6]),
        );
        let product = tables.scaled_tensor(&a, &b).unwrap();
        let square = tables.scaled_tensor(&a, &a).unwrap();
        for _ in 0..3 {
            tables.scaled_tensor(&c, &d).unwrap();
            tables.scaled_tensor(&d, &d).unwrap();
        }
        let again = tables.scaled_tensor(&a, &b).unwrap();
        assert!(again == product, "a product changed after other products");
        let again = tables.scaled_tensor(&a, &a).unwrap();
        assert!(again == square, "a square changed after other products");
    }

    /// The same bytes whatever the number of threads.
    #[test]
    fn thread_count_does_not_change_the_result() {
        use fhe::bfv::{Encoding, Plaintext, SecretKey};
        use fhe_traits::{FheEncoder, FheEncrypter};
        use rand::SeedableRng;
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let sk = SecretKey::random(params.bfv(), &mut rng);
        let pt =
            Plaintext::try_encode(&[3u64, 1, 4, 1, 5], Encoding::simd(), params.bfv()).unwrap();
        let a: Ciphertext = sk.try_encrypt(&pt, &mut rng).unwrap();
        let b: Ciphertext = sk.try_encrypt(&pt, &mut rng).unwrap();
        let tables = FastMul::tables(&params).unwrap();
        let default = tables.scaled_tensor(&a, &b).unwrap();
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let other = pool.install(|| tables.scaled_tensor(&a, &b).unwrap());
            assert!(other == default, "{threads} threads differ");
        }
        // Without a key, only the tensor is available.
        assert!(tables.multiply(&a, &b).is_err());
    }

    /// A ciphertext multiplied by itself (one extension, copied) gives the
    /// tensor of it and an equal copy (two extensions), so the same product
    /// (the rest of `multiply` depends on the tensor alone; the circuits'
    /// variances decrypt through this path end to end).
    #[test]
    fn a_square_is_the_product_with_a_copy() {
        use fhe::bfv::{Encoding, Plaintext, SecretKey};
        use fhe_traits::{FheEncoder, FheEncrypter};
        use rand::SeedableRng;
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(10);
        let sk = SecretKey::random(params.bfv(), &mut rng);
        let pt =
            Plaintext::try_encode(&[3u64, 1, 4, 1, 5], Encoding::simd(), params.bfv()).unwrap();
        let a: Ciphertext = sk.try_encrypt(&pt, &mut rng).unwrap();
        let copy = a.clone();
        let tables = FastMul::tables(&params).unwrap();
        let square = tables.scaled_tensor(&a, &a).unwrap();
        assert!(square == tables.scaled_tensor(&a, &copy).unwrap());
        let other: Ciphertext = sk.try_encrypt(&pt, &mut rng).unwrap();
        assert!(square != tables.scaled_tensor(&a, &other).unwrap());
    }
}
