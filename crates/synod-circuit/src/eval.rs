//! Deterministic evaluation of a [`Plan`] on ciphertexts.
//!
//! Evaluation uses only public material (ciphertexts, the relinearisation key,
//! Galois keys) and no randomness, so every participant who re-runs it gets
//! byte-identical ciphertexts and the same [`EvaluatedOutputs::hash`]; a
//! participant contributes a decryption share only for ciphertexts whose hash
//! it has reproduced (DESIGN.md §2, output).

use std::collections::BTreeMap;

use fhe::bfv::{Ciphertext, Encoding, Plaintext};
use fhe_traits::FheEncoder;
use synod_he::galois::GaloisKeys;
use synod_he::relin::RelinKey;
use synod_he::Params;

use crate::expr::{ColumnRef, Expr};
use crate::plan::{PackKind, Plan, Shape};
use crate::{CircuitError, Result};

/// The encrypted results of a plan, switched to their decryption levels.
#[derive(Clone, Debug)]
pub struct EvaluatedOutputs {
    /// Per aggregate (in [`Plan::aggregates`] order), its ciphertexts: one for
    /// an aggregate, one per N rows for a per-row result, none for an
    /// aggregate in a pack.
    pub ciphertexts: Vec<Vec<Ciphertext>>,
    /// Per pack (in [`Plan::packs`] order), the one ciphertext that holds
    /// its members ([`crate::plan::ConstantPack::coefficient`]).
    pub packs: Vec<Ciphertext>,
    /// BLAKE3 over the digests of every ciphertext, in order, packs last:
    /// the value the participants compare before decrypting.
    pub hash: [u8; 32],
}

/// Evaluates plans with a session's evaluation keys.
pub struct Evaluator<'a> {
    plan: &'a Plan,
    mult: synod_he::relin::Multiplier,
    galois: Option<&'a GaloisKeys>,
}

enum Value {
    Enc(Vec<Ciphertext>),
    Const(i64),
    Vector(Vec<i64>),
}

impl<'a> Evaluator<'a> {
    /// An evaluator for `plan` with the session's keys. `galois` must cover
    /// [`Plan::galois_elements`] when that is not empty.
    pub fn new(plan: &'a Plan, rlk: &RelinKey, galois: Option<&'a GaloisKeys>) -> Result<Self> {
        if galois.is_none() && !plan.galois_elements()?.is_empty() {
            return Err(CircuitError::Inputs(
                "this circuit sums or rotates slots and needs Galois keys".into(),
            ));
        }
        if rlk.params() != plan.params() {
            return Err(CircuitError::Inputs(format!(
                "the relinearisation key was made for {:?}, the plan needs {:?}",
                rlk.params(),
                plan.params()
            )));
        }
        Ok(Self {
            plan,
            mult: synod_he::relin::Multiplier::new(rlk)?,
            galois,
        })
    }

    /// Evaluates every aggregate on `inputs` (per column, its ciphertexts).
    pub fn evaluate(
        &self,
        inputs: &BTreeMap<ColumnRef, Vec<Ciphertext>>,
    ) -> Result<EvaluatedOutputs> {
        let params = self.plan.params();
        for (col, cts) in inputs {
            if !self.plan.columns().contains_key(col) {
                return Err(CircuitError::Inputs(format!(
                    "{col} is not an input of this circuit"
                )));
            }
            if cts.len() != self.plan.chunks() {
                return Err(CircuitError::Inputs(format!(
                    "{col} has {} ciphertexts, the plan needs {}",
                    cts.len(),
                    self.plan.chunks()
                )));
            }
            for ct in cts {
                if ct.len() != 2 || synod_he::decrypt::ciphertext_level(params, ct)? != 0 {
                    return Err(CircuitError::Inputs(format!(
                        "{col}: inputs must be fresh level-0 ciphertexts"
                    )));
                }
            }
        }
        // Slot sums traced with their pack are evaluated up to their trace
        // (the sum's operand, chunks added), which the pack takes over; the
        // other members of a traced pack stay at level 0 to be added to it.
        #[derive(Clone, Copy, PartialEq)]
        enum Role {
            Alone,
            Traced,
            AddedAtLevel0,
        }
        let mut roles = vec![Role::Alone; self.plan.aggregates().len()];
        for pack in self.plan.packs() {
            if matches!(pack.kind, PackKind::Traces(_)) {
                for (k, &i) in pack.aggregates.iter().enumerate() {
                    if let Some(r) = roles.get_mut(i) {
                        *r = if pack.traces_member(k) {
                            Role::Traced
                        } else {
                            Role::AddedAtLevel0
                        };
                    }
                }
            }
        }
        // The aggregates are independent: evaluated in parallel (a rotation
        // or a product parallelises only over the RNS primes, which leaves
        // threads idle), collected in plan order.
        use rayon::prelude::*;
        let mut ciphertexts = self
            .plan
            .aggregates()
            .par_iter()
            .zip(&roles)
            .map(|(agg, &role)| {
                if role == Role::Traced {
                    let Expr::Sum(operand) = &agg.expr else {
                        return Err(CircuitError::Invalid(format!(
                            "`{}` is packed by its trace but is not a sum",
                            agg.label
                        )));
                    };
                    return Ok(vec![add_chunks(self.enc(operand, inputs)?)?]);
                }
                let mut cts = match self.eval(&agg.expr, inputs)? {
                    Value::Enc(c) => c,
                    _ => return Err(CircuitError::Invalid(format!("`{}` is public", agg.label))),
                };
                if agg.shape == Shape::Aggregate {
                    cts.truncate(1);
                }
                if role == Role::Alone {
                    for ct in cts.iter_mut() {
                        synod_he::ring::switch_to_level(params, ct, agg.level)?;
                    }
                }
                Ok(cts)
            })
            .collect::<Result<Vec<_>>>()?;
        let packs = self
            .plan
            .packs()
            .par_iter()
            .map(|pack| {
                let members = pack
                    .aggregates
                    .iter()
                    .map(|&i| match ciphertexts.get(i).map(Vec::as_slice) {
                        Some([ct]) => Ok(ct),
                        _ => Err(CircuitError::Invalid(format!(
                            "aggregate {i} is not one ciphertext and cannot be packed"
                        ))),
                    })
                    .collect::<Result<Vec<_>>>()?;
                let mut ct = match pack.kind {
                    PackKind::Traces(layout) => {
                        let (traced, added) = members.split_at(layout.count.min(members.len()));
                        self.galois_key()?.pack_traces_with(traced, added)?
                    }
                    PackKind::Constants => synod_he::decrypt::pack_constants(params, &members)?,
                };
                synod_he::ring::switch_to_level(params, &mut ct, pack.level)?;
                Ok(ct)
            })
            .collect::<Result<Vec<_>>>()?;
        for pack in self.plan.packs() {
            for &i in &pack.aggregates {
                if let Some(cts) = ciphertexts.get_mut(i) {
                    cts.clear();
                }
            }
        }
        let hash = output_hash(params, &ciphertexts, &packs)?;
        Ok(EvaluatedOutputs {
            ciphertexts,
            packs,
            hash,
        })
    }

