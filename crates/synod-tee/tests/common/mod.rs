//! What the integration tests of synod-tee share: the session set-up they all use, message
//! contexts, key generation, thresholdisation and a threshold decryption through enclaves, and
//! (feature `insecure-sim`) simulated enclaves served on threads of the test binary, (feature
//! `hsm`) a SoftHSM2 token for this process.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use synod_he::flooding::Flooding;
use synod_he::keygen::CollectivePublicKey;
use synod_he::shamir::ActiveSet;
use synod_he::{Committee, EvaluationPoint, ParameterSet, Params};
use synod_proto::{
    Epoch, MessageContext, ParticipantId, ProtocolName, Recipient, Round, SealedPayload,
    SequenceNumber, SessionId, TransportPublicKey,
};
use synod_tee::enclave::{ciphertext_bytes, IncomingSubShare, SealedRecipient, SessionSetup};
use synod_tee::Enclave;

/// The parameter set of every test session, and its plaintext modulus bits.
pub const PARAMETER_SET: ParameterSet = ParameterSet::InsecureTestN2048;
/// Bits of the plaintext modulus of every test session.
pub const PLAINTEXT_BITS: u32 = 20;

pub fn params() -> Params {
    Params::new(PARAMETER_SET, PLAINTEXT_BITS).unwrap()
}

/// The evaluation points `xs`.
pub fn points(xs: impl IntoIterator<Item = u32>) -> Vec<EvaluationPoint> {
    xs.into_iter()
        .map(|x| EvaluationPoint::new(x).unwrap())
        .collect()
}

/// The set-up of `me` in `committee` for `session`.
pub fn setup(session: SessionId, me: EvaluationPoint, committee: &Committee) -> SessionSetup {
    SessionSetup {
        session,
        parameter_set: PARAMETER_SET,
        plaintext_bits: PLAINTEXT_BITS,
        relin_digit_primes: 1,
        rotation_digit_primes: 1,
        me,
        committee: committee.clone(),
    }
}

/// The context of round 1 of `protocol` at epoch 0, from `from` to `to` (sequence number `to`).
pub fn context(
    session: SessionId,
    protocol: ProtocolName,
    from: EvaluationPoint,
    to: EvaluationPoint,
) -> MessageContext {
    MessageContext {
        session,
        epoch: Epoch(0),
        protocol,
        round: Round(1),
        sender: ParticipantId::try_from(from.get()).unwrap(),
        recipient: Recipient::Participant(ParticipantId::try_from(to.get()).unwrap()),
        sequence: SequenceNumber(u64::from(to.get())),
    }
}

/// Thresholdisation dealing: `deal(i, recipients)` deals the sub-shares of `points[i]` to every
/// point, each sealed to that point's key in `keys`. Returns what each point receives, by point.
pub fn deal_thresholdization(
    session: SessionId,
    points: &[EvaluationPoint],
    keys: &[TransportPublicKey],
    mut deal: impl FnMut(usize, &[SealedRecipient]) -> Vec<(EvaluationPoint, SealedPayload)>,
) -> Vec<Vec<IncomingSubShare>> {
    let ctx = |from, to| context(session, ProtocolName::Thresholdize, from, to);
    let mut inbox: Vec<Vec<IncomingSubShare>> = vec![Vec::new(); points.len()];
    for (i, &from) in points.iter().enumerate() {
        let to: Vec<SealedRecipient> = points
            .iter()
            .zip(keys)
            .map(|(&p, k)| SealedRecipient {
                point: p,
                transport_key: *k,
                context: ctx(from, p),
            })
            .collect();
        for (p, sealed) in deal(i, &to) {
            let j = points.iter().position(|&q| q == p).unwrap();
            inbox[j].push(IncomingSubShare {
                context: ctx(from, p),
                sealed,
            });
        }
    }
    inbox
}

/// Key generation through `enclaves` (one per point of `points`, all of `committee`): the
/// collective public key.
pub fn generate_keys<E: Enclave>(
    enclaves: &mut [E],
    points: &[EvaluationPoint],
    committee: &Committee,
    session: SessionId,
) -> CollectivePublicKey {
    let params = params();
    let crs = synod_he::crp::CommonRandomness::new(&params, session.0);
    let pk_shares: Vec<_> = enclaves
        .iter_mut()
        .zip(points)
        .map(|(e, &me)| {
            e.generate_key_share(&setup(session, me, committee))
                .unwrap()
        })
        .collect();
    synod_he::keygen::aggregate_public_key(&params, &crs, points, pk_shares).unwrap()
}

