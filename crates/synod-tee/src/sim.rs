//! The simulated enclave: **no hardware protection**. A separate process (the CLI's
//! `synod enclave`, through [`serve_enclave`]) that keeps one participant's key material in its
//! own memory and answers a narrow, versioned, length-prefixed request/response API over a Unix
//! socket created with mode 0600; each connection's peer credentials (`SO_PEERCRED`) must be
//! the enclave's own user (or the configured one).
//!
//! What it gives: process isolation, key material born inside and never returned, sub-shares
//! arriving HPKE-sealed to a transport key that its report binds, and sealing bound to its
//! measurement (SHA-384 of its binary and configuration). What it does not give: anything against
//! an attacker with root, with the platform key file, or with the same user id — the host can read
//! its memory. Every report it issues and every log line it prints says `hardware_protected:
//! false`, its reports are signed by a simulated platform key that no real verifier accepts, and
//! [`serve_enclave`] refuses to start unless [`SimConfig::insecure_no_hardware_protection`] is set.
//!
//! With [`SimConfig::state_dir`] the enclave seals its key share (after thresholdisation, after
//! each resharing response and at each resharing commit) to [`SEALED_SHARE_FILE`] in that
//! directory, written atomically, and a restarted enclave with the same measurement, platform
//! and sealing root recovers it; a blob it cannot unseal stops it from starting. With
//! [`SimConfig::hsm`] (feature `hsm`) it seals under data keys wrapped by a PKCS#11 token instead
//! of its platform seed. Nothing protects the state directory against rollback to an older copy.
//!
//! Frame: a 4-byte big-endian length (at most [`MAX_FRAME`]) and that many bytes of postcard;
//! every request and response carries [`API_VERSION`].

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use hkdf::Hkdf;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256, Sha384};
use synod_he::decrypt::DecryptionShare;
use synod_he::flooding::Flooding;
use synod_he::galois::GaloisKeyShare;
use synod_he::keygen::PublicKeyShare;
use synod_he::keyswitch::KeySwitchShare;
use synod_he::relin::{Round1Share, Round2Share};
use synod_he::shamir::ActiveSet;
use synod_he::EvaluationPoint;
use synod_proto::{SealedPayload, TransportPublicKey};
use zeroize::Zeroizing;

use crate::claims::EnclaveKind;
use synod_he::reshare::{self, Commitments, Complaint, Opening, Proposal, Verdict};

use crate::enclave::{
    Enclave, Evidence, IncomingSubShare, KeyVault, ReshareDealt, ReshareReceive, SealedRecipient,
    SessionSetup,
};
use crate::error::{Error, Result};
use crate::report_data::ReportData;
use crate::seal::{KeyId, PlatformSecret, SealedBlob, Sealer, SealingRoot};
use crate::verify::sim::{SimReport, SimReportBody, SIM_REPORT_VERSION};

/// The API version spoken on the socket.
pub const API_VERSION: u16 = 1;
/// The largest frame accepted (64 MiB: a few ciphertexts at N = 16384).
pub const MAX_FRAME: u32 = 64 << 20;
const PLATFORM_SEED_FILE: &str = "insecure-sim-platform.seed";
const MEASUREMENT_TAG: &[u8] = b"synod/tee/sim-measurement/v1";

fn log(msg: &str) {
    eprintln!("synod-enclave [insecure-sim, hardware_protected: false] {msg}");
}

/// Configuration of the simulated enclave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimConfig {
    /// Must be `true`: the operator acknowledges that this enclave protects nothing.
    pub insecure_no_hardware_protection: bool,
    /// Where the simulated platform seed lives (created with mode 0600 if missing).
    pub platform_dir: PathBuf,
    /// The enclave's security version.
    pub svn: u32,
    /// The user id allowed to connect; `None` means the enclave's own user.
    pub allowed_uid: Option<u32>,
    /// Where the enclave keeps its key share, sealed (created with mode 0700 if missing). A
    /// restarted enclave with the same measurement, platform and sealing root recovers it;
    /// `None` keeps the share in memory only.
    pub state_dir: Option<PathBuf>,
    /// Seal under fresh data keys wrapped by a non-extractable key in a PKCS#11 token instead of
    /// the platform secret (needs the `hsm` feature).
    pub hsm: Option<SimHsm>,
}

/// The PKCS#11 token whose wrapping key the simulated enclave seals under. The PIN is read from
/// `pin_file` when the enclave starts; it is never part of the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimHsm {
    /// The PKCS#11 module.
    pub module: PathBuf,
    /// The token's label (tokens are selected by label, never by slot id).
    pub token_label: String,
    /// A file whose first line is the user PIN (readable only by the enclave's user).
    pub pin_file: PathBuf,
    /// The label of the wrapping key in the token (created if missing).
    pub key_label: String,
}

/// The label of the wrapping key the simulated enclave uses unless configured otherwise.
pub const DEFAULT_HSM_KEY_LABEL: &str = "synod-enclave-wrapping-key";
/// The file in [`SimConfig::state_dir`] that holds the sealed key share.
pub const SEALED_SHARE_FILE: &str = "key-share.sealed";
const SEALED_SHARE_KEY_ID: &str = "synod/sim/key-share/v1";

