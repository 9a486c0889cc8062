//! An in-process committee: every participant of a synod session simulated in
//! one process, its protocol messages moved between them by plain function
//! calls.
//!
//! This crate owns the orchestration of the sans-I/O protocols of `synod-he`
//! for the `synod demo` command and for end-to-end tests: set-up (collective
//! public key, relinearisation key, Galois keys, thresholdisation), encrypted
//! inputs, evaluation of a `synod-circuit` plan and threshold decryption by an
//! active set, with the time and bytes of each phase. Each simulated
//! participant keeps its own secrets and only ever hands another one a
//! message; no code here adds up key shares. It must never be used by a real
//! node: it holds every participant's state in one address space, which is
//! exactly what synod exists to avoid.

use std::collections::BTreeMap;
use std::time::Instant;

use fhe::bfv::{Ciphertext, EvaluationKey, PublicKey, RelinearizationKey};
use rand::{CryptoRng, RngCore};
use synod_circuit::{ColumnRef, EvaluatedOutputs, Evaluator, Plan};
use synod_he::crp::CommonRandomness;
use synod_he::decrypt;
use synod_he::flooding::Flooding;
use synod_he::secret::{AdditiveKeyShare, KeyShare, MaskShare};
use synod_he::shamir::ActiveSet;
use synod_he::{galois, keygen, relin, thresholdize, Committee, EvaluationPoint, Params};

