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

pub mod enclave;
mod keys;
mod relay;
mod reshare;

pub use keys::SessionKeys;
pub use reshare::{EpochCertificate, EpochReport, ReshareFaults};

use std::collections::BTreeMap;
use std::time::Instant;

use fhe::bfv::Ciphertext;
use rand::{CryptoRng, RngCore};
use synod_circuit::eval::OutputDigests;
use synod_circuit::{ColumnRef, EvaluatedOutputs, Plan};
use synod_he::crp::CommonRandomness;
use synod_he::decrypt::{self, Digested, Readout};
use synod_he::flooding::Flooding;
use synod_he::keygen::CollectivePublicKey;
use synod_he::secret::{AdditiveKeyShare, KeyShare, MaskShare};
use synod_he::shamir::ActiveSet;
use synod_he::{galois, keygen, relin, thresholdize, Committee, EvaluationPoint, Params};
use synod_proto::ProtocolName;

use crate::relay::Relay;

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
    /// A message failed its signature, context, transcript or replay check.
    #[error("rejected message: {0}")]
    Envelope(#[from] synod_proto::EnvelopeError),
    /// A message conflicts with the transcript.
    #[error("transcript: {0}")]
    Transcript(#[from] synod_proto::TranscriptError),
    /// A sealed payload could not be sealed or opened.
    #[error("transport: {0}")]
    Transport(#[from] synod_proto::TransportError),
    /// Envelope bytes are malformed.
    #[error("wire: {0}")]
    Wire(#[from] synod_proto::WireError),
    /// A verified payload does not decode.
    #[error("payload from P{sender} does not decode: {reason}")]
    Decode {
        /// The sender.
        sender: u32,
        /// The decoder's message.
        reason: String,
    },
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
    keys: SessionKeys,
    participants: Vec<Participant>,
    relay: std::sync::Mutex<Relay>,
    /// Phases run so far.
    pub phases: Vec<Phase>,
    /// Test-only oracle that knows the whole key (insecure test builds only).
    #[cfg(feature = "insecure-test-params")]
    pub oracle: synod_he::oracle::WholeKey,
}

/// Measures a phase: wall-clock time and envelope bytes since the last lap.
struct PhaseClock {
    start: Instant,
    bytes: u64,
}

impl PhaseClock {
    fn new(relay: &Relay) -> Self {
        Self {
            start: Instant::now(),
            bytes: relay.bytes(),
        }
    }

    fn lap(&mut self, name: &str, relay: &Relay) -> Phase {
        let phase = Phase {
            name: name.to_string(),
            ms: ms(self.start),
            bytes: relay.bytes() - self.bytes,
        };
        *self = Self::new(relay);
        phase
    }
}

impl LocalCommittee {
    /// Runs the whole set-up for participants at `points` with threshold `t`:
    /// collective public key, relinearisation key, thresholdisation, then
    /// Galois keys for `galois_elements` (none if empty) from the first `t`
    /// members' weighted Shamir shares. Every message is a
    /// signed envelope checked by its receivers; sub-shares are sealed to
    /// their recipient. Each participant's additive share is erased when
    /// set-up ends.
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
        let mut relay = Relay::new(&members, session, rng)?;
        let mut phases = Vec::new();
        let mut clock = PhaseClock::new(&relay);

        progress("key generation: additive shares and public key");
        let additive: Vec<AdditiveKeyShare> = members
            .iter()
            .map(|_| AdditiveKeyShare::generate(params, rng))
            .collect::<synod_he::Result<_>>()?;
        let messages = members
            .iter()
            .zip(&additive)
            .map(|(&x, sk)| Ok((x, keygen::public_key_share(params, &crs, sk, x, rng)?)))
            .collect::<Result<Vec<_>>>()?;
        let shares = relay.exchange(&members, ProtocolName::PublicKeyGen, 1, messages)?;
        let pk = keygen::aggregate_public_key(params, &crs, &members, shares)?;
        phases.push(clock.lap("public key", &relay));

        progress("relinearisation key: rounds 1 and 2");
        let mut secrets = Vec::new();
        let mut messages = Vec::new();
        for (&x, sk) in members.iter().zip(&additive) {
            let (s, m) = relin::round1(params, &crs, sk, x, rng)?;
            secrets.push(s);
            messages.push((x, m));
        }
        let round1 = relay.exchange(&members, ProtocolName::RelinKeyGen, 1, messages)?;
        let agg = relin::aggregate_round1(params, &members, round1)?;
        let messages = secrets
            .into_iter()
            .zip(members.iter().zip(&additive))
            .map(|(s, (&x, sk))| Ok((x, relin::round2(params, s, sk, &agg, x, rng)?)))
            .collect::<Result<Vec<_>>>()?;
        let round2 = relay.exchange(&members, ProtocolName::RelinKeyGen, 2, messages)?;
        let relin_key = relin::relinearization_key(params, &agg, &members, round2)?;
        phases.push(clock.lap("relinearisation key", &relay));

        progress("thresholdisation");
        // Dealer by dealer: each sub-share is sealed, then opened by its
        // recipient and added into the recipient's running sums, so at most
        // one dealer's n sub-shares exist at a time (not n²).
        let mut receivers: BTreeMap<EvaluationPoint, thresholdize::Receiver> = members
            .iter()
            .map(|&m| Ok((m, thresholdize::Receiver::new(params, &committee, m)?)))
            .collect::<Result<_>>()?;
        for (&x, sk) in members.iter().zip(&additive) {
            let messages: Vec<_> = thresholdize::deal(params, &committee, sk, x, rng)?
                .into_iter()
                .map(|sub| (sub.recipient, sub))
                .collect();
            let sealed = relay.seal_many(x, &messages, ProtocolName::Thresholdize, 1, rng)?;
            drop(messages);
            for (to, env) in sealed {
                let sub: thresholdize::SubShare =
                    relay.accept_sealed(to, &env, ProtocolName::Thresholdize, 1)?;
                receivers
                    .get_mut(&to)
                    .ok_or_else(|| LocalError::Other(format!("no receiver for {to}")))?
                    .add(sub)?;
            }
        }
        #[cfg(feature = "insecure-test-params")]
        let oracle = synod_he::oracle::WholeKey::from_shares(params, &additive);
        // Set-up is over: the additive shares are erased (zeroized on drop).
        drop(additive);
        relay.end_round();
        let mut participants = Vec::new();
        for (x, receiver) in receivers {
            let (key_share, mask_share) = receiver.finish()?;
            participants.push(Participant {
                point: x,
                key_share,
                mask_share,
            });
        }
        phases.push(clock.lap("thresholdisation", &relay));

        // Rotation keys are linear in s: the first t members make them from
        // their Lagrange-weighted Shamir shares (DESIGN.md §2), so the other
        // n − t neither compute nor send a share.
        let galois_key = if galois_elements.is_empty() {
            None
        } else {
            progress("rotation keys");
            let makers: Vec<&Participant> = participants.iter().take(t).collect();
            let set = ActiveSet::new(&committee, makers.iter().map(|p| p.point))?;
            let messages = makers
                .iter()
                .map(|p| {
                    let weighted = p.key_share.weighted(params, &set, 0)?;
                    Ok((
                        p.point,
                        galois::galois_key_share(
                            params,
                            &crs,
                            &weighted,
                            galois_elements,
                            p.point,
                            rng,
                        )?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            let shares = relay.exchange(&members, ProtocolName::GaloisKeyGen, 1, messages)?;
            let keys = galois::aggregate_galois_key_rows(
                params,
                &crs,
                set.members(),
                galois_elements,
                shares,
            )?;
            phases.push(clock.lap("rotation keys", &relay));
            Some(keys)
        };

        Ok(Self {
            keys: SessionKeys {
                params: params.clone(),
                committee,
                crs,
                public_key: pk,
                relin_key,
                galois_key,
            },
            participants,
            relay: std::sync::Mutex::new(relay),
            phases,
            #[cfg(feature = "insecure-test-params")]
            oracle,
        })
    }

    /// The session's parameters, committee, common randomness and keys.
    pub fn keys(&self) -> &SessionKeys {
        &self.keys
    }

    /// The simulated participants.
    pub fn participants(&self) -> &[Participant] {
        &self.participants
    }

    /// Party names of `plan`'s circuit mapped to points 1, 2, … in the order
    /// the circuit declares them.
    pub fn owners(plan: &Plan) -> Result<BTreeMap<String, EvaluationPoint>> {
        plan.spec()
            .parties()
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                let point = u32::try_from(i + 1)
                    .map_err(|_| LocalError::Other("too many parties".into()))
                    .and_then(|x| Ok(EvaluationPoint::new(x)?))?;
                Ok((name, point))
            })
            .collect()
    }

    pub(crate) fn relay(&self) -> Result<std::sync::MutexGuard<'_, Relay>> {
        self.relay
            .lock()
            .map_err(|_| LocalError::Other("relay lock poisoned".into()))
    }

    /// Threshold decryption of `ct` by `active`, each adding `flooding`; the
    /// shares travel as signed broadcasts and the combiner verifies them.
    pub fn decrypt<R: RngCore + CryptoRng>(
        &self,
        active: &[EvaluationPoint],
        ct: &Ciphertext,
        flooding: &Flooding,
        rng: &mut R,
    ) -> Result<fhe::bfv::Plaintext> {
        let digested = Digested::new(&self.keys.params, ct)?;
        let (set, shares) = self.decryption_round(active, digested, flooding, rng)?;
        Ok(decrypt::combine(&self.keys.params, digested, &set, shares)?)
    }

    /// The decryption shares of `ct` by `active`, exchanged through the relay.
    fn decryption_round<R: RngCore + CryptoRng>(
        &self,
        active: &[EvaluationPoint],
        ct: Digested<'_>,
        flooding: &Flooding,
        rng: &mut R,
    ) -> Result<(ActiveSet, Vec<decrypt::DecryptionShare>)> {
        decryption_round(
            &self.keys.params,
            &self.keys.committee,
            &self.participants,
            &mut *self.relay()?,
            active,
            ct,
            flooding,
            rng,
        )
    }

    /// Bytes of signed envelopes the relay has carried so far.
    pub fn bytes_relayed(&self) -> Result<u64> {
        Ok(self.relay()?.bytes())
    }

    /// Each column's owner (`owners`: party name → point) encrypts it under
    /// the collective key and uploads the ciphertexts as a signed broadcast;
    /// the evaluator verifies and parses them with the session's parameters.
    pub fn encrypt_inputs<R: RngCore + CryptoRng>(
        &self,
        columns: &BTreeMap<ColumnRef, Vec<i64>>,
        owners: &BTreeMap<String, EvaluationPoint>,
        rng: &mut R,
    ) -> Result<BTreeMap<ColumnRef, Vec<Ciphertext>>> {
        let mut relay = self.relay()?;
        upload_inputs(
            &self.keys.params,
            &self.keys.public_key,
            &self.keys.committee,
            &mut relay,
            columns,
            owners,
            rng,
        )
    }

    /// Threshold-decrypts every aggregate of an evaluation with `active`,
    /// returning centred integers (one vector per aggregate).
    ///
    /// A participant only makes decryption shares for ciphertexts that are
    /// the agreed circuit's output (DESIGN.md §2): before any share, the
    /// ciphertexts presented are hashed again and must give the hash the
    /// participants computed when they evaluated (`outputs.hash`). In one
    /// process every participant's re-evaluation would give the same bytes,
    /// so it is done once.
    pub fn decrypt_outputs<R: RngCore + CryptoRng>(
        &self,
        plan: &Plan,
        outputs: &EvaluatedOutputs,
        active: &[EvaluationPoint],
        rng: &mut R,
    ) -> Result<Vec<Vec<i128>>> {
        decrypt_aggregates(&self.keys.params, plan, outputs, |ct, flooding, readout| {
            let (set, shares) = self.decryption_round(active, ct, flooding, rng)?;
            Ok(decrypt::combine_signed_as(
                &self.keys.params,
                ct,
                &set,
                shares,
                readout,
            )?)
        })
    }
}

/// Each column's owner encrypts it under `pk` and uploads it as a signed
/// broadcast; the evaluator (the committee's first member) verifies each
/// upload, checks that its sender owns the column, and parses the
/// ciphertexts with the session's parameters.
#[allow(clippy::too_many_arguments)]
pub(crate) fn upload_inputs<R: RngCore + CryptoRng>(
    params: &Params,
    pk: &CollectivePublicKey,
    committee: &Committee,
    relay: &mut Relay,
    columns: &BTreeMap<ColumnRef, Vec<i64>>,
    owners: &BTreeMap<String, EvaluationPoint>,
    rng: &mut R,
) -> Result<BTreeMap<ColumnRef, Vec<Ciphertext>>> {
    use synod_he::ring::WireCiphertext;
    let mut uploads = Vec::new();
    for (c, v) in columns {
        let owner = *owners
            .get(&c.party)
            .ok_or_else(|| LocalError::Other(format!("no participant owns {c}")))?;
        let cts = synod_he::encoding::encrypt_signed(params, pk, v, rng)?;
        let wire = cts
            .iter()
            .map(|ct| WireCiphertext::from_ciphertext(params, ct))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        uploads.push((
            c.clone(),
            relay.broadcast(owner, ProtocolName::Input, 1, &(c, wire))?,
        ));
    }
    let evaluator = *committee
        .members()
        .first()
        .ok_or_else(|| LocalError::Other("empty committee".into()))?;
    let mut out = BTreeMap::new();
    for (c, env) in uploads {
        let (claimed, wire): (ColumnRef, Vec<WireCiphertext>) =
            relay.accept(evaluator, &env, ProtocolName::Input, 1)?;
        if claimed != c
            || owners.get(&claimed.party).map(|p| p.get()) != Some(env.context().sender.get())
        {
            return Err(LocalError::Other(format!(
                "{} uploaded a column it does not own ({claimed})",
                env.context().sender
            )));
        }
        let sender = EvaluationPoint::new(env.context().sender.get())?;
        let cts = wire
            .iter()
            .map(|w| w.parse(params, 0, sender, "input ciphertext"))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        out.insert(c, cts);
    }
    relay.end_round();
    Ok(out)
}

/// Decrypts every aggregate of `outputs` with `decrypt_one`, after checking
/// that the ciphertexts are the agreed evaluation's output.
pub(crate) fn decrypt_aggregates(
    params: &Params,
    plan: &Plan,
    outputs: &EvaluatedOutputs,
    mut decrypt_one: impl FnMut(Digested<'_>, &Flooding, Readout) -> Result<Vec<i64>>,
) -> Result<Vec<Vec<i128>>> {
    // Each ciphertext is hashed once: the digests make the hash compared
    // here and bind the shares and their combination.
    let digests = OutputDigests::of(params, &outputs.ciphertexts, &outputs.packs)?;
    if digests.hash() != outputs.hash {
        return Err(LocalError::Other(
            "refusing to decrypt: the ciphertexts are not the agreed evaluation's output".into(),
        ));
    }
    if outputs.packs.len() != plan.packs().len() {
        return Err(LocalError::Other(format!(
            "the outputs have {} packs, the plan {}",
            outputs.packs.len(),
            plan.packs().len()
        )));
    }
    let mut all: Vec<Option<Vec<i128>>> = vec![None; plan.aggregates().len()];
    // The one-value aggregates, packed into few ciphertexts by the
    // evaluation: one decryption per pack.
    for ((pack, ct), digest) in plan.packs().iter().zip(&outputs.packs).zip(&digests.packs) {
        let ct = Digested::with_digest(ct, *digest);
        let values = decrypt_one(ct, &pack.flooding, Readout::Coefficients)?;
        for (k, &i) in pack.aggregates.iter().enumerate() {
            let v = pack
                .coefficient(k)
                .and_then(|c| values.get(c))
                .ok_or_else(|| {
                    LocalError::Other(format!("no coefficient for member {k} of a pack"))
                })?;
            if let Some(slot) = all.get_mut(i) {
                *slot = Some(vec![i128::from(*v)]);
            }
        }
    }
    plan.aggregates()
        .iter()
        .zip(&outputs.ciphertexts)
        .zip(&digests.aggregates)
        .zip(all)
        .map(|(((agg, cts), digests), packed)| match packed {
            Some(values) => Ok(values),
            None => {
                let mut values = Vec::new();
                for (ct, digest) in cts.iter().zip(digests) {
                    let ct = Digested::with_digest(ct, *digest);
                    values.extend(
                        decrypt_one(ct, &agg.flooding, Readout::Slots)?
                            .into_iter()
                            .map(i128::from),
                    );
                }
                Ok(values)
            }
        })
        .collect()
}

/// Threshold decryption by `active` members of `committee`, through `relay`,
/// straight to signed slot values (`decrypt::combine_signed`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn threshold_decrypt<R: RngCore + CryptoRng>(
    params: &Params,
    committee: &Committee,
    participants: &[Participant],
    relay: &mut Relay,
    active: &[EvaluationPoint],
    ct: &Ciphertext,
    flooding: &Flooding,
    rng: &mut R,
) -> Result<Vec<i64>> {
    let ct = Digested::new(params, ct)?;
    let (set, shares) = decryption_round(
        params,
        committee,
        participants,
        relay,
        active,
        ct,
        flooding,
        rng,
    )?;
    Ok(decrypt::combine_signed_as(
        params,
        ct,
        &set,
        shares,
        Readout::Slots,
    )?)
}

/// The active members' decryption shares of `ct`, exchanged as signed
/// broadcasts and verified by the others.
#[allow(clippy::too_many_arguments)]
fn decryption_round<R: RngCore + CryptoRng>(
    params: &Params,
    committee: &Committee,
    participants: &[Participant],
    relay: &mut Relay,
    active: &[EvaluationPoint],
    ct: Digested<'_>,
    flooding: &Flooding,
    rng: &mut R,
) -> Result<(ActiveSet, Vec<decrypt::DecryptionShare>)> {
    let set = ActiveSet::new(committee, active.iter().copied())?;
    let mut messages = Vec::new();
    for &x in set.members() {
        let p = participants
            .iter()
            .find(|p| p.point == x)
            .ok_or_else(|| LocalError::Other(format!("{x} is not a participant")))?;
        let share = decrypt::decryption_share(params, &p.key_share, &set, ct, flooding, rng)?;
        messages.push((x, share));
    }
    let shares = relay.exchange(set.members(), ProtocolName::Decrypt, 1, messages)?;
    Ok((set, shares))
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}
