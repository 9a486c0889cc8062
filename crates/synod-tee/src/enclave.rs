//! The enclave boundary: the [`Enclave`] trait and [`KeyVault`], the key operations every backend
//! runs inside its protected memory.
//!
//! Every operation that touches key material is a method here, so key material is born inside
//! the enclave and leaves it only as public shares (public-key, relinearisation, decryption and
//! key-switch shares, all of which reveal nothing about the secret by the protocols' design) or
//! HPKE-sealed to a peer's attested transport key. The trait is object-safe and synchronous, so
//! the same boundary serves an in-process backend, the simulated enclave process
//! (`sim`, feature `insecure-sim`) and a later network daemon.

use std::fmt;

use fhe_traits::{DeserializeParametrized as _, Serialize as _};
use serde::{Deserialize, Serialize};
use synod_he::crp::CommonRandomness;
use synod_he::decrypt::DecryptionShare;
use synod_he::flooding::Flooding;
use synod_he::galois::GaloisKeyShare;
use synod_he::keygen::PublicKeyShare;
use synod_he::keyswitch::{KeySwitchShare, RecipientKey};
use synod_he::relin::{Round1Secret, Round1Share, Round2Share};
use synod_he::secret::{AdditiveKeyShare, KeyShare, MaskShare};
use synod_he::shamir::ActiveSet;
use synod_he::thresholdize::SubShare;
use synod_he::{Ciphertext, Committee, EvaluationPoint, ParameterSet, Params, PublicKey};
use synod_proto::{MessageContext, SealedPayload, SessionId, TransportKey, TransportPublicKey};

use crate::claims::EnclaveKind;
use crate::error::{Error, Result};
use crate::report_data::ReportData;
use crate::seal::{KeyId, SealedBlob};

/// Attestation evidence, as an enclave produces it and a verifier consumes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Evidence {
    /// An Intel DCAP quote (SGX or TDX) with its collateral (the JSON of `dcap-qvl`'s
    /// `QuoteCollateralV3`), fetched by the caller beforehand.
    Dcap {
        /// The raw quote.
        quote: Vec<u8>,
        /// The collateral JSON.
        collateral: Vec<u8>,
    },
    /// An AMD SEV-SNP attestation report (1184 bytes) with the chip's VCEK certificate (DER).
    SevSnp {
        /// The raw report.
        report: Vec<u8>,
        /// The VCEK, DER.
        vcek: Vec<u8>,
    },
    /// A report of synod's simulated enclave: **no hardware protection**.
    InsecureSimulated(crate::verify::sim::SimReport),
}

/// What a session's key operations need to know, given to the enclave once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSetup {
    /// The session (seeds the common random polynomials).
    pub session: SessionId,
    /// The parameter set.
    pub parameter_set: ParameterSet,
    /// Bits of the plaintext modulus `p`.
    pub plaintext_bits: u32,
    /// This participant's permanent evaluation point.
    pub me: EvaluationPoint,
    /// The committee and threshold.
    pub committee: Committee,
}

/// A peer to deal a thresholdisation sub-share to: its point, its attested transport key and the
/// message context the sealed sub-share is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedRecipient {
    /// The peer's evaluation point.
    pub point: EvaluationPoint,
    /// The transport key the caller verified in the peer's evidence.
    pub transport_key: TransportPublicKey,
    /// The context (HPKE associated data).
    pub context: MessageContext,
}

/// A sealed sub-share as it arrives from a peer, with the context it was sealed under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingSubShare {
    /// The context it was sealed for.
    pub context: MessageContext,
    /// The sealed sub-share.
    pub sealed: SealedPayload,
}

/// The enclave boundary.
pub trait Enclave {
    /// The backend's kind.
    fn kind(&self) -> EnclaveKind;
    /// Whether hardware protects this enclave's memory. `false` for the simulated backend, always.
    fn hardware_protected(&self) -> bool;
    /// The enclave's transport public key: peers seal sub-shares to it.
    fn transport_key(&mut self) -> Result<TransportPublicKey>;
    /// Evidence binding `report_data` (see [`crate::report_data`]).
    fn attest(&mut self, report_data: &ReportData) -> Result<Evidence>;
    /// Seals `plaintext` under `key_id` to this enclave's measurement and SVN.
    fn seal(&mut self, key_id: &KeyId, plaintext: &[u8]) -> Result<SealedBlob>;
    /// Unseals a blob sealed by this enclave (or an older SVN of it).
    fn unseal(&mut self, blob: &SealedBlob) -> Result<(KeyId, Vec<u8>)>;