/// Errors of the simulation.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// From the HE layer (names the participant where one is to blame).
    #[error(transparent)]
    He(#[from] synod_he::Error),
    /// From circuit planning or evaluation.
    #[error(transparent)]
    Circuit(#[from] synod_circuit::CircuitError),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Result alias.
pub type Result<T, E = LocalError> = std::result::Result<T, E>;

/// Time and traffic of one phase.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Phase {
    /// Phase name.
    pub name: String,
    /// Wall-clock milliseconds.
    pub ms: f64,
    /// Bytes of protocol messages produced in the phase (all participants).
    pub bytes: u64,
}

/// One simulated participant's private state after set-up.
pub struct Participant {
    point: EvaluationPoint,
    key_share: KeyShare,
    mask_share: MaskShare,
}

impl Participant {
    /// Its permanent evaluation point.
    pub fn point(&self) -> EvaluationPoint {
        self.point
    }

    /// Its mask share (for resharing).
    pub fn mask_share(&self) -> &MaskShare {
        &self.mask_share
    }

    /// Its key share.
    pub fn key_share(&self) -> &KeyShare {
        &self.key_share
    }
}

/// A set-up committee: public keys plus each participant's private state.
pub struct LocalCommittee {
    params: Params,
    committee: Committee,
    crs: CommonRandomness,
    participants: Vec<Participant>,
    public_key: PublicKey,
    relin_key: RelinearizationKey,
    galois_key: Option<EvaluationKey>,
    /// Phases run so far.
    pub phases: Vec<Phase>,
    /// Test-only oracle that knows the whole key (insecure test builds only).
    #[cfg(feature = "insecure-test-params")]
    pub oracle: synod_he::oracle::WholeKey,
}

fn wire_bytes(polys: usize, params: &Params) -> u64 {
    (polys * params.degree() * params.moduli().len() * 8) as u64
}

impl LocalCommittee {
    /// Runs the whole set-up for participants at `points` with threshold `t`:
    /// collective public key, relinearisation key, Galois keys for
    /// `galois_elements` (none if empty), thresholdisation. Each
    /// participant's additive share is erased when set-up ends.
    pub fn setup<R: RngCore + CryptoRng>(
        params: &Params,
        points: &[EvaluationPoint],
        t: usize,
        session: [u8; 32],
        galois_elements: &[u32],
        rng: &mut R,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Self> {
        let committee = Committee::new(points.iter().copied(), t)?;
        let members = committee.members().to_vec();
        let crs = CommonRandomness::new(params, session);
        let mut phases = Vec::new();
        let l = params.moduli().len();

        progress("key generation: additive shares and public key");
        let start = Instant::now();
        let additive: Vec<AdditiveKeyShare> = members
            .iter()
            .map(|_| AdditiveKeyShare::generate(params, rng))
            .collect::<synod_he::Result<_>>()?;
        let pk_shares = members
            .iter()
            .zip(&additive)
            .map(|(&x, sk)| keygen::public_key_share(params, &crs, sk, x, rng))
            .collect::<synod_he::Result<Vec<_>>>()?;
        let pk = keygen::aggregate_public_key(params, &crs, &members, pk_shares)?;
        phases.push(Phase {
            name: "public key".into(),
            ms: ms(start),
            bytes: wire_bytes(members.len(), params),
        });

        progress("relinearisation key: rounds 1 and 2");
        let start = Instant::now();
        let mut secrets = Vec::new();
        let mut round1 = Vec::new();
        for (&x, sk) in members.iter().zip(&additive) {
            let (s, m) = relin::round1(params, &crs, sk, x, rng)?;
            secrets.push(s);
            round1.push(m);
        }
        let agg = relin::aggregate_round1(params, &members, round1)?;
        let mut round2 = Vec::new();
        for (s, (&x, sk)) in secrets.into_iter().zip(members.iter().zip(&additive)) {
            round2.push(relin::round2(params, s, sk, &agg, x, rng)?);
        }
        let relin_key = relin::relinearization_key(params, &agg, &members, round2)?;
        phases.push(Phase {
            name: "relinearisation key".into(),
            ms: ms(start),
            bytes: wire_bytes(4 * l * members.len(), params),
        });

        let galois_key = if galois_elements.is_empty() {
            None
        } else {
            progress("rotation keys");
            let start = Instant::now();
            let shares = members
                .iter()
                .zip(&additive)
                .map(|(&x, sk)| galois::galois_key_share(params, &crs, sk, galois_elements, x, rng))
                .collect::<synod_he::Result<Vec<_>>>()?;
            let ek = galois::aggregate_galois_keys(params, &crs, &members, shares)?;
            phases.push(Phase {
                name: "rotation keys".into(),
                ms: ms(start),
                bytes: wire_bytes(galois_elements.len() * l * members.len(), params),
            });
            Some(ek)
        };

        progress("thresholdisation");
        let start = Instant::now();
        let mut inbox: BTreeMap<EvaluationPoint, Vec<thresholdize::SubShare>> =
            members.iter().map(|&m| (m, Vec::new())).collect();
        for (&x, sk) in members.iter().zip(&additive) {
            for sub in thresholdize::deal(params, &committee, sk, x, rng)? {
                inbox
                    .get_mut(&sub.recipient)
                    .ok_or_else(|| LocalError::Other(format!("no inbox for {}", sub.recipient)))?
                    .push(sub);
            }
        }
        #[cfg(feature = "insecure-test-params")]
        let oracle = synod_he::oracle::WholeKey::from_shares(params, &additive);
        // Set-up is over: the additive shares are erased (zeroized on drop).
        drop(additive);
        let mut participants = Vec::new();
        for (x, subs) in inbox {
            let (key_share, mask_share) = thresholdize::receive(params, &committee, x, subs)?;
            participants.push(Participant {
                point: x,
                key_share,
                mask_share,
            });
        }
        phases.push(Phase {
            name: "thresholdisation".into(),
            ms: ms(start),
            bytes: wire_bytes(2 * members.len() * members.len(), params),
        });

        Ok(Self {
            params: params.clone(),
            committee,
            crs,
            participants,
            public_key: pk.key().clone(),
            relin_key,
            galois_key,
            phases,
            #[cfg(feature = "insecure-test-params")]
            oracle,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The committee.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    /// The session's common randomness.
    pub fn crs(&self) -> &CommonRandomness {
        &self.crs
    }

    /// The collective public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The relinearisation key.
    pub fn relin_key(&self) -> &RelinearizationKey {
        &self.relin_key
    }

    /// The Galois keys, if any were made.
    pub fn galois_key(&self) -> Option<&EvaluationKey> {
        self.galois_key.as_ref()
    }

    /// The simulated participants.
    pub fn participants(&self) -> &[Participant] {
        &self.participants
    }

    fn participant(&self, x: EvaluationPoint) -> Result<&Participant> {
        self.participants
            .iter()
            .find(|p| p.point == x)
            .ok_or_else(|| LocalError::Other(format!("{x} is not a participant")))
    }

    /// Threshold decryption of `ct` by `active`, each adding `flooding`.
    pub fn decrypt<R: RngCore + CryptoRng>(
        &self,
        active: &[EvaluationPoint],
        ct: &Ciphertext,
        flooding: &Flooding,
        rng: &mut R,
    ) -> Result<fhe::bfv::Plaintext> {
        let set = ActiveSet::new(&self.committee, active.iter().copied())?;
        let shares = set
            .members()
            .iter()
            .map(|&x| {
                let p = self.participant(x)?;
                Ok(decrypt::decryption_share(
                    &self.params,
                    &p.key_share,
                    &set,
                    ct,
                    flooding,
                    rng,
                )?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(decrypt::combine(&self.params, ct, &set, shares)?)
    }

    /// Encrypts each column under the collective key (as its owner would).
    pub fn encrypt_inputs<R: RngCore + CryptoRng>(
        &self,
        columns: &BTreeMap<ColumnRef, Vec<i64>>,
        rng: &mut R,
    ) -> Result<BTreeMap<ColumnRef, Vec<Ciphertext>>> {
        columns
            .iter()
            .map(|(c, v)| {
                Ok((
                    c.clone(),
                    synod_he::encoding::encrypt_signed(&self.params, &self.public_key, v, rng)?,
                ))
            })
            .collect()
    }

    /// Evaluates `plan` on encrypted inputs (as the evaluator would); every
    /// participant re-evaluates and must obtain the same hash.
    pub fn evaluate(
        &self,
        plan: &Plan,
        inputs: &BTreeMap<ColumnRef, Vec<Ciphertext>>,
    ) -> Result<EvaluatedOutputs> {
        let ev = Evaluator::new(plan, &self.relin_key, self.galois_key.as_ref())?;
        Ok(ev.evaluate(inputs)?)
    }

    /// Threshold-decrypts every aggregate of an evaluation with `active`,
    /// returning centred integers (one vector per aggregate).
    pub fn decrypt_outputs<R: RngCore + CryptoRng>(
        &self,
        plan: &Plan,
        outputs: &EvaluatedOutputs,
        active: &[EvaluationPoint],
        rng: &mut R,
    ) -> Result<Vec<Vec<i128>>> {
        plan.aggregates()
            .iter()
            .zip(&outputs.ciphertexts)
            .map(|(agg, cts)| {
                let mut values = Vec::new();
                for ct in cts {
                    let pt = self.decrypt(active, ct, &agg.flooding, rng)?;
                    values.extend(
                        synod_he::encoding::decode_signed(&self.params, &pt)?
                            .into_iter()
                            .map(i128::from),
                    );
                }
                Ok(values)
            })
            .collect()
    }
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}