/// The simulated platform: a seed file from which the sealing secret and the report-signing key
/// are derived. Anyone who can read the file can forge reports and unseal blobs.
struct SimPlatform {
    secret: PlatformSecret,
    signing: SigningKey,
}

impl SimPlatform {
    fn open(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir)?;
        let path = dir.join(PLATFORM_SEED_FILE);
        let seed: Zeroizing<Vec<u8>> = if path.exists() {
            Zeroizing::new(fs::read(&path)?)
        } else {
            let mut seed = Zeroizing::new(vec![0u8; 32]);
            rand::rng().fill_bytes(&mut seed);
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
            f.write_all(&seed)?;
            seed
        };
        if seed.len() != 32 {
            return Err(Error::Protocol(format!(
                "{} is not 32 bytes",
                path.display()
            )));
        }
        let hk = Hkdf::<Sha256>::new(Some(b"synod/tee/sim-platform/v1"), &seed);
        let mut sealing = Zeroizing::new([0u8; 32]);
        let mut signing = Zeroizing::new([0u8; 32]);
        hk.expand(b"sealing", sealing.as_mut())
            .and_then(|()| hk.expand(b"report signing", signing.as_mut()))
            .map_err(|_| Error::Protocol("HKDF".into()))?;
        Ok(Self {
            secret: PlatformSecret::new(*sealing),
            signing: SigningKey::from_bytes(&signing),
        })
    }
}

/// SHA-384 of the running binary and the configuration that affects its behaviour.
pub fn measurement(config: &SimConfig) -> Result<Vec<u8>> {
    let exe = fs::read(std::env::current_exe()?)?;
    let mut h = Sha384::new();
    h.update(MEASUREMENT_TAG);
    h.update((exe.len() as u64).to_be_bytes());
    h.update(&exe);
    h.update(config.svn.to_be_bytes());
    h.update([u8::from(config.insecure_no_hardware_protection)]);
    Ok(h.finalize().to_vec())
}

/// The simulated enclave's state, as it lives inside the enclave process.
pub struct SimulatedEnclave {
    vault: KeyVault,
    sealer: Sealer,
    signing: SigningKey,
    measurement: Vec<u8>,
    svn: u32,
    state_dir: Option<PathBuf>,
}

