//! Validation of a circuit against a parameter set, and the clear-text
//! finishing step.
//!
//! [`Plan::new`] runs before anything is encrypted. It
//! 1. type-checks every output (encrypted columns combine only with columns
//!    of the same scale; public constants and vectors only multiply;
//!    aggregates come from `sum`),
//! 2. bounds every sub-expression given the declared input bounds and the
//!    number of rows, and picks the smallest batching prime `p` that holds the
//!    largest one — refusing, with the expression and the missing bits, when
//!    no parameter set can,
//! 3. estimates the noise of every aggregate ([`crate::noise`]), reserves the
//!    flooding noise for the session's decryptions, and picks the deepest
//!    level at which each aggregate can still be decrypted (smaller shares),
//!    refusing when even level 0 cannot hold it. It first tries two primes
//!    per key-switching digit (`synod_he::Params::with_digit_primes`: fewer
//!    key rows, faster key generation and key switching, key-switching noise
//!    larger by about one prime) for both kinds of key, then for the rotation
//!    keys only, then one everywhere.
//!
//! Outputs are lowered to *aggregates* (encrypted results, deduplicated: the
//! sum used by a mean and by a variance is computed once) and a [`Finish`]
//! that turns decrypted aggregates into the output value; division happens
//! there, in the clear, and the output says so.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use synod_he::flooding::Flooding;
use synod_he::galois::TraceLayout;
use synod_he::params::{MAX_PLAINTEXT_BITS, MIN_PLAINTEXT_BITS};
use synod_he::{ParameterSet, Params};

use crate::expr::{ColumnRef, Expr, OutputExpr};
use crate::noise::NoiseModel;
use crate::spec::CircuitSpec;
use crate::{CircuitError, Result};

/// What kind of value an expression denotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// An encrypted value per row.
    Rows,
    /// An encrypted aggregate (the same value in every slot).
    Aggregate,
    /// A public constant.
    Constant,
    /// A public vector, one value per row.
    PublicVector,
}

/// Static facts about one sub-expression.
#[derive(Clone, Debug)]
struct Facts {
    shape: Shape,
    /// Largest magnitude of the integer value.
    bound: f64,
    /// Fixed-point scale of the integer value.
    scale: f64,
    /// Ciphertext-ciphertext multiplications on the deepest path.
    depth: u32,
    /// Largest bound of any sub-expression, and which one.
    worst: (f64, String),
    /// Rotation steps used.
    rotations: BTreeSet<usize>,
}

/// An encrypted result to decrypt.
#[derive(Clone, Debug, Serialize)]
pub struct Aggregate {
    /// The expression, as text.
    pub label: String,
    /// The expression.
    #[serde(skip)]
    pub expr: Expr,
    /// `Rows` (one value per row) or `Aggregate` (one value).
    pub shape: Shape,
    /// Fixed-point scale of the decrypted integer.
    pub scale: f64,
    /// Multiplicative depth.
    pub depth: u32,
    /// log2 of the estimated noise bound at the decryption level.
    pub noise_bits: f64,
    /// Level the ciphertext is switched to before decryption.
    pub level: usize,
    /// The flooding its decryption shares add.
    #[serde(skip)]
    pub flooding: Flooding,
}

impl Aggregate {
    /// Bits of flooding noise.
    pub fn flooding_bits(&self) -> u32 {
        self.flooding.bits()
    }
}

/// How an output is computed from decrypted aggregates.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// The aggregate itself.
    Value(usize),
    /// `Σx / rows`.
    Mean {
        /// Index of `Σx`.
        sum: usize,
    },
    /// `Σx²/rows − (Σx/rows)²`.
    Variance {
        /// Index of `Σx`.
        sum: usize,
        /// Index of `Σx²`.
        sum_sq: usize,
    },
    /// `Σab/rows − (Σa/rows)(Σb/rows)`.
    Covariance {
        /// Index of `Σa`.
        sum_a: usize,
        /// Index of `Σb`.
        sum_b: usize,
        /// Index of `Σab`.
        sum_ab: usize,
    },
}

impl Finish {
    /// A description of the clear-text step, or `None` when there is none.
    pub fn clear_step(&self) -> Option<&'static str> {
        match self {
            Finish::Value(_) => None,
            Finish::Mean { .. } => Some("Σx / rows, divided in the clear"),
            Finish::Variance { .. } => {
                Some("Σx²/rows − (Σx/rows)², from the decrypted sums, in the clear")
            }
            Finish::Covariance { .. } => {
                Some("Σab/rows − (Σa/rows)(Σb/rows), from the decrypted sums, in the clear")
            }
        }
    }
}

/// A planned output.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedOutput {
    /// Output name.
    pub name: String,
    /// How it is finished.
    pub finish: Finish,
}