/// Thresholdisation through `enclaves` (one per point of `points`), each dealing to the
/// transport keys the others report.
pub fn thresholdize<E: Enclave>(
    enclaves: &mut [E],
    points: &[EvaluationPoint],
    session: SessionId,
) {
    let keys: Vec<_> = enclaves
        .iter_mut()
        .map(|e| e.transport_key().unwrap())
        .collect();
    let inbox = deal_thresholdization(session, points, &keys, |i, to| {
        enclaves[i].deal_thresholdization(to).unwrap()
    });
    for (e, incoming) in enclaves.iter_mut().zip(inbox) {
        e.receive_thresholdization(incoming).unwrap();
    }
}

/// Encrypts `values` under `pk` and asserts that the enclaves of the points in `active` (in that
/// order; `enclaves[i]` holds the share of `points[i]`) decrypt them.
pub fn assert_decrypts<E: Enclave>(
    pk: &CollectivePublicKey,
    committee: &Committee,
    enclaves: &mut [E],
    points: &[EvaluationPoint],
    active: &[EvaluationPoint],
    values: &[i64],
) {
    let params = params();
    let ct = synod_he::encoding::encrypt_signed(&params, pk, values, &mut rand::rng())
        .unwrap()
        .remove(0);
    let set = ActiveSet::new(committee, active.iter().copied()).unwrap();
    let flooding = Flooding::new(&params, 0, 20.0, 16, enclaves.len()).unwrap();
    let bytes = ciphertext_bytes(&params, &ct).unwrap();
    let shares: Vec<_> = active
        .iter()
        .map(|a| {
            let i = points.iter().position(|p| p == a).unwrap();
            enclaves[i]
                .decryption_share(&set, &bytes, &flooding)
                .unwrap()
        })
        .collect();
    let pt = synod_he::decrypt::combine(&params, &ct, &set, shares).unwrap();
    let decoded = synod_he::encoding::decode_signed(&params, &pt).unwrap();
    assert_eq!(&decoded[..values.len()], values);
}

/// Simulated enclaves served on threads of the test binary.
#[cfg(feature = "insecure-sim")]
pub mod sim {
    use std::path::{Path, PathBuf};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use synod_tee::sim::{serve_enclave, SimConfig};

    /// A simulated enclave whose platform lives in `dir`, with no state directory and no HSM.
    pub fn config(dir: &Path) -> SimConfig {
        SimConfig {
            insecure_no_hardware_protection: true,
            platform_dir: dir.join("platform"),
            svn: 1,
            allowed_uid: None,
            state_dir: None,
            hsm: None,
        }
    }

    /// Serves `config` on a thread of this binary at `dir/name.sock` until a client shuts it
    /// down; returns the socket once it listens.
    pub fn start(
        dir: &Path,
        name: &str,
        config: SimConfig,
    ) -> (PathBuf, JoinHandle<synod_tee::Result<()>>) {
        let socket = dir.join(format!("{name}.sock"));
        let s = socket.clone();
        let handle = std::thread::spawn(move || serve_enclave(&s, &config));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            assert!(!handle.is_finished(), "the enclave exited before listening");
            assert!(Instant::now() < deadline, "enclave socket did not appear");
            std::thread::sleep(Duration::from_millis(10));
        }
        (socket, handle)
    }
}

/// A SoftHSM2 token for the PKCS#11 code of this process.
#[cfg(feature = "hsm")]
pub mod softhsm {
    use std::path::PathBuf;

    use synod_tee::hsm::test_token::{self, TestToken};

    /// A token in a temporary directory, which this process's PKCS#11 sessions find.
    pub struct ProcessToken {
        /// The SoftHSM2 module.
        pub module: PathBuf,
        /// The token.
        pub token: TestToken,
        /// The token's directory (removed on drop); tests may keep other files in it.
        pub dir: tempfile::TempDir,
    }

    /// Initialises a token labelled `label` and points `SOFTHSM2_CONF` of this process at it.
    /// Call it only from a test binary that runs this one test: no other thread may read the
    /// environment meanwhile. `None` when the test described by `test` must not run (see
    /// [`test_token::module_or_skip`]).
    #[track_caller]
    pub fn process_token(test: &str, label: &str) -> Option<ProcessToken> {
        let module = test_token::module_or_skip(test)?;
        let dir = tempfile::tempdir().unwrap();
        let token = TestToken::init(dir.path(), label).unwrap();
        std::env::set_var("SOFTHSM2_CONF", &token.conf);
        Some(ProcessToken { module, token, dir })
    }
}
