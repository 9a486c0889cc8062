//! Collecting one round's messages: exactly one from each expected sender.

use std::collections::BTreeMap;

use crate::shamir::EvaluationPoint;
use crate::{Error, Result};

/// Gathers `(sender, message)` pairs, rejecting senders outside `expected`
/// and duplicates (both blamed on the sender), and reporting who is missing.
pub(crate) fn collect<T>(
    expected: &[EvaluationPoint],
    messages: impl IntoIterator<Item = (EvaluationPoint, T)>,
    what: &'static str,
    expected_name: &str,
) -> Result<BTreeMap<EvaluationPoint, T>> {
    let mut out = BTreeMap::new();
    for (sender, msg) in messages {
        if !expected.contains(&sender) {
            return Err(Error::UnexpectedSender {
                sender,
                what,
                expected: expected_name.to_string(),
            });
        }
        if out.insert(sender, msg).is_some() {
            return Err(Error::Duplicate { sender, what });
        }
    }
    let missing: Vec<u32> = expected
        .iter()
        .filter(|p| !out.contains_key(p))
        .map(|p| p.get())
        .collect();
    if !missing.is_empty() {
        return Err(Error::Missing { what, missing });
    }
    Ok(out)
}