/// One-value aggregates decrypted together. Their plaintexts are constant
/// polynomials: `sum` is the trace (every slot added into every slot), and
/// what an aggregate allows after it (sums, products of aggregates, public
/// constants; not public vectors or rotations, which `facts` refuses) keeps
/// it constant. The evaluator puts them into the coefficients of one
/// ciphertext ([`PackKind`]), whose noise is at most the sum of theirs: one
/// threshold decryption per pack instead of one per aggregate (the demo has
/// 2n + 1 of them at n parties), which reveals nothing more (every other
/// coefficient is zero). A participant makes decryption shares only for
/// the agreed outputs, packs included (DESIGN.md §2, output).
#[derive(Clone, Debug, Serialize)]
pub struct ConstantPack {
    /// Indices into [`Plan::aggregates`], in coefficient order.
    pub aggregates: Vec<usize>,
    /// How the pack is made, and so where each member lands.
    pub kind: PackKind,
    /// The level the pack is switched to and decrypted at.
    pub level: usize,
    /// log2 of the packed ciphertext's noise bound.
    pub noise_bits: f64,
    /// The flooding its decryption shares add.
    #[serde(skip)]
    pub flooding: Flooding,
}

/// How a [`ConstantPack`] is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum PackKind {
    /// The first `layout.count` members are slot sums `sum(e)`: their `e`
    /// (chunks added) go through `synod_he::galois::GaloisKeys::pack_traces`,
    /// which traces them together (for the demo's 11, 21 automorphisms
    /// instead of 143), each where the layout says. Any further members
    /// (other one-value outputs, constant plaintexts) are added at the
    /// layout's free coefficients, where the traced plaintext is zero.
    Traces(TraceLayout),
    /// Other one-value aggregates, each evaluated and switched to the pack's
    /// level, then `synod_he::decrypt::pack_constants`: member `i` in
    /// coefficient `i`.
    Constants,
}

impl ConstantPack {
    /// The coefficient that holds member `i` (the `i`-th of `aggregates`;
    /// `None` past them).
    pub fn coefficient(&self, i: usize) -> Option<usize> {
        if i >= self.aggregates.len() {
            return None;
        }
        match self.kind {
            PackKind::Traces(layout) if i < layout.count => layout.coefficient(i),
            PackKind::Traces(layout) => layout.free_coefficient(i - layout.count),
            PackKind::Constants => Some(i),
        }
    }

    /// Whether member `i` is traced with the pack (else it is evaluated
    /// whole and added as a constant).
    pub fn traces_member(&self, i: usize) -> bool {
        matches!(self.kind, PackKind::Traces(layout) if i < layout.count)
    }
}

/// The fewest one-value aggregates per decryption, on average, that a
/// layout with larger key-switching digits must allow before the plan
/// prefers it (see `Plan::packs_well`).
const MIN_PACK_AVERAGE: usize = 8;

/// Primes per key-switching digit (relinearisation key, rotation keys) a
/// plan tries, in order of preference: fewer digits first (faster key
/// generation and key switching). The relinearisation key's noise is
/// multiplied on by later products and slot sums, so it keeps one prime per
/// digit before the rotation keys do.
const DIGIT_PRIMES: [(usize, usize); 3] = [(2, 2), (1, 2), (1, 1)];

/// A checked circuit, bound to a parameter set.
#[derive(Clone, Debug)]
pub struct Plan {
    spec: CircuitSpec,
    params: Params,
    rows: usize,
    parties: usize,
    columns: BTreeMap<ColumnRef, (f64, u64)>,
    aggregates: Vec<Aggregate>,
    packs: Vec<ConstantPack>,
    outputs: Vec<PlannedOutput>,
    rotations: BTreeSet<usize>,
}

/// A finished output value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutputValue {
    /// Output name.
    pub name: String,
    /// The value(s); one per row for a row-wise output.
    pub values: Vec<f64>,
    /// The clear-text step applied after decryption, if any.
    pub clear_step: Option<&'static str>,
}

fn candidate_sets(spec: &CircuitSpec) -> Result<Vec<ParameterSet>> {
    match spec.parameters.as_deref() {
        None | Some("auto") => Ok(vec![ParameterSet::Bfv8192, ParameterSet::Bfv16384]),
        Some(name) => Ok(vec![ParameterSet::parse(name)?]),
    }
}

impl Plan {
    /// Checks `spec` for `rows` records per column, keys made by `parties`
    /// participants, and decryption by active sets of up to `max_active`.
    pub fn new(spec: &CircuitSpec, rows: usize, parties: usize, max_active: usize) -> Result<Self> {
        Self::with_sets(spec, rows, parties, max_active, &candidate_sets(spec)?)
    }

