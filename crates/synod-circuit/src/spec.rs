//! The circuit description: what a user writes, in TOML or JSON.
//!
//! ```toml
//! name = "clinic statistics"
//! max_decryptions = 16          # optional (default 16)
//! parameters = "bfv-8192"       # optional: bfv-8192 | bfv-16384 (default: smallest that fits)
//!
//! [[inputs]]
//! party = "p1"
//! column = "age"
//! min = 0
//! max = 120
//!
//! [[inputs]]
//! party = "p2"
//! column = "dose"
//! min = 0.0
//! max = 10.0
//! scale = 100                   # fixed point: stored as round(x · 100)
//!
//! [[outputs]]
//! name = "mean age"
//! expr = "mean(p1.age)"
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::expr::{self, OutputExpr};
use crate::{CircuitError, Result};

fn default_max_decryptions() -> u64 {
    16
}

/// A whole circuit description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitSpec {
    /// A name for people.
    pub name: String,
    /// Parameter set name, or absent to choose the smallest that fits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<String>,
    /// How many decryptions the session allows (sizes the flooding noise).
    #[serde(default = "default_max_decryptions")]
    pub max_decryptions: u64,
    /// The input columns, each owned by one party.
    pub inputs: Vec<InputSpec>,
    /// The outputs.
    pub outputs: Vec<OutputSpec>,
}

/// One party's input column with its declared bounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The party that owns the column.
    pub party: String,
    /// Column name (the CSV header).
    pub column: String,
    /// Smallest value allowed.
    pub min: f64,
    /// Largest value allowed.
    pub max: f64,
    /// Fixed-point scale (values are stored as `round(x · scale)`); 1 for integers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u64>,
}

impl InputSpec {
    /// The scale, 1 when absent.
    pub fn scale(&self) -> u64 {
        self.scale.unwrap_or(1)
    }
}

/// A named output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Name shown with the result.
    pub name: String,
    /// The expression (see [`crate::expr`]).
    pub expr: String,
}

impl CircuitSpec {
    /// Parses TOML.
    pub fn from_toml(text: &str) -> Result<Self> {
        let spec: Self = toml::from_str(text).map_err(|e| CircuitError::Syntax(e.to_string()))?;
        spec.check()?;
        Ok(spec)
    }

    /// Parses JSON.
    pub fn from_json(text: &str) -> Result<Self> {
        let spec: Self =
            serde_json::from_str(text).map_err(|e| CircuitError::Syntax(e.to_string()))?;
        spec.check()?;
        Ok(spec)
    }

    /// Reads a `.toml` or `.json` file (by extension; TOML otherwise).
    pub fn from_path(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CircuitError::Syntax(format!("cannot read {}: {e}", path.display())))?;
        if path.extension().is_some_and(|e| e == "json") {
            Self::from_json(&text)
        } else {
            Self::from_toml(&text)
        }
    }

    /// As TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| CircuitError::Syntax(e.to_string()))
    }

    /// Party names in order of first appearance.
    pub fn parties(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.inputs
            .iter()
            .filter(|i| seen.insert(i.party.clone()))
            .map(|i| i.party.clone())
            .collect()
    }

    /// Parsed output expressions, in order.
    pub fn parsed_outputs(&self) -> Result<Vec<(String, OutputExpr)>> {
        self.outputs
            .iter()
            .map(|o| {
                expr::parse_output(&o.expr)
                    .map(|e| (o.name.clone(), e))
                    .map_err(|reason| CircuitError::Expression {
                        output: o.name.clone(),
                        expr: o.expr.clone(),
                        reason,
                    })
            })
            .collect()
    }

    fn check(&self) -> Result<()> {
        let mut cols = BTreeSet::new();
        for i in &self.inputs {
            let name = format!("{}.{}", i.party, i.column);
            if i.party.is_empty() || i.column.is_empty() {
                return Err(CircuitError::Invalid(
                    "an input has an empty party or column".into(),
                ));
            }
            if !cols.insert(name.clone()) {
                return Err(CircuitError::Invalid(format!(
                    "input {name} is declared twice"
                )));
            }
            if !(i.min.is_finite() && i.max.is_finite()) || i.min > i.max {
                return Err(CircuitError::Invalid(format!(
                    "input {name}: bounds [{}, {}] are not a finite interval",
                    i.min, i.max
                )));
            }
            if i.scale == Some(0) {
                return Err(CircuitError::Invalid(format!(
                    "input {name}: scale must be ≥ 1"
                )));
            }
        }
        if self.inputs.is_empty() {
            return Err(CircuitError::Invalid("the circuit has no inputs".into()));
        }
        if self.outputs.is_empty() {
            return Err(CircuitError::Invalid("the circuit has no outputs".into()));
        }
        let mut names = BTreeSet::new();
        for o in &self.outputs {
            if !names.insert(o.name.clone()) {
                return Err(CircuitError::Invalid(format!(
                    "output {:?} is declared twice",
                    o.name
                )));
            }
        }
        if self.max_decryptions == 0 {
            return Err(CircuitError::Invalid(
                "max_decryptions must be at least 1".into(),
            ));
        }
        self.parsed_outputs()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const TOML: &str = r#"
name = "t"
[[inputs]]
party = "p1"
column = "x"
min = -10
max = 10
[[inputs]]
party = "p2"
column = "x"
min = 0
max = 1.5
scale = 100
[[outputs]]
name = "ip"
expr = "inner_product(p1.x, p2.x)"
"#;

    #[test]
    fn toml_and_json_agree() {
        let a = CircuitSpec::from_toml(TOML).unwrap();
        let json = serde_json::to_string(&a).unwrap();
        let b = CircuitSpec::from_json(&json).unwrap();
        assert_eq!(a, b);
        assert_eq!(CircuitSpec::from_toml(&a.to_toml().unwrap()).unwrap(), a);
        assert_eq!(a.parties(), vec!["p1".to_string(), "p2".to_string()]);
        assert_eq!(a.max_decryptions, 16);
    }

    #[test]
    fn rejects_bad_descriptions() {
        let dup = TOML.replace("party = \"p2\"", "party = \"p1\"");
        assert!(CircuitSpec::from_toml(&dup)
            .unwrap_err()
            .to_string()
            .contains("twice"));
        let bounds = TOML
            .replace("min = 0\n", "min = 5\n")
            .replace("max = 1.5", "max = 1");
        assert!(CircuitSpec::from_toml(&bounds)
            .unwrap_err()
            .to_string()
            .contains("interval"));
        let unknown = format!("{TOML}\nfoo = 1\n");
        assert!(CircuitSpec::from_toml(&unknown).is_err());
        let bad_expr = TOML.replace("inner_product(p1.x, p2.x)", "inner_product(p1.x,");
        let err = CircuitSpec::from_toml(&bad_expr).unwrap_err();
        assert!(matches!(err, CircuitError::Expression { .. }), "{err}");
    }
}