    fn eval(&self, e: &Expr, inputs: &BTreeMap<ColumnRef, Vec<Ciphertext>>) -> Result<Value> {
        let params = self.plan.params();
        Ok(match e {
            Expr::Column(c) => Value::Enc(
                inputs
                    .get(c)
                    .cloned()
                    .ok_or_else(|| CircuitError::Inputs(format!("no ciphertexts for {c}")))?,
            ),
            Expr::Const(c) => Value::Const(*c),
            Expr::Vector(v) => Value::Vector(v.clone()),
            Expr::Neg(a) => Value::Enc(self.enc(a, inputs)?.iter().map(|c| -c).collect()),
            Expr::Add(a, b) => Value::Enc(pairwise(
                self.enc(a, inputs)?,
                self.enc(b, inputs)?,
                |x, y| x + y,
            )?),
            Expr::Sub(a, b) => Value::Enc(pairwise(
                self.enc(a, inputs)?,
                self.enc(b, inputs)?,
                |x, y| x - y,
            )?),
            Expr::Mul(a, b) if a == b => match self.eval(a, inputs)? {
                // A square: one evaluation of the factor, and each
                // ciphertext multiplied by itself (the multiplier extends
                // it once).
                Value::Enc(x) => Value::Enc(
                    x.iter()
                        .map(|c| self.mult.multiply(c, c))
                        .collect::<std::result::Result<_, _>>()?,
                ),
                _ => {
                    return Err(CircuitError::Invalid(format!(
                        "`{e}` multiplies public values"
                    )))
                }
            },
            Expr::Mul(a, b) => {
                let (va, vb) = (self.eval(a, inputs)?, self.eval(b, inputs)?);
                match (va, vb) {
                    (Value::Enc(x), Value::Enc(y)) => {
                        let mut out = Vec::new();
                        for (cx, cy) in x.iter().zip(&y) {
                            out.push(self.mult.multiply(cx, cy)?);
                        }
                        Value::Enc(out)
                    }
                    (Value::Enc(x), Value::Const(c)) | (Value::Const(c), Value::Enc(x)) => {
                        let pt = constant_plaintext(params, c)?;
                        Value::Enc(x.iter().map(|ct| ct * &pt).collect())
                    }
                    (Value::Enc(x), Value::Vector(v)) | (Value::Vector(v), Value::Enc(x)) => {
                        let pts = vector_plaintexts(params, &v)?;
                        Value::Enc(x.iter().zip(&pts).map(|(ct, pt)| ct * pt).collect())
                    }
                    _ => {
                        return Err(CircuitError::Invalid(format!(
                            "`{e}` multiplies public values"
                        )))
                    }
                }
            }
            Expr::Rotate(a, k) => {
                let gk = self.galois_key()?;
                let mut out = Vec::new();
                for ct in self.enc(a, inputs)? {
                    out.push(gk.rotate_columns(&ct, *k)?);
                }
                Value::Enc(out)
            }
            Expr::Sum(a) => {
                let gk = self.galois_key()?;
                Value::Enc(vec![gk.trace(&add_chunks(self.enc(a, inputs)?)?)?])
            }
        })
    }