    /// Like [`Plan::new`], trying only `sets` (in order).
    pub fn with_sets(
        spec: &CircuitSpec,
        rows: usize,
        parties: usize,
        max_active: usize,
        sets: &[ParameterSet],
    ) -> Result<Self> {
        if rows == 0 {
            return Err(CircuitError::Inputs("there are no rows".into()));
        }
        let columns: BTreeMap<ColumnRef, (f64, u64)> = spec
            .inputs
            .iter()
            .map(|i| {
                let c = ColumnRef {
                    party: i.party.clone(),
                    column: i.column.clone(),
                };
                let bound = i.min.abs().max(i.max.abs()) * i.scale() as f64;
                (c, (bound.round(), i.scale()))
            })
            .collect();
        let outputs = spec.parsed_outputs()?;

        // Lower outputs to aggregates, type-check and bound them.
        let mut aggs: Vec<(Expr, Facts)> = Vec::new();
        let mut planned = Vec::new();
        let mut add_agg = |e: Expr, name: &str| -> Result<usize> {
            if let Some(i) = aggs.iter().position(|(x, _)| *x == e) {
                return Ok(i);
            }
            let f = facts(&e, &columns, rows, name)?;
            if !matches!(f.shape, Shape::Rows | Shape::Aggregate) {
                return Err(CircuitError::Invalid(format!(
                    "output {name:?}: `{e}` is public; an output must involve an input column"
                )));
            }
            aggs.push((e, f));
            Ok(aggs.len() - 1)
        };
        let sum = |e: &Expr| Expr::Sum(Box::new(e.clone()));
        let prod = |a: &Expr, b: &Expr| Expr::Mul(Box::new(a.clone()), Box::new(b.clone()));
        for (name, out) in &outputs {
            let require_rows = |e: &Expr| -> Result<()> {
                let f = facts(e, &columns, rows, name)?;
                if f.shape != Shape::Rows {
                    return Err(CircuitError::Invalid(format!(
                        "output {name:?}: statistics apply to per-row values, `{e}` is not"
                    )));
                }
                Ok(())
            };
            let finish = match out {
                OutputExpr::Plain(e) => Finish::Value(add_agg(e.clone(), name)?),
                OutputExpr::Mean(e) => {
                    require_rows(e)?;
                    Finish::Mean {
                        sum: add_agg(sum(e), name)?,
                    }
                }
                OutputExpr::Variance(e) => {
                    require_rows(e)?;
                    Finish::Variance {
                        sum: add_agg(sum(e), name)?,
                        sum_sq: add_agg(sum(&prod(e, e)), name)?,
                    }
                }
                OutputExpr::Covariance(a, b) => {
                    require_rows(a)?;
                    require_rows(b)?;
                    Finish::Covariance {
                        sum_a: add_agg(sum(a), name)?,
                        sum_b: add_agg(sum(b), name)?,
                        sum_ab: add_agg(sum(&prod(a, b)), name)?,
                    }
                }
            };
            planned.push(PlannedOutput {
                name: name.clone(),
                finish,
            });
        }

        // The output an aggregate belongs to, for error messages.
        let owner = |i: usize| -> String {
            planned
                .iter()
                .find(|o| match &o.finish {
                    Finish::Value(a) | Finish::Mean { sum: a } => *a == i,
                    Finish::Variance { sum, sum_sq } => *sum == i || *sum_sq == i,
                    Finish::Covariance {
                        sum_a,
                        sum_b,
                        sum_ab,
                    } => *sum_a == i || *sum_b == i || *sum_ab == i,
                })
                .map(|o| o.name.clone())
                .unwrap_or_default()
        };

        // Plaintext modulus: the smallest p holding the worst bound.
        let (worst_bound, worst_expr, worst_owner) = aggs
            .iter()
            .enumerate()
            .map(|(i, (_, f))| (f.worst.0, f.worst.1.clone(), owner(i)))
            .fold((0.0, String::new(), String::new()), |acc, x| {
                if x.0 > acc.0 {
                    x
                } else {
                    acc
                }
            });
        // p > 2·bound, and p ≥ 2^(bits−1) for a `bits`-bit prime.
        let needed_bits = (worst_bound + 1.0).log2();
        let p_bits = ((needed_bits.ceil() as u32) + 2).max(MIN_PLAINTEXT_BITS + 4);
        let rotations: BTreeSet<usize> = aggs
            .iter()
            .flat_map(|(_, f)| f.rotations.iter().copied())
            .collect();
        let mut last_err = None;
        for &set in sets {
            let max_bits = set.max_plaintext_bits().min(MAX_PLAINTEXT_BITS);
            if p_bits > max_bits {
                last_err = Some(CircuitError::Range {
                    output: worst_owner.clone(),
                    expr: worst_expr.clone(),
                    needed_bits,
                    p_bits,
                    limit: format!("{set} allows at most {max_bits} bits"),
                    over_by: f64::from(p_bits - max_bits),
                });
                continue;
            }
            let params = Params::new(set, p_bits)?;
            // Two primes per key-switching digit where the noise budget
            // allows it (fewer key rows and NTTs per key switch), else one
            // (fhe.rs's layout, key-switching noise smaller by a prime) —
            // unless the larger digits' noise leaves the one-value
            // aggregates too little room to share decryptions
            // (`packs_well`); then the layout with the fewest decryptions.
            let mut fallback: Option<(usize, Self)> = None;
            for (relin, rotation) in DIGIT_PRIMES {
                let params = params.clone().with_digit_primes(relin, rotation)?;
                if let Some(&k) = rotations.iter().find(|&&k| k >= params.degree() / 2) {
                    last_err = Some(CircuitError::Invalid(format!(
                        "rotation by {k} needs k < N/2 = {}",
                        params.degree() / 2
                    )));
                    continue;
                }
                if rotations.iter().next().is_some() && rows > params.degree() / 2 {
                    last_err = Some(CircuitError::Invalid(format!(
                        "rotate() needs rows ≤ N/2 = {} (there are {rows})",
                        params.degree() / 2
                    )));
                    continue;
                }
                match Self::budget(
                    &params,
                    &aggs,
                    rows,
                    parties,
                    max_active,
                    spec.max_decryptions,
                    &owner,
                ) {
                    Ok((aggregates, packs)) => {
                        let candidate = Self {
                            spec: spec.clone(),
                            params,
                            rows,
                            parties,
                            columns: columns.clone(),
                            aggregates,
                            packs,
                            outputs: planned.clone(),
                            rotations: rotations.clone(),
                        };
                        // The flooding is sized for `max_decryptions`: a
                        // plan that needs more is not safe to run.
                        let d = candidate.decryptions();
                        if d > usize::try_from(spec.max_decryptions).unwrap_or(usize::MAX) {
                            last_err = Some(CircuitError::Invalid(format!(
                                "the outputs need {d} threshold decryptions under {}, more \
                                 than max_decryptions = {} (the flooding is sized for that \
                                 many); raise max_decryptions or output fewer per-row values",
                                candidate.params.set(),
                                spec.max_decryptions
                            )));
                            continue;
                        }
                        if candidate.packs_well() {
                            return Ok(candidate);
                        }
                        if fallback.as_ref().is_none_or(|(best, _)| d < *best) {
                            fallback = Some((d, candidate));
                        }
                    }
                    Err(e) => last_err = Some(e),
                }
            }
            if let Some((_, plan)) = fallback {
                return Ok(plan);
            }
        }
        Err(last_err.unwrap_or_else(|| CircuitError::Invalid("no parameter set to try".into())))
    }