    /// Draws the additive key share inside the enclave and returns its public-key share.
    fn generate_key_share(&mut self, setup: &SessionSetup) -> Result<PublicKeyShare>;
    /// Relinearisation-key round 1.
    fn relin_round1(&mut self) -> Result<Round1Share>;
    /// Rotation (Galois) key shares for `elements`, from the additive share.
    fn galois_key_share(&mut self, _elements: &[u32]) -> Result<GaloisKeyShare> {
        Err(Error::Unsupported(
            "rotation keys: not implemented by this backend",
        ))
    }
    /// Relinearisation-key round 2, from every participant's round-1 share.
    fn relin_round2(&mut self, round1: Vec<Round1Share>) -> Result<Round2Share>;
    /// Deals the additive share (and a mask) to every committee member, each sub-share sealed
    /// with HPKE to that member's transport key. The caller must have verified each key's
    /// evidence against its policy first.
    fn deal_thresholdization(
        &mut self,
        recipients: &[SealedRecipient],
    ) -> Result<Vec<(EvaluationPoint, SealedPayload)>>;
    /// Opens the sealed sub-shares addressed to this enclave and forms its Shamir key share.
    fn receive_thresholdization(&mut self, incoming: Vec<IncomingSubShare>) -> Result<()>;
    /// A flooded decryption share of `ciphertext` (fhe.rs bytes) for the active set.
    fn decryption_share(
        &mut self,
        set: &ActiveSet,
        ciphertext: &[u8],
        flooding: &Flooding,
    ) -> Result<DecryptionShare>;
    /// A flooded key-switch share of `ciphertext` to `recipient` (fhe.rs public-key bytes).
    fn key_switch_share(
        &mut self,
        set: &ActiveSet,
        ciphertext: &[u8],
        recipient: &[u8],
        flooding: &Flooding,
    ) -> Result<KeySwitchShare>;
    /// Deals this enclave's Shamir share to a new committee (resharing).
    fn deal_reshare(
        &mut self,
        _recipients: &[SealedRecipient],
    ) -> Result<Vec<(EvaluationPoint, SealedPayload)>> {
        Err(Error::Unsupported(
            "resharing: synod-he has no public resharing API yet",
        ))
    }
    /// Receives reshared sub-shares and forms the new Shamir share.
    fn receive_reshare(&mut self, _incoming: Vec<IncomingSubShare>) -> Result<()> {
        Err(Error::Unsupported(
            "resharing: synod-he has no public resharing API yet",
        ))
    }
}

/// The key material of one participant in one session, and the operations on it. Backends keep
/// it inside their protected memory; it is never serialised.
pub struct KeyVault {
    transport: TransportKey,
    session: Option<SessionKeys>,
}

struct SessionKeys {
    setup: SessionSetup,
    params: Params,
    crs: CommonRandomness,
    additive: AdditiveKeyShare,
    relin: Option<Round1Secret>,
    shamir: Option<(KeyShare, MaskShare)>,
}

impl fmt::Debug for KeyVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVault")
            .field("transport", self.transport.public_key())
            .field("session", &self.session.as_ref().map(|s| s.setup.session))
            .field("keys", &"[redacted]")
            .finish()
    }
}

impl Default for KeyVault {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyVault {
    /// A vault with a fresh transport key, born here.
    pub fn new() -> Self {
        Self {
            transport: TransportKey::generate(&mut rand::rng()),
            session: None,
        }
    }

    /// The transport public key.
    pub fn transport_key(&self) -> TransportPublicKey {
        *self.transport.public_key()
    }

    fn session(&mut self) -> Result<&mut SessionKeys> {
        self.session
            .as_mut()
            .ok_or_else(|| Error::State("no key share yet: call generate_key_share first".into()))
    }

    fn shamir(&mut self) -> Result<(&Params, &KeyShare)> {
        let s = self.session()?;
        match &s.shamir {
            Some((key, _)) => Ok((&s.params, key)),
            None => Err(Error::State(
                "no Shamir share yet: thresholdisation has not completed".into(),
            )),
        }
    }

    /// See [`Enclave::generate_key_share`].
    pub fn generate_key_share(&mut self, setup: &SessionSetup) -> Result<PublicKeyShare> {
        if !setup.committee.contains(setup.me) {
            return Err(Error::State(format!(
                "{} is not a member of the committee",
                setup.me
            )));
        }
        let params = Params::new(setup.parameter_set, setup.plaintext_bits)?;
        let crs = CommonRandomness::new(&params, setup.session.0);
        let mut rng = rand::rng();
        let additive = AdditiveKeyShare::generate(&params, &mut rng)?;
        let share =
            synod_he::keygen::public_key_share(&params, &crs, &additive, setup.me, &mut rng)?;
        self.session = Some(SessionKeys {
            setup: setup.clone(),
            params,
            crs,
            additive,
            relin: None,
            shamir: None,
        });
        Ok(share)
    }

    /// See [`Enclave::relin_round1`].
    pub fn relin_round1(&mut self) -> Result<Round1Share> {
        let s = self.session()?;
        let (secret, share) =
            synod_he::relin::round1(&s.params, &s.crs, &s.additive, s.setup.me, &mut rand::rng())?;
        s.relin = Some(secret);
        Ok(share)
    }