    fn enc(
        &self,
        e: &Expr,
        inputs: &BTreeMap<ColumnRef, Vec<Ciphertext>>,
    ) -> Result<Vec<Ciphertext>> {
        match self.eval(e, inputs)? {
            Value::Enc(c) => Ok(c),
            _ => Err(CircuitError::Invalid(format!(
                "`{e}` is public where a ciphertext is needed"
            ))),
        }
    }

    fn galois_key(&self) -> Result<&GaloisKeys> {
        self.galois
            .ok_or_else(|| CircuitError::Inputs("no Galois keys for a sum or rotation".into()))
    }
}

/// The hash of an evaluation's output: BLAKE3 over the digest of every
/// ciphertext, aggregate by aggregate, then pack by pack. Participants
/// compare it before they contribute decryption shares.
pub fn output_hash(
    params: &Params,
    ciphertexts: &[Vec<Ciphertext>],
    packs: &[Ciphertext],
) -> Result<[u8; 32]> {
    Ok(OutputDigests::of(params, ciphertexts, packs)?.hash())
}

/// The digest ([`synod_he::decrypt::ciphertext_digest`]) of every
/// ciphertext of an evaluation's output, in [`EvaluatedOutputs`]' order:
/// what [`output_hash`] folds, kept so that the decryption shares and
/// their combination bind each ciphertext without hashing it again
/// ([`synod_he::decrypt::Digested`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputDigests {
    /// Per aggregate, one digest per ciphertext.
    pub aggregates: Vec<Vec<[u8; 32]>>,
    /// Per pack, its ciphertext's digest.
    pub packs: Vec<[u8; 32]>,
}

impl OutputDigests {
    /// Hashes every ciphertext (in parallel).
    pub fn of(
        params: &Params,
        ciphertexts: &[Vec<Ciphertext>],
        packs: &[Ciphertext],
    ) -> Result<Self> {
        use rayon::prelude::*;
        let digest = |ct: &Ciphertext| synod_he::decrypt::ciphertext_digest(params, ct);
        // Hashed in parallel, checked in order: the first bad ciphertext
        // is the one reported, whatever the scheduling.
        let (aggregates, packs): (Vec<Vec<_>>, Vec<_>) = rayon::join(
            || {
                ciphertexts
                    .par_iter()
                    .map(|cts| cts.par_iter().map(digest).collect())
                    .collect()
            },
            || packs.par_iter().map(digest).collect(),
        );
        Ok(Self {
            aggregates: aggregates
                .into_iter()
                .map(|d| d.into_iter().collect::<std::result::Result<Vec<_>, _>>())
                .collect::<std::result::Result<_, _>>()?,
            packs: packs.into_iter().collect::<std::result::Result<_, _>>()?,
        })
    }

    /// The output hash ([`output_hash`]).
    pub fn hash(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_derive_key("synod/evaluation/v2");
        for (i, digests) in self.aggregates.iter().enumerate() {
            hasher.update(&(i as u64).to_le_bytes());
            hasher.update(&(digests.len() as u64).to_le_bytes());
            for d in digests {
                hasher.update(d);
            }
        }
        hasher.update(&(self.packs.len() as u64).to_le_bytes());
        for d in &self.packs {
            hasher.update(d);
        }
        *hasher.finalize().as_bytes()
    }
}

/// The chunks of a column-shaped value added into one ciphertext.
fn add_chunks(cts: Vec<Ciphertext>) -> Result<Ciphertext> {
    let mut iter = cts.into_iter();
    let mut acc = iter
        .next()
        .ok_or_else(|| CircuitError::Inputs("empty column".into()))?;
    for ct in iter {
        acc += &ct;
    }
    Ok(acc)
}

fn pairwise(
    a: Vec<Ciphertext>,
    b: Vec<Ciphertext>,
    f: impl Fn(&Ciphertext, &Ciphertext) -> Ciphertext,
) -> Result<Vec<Ciphertext>> {
    if a.len() != b.len() {
        return Err(CircuitError::Invalid(
            "operands have different lengths".into(),
        ));
    }
    Ok(a.iter().zip(&b).map(|(x, y)| f(x, y)).collect())
}

fn reduce(params: &Params, v: i64) -> u64 {
    let p = params.plaintext() as i128;
    (i128::from(v).rem_euclid(p)) as u64
}

fn constant_plaintext(params: &Params, c: i64) -> Result<Plaintext> {
    let slots = vec![reduce(params, c); params.degree()];
    Ok(Plaintext::try_encode(
        &slots,
        Encoding::simd(),
        params.bfv(),
    )?)
}

fn vector_plaintexts(params: &Params, v: &[i64]) -> Result<Vec<Plaintext>> {
    v.chunks(params.degree())
        .map(|chunk| {
            let mut slots = vec![0u64; params.degree()];
            slots
                .iter_mut()
                .zip(chunk)
                .for_each(|(s, &x)| *s = reduce(params, x));
            Ok(Plaintext::try_encode(
                &slots,
                Encoding::simd(),
                params.bfv(),
            )?)
        })
        .collect()
}