    fn budget(
        params: &Params,
        aggs: &[(Expr, Facts)],
        rows: usize,
        parties: usize,
        max_active: usize,
        max_decryptions: u64,
        owner: &dyn Fn(usize) -> String,
    ) -> Result<(Vec<Aggregate>, Vec<ConstantPack>)> {
        let model = NoiseModel::new(params, parties);
        let chunks = rows.div_ceil(params.degree());
        let mut out = Vec::new();
        let mut vars = Vec::new();
        for (i, (e, f)) in aggs.iter().enumerate() {
            let var0 = noise_var(e, &model, chunks);
            vars.push(var0);
            let bits0 = NoiseModel::bound_bits(var0);
            let flooding0 =
                Flooding::new(params, 0, bits0, max_decryptions, max_active).map_err(|err| {
                    CircuitError::Noise {
                        output: owner(i),
                        reason: format!(
                            "`{e}` (depth {}) has noise ≈ 2^{bits0:.1} under {}; {err}",
                            f.depth,
                            params.set()
                        ),
                    }
                })?;
            // The deepest level at which it still decrypts.
            let mut best = (0usize, bits0, flooding0);
            for level in 1..=params.max_level() {
                let var = model.switch_down(var0, params.log_q(0), params.log_q(level));
                let bits = NoiseModel::bound_bits(var);
                match Flooding::new(params, level, bits, max_decryptions, max_active) {
                    Ok(fl) => best = (level, bits, fl),
                    Err(_) => break,
                }
            }
            out.push(Aggregate {
                label: e.to_string(),
                expr: e.clone(),
                shape: f.shape,
                scale: f.scale,
                depth: f.depth,
                noise_bits: best.1,
                level: best.0,
                flooding: best.2,
            });
        }
        let pack = Self::plan_packs(params, &model, &mut out, &vars, max_decryptions, max_active);
        Ok((out, pack))
    }

    /// Packs the one-value aggregates (constant plaintexts) into as few
    /// ciphertexts as their noise allows (a pack's noise is at most the sum
    /// of its members'), at the level that needs the fewest decryptions (the
    /// deepest among equals), and moves them to that level. Slot sums pack
    /// by their traces ([`PackKind::Traces`]), with the other one-value
    /// outputs added where the traced plaintext is zero; a lone slot sum is
    /// packed as a constant ([`PackKind::Constants`]). Empty (each
    /// decrypted alone) for fewer than two, or when no level holds even two
    /// together.
    fn plan_packs(
        params: &Params,
        model: &NoiseModel,
        out: &mut [Aggregate],
        vars: &[f64],
        max_decryptions: u64,
        max_active: usize,
    ) -> Vec<ConstantPack> {
        let (mut traces, mut constants) = (Vec::new(), Vec::new());
        for (i, a) in out.iter().enumerate() {
            if a.shape == Shape::Aggregate {
                match a.expr {
                    Expr::Sum(_) => traces.push(i),
                    _ => constants.push(i),
                }
            }
        }
        // Slot sums first, traced together; the other one-value outputs in
        // the coefficients their traced pack leaves zero. A lone slot sum
        // is packed as a constant (its trace costs the same either way).
        let traced = if traces.len() < 2 { 0 } else { traces.len() };
        let mut members = traces;
        members.append(&mut constants);
        if traced == 0 {
            members.sort_unstable();
        }
        Self::pack_group(
            params,
            model,
            out,
            vars,
            &members,
            traced,
            max_decryptions,
            max_active,
        )
    }