/// The sealing root a configuration asks for.
fn sealing_root(config: &SimConfig, platform: PlatformSecret) -> Result<Box<dyn SealingRoot>> {
    match &config.hsm {
        None => Ok(Box::new(platform)),
        #[cfg(feature = "hsm")]
        Some(h) => {
            let hsm = crate::hsm::HsmConfig::with_pin_file(
                &h.module,
                h.token_label.as_str(),
                &h.pin_file,
                h.key_label.as_str(),
            )?;
            let wrapper = crate::hsm::HsmKeyWrapper::open(&hsm)?;
            if wrapper.wrapping_key_extractable()? {
                return Err(Error::Hsm(format!(
                    "the wrapping key {:?} in token {:?} is extractable: refusing it",
                    h.key_label, h.token_label
                )));
            }
            Ok(Box::new(wrapper))
        }
        #[cfg(not(feature = "hsm"))]
        Some(_) => Err(Error::Unsupported(
            "an HSM sealing root needs synod-tee's `hsm` feature",
        )),
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename
/// over `path`, fsync of the directory. A crash leaves either the old file or the new one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::Protocol(format!("{} has no directory", path.display())))?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let _ = fs::remove_file(&tmp);
    let result = (|| -> Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

impl std::fmt::Debug for SimulatedEnclave {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedEnclave")
            .field("hardware_protected", &false)
            .field("measurement", &hex::encode(&self.measurement))
            .field("svn", &self.svn)
            .finish_non_exhaustive()
    }
}

impl SimulatedEnclave {
    /// Starts the simulated enclave (in this process). Refuses unless the configuration
    /// acknowledges that it gives no hardware protection.
    pub fn new(config: &SimConfig) -> Result<Self> {
        if !config.insecure_no_hardware_protection {
            return Err(Error::Protocol(
                "the simulated enclave gives no hardware protection: set \
                 insecure_no_hardware_protection to run it"
                    .into(),
            ));
        }
        let platform = SimPlatform::open(&config.platform_dir)?;
        let measurement = measurement(config)?;
        let root = sealing_root(config, platform.secret)?;
        let sealer = Sealer::new(root, measurement.clone(), config.svn)?;
        let mut enclave = Self {
            vault: KeyVault::new(),
            sealer,
            signing: platform.signing,
            measurement,
            svn: config.svn,
            state_dir: config.state_dir.clone(),
        };
        enclave.recover()?;
        Ok(enclave)
    }

    /// The sealed key-share file, if this enclave keeps state.
    fn share_path(&self) -> Option<PathBuf> {
        self.state_dir.as_ref().map(|d| d.join(SEALED_SHARE_FILE))
    }

    /// Unseals the key share a previous run left in the state directory, if any.
    fn recover(&mut self) -> Result<()> {
        let Some(dir) = &self.state_dir else {
            return Ok(());
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let Some(path) = self.share_path() else {
            return Ok(());
        };
        if !path.exists() {
            return Ok(());
        }
        let blob = SealedBlob(fs::read(&path)?);
        let unsealed = self.sealer.unseal(&blob).map_err(|e| {
            Error::Seal(format!(
                "cannot recover the key share sealed in {}: {e}",
                path.display()
            ))
        })?;
        let (id, plain) = unsealed;
        if id.as_str() != SEALED_SHARE_KEY_ID {
            return Err(Error::Seal(format!(
                "{} holds a blob sealed as {:?}, not a key share",
                path.display(),
                id.as_str()
            )));
        }
        self.vault.restore(&plain).map_err(|e| {
            Error::Seal(format!(
                "cannot recover the key share sealed in {}: {e}",
                path.display()
            ))
        })?;
        log(&format!(
            "recovered the key share of epoch {} sealed in {}",
            self.vault.epoch().unwrap_or(0),
            path.display()
        ));
        Ok(())
    }

    /// Seals the current key share to the state directory (atomically), or removes the file
    /// when this enclave no longer holds a share.
    fn persist(&mut self) -> Result<()> {
        let Some(path) = self.share_path() else {
            return Ok(());
        };
        match self.vault.sealable_state()? {
            Some(plain) => {
                let id = KeyId::new(SEALED_SHARE_KEY_ID)?;
                let blob = self.sealer.seal(&id, &plain, &mut rand::rng())?;
                write_atomically(&path, &blob.0)?;
            }
            None => {
                if path.exists() {
                    fs::remove_file(&path)?;
                    if let Some(dir) = path.parent() {
                        fs::File::open(dir)?.sync_all()?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl Enclave for SimulatedEnclave {
    fn kind(&self) -> EnclaveKind {
        EnclaveKind::InsecureSimulated
    }
    fn hardware_protected(&self) -> bool {
        false
    }
    fn transport_key(&mut self) -> Result<TransportPublicKey> {
        Ok(self.vault.transport_key())
    }
    fn attest(&mut self, report_data: &ReportData) -> Result<Evidence> {
        let body = SimReportBody {
            version: SIM_REPORT_VERSION,
            hardware_protected: false,
            measurement: self.measurement.clone(),
            svn: self.svn,
            report_data: report_data.as_bytes().to_vec(),
            platform_key: self.signing.verifying_key().to_bytes(),
        };
        Ok(Evidence::InsecureSimulated(SimReport::sign(
            body,
            &self.signing,
        )?))
    }
    fn seal(&mut self, key_id: &KeyId, plaintext: &[u8]) -> Result<SealedBlob> {
        self.sealer.seal(key_id, plaintext, &mut rand::rng())
    }
    fn unseal(&mut self, blob: &SealedBlob) -> Result<(KeyId, Zeroizing<Vec<u8>>)> {
        self.sealer.unseal(blob)
    }
    fn generate_key_share(&mut self, setup: &SessionSetup) -> Result<PublicKeyShare> {
        self.vault.generate_key_share(setup)
    }
    fn relin_round1(&mut self) -> Result<Round1Share> {
        self.vault.relin_round1()
    }
    fn relin_round2(&mut self, round1: Vec<Round1Share>) -> Result<Round2Share> {
        self.vault.relin_round2(round1)
    }
    fn galois_key_share(&mut self, elements: &[u32]) -> Result<GaloisKeyShare> {
        self.vault.galois_key_share(elements)
    }
    fn deal_thresholdization(
        &mut self,
        recipients: &[SealedRecipient],
    ) -> Result<Vec<(EvaluationPoint, SealedPayload)>> {
        self.vault.deal_thresholdization(recipients)
    }
    fn receive_thresholdization(&mut self, incoming: Vec<IncomingSubShare>) -> Result<()> {
        self.vault.receive_thresholdization(incoming)?;
        self.persist()
    }
    fn decryption_share(
        &mut self,
        set: &ActiveSet,
        ciphertext: &[u8],
        flooding: &Flooding,
    ) -> Result<DecryptionShare> {
        self.vault.decryption_share(set, ciphertext, flooding)
    }
    fn join_session(&mut self, setup: &SessionSetup) -> Result<()> {
        self.vault.join_session(setup)
    }
    fn reshare_deal(
        &mut self,
        proposal: &Proposal,
        recipients: &[SealedRecipient],
    ) -> Result<ReshareDealt> {
        self.vault.reshare_deal(proposal, recipients)
    }
    fn reshare_respond(&mut self, commitments: &[Commitments]) -> Result<reshare::Response> {
        let response = self.vault.reshare_respond(commitments)?;
        // The count of responses under this mask is sealed before the response leaves, so a
        // restart does not reset it.
        self.persist()?;
        Ok(response)
    }
    fn reshare_receive(&mut self, round: ReshareReceive) -> Result<Vec<Complaint>> {
        self.vault.reshare_receive(round)
    }
    fn reshare_open(&mut self, complaints: &[Complaint]) -> Result<Vec<Opening>> {
        self.vault.reshare_open(complaints)
    }
    fn reshare_finish(
        &mut self,
        complaints: &[Complaint],
        openings: &[Opening],
    ) -> Result<Verdict> {
        self.vault.reshare_finish(complaints, openings)
    }
    fn reshare_test_decryption_share(
        &mut self,
        set: &ActiveSet,
        ciphertext: &[u8],
        flooding: &Flooding,
    ) -> Result<DecryptionShare> {
        self.vault
            .reshare_test_decryption_share(set, ciphertext, flooding)
    }
    fn reshare_commit(&mut self, new_epoch: u64) -> Result<()> {
        let stays = self.vault.reshare_commit(new_epoch)?;
        // The sealed old share is replaced (or removed) only now that the certificate exists.
        self.persist()?;
        log(&if stays {
            format!("committed the key share of epoch {new_epoch}; the old share is erased")
        } else {
            format!("left the committee at epoch {new_epoch}; the key share is erased")
        });
        Ok(())
    }
    fn reshare_abort(&mut self) -> Result<()> {
        self.vault.reshare_abort()
    }
    fn key_switch_share(
        &mut self,
        set: &ActiveSet,
        ciphertext: &[u8],
        recipient: &[u8],
        flooding: &Flooding,
    ) -> Result<KeySwitchShare> {
        self.vault
            .key_switch_share(set, ciphertext, recipient, flooding)
    }
}

/// A request on the enclave socket.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// Who are you?
    Hello,
    /// The transport public key.
    TransportKey,
    /// Evidence for this report data (64 bytes).
    Attest(Vec<u8>),
    /// Seal these bytes under this key id.
    Seal(String, SecretBytes),
    /// Unseal this blob.
    Unseal(Vec<u8>),
    /// [`Enclave::generate_key_share`].
    GenerateKeyShare(SessionSetup),
    /// [`Enclave::relin_round1`].
    RelinRound1,
    /// [`Enclave::relin_round2`].
    RelinRound2(Vec<Round1Share>),
    /// [`Enclave::deal_thresholdization`].
    DealThresholdization(Vec<SealedRecipient>),
    /// [`Enclave::receive_thresholdization`].
    ReceiveThresholdization(Vec<IncomingSubShare>),
    /// [`Enclave::decryption_share`].
    DecryptionShare(ActiveSet, Vec<u8>, Flooding),
    /// [`Enclave::key_switch_share`].
    KeySwitchShare(ActiveSet, Vec<u8>, Vec<u8>, Flooding),
    /// Stop serving (the enclave erases its keys as it exits).
    Shutdown,
    /// [`Enclave::galois_key_share`] (added after `Shutdown` to keep the earlier tags).
    GaloisKeyShare(Vec<u32>),
    /// [`Enclave::join_session`].
    JoinSession(SessionSetup),
    /// [`Enclave::reshare_deal`].
    ReshareDeal(Proposal, Vec<SealedRecipient>),
    /// [`Enclave::reshare_respond`].
    ReshareRespond(Vec<Commitments>),
    /// [`Enclave::reshare_receive`].
    ReshareReceive(Box<ReshareReceive>),
    /// [`Enclave::reshare_open`].
    ReshareOpen(Vec<Complaint>),
    /// [`Enclave::reshare_finish`].
    ReshareFinish(Vec<Complaint>, Vec<Opening>),
    /// [`Enclave::reshare_test_decryption_share`].
    ReshareTestDecryptionShare(ActiveSet, Vec<u8>, Flooding),
    /// [`Enclave::reshare_commit`].
    ReshareCommit(u64),
    /// [`Enclave::reshare_abort`].
    ReshareAbort,
}

/// A response on the enclave socket.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    /// Answer to [`Request::Hello`].
    Hello {
        /// The enclave kind.
        kind: EnclaveKind,
        /// Always `false` here.
        hardware_protected: bool,
    },
    /// A transport key.
    TransportKey(TransportPublicKey),
    /// Evidence.
    Evidence(Evidence),
    /// A sealed blob.
    Sealed(Vec<u8>),
    /// An unsealed plaintext with its key id.
    Unsealed(String, SecretBytes),
    /// A public-key share.
    PublicKeyShare(PublicKeyShare),
    /// A relinearisation round-1 share.
    RelinRound1(Round1Share),
    /// A relinearisation round-2 share.
    RelinRound2(Round2Share),
    /// Sealed sub-shares.
    Dealt(Vec<(EvaluationPoint, SealedPayload)>),
    /// Done.
    Done,
    /// A decryption share.
    DecryptionShare(DecryptionShare),
    /// A key-switch share.
    KeySwitchShare(KeySwitchShare),
    /// The request failed.
    Error(String),
    /// Rotation-key shares.
    GaloisKeyShare(GaloisKeyShare),
    /// A dealer's resharing commitments and sealed sub-shares.
    ReshareDealt(ReshareDealt),
    /// A dealer's resharing response.
    ReshareResponse(reshare::Response),
    /// A member's complaints.
    Complaints(Vec<Complaint>),
    /// A dealer's openings.
    Openings(Vec<Opening>),
    /// The verdict a member's enclave reached.
    Verdict(Verdict),
}

/// Plaintext bytes crossing the socket (to seal, or unsealed): zeroized on
/// drop and redacted in `Debug` (requests and responses are `Debug`, and an
/// unexpected response is printed into an error).
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// The bytes, moved out (no copy is left behind).
    fn take(&mut self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(std::mem::take(&mut self.0))
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[redacted; {} bytes]", self.0.len())
    }
}

#[derive(Serialize, Deserialize)]
struct Frame<T> {
    version: u16,
    body: T,
}

fn write_frame<T: Serialize>(stream: &mut UnixStream, body: T) -> Result<()> {
    // Frames can carry plaintexts to seal or unsealed: encoded into
    // buffers that are zeroized when outgrown or dropped.
    let bytes = synod_proto::encode_secret(
        &Frame {
            version: API_VERSION,
            body,
        },
        "frame",
    )
    .map_err(|e| Error::Protocol(e.to_string()))?;
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|&l| l <= MAX_FRAME)
        .ok_or_else(|| Error::Protocol("frame too large".into()))?;
    stream.write_all(&len.to_be_bytes())?;
    stream.write_all(&bytes)?;
    stream.flush()?;
    Ok(())
}

/// Reads a frame; `Ok(None)` at a clean end of stream.
fn read_frame<T: for<'de> Deserialize<'de>>(stream: &mut UnixStream) -> Result<Option<T>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME {
        return Err(Error::Protocol(format!(
            "frame of {len} bytes exceeds {MAX_FRAME}"
        )));
    }
    let mut buf = Zeroizing::new(vec![0u8; len as usize]);
    stream.read_exact(&mut buf)?;
    let frame: Frame<T> =
        postcard::from_bytes(&buf).map_err(|e| Error::Protocol(format!("decode: {e}")))?;
    if frame.version != API_VERSION {
        return Err(Error::Protocol(format!(
            "API version {} (this side speaks {API_VERSION})",
            frame.version
        )));
    }
    Ok(Some(frame.body))
}

fn handle(enclave: &mut SimulatedEnclave, request: Request) -> Result<Response> {
    Ok(match request {
        Request::Hello => Response::Hello {
            kind: enclave.kind(),
            hardware_protected: enclave.hardware_protected(),
        },
        Request::TransportKey => Response::TransportKey(enclave.transport_key()?),
        Request::Attest(data) => {
            let data: [u8; 64] = data
                .as_slice()
                .try_into()
                .map_err(|_| Error::Protocol("report data must be 64 bytes".into()))?;
            Response::Evidence(enclave.attest(&ReportData(data))?)
        }
        Request::Seal(id, plaintext) => {
            Response::Sealed(enclave.seal(&KeyId::new(id)?, &plaintext.0)?.0)
        }
        Request::Unseal(blob) => {
            let (id, mut pt) = enclave.unseal(&SealedBlob(blob))?;
            Response::Unsealed(
                id.as_str().to_owned(),
                SecretBytes(std::mem::take(&mut *pt)),
            )
        }
        Request::GenerateKeyShare(setup) => {
            Response::PublicKeyShare(enclave.generate_key_share(&setup)?)
        }
        Request::RelinRound1 => Response::RelinRound1(enclave.relin_round1()?),
        Request::RelinRound2(r1) => Response::RelinRound2(enclave.relin_round2(r1)?),
        Request::DealThresholdization(to) => Response::Dealt(enclave.deal_thresholdization(&to)?),
        Request::ReceiveThresholdization(incoming) => {
            enclave.receive_thresholdization(incoming)?;
            Response::Done
        }
        Request::DecryptionShare(set, ct, flooding) => {
            Response::DecryptionShare(enclave.decryption_share(&set, &ct, &flooding)?)
        }
        Request::KeySwitchShare(set, ct, pk, flooding) => {
            Response::KeySwitchShare(enclave.key_switch_share(&set, &ct, &pk, &flooding)?)
        }
        Request::Shutdown => Response::Done,
        Request::GaloisKeyShare(elements) => {
            Response::GaloisKeyShare(enclave.galois_key_share(&elements)?)
        }
        Request::JoinSession(setup) => {
            enclave.join_session(&setup)?;
            Response::Done
        }
        Request::ReshareDeal(proposal, to) => {
            Response::ReshareDealt(enclave.reshare_deal(&proposal, &to)?)
        }
        Request::ReshareRespond(c) => Response::ReshareResponse(enclave.reshare_respond(&c)?),
        Request::ReshareReceive(round) => Response::Complaints(enclave.reshare_receive(*round)?),
        Request::ReshareOpen(c) => Response::Openings(enclave.reshare_open(&c)?),
        Request::ReshareFinish(c, o) => Response::Verdict(enclave.reshare_finish(&c, &o)?),
        Request::ReshareTestDecryptionShare(set, ct, flooding) => {
            Response::DecryptionShare(enclave.reshare_test_decryption_share(&set, &ct, &flooding)?)
        }
        Request::ReshareCommit(epoch) => {
            enclave.reshare_commit(epoch)?;
            Response::Done
        }
        Request::ReshareAbort => {
            enclave.reshare_abort()?;
            Response::Done
        }
    })
}

/// Checks that the peer is the allowed user.
fn check_peer(stream: &UnixStream, allowed_uid: u32) -> Result<()> {
    let cred = rustix::net::sockopt::socket_peercred(stream)
        .map_err(|e| Error::Protocol(format!("SO_PEERCRED: {e}")))?;
    let uid = cred.uid.as_raw();
    if uid != allowed_uid {
        return Err(Error::Protocol(format!(
            "peer uid {uid} (pid {}) is not the allowed uid {allowed_uid}",
            cred.pid.as_raw_nonzero()
        )));
    }
    Ok(())
}

/// Runs the simulated enclave on a Unix socket at `socket_path` (created with mode 0600 and
/// moved into place only once listening; an existing socket file is replaced) until a client sends [`Request::Shutdown`]. Connections are
/// served one at a time; a connection from another user is refused and logged.
pub fn serve_enclave(socket_path: &Path, config: &SimConfig) -> Result<()> {
    let mut enclave = SimulatedEnclave::new(config)?;
    let allowed_uid = config
        .allowed_uid
        .unwrap_or_else(|| rustix::process::getuid().as_raw());
    // Bound and restricted under a temporary name, then renamed into place:
    // the socket appears only once it is listening and has mode 0600 (no
    // window in which a client is refused or the mode is the umask's).
    let mut tmp_name = socket_path.as_os_str().to_owned();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    if tmp.exists() {
        fs::remove_file(&tmp)?;
    }
    let listener = UnixListener::bind(&tmp)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
    fs::rename(&tmp, socket_path)?;
    log(&format!(
        "listening on {} (mode 0600, uid {allowed_uid}), measurement {}, svn {}, sealing root: \
         {}, key share: {}",
        socket_path.display(),
        hex::encode(&enclave.measurement),
        enclave.svn,
        if config.hsm.is_some() {
            "HSM-wrapped data keys"
        } else {
            "platform seed file"
        },
        match &config.state_dir {
            Some(d) => format!("sealed in {}", d.display()),
            None => "memory only".to_string(),
        }
    ));
    for stream in listener.incoming() {
        let mut stream = stream?;
        if let Err(e) = check_peer(&stream, allowed_uid) {
            log(&format!("refused connection: {e}"));
            continue;
        }
        match serve_connection(&mut enclave, &mut stream) {
            Ok(true) => {
                log("shutting down; key material is erased as the enclave exits");
                let _ = fs::remove_file(socket_path);
                return Ok(());
            }
            Ok(false) => {}
            Err(e) => log(&format!("connection ended with an error: {e}")),
        }
    }
    Ok(())
}

/// Serves one connection; `Ok(true)` when the client asked to shut down.
fn serve_connection(enclave: &mut SimulatedEnclave, stream: &mut UnixStream) -> Result<bool> {
    while let Some(request) = read_frame::<Request>(stream)? {
        let shutdown = matches!(request, Request::Shutdown);
        let name = request_name(&request);
        let response = handle(enclave, request).unwrap_or_else(|e| {
            log(&format!("{name} failed: {e}"));
            Response::Error(e.to_string())
        });
        write_frame(stream, response)?;
        if shutdown {
            return Ok(true);
        }
    }
    Ok(false)
}

fn request_name(r: &Request) -> &'static str {
    match r {
        Request::Hello => "hello",
        Request::TransportKey => "transport-key",
        Request::Attest(_) => "attest",
        Request::Seal(..) => "seal",
        Request::Unseal(_) => "unseal",
        Request::GenerateKeyShare(_) => "generate-key-share",
        Request::RelinRound1 => "relin-round1",
        Request::RelinRound2(_) => "relin-round2",
        Request::DealThresholdization(_) => "deal-thresholdization",
        Request::ReceiveThresholdization(_) => "receive-thresholdization",
        Request::DecryptionShare(..) => "decryption-share",
        Request::KeySwitchShare(..) => "key-switch-share",
        Request::Shutdown => "shutdown",
        Request::GaloisKeyShare(_) => "galois-key-share",
        Request::JoinSession(_) => "join-session",
        Request::ReshareDeal(..) => "reshare-deal",
        Request::ReshareRespond(_) => "reshare-respond",
        Request::ReshareReceive(_) => "reshare-receive",
        Request::ReshareOpen(_) => "reshare-open",
        Request::ReshareFinish(..) => "reshare-finish",
        Request::ReshareTestDecryptionShare(..) => "reshare-test-decryption-share",
        Request::ReshareCommit(_) => "reshare-commit",
        Request::ReshareAbort => "reshare-abort",
    }
}

/// The value in the one response that answers a request (`pattern => value`), or an error for
/// any other response.
macro_rules! answer {
    ($response:expr, $pattern:pat => $value:expr) => {
        match $response {
            $pattern => Ok($value),
            other => Err(unexpected(&other)),
        }
    };
}

/// A client of an enclave process: the [`Enclave`] trait over the socket.
#[derive(Debug)]
pub struct EnclaveClient {
    stream: UnixStream,
    kind: EnclaveKind,
    hardware_protected: bool,
}

impl EnclaveClient {
    /// Connects and greets the enclave.
    pub fn connect(socket_path: &Path) -> Result<Self> {
        let stream = UnixStream::connect(socket_path)?;
        let mut client = Self {
            stream,
            kind: EnclaveKind::InsecureSimulated,
            hardware_protected: false,
        };
        (client.kind, client.hardware_protected) = answer!(
            client.call(Request::Hello)?,
            Response::Hello { kind, hardware_protected } => (kind, hardware_protected)
        )?;
        Ok(client)
    }

    fn call(&mut self, request: Request) -> Result<Response> {
        write_frame(&mut self.stream, request)?;
        match read_frame::<Response>(&mut self.stream)? {
            Some(Response::Error(e)) => Err(Error::Remote(e)),
            Some(r) => Ok(r),
            None => Err(Error::Protocol("the enclave closed the connection".into())),
        }
    }

    /// Asks the enclave process to exit.
    pub fn shutdown(mut self) -> Result<()> {
        self.call(Request::Shutdown).map(|_| ())
    }
}

fn unexpected(r: &Response) -> Error {
    let name = match r {
        Response::Error(_) => "error",
        _ => "another response",
    };
    Error::Protocol(format!("unexpected response ({name})"))
}

impl Enclave for EnclaveClient {
    fn kind(&self) -> EnclaveKind {
        self.kind
    }
    fn hardware_protected(&self) -> bool {
        self.hardware_protected
    }
    fn transport_key(&mut self) -> Result<TransportPublicKey> {
        answer!(self.call(Request::TransportKey)?, Response::TransportKey(k) => k)
    }
    fn attest(&mut self, report_data: &ReportData) -> Result<Evidence> {
        let request = Request::Attest(report_data.as_bytes().to_vec());
        answer!(self.call(request)?, Response::Evidence(e) => e)
    }
    fn seal(&mut self, key_id: &KeyId, plaintext: &[u8]) -> Result<SealedBlob> {
        let request = Request::Seal(key_id.as_str().to_owned(), SecretBytes(plaintext.to_vec()));
        answer!(self.call(request)?, Response::Sealed(b) => SealedBlob(b))
    }
    fn unseal(&mut self, blob: &SealedBlob) -> Result<(KeyId, Zeroizing<Vec<u8>>)> {
        let request = Request::Unseal(blob.0.clone());
        answer!(self.call(request)?, Response::Unsealed(id, mut pt) => (KeyId::new(id)?, pt.take()))
    }
    fn generate_key_share(&mut self, setup: &SessionSetup) -> Result<PublicKeyShare> {
        let request = Request::GenerateKeyShare(setup.clone());
        answer!(self.call(request)?, Response::PublicKeyShare(s) => s)
    }
    fn relin_round1(&mut self) -> Result<Round1Share> {
        answer!(self.call(Request::RelinRound1)?, Response::RelinRound1(s) => s)
    }
    fn relin_round2(&mut self, round1: Vec<Round1Share>) -> Result<Round2Share> {
        answer!(self.call(Request::RelinRound2(round1))?, Response::RelinRound2(s) => s)
    }
    fn galois_key_share(&mut self, elements: &[u32]) -> Result<GaloisKeyShare> {
        let request = Request::GaloisKeyShare(elements.to_vec());
        answer!(self.call(request)?, Response::GaloisKeyShare(s) => s)
    }
    fn deal_thresholdization(
        &mut self,
        recipients: &[SealedRecipient],
    ) -> Result<Vec<(EvaluationPoint, SealedPayload)>> {
        let request = Request::DealThresholdization(recipients.to_vec());
        answer!(self.call(request)?, Response::Dealt(d) => d)
    }
    fn receive_thresholdization(&mut self, incoming: Vec<IncomingSubShare>) -> Result<()> {
        let request = Request::ReceiveThresholdization(incoming);
        answer!(self.call(request)?, Response::Done => ())
    }
    fn decryption_share(
        &mut self,
        set: &ActiveSet,
        ciphertext: &[u8],
        flooding: &Flooding,
    ) -> Result<DecryptionShare> {
        let request = Request::DecryptionShare(set.clone(), ciphertext.to_vec(), *flooding);
        answer!(self.call(request)?, Response::DecryptionShare(s) => s)
    }
    fn key_switch_share(
        &mut self,
        set: &ActiveSet,
        ciphertext: &[u8],
        recipient: &[u8],
        flooding: &Flooding,
    ) -> Result<KeySwitchShare> {
        let request = Request::KeySwitchShare(
            set.clone(),
            ciphertext.to_vec(),
            recipient.to_vec(),
            *flooding,
        );
        answer!(self.call(request)?, Response::KeySwitchShare(s) => s)
    }
    fn join_session(&mut self, setup: &SessionSetup) -> Result<()> {
        answer!(self.call(Request::JoinSession(setup.clone()))?, Response::Done => ())
    }
    fn reshare_deal(
        &mut self,
        proposal: &Proposal,
        recipients: &[SealedRecipient],
    ) -> Result<ReshareDealt> {
        let request = Request::ReshareDeal(proposal.clone(), recipients.to_vec());
        answer!(self.call(request)?, Response::ReshareDealt(d) => d)
    }
    fn reshare_respond(&mut self, commitments: &[Commitments]) -> Result<reshare::Response> {
        let request = Request::ReshareRespond(commitments.to_vec());
        answer!(self.call(request)?, Response::ReshareResponse(r) => r)
    }
    fn reshare_receive(&mut self, round: ReshareReceive) -> Result<Vec<Complaint>> {
        let request = Request::ReshareReceive(Box::new(round));
        answer!(self.call(request)?, Response::Complaints(c) => c)
    }
    fn reshare_open(&mut self, complaints: &[Complaint]) -> Result<Vec<Opening>> {
        let request = Request::ReshareOpen(complaints.to_vec());
        answer!(self.call(request)?, Response::Openings(o) => o)
    }
    fn reshare_finish(
        &mut self,
        complaints: &[Complaint],
        openings: &[Opening],
    ) -> Result<Verdict> {
        let request = Request::ReshareFinish(complaints.to_vec(), openings.to_vec());
        answer!(self.call(request)?, Response::Verdict(v) => v)
    }
    fn reshare_test_decryption_share(
        &mut self,
        set: &ActiveSet,
        ciphertext: &[u8],
        flooding: &Flooding,
    ) -> Result<DecryptionShare> {
        let request =
            Request::ReshareTestDecryptionShare(set.clone(), ciphertext.to_vec(), *flooding);
        answer!(self.call(request)?, Response::DecryptionShare(s) => s)
    }
    fn reshare_commit(&mut self, new_epoch: u64) -> Result<()> {
        answer!(self.call(Request::ReshareCommit(new_epoch))?, Response::Done => ())
    }
    fn reshare_abort(&mut self) -> Result<()> {
        answer!(self.call(Request::ReshareAbort)?, Response::Done => ())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    /// Plaintexts crossing the socket travel as plain bytes (the frame
    /// layout of a `Vec<u8>`) but never print: a request or response, or an
    /// error made from an unexpected one, shows only their length.
    #[test]
    fn plaintexts_on_the_socket_are_redacted() {
        let secret = b"the key-share state".to_vec();
        let request = Request::Seal("state".into(), SecretBytes(secret.clone()));
        let response = Response::Unsealed("state".into(), SecretBytes(secret.clone()));
        for shown in [format!("{request:?}"), format!("{response:?}")] {
            assert!(shown.contains("redacted"), "{shown}");
            assert!(!shown.contains("116, 104, 101"), "{shown}");
        }
        let error = unexpected(&response).to_string();
        assert!(!error.contains("116, 104, 101"), "{error}");
        assert_eq!(
            postcard::to_allocvec(&SecretBytes(secret.clone())).unwrap(),
            postcard::to_allocvec(&secret).unwrap()
        );
        let (mut a, mut b) = UnixStream::pair().unwrap();
        write_frame(&mut a, response).unwrap();
        let back: Response = read_frame(&mut b).unwrap().unwrap();
        assert!(matches!(back, Response::Unsealed(..)), "{back:?}");
        if let Response::Unsealed(_, mut pt) = back {
            assert_eq!(*pt.take(), secret);
        }
    }

    /// Pins the frame layout: length prefix, API version, request tag.
    #[test]
    fn frame_format_snapshot() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        write_frame(&mut a, Request::Attest(vec![0xAB; 2])).unwrap();
        write_frame(&mut a, Request::Shutdown).unwrap();
        write_frame(&mut a, Request::ReshareCommit(1)).unwrap();
        write_frame(&mut a, Request::ReshareAbort).unwrap();
        drop(a);
        let mut raw = Vec::new();
        b.read_to_end(&mut raw).unwrap();
        assert_eq!(
            hex::encode(&raw),
            concat!(
                "00000005", "01", "02", "02", "abab", // len 5, version 1, Attest, 2 bytes
                "00000002", "01", "0c", // len 2, version 1, Shutdown
                "00000003", "01", "15", "01", // ReshareCommit(epoch 1): appended tags
                "00000002", "01", "16", // ReshareAbort
            )
        );
    }

    #[test]
    fn oversized_and_wrong_version_frames_are_refused() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&(MAX_FRAME + 1).to_be_bytes()).unwrap();
        assert!(read_frame::<Request>(&mut b).is_err());
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&[0, 0, 0, 2, 2, 0]).unwrap();
        let err = read_frame::<Request>(&mut b).unwrap_err();
        assert!(err.to_string().contains("API version 2"), "{err}");
    }
}
