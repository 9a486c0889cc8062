//! What set-up leaves public to every participant of a session, held once
//! for both committees (plain and enclave-backed).

use std::collections::BTreeMap;

use fhe::bfv::Ciphertext;
use synod_circuit::{ColumnRef, EvaluatedOutputs, Evaluator, Plan};
use synod_he::crp::CommonRandomness;
use synod_he::galois::GaloisKeys;
use synod_he::keygen::CollectivePublicKey;
use synod_he::relin::RelinKey;
use synod_he::{Committee, Params};

use crate::Result;

/// A session's parameters, committee, common randomness and collective
/// keys: public values, the same at every participant. No secret is here.
pub struct SessionKeys {
    pub(crate) params: Params,
    pub(crate) committee: Committee,
    pub(crate) crs: CommonRandomness,
    pub(crate) public_key: CollectivePublicKey,
    pub(crate) relin_key: RelinKey,
    pub(crate) galois_key: Option<GaloisKeys>,
}

impl SessionKeys {
    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The committee (after a resharing, the new one).
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    /// The session's common randomness.
    pub fn crs(&self) -> &CommonRandomness {
        &self.crs
    }

    /// The collective public key.
    pub fn public_key(&self) -> &CollectivePublicKey {
        &self.public_key
    }

    /// The relinearisation key.
    pub fn relin_key(&self) -> &RelinKey {
        &self.relin_key
    }

    /// The rotation keys, if the plan needed any.
    pub fn galois_key(&self) -> Option<&GaloisKeys> {
        self.galois_key.as_ref()
    }

    /// Evaluates `plan` on encrypted inputs, as the evaluator does (no key
    /// share involved); every participant re-evaluates and must obtain the
    /// same hash.
    pub fn evaluate(
        &self,
        plan: &Plan,
        inputs: &BTreeMap<ColumnRef, Vec<Ciphertext>>,
    ) -> Result<EvaluatedOutputs> {
        let ev = Evaluator::new(plan, &self.relin_key, self.galois_key.as_ref())?;
        Ok(ev.evaluate(inputs)?)
    }
}