    /// [`Self::plan_packs`] for `members`, of which the first `traced` are
    /// slot sums to trace together.
    #[allow(clippy::too_many_arguments)]
    fn pack_group(
        params: &Params,
        model: &NoiseModel,
        out: &mut [Aggregate],
        vars: &[f64],
        members: &[usize],
        traced: usize,
        max_decryptions: u64,
        max_active: usize,
    ) -> Vec<ConstantPack> {
        let Some(top) = members
            .iter()
            .filter_map(|&i| out.get(i))
            .map(|a| a.level)
            .min()
        else {
            return Vec::new();
        };
        if members.len() < 2 {
            return Vec::new();
        }
        // A traced pack is switched down once, as one ciphertext; the
        // members' own switches over-count its rounding noise, which keeps
        // the bound safe.
        let var_at = |i: usize, level: usize| -> f64 {
            let v = vars.get(i).copied().unwrap_or(f64::INFINITY);
            if level == 0 {
                v
            } else {
                model.switch_down(v, params.log_q(0), params.log_q(level))
            }
        };
        let fits = |var: f64, level: usize| {
            Flooding::new(
                params,
                level,
                NoiseModel::bound_bits(var),
                max_decryptions,
                max_active,
            )
            .is_ok()
        };
        // Per level, the largest pack size k whose k noisiest members fit
        // (so any k of them fit); keep the level with the fewest packs.
        let mut best: Option<(usize, usize)> = None;
        for level in (0..=top).rev() {
            let mut v: Vec<f64> = members.iter().map(|&i| var_at(i, level)).collect();
            v.sort_by(|a, b| b.total_cmp(a));
            let (mut k, mut acc) = (0usize, 0.0);
            while let Some(&x) = v.get(k) {
                if k == params.degree() || !fits(acc + x, level) {
                    break;
                }
                acc += x;
                k += 1;
            }
            if k >= 2
                && best.is_none_or(|(_, bk)| members.len().div_ceil(k) < members.len().div_ceil(bk))
            {
                best = Some((level, k));
            }
        }
        let Some((level, k)) = best else {
            return Vec::new();
        };
        let mut packs = Vec::new();
        for (c, group) in members.chunks(k).enumerate() {
            let var: f64 = group.iter().map(|&i| var_at(i, level)).sum();
            let bits = NoiseModel::bound_bits(var);
            let Ok(flooding) = Flooding::new(params, level, bits, max_decryptions, max_active)
            else {
                // Cannot happen (no worse than the k noisiest); decrypt these alone.
                continue;
            };
            // Cannot fail either (at most N members).
            // Traced if the chunk holds slot sums and their layout leaves
            // room for its other members; else every member as a constant
            // (always correct: a slot sum evaluated alone is its trace).
            let sums = traced.saturating_sub(c * k).min(group.len());
            let extra = group.len() - sums;
            let kind = match TraceLayout::new(params, sums) {
                Ok(layout) if extra == 0 || layout.free_coefficient(extra - 1).is_some() => {
                    PackKind::Traces(layout)
                }
                _ => PackKind::Constants,
            };
            for (i, a) in out.iter_mut().enumerate() {
                if group.contains(&i) {
                    // Its own noise at the pack's level; the pack's flooding.
                    a.level = level;
                    a.noise_bits = NoiseModel::bound_bits(var_at(i, level));
                    a.flooding = flooding;
                }
            }
            packs.push(ConstantPack {
                aggregates: group.to_vec(),
                kind,
                level,
                noise_bits: bits,
                flooding,
            });
        }
        packs
    }

    /// The chosen parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The circuit.
    pub fn spec(&self) -> &CircuitSpec {
        &self.spec
    }

    /// Rows per column.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Ciphertexts per column.
    pub fn chunks(&self) -> usize {
        self.rows.div_ceil(self.params.degree())
    }

    /// Number of key-generating parties the noise was estimated for.
    pub fn parties(&self) -> usize {
        self.parties
    }

    /// Declared columns with their integer bound and scale.
    pub fn columns(&self) -> &BTreeMap<ColumnRef, (f64, u64)> {
        &self.columns
    }

    /// The encrypted results, in evaluation order.
    pub fn aggregates(&self) -> &[Aggregate] {
        &self.aggregates
    }