    /// See [`Enclave::galois_key_share`].
    pub fn galois_key_share(&mut self, elements: &[u32]) -> Result<GaloisKeyShare> {
        let s = self.session()?;
        Ok(synod_he::galois::galois_key_share(
            &s.params,
            &s.crs,
            &s.additive,
            elements,
            s.setup.me,
            &mut rand::rng(),
        )?)
    }

    /// See [`Enclave::relin_round2`].
    pub fn relin_round2(&mut self, round1: Vec<Round1Share>) -> Result<Round2Share> {
        let s = self.session()?;
        let secret = s
            .relin
            .take()
            .ok_or_else(|| Error::State("relinearisation round 1 has not run".into()))?;
        let aggregate =
            synod_he::relin::aggregate_round1(&s.params, s.setup.committee.members(), round1)?;
        Ok(synod_he::relin::round2(
            &s.params,
            secret,
            &s.additive,
            &aggregate,
            s.setup.me,
            &mut rand::rng(),
        )?)
    }

    /// See [`Enclave::deal_thresholdization`].
    pub fn deal_thresholdization(
        &mut self,
        recipients: &[SealedRecipient],
    ) -> Result<Vec<(EvaluationPoint, SealedPayload)>> {
        let s = self.session()?;
        let mut rng = rand::rng();
        let subshares = synod_he::thresholdize::deal(
            &s.params,
            &s.setup.committee,
            &s.additive,
            s.setup.me,
            &mut rng,
        )?;
        let mut out = Vec::with_capacity(subshares.len());
        for sub in subshares {
            let to = recipients
                .iter()
                .find(|r| r.point == sub.recipient)
                .ok_or_else(|| {
                    Error::State(format!("no attested transport key for {}", sub.recipient))
                })?;
            let plain = zeroize::Zeroizing::new(
                postcard::to_stdvec(&sub).map_err(|e| Error::Protocol(e.to_string()))?,
            );
            let sealed = synod_proto::seal(&to.context, &to.transport_key, &plain, &mut rng)?;
            out.push((sub.recipient, sealed));
        }
        Ok(out)
    }

    /// See [`Enclave::receive_thresholdization`].
    pub fn receive_thresholdization(&mut self, incoming: Vec<IncomingSubShare>) -> Result<()> {
        let mut subshares = Vec::with_capacity(incoming.len());
        for msg in &incoming {
            let plain = synod_proto::open(&msg.context, &self.transport, &msg.sealed)?;
            let sub: SubShare =
                postcard::from_bytes(&plain).map_err(|e| Error::Protocol(e.to_string()))?;
            if sub.sender.get() != msg.context.sender.get() {
                return Err(Error::Protocol(format!(
                    "sub-share from {} arrived in a message from participant {}",
                    sub.sender,
                    msg.context.sender.get()
                )));
            }
            subshares.push(sub);
        }
        let s = self.session()?;
        let shares =
            synod_he::thresholdize::receive(&s.params, &s.setup.committee, s.setup.me, subshares)?;
        s.shamir = Some(shares);
        Ok(())
    }

    /// See [`Enclave::decryption_share`].
    pub fn decryption_share(
        &mut self,
        set: &ActiveSet,
        ciphertext: &[u8],
        flooding: &Flooding,
    ) -> Result<DecryptionShare> {
        let (params, key) = self.shamir()?;
        let ct = Ciphertext::from_bytes(ciphertext, params.bfv())
            .map_err(|e| Error::Protocol(format!("ciphertext: {e}")))?;
        Ok(synod_he::decrypt::decryption_share(
            params,
            key,
            set,
            &ct,
            flooding,
            &mut rand::rng(),
        )?)
    }

    /// See [`Enclave::key_switch_share`].
    pub fn key_switch_share(
        &mut self,
        set: &ActiveSet,
        ciphertext: &[u8],
        recipient: &[u8],
        flooding: &Flooding,
    ) -> Result<KeySwitchShare> {
        let (params, key) = self.shamir()?;
        let ct = Ciphertext::from_bytes(ciphertext, params.bfv())
            .map_err(|e| Error::Protocol(format!("ciphertext: {e}")))?;
        let pk = PublicKey::from_bytes(recipient, params.bfv())
            .map_err(|e| Error::Protocol(format!("recipient key: {e}")))?;
        let rk = RecipientKey::new(params, &pk)?;
        Ok(synod_he::keyswitch::key_switch_share(
            params,
            key,
            set,
            &ct,
            &rk,
            flooding,
            &mut rand::rng(),
        )?)
    }
}

/// Serialises an fhe.rs ciphertext for [`Enclave::decryption_share`].
pub fn ciphertext_bytes(ct: &Ciphertext) -> Vec<u8> {
    ct.to_bytes()
}
