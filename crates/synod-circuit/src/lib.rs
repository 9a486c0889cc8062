//! Computations for synod: what the participants agree to compute.
//!
//! This crate owns the circuit description (named per-party input columns
//! with declared bounds, and named outputs written as expressions, in TOML or
//! JSON), its validation against a BFV parameter set — plaintext range, depth
//! and noise budget with flooding reserved — and its deterministic evaluation
//! on ciphertexts, followed by the clear-text finishing step (division for
//! means, variances and covariances) on decrypted aggregates. It never sees a
//! key share and never decrypts; evaluation is a pure function of the
//! ciphertexts and evaluation keys, so every participant can re-run it and
//! compare the output hash.

mod error;
pub mod eval;
pub mod expr;
pub mod noise;
pub mod plan;
pub mod spec;

pub use error::{CircuitError, Result};
pub use eval::{EvaluatedOutputs, Evaluator};
pub use expr::{ColumnRef, Expr};
pub use plan::{Aggregate, ConstantPack, Finish, OutputValue, PackKind, Plan};
pub use spec::{CircuitSpec, InputSpec, OutputSpec};