    /// The one-value aggregates decrypted together, pack by pack (empty when
    /// each is decrypted alone).
    pub fn packs(&self) -> &[ConstantPack] {
        &self.packs
    }

    /// Threshold decryptions the outputs take: one per pack, one per
    /// ciphertext of every other aggregate.
    pub fn decryptions(&self) -> usize {
        let (one_value, decryptions) = self.one_value_decryptions();
        decryptions + (self.aggregates.len() - one_value) * self.chunks()
    }

    /// The one-value aggregates, and the decryptions they take: one per
    /// pack, one per aggregate left out of every pack.
    fn one_value_decryptions(&self) -> (usize, usize) {
        let one_value = self
            .aggregates
            .iter()
            .filter(|a| a.shape == Shape::Aggregate)
            .count();
        let packed: usize = self.packs.iter().map(|p| p.aggregates.len()).sum();
        (
            one_value,
            self.packs.len() + one_value.saturating_sub(packed),
        )
    }

    /// Whether the one-value aggregates share decryptions well: at most
    /// `⌈m / MIN_PACK_AVERAGE⌉` decryptions for `m` of them (so a single one
    /// for up to eight). When the larger digits' key-switching noise
    /// leaves too little room for that, one-prime digits cost less than the
    /// decryptions they save (at 100 parties: 201 decryptions against one).
    fn packs_well(&self) -> bool {
        let (one_value, decryptions) = self.one_value_decryptions();
        decryptions <= one_value.div_ceil(MIN_PACK_AVERAGE)
    }

    /// The outputs.
    pub fn outputs(&self) -> &[PlannedOutput] {
        &self.outputs
    }

    /// Whether any aggregate sums over slots (needs the trace's Galois keys).
    pub fn sums_slots(&self) -> bool {
        self.aggregates.iter().any(|a| contains_sum(&a.expr))
    }

    /// Column rotations used.
    pub fn rotations(&self) -> &BTreeSet<usize> {
        &self.rotations
    }

    /// The Galois elements the evaluation keys must cover.
    pub fn galois_elements(&self) -> Result<Vec<u32>> {
        let mut out = BTreeSet::new();
        if self.sums_slots() {
            out.extend(synod_he::galois::trace_elements(&self.params));
        }
        for &k in &self.rotations {
            out.insert(synod_he::galois::rotation_element(&self.params, k)?);
        }
        Ok(out.into_iter().collect())
    }

    /// Encodes a column's real values as scaled integers, checking the
    /// declared bounds (refused before anything is encrypted).
    pub fn encode_column(&self, column: &ColumnRef, values: &[f64]) -> Result<Vec<i64>> {
        let input = self
            .spec
            .inputs
            .iter()
            .find(|i| i.party == column.party && i.column == column.column)
            .ok_or_else(|| {
                CircuitError::Inputs(format!("{column} is not an input of this circuit"))
            })?;
        if values.len() != self.rows {
            return Err(CircuitError::Inputs(format!(
                "{column} has {} rows, the session has {}",
                values.len(),
                self.rows
            )));
        }
        let fixed = synod_he::encoding::FixedPoint::new(input.scale())?;
        values
            .iter()
            .enumerate()
            .map(|(row, &x)| {
                if !x.is_finite() || x < input.min || x > input.max {
                    return Err(CircuitError::Inputs(format!(
                        "{column} row {}: {x} is outside the declared [{}, {}]",
                        row + 1,
                        input.min,
                        input.max
                    )));
                }
                Ok(fixed.to_integer(x)?)
            })
            .collect()
    }

    /// Evaluates the aggregates in the clear on scaled integer columns (the
    /// reference the encrypted result is compared against).
    pub fn evaluate_clear(
        &self,
        columns: &BTreeMap<ColumnRef, Vec<i64>>,
    ) -> Result<Vec<Vec<i128>>> {
        let half = self.params.degree() / 2;
        self.aggregates
            .iter()
            .map(|a| clear(&a.expr, columns, self.rows, half))
            .collect()
    }

