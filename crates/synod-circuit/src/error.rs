//! Errors of circuit parsing, validation and evaluation.

/// Result alias for this crate.
pub type Result<T, E = CircuitError> = std::result::Result<T, E>;

/// Everything that can go wrong with a circuit.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CircuitError {
    /// The TOML or JSON could not be read.
    #[error("circuit description: {0}")]
    Syntax(String),
    /// An output expression does not parse.
    #[error("output {output:?}: cannot parse {expr:?}: {reason}")]
    Expression {
        /// Output name.
        output: String,
        /// The expression text.
        expr: String,
        /// What is wrong, with position.
        reason: String,
    },
    /// The description is well-formed but inconsistent (unknown column,
    /// duplicate names, mixed scales, bad bounds…).
    #[error("{0}")]
    Invalid(String),
    /// A value could leave the plaintext range `(−p/2, p/2)`.
    #[error(
        "output {output:?}: `{expr}` can reach ±2^{needed_bits:.1}, which needs a plaintext \
         modulus of {p_bits} bits; {limit} ({over_by:.1} bits too many)"
    )]
    Range {
        /// Output name.
        output: String,
        /// The sub-expression that overflows.
        expr: String,
        /// log2 of its bound.
        needed_bits: f64,
        /// Bits of `p` it would need.
        p_bits: u32,
        /// Why no such `p` is available.
        limit: String,
        /// By how many bits it exceeds what is available.
        over_by: f64,
    },
    /// The noise budget, with flooding reserved, cannot hold the circuit.
    #[error("output {output:?}: {reason}")]
    Noise {
        /// Output name.
        output: String,
        /// What does not fit, by how many bits.
        reason: String,
    },
    /// Inputs do not match the plan.
    #[error("inputs: {0}")]
    Inputs(String),
    /// An error from the HE layer.
    #[error(transparent)]
    He(#[from] synod_he::Error),
    /// An error from the `fhe` library during evaluation.
    #[error("evaluation: {0}")]
    Fhe(#[from] fhe::Error),
}