    /// Turns decrypted aggregates (one vector per aggregate; an aggregate's
    /// value in its first entry) into output values.
    pub fn finish(&self, decrypted: &[Vec<i128>]) -> Result<Vec<OutputValue>> {
        let get = |i: usize| -> Result<(f64, f64)> {
            let agg = self
                .aggregates
                .get(i)
                .ok_or_else(|| CircuitError::Inputs(format!("no aggregate {i}")))?;
            let v = decrypted
                .get(i)
                .and_then(|v| v.first())
                .ok_or_else(|| CircuitError::Inputs(format!("aggregate {i} was not decrypted")))?;
            Ok((*v as f64, agg.scale))
        };
        let n = self.rows as f64;
        self.outputs
            .iter()
            .map(|o| {
                let values = match &o.finish {
                    Finish::Value(i) => {
                        let agg = self
                            .aggregates
                            .get(*i)
                            .ok_or_else(|| CircuitError::Inputs(format!("no aggregate {i}")))?;
                        let v = decrypted.get(*i).ok_or_else(|| {
                            CircuitError::Inputs(format!("aggregate {i} was not decrypted"))
                        })?;
                        match agg.shape {
                            Shape::Aggregate => v
                                .first()
                                .map(|x| *x as f64 / agg.scale)
                                .into_iter()
                                .collect(),
                            _ => v
                                .iter()
                                .take(self.rows)
                                .map(|x| *x as f64 / agg.scale)
                                .collect(),
                        }
                    }
                    Finish::Mean { sum } => {
                        let (s, scale) = get(*sum)?;
                        vec![s / scale / n]
                    }
                    Finish::Variance { sum, sum_sq } => {
                        let (s, s1) = get(*sum)?;
                        let (q, s2) = get(*sum_sq)?;
                        let mean = s / s1 / n;
                        vec![q / s2 / n - mean * mean]
                    }
                    Finish::Covariance {
                        sum_a,
                        sum_b,
                        sum_ab,
                    } => {
                        let (a, sa) = get(*sum_a)?;
                        let (b, sb) = get(*sum_b)?;
                        let (ab, sab) = get(*sum_ab)?;
                        vec![ab / sab / n - (a / sa / n) * (b / sb / n)]
                    }
                };
                Ok(OutputValue {
                    name: o.name.clone(),
                    values,
                    clear_step: o.finish.clear_step(),
                })
            })
            .collect()
    }
}

fn contains_sum(e: &Expr) -> bool {
    match e {
        Expr::Sum(_) => true,
        Expr::Column(_) | Expr::Const(_) | Expr::Vector(_) => false,
        Expr::Neg(a) | Expr::Rotate(a, _) => contains_sum(a),
        Expr::Add(a, b) | Expr::Sub(a, b) | Expr::Mul(a, b) => contains_sum(a) || contains_sum(b),
    }
}

fn worst(a: &Facts, b: &Facts, own: f64, e: &Expr) -> (f64, String) {
    let mut w = if a.worst.0 >= b.worst.0 {
        a.worst.clone()
    } else {
        b.worst.clone()
    };
    if own > w.0 {
        w = (own, e.to_string());
    }
    w
}

fn facts(
    e: &Expr,
    columns: &BTreeMap<ColumnRef, (f64, u64)>,
    rows: usize,
    output: &str,
) -> Result<Facts> {
    let invalid = |msg: String| CircuitError::Invalid(format!("output {output:?}: {msg}"));
    let leaf = |shape, bound: f64, scale| Facts {
        shape,
        bound,
        scale,
        depth: 0,
        worst: (bound, e.to_string()),
        rotations: BTreeSet::new(),
    };
    Ok(match e {
        Expr::Column(c) => {
            let (bound, scale) = columns
                .get(c)
                .ok_or_else(|| invalid(format!("{c} is not a declared input")))?;
            leaf(Shape::Rows, *bound, *scale as f64)
        }
        Expr::Const(c) => leaf(Shape::Constant, c.unsigned_abs() as f64, 1.0),
        Expr::Vector(v) => {
            if v.len() != rows {
                return Err(invalid(format!(
                    "a public vector needs one value per row ({rows}), this one has {}",
                    v.len()
                )));
            }
            let b = v.iter().map(|x| x.unsigned_abs()).max().unwrap_or(0) as f64;
            leaf(Shape::PublicVector, b, 1.0)
        }
        Expr::Neg(a) => facts(a, columns, rows, output)?,
        Expr::Add(a, b) | Expr::Sub(a, b) => {
            let fa = facts(a, columns, rows, output)?;
            let fb = facts(b, columns, rows, output)?;
            if !matches!(fa.shape, Shape::Rows | Shape::Aggregate) || fa.shape != fb.shape {
                return Err(invalid(format!(
                    "`{a}` and `{b}` cannot be added: both must be encrypted and of the same \
                     kind (per-row or aggregate); public constants can only multiply"
                )));
            }
            if fa.scale != fb.scale {
                return Err(invalid(format!(
                    "`{a}` (scale {}) and `{b}` (scale {}) have different fixed-point scales",
                    fa.scale, fb.scale
                )));
            }
            let bound = fa.bound + fb.bound;
            Facts {
                shape: fa.shape,
                bound,
                scale: fa.scale,
                depth: fa.depth.max(fb.depth),
                worst: worst(&fa, &fb, bound, e),
                rotations: fa.rotations.union(&fb.rotations).copied().collect(),
            }
        }
        Expr::Mul(a, b) => {
            let fa = facts(a, columns, rows, output)?;
            let fb = facts(b, columns, rows, output)?;
            use Shape::*;
            let (shape, depth) = match (fa.shape, fb.shape) {
                (Rows, Rows) | (Aggregate, Aggregate) => (fa.shape, fa.depth.max(fb.depth) + 1),
                (Rows | Aggregate, Constant) => (fa.shape, fa.depth),
                (Constant, Rows | Aggregate) => (fb.shape, fb.depth),
                (Rows, PublicVector) => (Rows, fa.depth),
                (PublicVector, Rows) => (Rows, fb.depth),
                _ => {
                    return Err(invalid(format!(
                        "`{a}` * `{b}`: can multiply encrypted values of the same kind, or an \
                         encrypted value by a public constant, or per-row values by a public vector"
                    )))
                }
            };
            let bound = fa.bound * fb.bound;
            Facts {
                shape,
                bound,
                scale: fa.scale * fb.scale,
                depth,
                worst: worst(&fa, &fb, bound, e),
                rotations: fa.rotations.union(&fb.rotations).copied().collect(),
            }
        }
        Expr::Rotate(a, k) => {
            let mut fa = facts(a, columns, rows, output)?;
            if fa.shape != Shape::Rows {
                return Err(invalid(format!(
                    "rotate() applies to per-row values, not `{a}`"
                )));
            }
            fa.rotations.insert(*k);
            fa
        }
        Expr::Sum(a) => {
            let fa = facts(a, columns, rows, output)?;
            if fa.shape != Shape::Rows {
                return Err(invalid(format!(
                    "sum() applies to per-row values, not `{a}`"
                )));
            }
            let bound = fa.bound * rows as f64;
            let w = if bound > fa.worst.0 {
                (bound, e.to_string())
            } else {
                fa.worst.clone()
            };
            Facts {
                shape: Shape::Aggregate,
                bound,
                scale: fa.scale,
                depth: fa.depth,
                worst: w,
                rotations: fa.rotations,
            }
        }
    })
}

fn noise_var(e: &Expr, m: &NoiseModel, chunks: usize) -> f64 {
    match e {
        Expr::Column(_) => m.fresh(),
        Expr::Const(_) | Expr::Vector(_) => 0.0,
        Expr::Neg(a) => noise_var(a, m, chunks),
        Expr::Add(a, b) | Expr::Sub(a, b) => {
            m.add(noise_var(a, m, chunks), noise_var(b, m, chunks))
        }
        Expr::Mul(a, b) => match (&**a, &**b) {
            (x, Expr::Const(c)) | (Expr::Const(c), x) => m.mul_const(noise_var(x, m, chunks), *c),
            (x, Expr::Vector(_)) | (Expr::Vector(_), x) => m.mul_vector(noise_var(x, m, chunks)),
            _ => m.mul(noise_var(a, m, chunks), noise_var(b, m, chunks)),
        },
        Expr::Rotate(a, _) => noise_var(a, m, chunks) + m.rotation(),
        Expr::Sum(a) => m.sum_slots(noise_var(a, m, chunks), chunks),
    }
}

fn clear(
    e: &Expr,
    cols: &BTreeMap<ColumnRef, Vec<i64>>,
    rows: usize,
    half: usize,
) -> Result<Vec<i128>> {
    Ok(match e {
        Expr::Column(c) => cols
            .get(c)
            .ok_or_else(|| CircuitError::Inputs(format!("missing column {c}")))?
            .iter()
            .map(|&x| i128::from(x))
            .collect(),
        Expr::Const(c) => vec![i128::from(*c); rows],
        Expr::Vector(v) => v.iter().map(|&x| i128::from(x)).collect(),
        Expr::Neg(a) => clear(a, cols, rows, half)?
            .into_iter()
            .map(|x| -x)
            .collect(),
        Expr::Add(a, b) => zip(
            clear(a, cols, rows, half)?,
            clear(b, cols, rows, half)?,
            |x, y| x + y,
        ),
        Expr::Sub(a, b) => zip(
            clear(a, cols, rows, half)?,
            clear(b, cols, rows, half)?,
            |x, y| x - y,
        ),
        Expr::Mul(a, b) => match (&**a, &**b) {
            // A constant scales whatever shape the other side has.
            (Expr::Const(c), x) | (x, Expr::Const(c)) => clear(x, cols, rows, half)?
                .into_iter()
                .map(|v| v * i128::from(*c))
                .collect(),
            _ => zip(
                clear(a, cols, rows, half)?,
                clear(b, cols, rows, half)?,
                |x, y| x * y,
            ),
        },
        Expr::Rotate(a, k) => {
            // Cyclic over the first SIMD row of N/2 slots (rows ≤ N/2).
            let mut row = clear(a, cols, rows, half)?;
            row.resize(half.max(row.len()), 0);
            row.rotate_left(k % half.max(1));
            row
        }
        Expr::Sum(a) => {
            let s: i128 = clear(a, cols, rows, half)?.iter().sum();
            vec![s]
        }
    })
}

fn zip(a: Vec<i128>, b: Vec<i128>, f: impl Fn(i128, i128) -> i128) -> Vec<i128> {
    // Aggregates are length 1 and combine with aggregates only.
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            f(
                a.get(i).copied().unwrap_or(0),
                b.get(i).copied().unwrap_or(0),
            )
        })
        .collect()
}
