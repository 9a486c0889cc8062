//! Sealing: encrypting data so that only the same enclave code (measurement), at the same or a
//! newer security version (SVN), on the same platform, can read it back.
//!
//! The key is `HKDF-SHA256(salt = "synod/seal/v1", ikm = root, info = "synod/seal/v1 key" ‖
//! measurement ‖ SVN ‖ key id ‖ key source)` and the cipher AES-256-GCM with a random 96-bit
//! nonce. The root is the platform secret ([`PlatformSecret`]) or a fresh data key wrapped by an
//! HSM (module `hsm`, feature `hsm`). The metadata is stored in the clear beside the ciphertext and is the
//! AEAD's associated data, so none of it can be edited without detection.
//!
//! An enclave at SVN `n` can unseal blobs sealed at any SVN `≤ n` (it re-derives the key with the
//! blob's SVN, as SGX's `EGETKEY` does with a lower CPUSVN), so an upgrade keeps its data; an
//! enclave at a lower SVN cannot, so a rollback to vulnerable code gains nothing.
//!
//! ```text
//! offset len field (integers big-endian)
//!      0   8 magic "SYNDSEAL"
//!      8   2 format version (1)
//!     10   1 algorithm (1 = HKDF-SHA256 → AES-256-GCM)
//!     11   1 key source (1 = platform secret, 2 = HSM-wrapped data key)
//!     12   4 SVN
//!     16   1 measurement length m (1..=64)
//!     17   m measurement
//!          2 key id length k (1..=255)
//!          k key id (UTF-8)
//!          2 wrapped data key length w (0 for the platform secret)
//!          w wrapped data key
//!         12 nonce
//!            ciphertext ‖ 16-byte tag (the rest)
//! ```
//! The associated data is every byte before the ciphertext.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use rand::{CryptoRng, RngCore};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};

/// The blob's magic bytes.
pub const SEAL_MAGIC: &[u8; 8] = b"SYNDSEAL";
/// The blob format version written and accepted.
pub const SEAL_FORMAT_VERSION: u16 = 1;
const ALG_HKDF_SHA256_AES256GCM: u8 = 1;
const HKDF_SALT: &[u8] = b"synod/seal/v1";
const HKDF_INFO_TAG: &[u8] = b"synod/seal/v1 key";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Where a blob's root secret comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySource {
    /// The platform secret itself.
    PlatformSecret,
    /// A fresh data key per blob, wrapped by a key that never leaves an HSM.
    HsmWrapped,
}

impl KeySource {
    const fn code(self) -> u8 {
        match self {
            Self::PlatformSecret => 1,
            Self::HsmWrapped => 2,
        }
    }

    fn from_code(code: u8) -> Result<Self> {
        match code {
            1 => Ok(Self::PlatformSecret),
            2 => Ok(Self::HsmWrapped),
            other => Err(Error::SealedFormat(format!("unknown key source {other}"))),
        }
    }
}

/// Provides the root secret a sealing key is derived from.
pub trait SealingRoot: Send {
    /// Which source this is (recorded in the blob).
    fn source(&self) -> KeySource;
    /// A root for a new blob and the bytes to store so that [`recover`](Self::recover) can
    /// return it again (empty for the platform secret; the wrapped data key for an HSM).
    fn fresh(&mut self) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>)>;
    /// The root for a blob, from what [`fresh`](Self::fresh) stored.
    fn recover(&mut self, stored: &[u8]) -> Result<Zeroizing<[u8; 32]>>;
}

/// A 32-byte platform secret. In hardware this is a fused key only the enclave can derive from;
/// the simulated enclave keeps it in a file readable only by its user.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PlatformSecret([u8; 32]);

impl PlatformSecret {
    /// Wraps 32 secret bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for PlatformSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlatformSecret([redacted])")
    }
}

impl SealingRoot for PlatformSecret {
    fn source(&self) -> KeySource {
        KeySource::PlatformSecret
    }

    fn fresh(&mut self) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>)> {
        Ok((Zeroizing::new(self.0), Vec::new()))
    }

    fn recover(&mut self, stored: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        if !stored.is_empty() {
            return Err(Error::SealedFormat(
                "a platform-secret blob carries a wrapped key".into(),
            ));
        }
        Ok(Zeroizing::new(self.0))
    }
}

/// The name a sealed blob is filed under, bound into its key (1 to 255 bytes of UTF-8).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// Checks the length.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        if id.is_empty() || id.len() > 255 {
            return Err(Error::Seal(format!(
                "key id must be 1 to 255 bytes, got {}",
                id.len()
            )));
        }
        Ok(Self(id))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A sealed blob: header (metadata) and ciphertext, in the format of the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedBlob(pub Vec<u8>);

/// The parsed header of a [`SealedBlob`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedHeader {
    /// Key source.
    pub source: KeySource,
    /// The SVN it was sealed at.
    pub svn: u32,
    /// The measurement it was sealed by.
    pub measurement: Vec<u8>,
    /// The key id.
    pub key_id: KeyId,
    /// The wrapped data key (empty for the platform secret).
    pub wrapped_key: Vec<u8>,
    /// The AES-GCM nonce.
    pub nonce: [u8; NONCE_LEN],
}

impl SealedHeader {
    fn encode(&self) -> Result<Vec<u8>> {
        let m = u8::try_from(self.measurement.len())
            .ok()
            .filter(|m| (1..=64).contains(m))
            .ok_or_else(|| Error::Seal("measurement must be 1 to 64 bytes".into()))?;
        let k = u16::try_from(self.key_id.0.len()).map_err(|_| Error::Seal("key id".into()))?;
        let w = u16::try_from(self.wrapped_key.len())
            .map_err(|_| Error::Seal("wrapped key too long".into()))?;
        let mut out = Vec::with_capacity(64 + self.measurement.len() + self.key_id.0.len());
        out.extend_from_slice(SEAL_MAGIC);
        out.extend_from_slice(&SEAL_FORMAT_VERSION.to_be_bytes());
        out.push(ALG_HKDF_SHA256_AES256GCM);
        out.push(self.source.code());
        out.extend_from_slice(&self.svn.to_be_bytes());
        out.push(m);
        out.extend_from_slice(&self.measurement);
        out.extend_from_slice(&k.to_be_bytes());
        out.extend_from_slice(self.key_id.0.as_bytes());
        out.extend_from_slice(&w.to_be_bytes());
        out.extend_from_slice(&self.wrapped_key);
        out.extend_from_slice(&self.nonce);
        Ok(out)
    }

    /// Parses a header, returning it, the associated data and the ciphertext.
    pub fn parse(blob: &[u8]) -> Result<(Self, &[u8], &[u8])> {
        let mut r = Reader { buf: blob, pos: 0 };
        if r.take(8)? != SEAL_MAGIC {
            return Err(Error::SealedFormat(
                "not a synod sealed blob (bad magic)".into(),
            ));
        }
        let version = r.u16()?;
        if version != SEAL_FORMAT_VERSION {
            return Err(Error::SealedFormat(format!(
                "unsupported format version {version}"
            )));
        }
        let alg = r.u8()?;
        if alg != ALG_HKDF_SHA256_AES256GCM {
            return Err(Error::SealedFormat(format!("unknown algorithm {alg}")));
        }
        let source = KeySource::from_code(r.u8()?)?;
        let svn = r.u32()?;
        let m = usize::from(r.u8()?);
        if !(1..=64).contains(&m) {
            return Err(Error::SealedFormat(format!("measurement length {m}")));
        }
        let measurement = r.take(m)?.to_vec();
        let k = usize::from(r.u16()?);
        let key_id = std::str::from_utf8(r.take(k)?)
            .map_err(|_| Error::SealedFormat("key id is not UTF-8".into()))?;
        let key_id = KeyId::new(key_id).map_err(|e| Error::SealedFormat(e.to_string()))?;
        let w = usize::from(r.u16()?);
        let wrapped_key = r.take(w)?.to_vec();
        let nonce: [u8; NONCE_LEN] = r
            .take(NONCE_LEN)?
            .try_into()
            .map_err(|_| Error::SealedFormat("nonce".into()))?;
        let (aad, ciphertext) = blob.split_at_checked(r.pos).ok_or_else(truncated)?;
        if ciphertext.len() < TAG_LEN {
            return Err(truncated());
        }
        Ok((
            Self {
                source,
                svn,
                measurement,
                key_id,
                wrapped_key,
                nonce,
            },
            aad,
            ciphertext,
        ))
    }
}

fn truncated() -> Error {
    Error::SealedFormat("truncated".into())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(truncated)?;
        let out = self.buf.get(self.pos..end).ok_or_else(truncated)?;
        self.pos = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8> {
        self.take(1)?.first().copied().ok_or_else(truncated)
    }
    fn u16(&mut self) -> Result<u16> {
        let b: [u8; 2] = self.take(2)?.try_into().map_err(|_| truncated())?;
        Ok(u16::from_be_bytes(b))
    }
    fn u32(&mut self) -> Result<u32> {
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| truncated())?;
        Ok(u32::from_be_bytes(b))
    }
}

fn derive_key(
    root: &[u8; 32],
    measurement: &[u8],
    svn: u32,
    key_id: &KeyId,
    source: KeySource,
) -> Result<Zeroizing<[u8; 32]>> {
    let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), root);
    let m = u8::try_from(measurement.len()).map_err(|_| Error::Seal("measurement".into()))?;
    let k = u8::try_from(key_id.0.len()).map_err(|_| Error::Seal("key id".into()))?;
    let mut key = Zeroizing::new([0u8; 32]);
    hk.expand_multi_info(
        &[
            HKDF_INFO_TAG,
            &[m],
            measurement,
            &svn.to_be_bytes(),
            &[k],
            key_id.0.as_bytes(),
            &[source.code()],
        ],
        key.as_mut(),
    )
    .map_err(|_| Error::Seal("HKDF output length".into()))?;
    Ok(key)
}

/// Seals and unseals for one enclave identity (measurement and SVN) over one root.
pub struct Sealer {
    root: Box<dyn SealingRoot>,
    measurement: Vec<u8>,
    svn: u32,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("source", &self.root.source())
            .field("measurement", &hex::encode(&self.measurement))
            .field("svn", &self.svn)
            .finish()
    }
}

impl Sealer {
    /// A sealer for the enclave with `measurement` (1 to 64 bytes) at `svn`.
    pub fn new(root: Box<dyn SealingRoot>, measurement: Vec<u8>, svn: u32) -> Result<Self> {
        if measurement.is_empty() || measurement.len() > 64 {
            return Err(Error::Seal("measurement must be 1 to 64 bytes".into()));
        }
        Ok(Self {
            root,
            measurement,
            svn,
        })
    }

    /// This enclave's measurement.
    pub fn measurement(&self) -> &[u8] {
        &self.measurement
    }

    /// This enclave's SVN.
    pub fn svn(&self) -> u32 {
        self.svn
    }

    /// Seals `plaintext` under `key_id`.
    pub fn seal<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        key_id: &KeyId,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<SealedBlob> {
        let (root, wrapped_key) = self.root.fresh()?;
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let header = SealedHeader {
            source: self.root.source(),
            svn: self.svn,
            measurement: self.measurement.clone(),
            key_id: key_id.clone(),
            wrapped_key,
            nonce,
        };
        let mut blob = header.encode()?;
        let key = derive_key(&root, &self.measurement, self.svn, key_id, header.source)?;
        let cipher = Aes256Gcm::new_from_slice(key.as_ref())
            .map_err(|_| Error::Seal("AES key length".into()))?;
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &blob,
                },
            )
            .map_err(|_| Error::Seal("AES-GCM encryption".into()))?;
        blob.extend_from_slice(&ct);
        Ok(SealedBlob(blob))
    }

    /// Unseals a blob sealed by this measurement at an SVN not above this enclave's, returning
    /// its key id and plaintext.
    pub fn unseal(&mut self, blob: &SealedBlob) -> Result<(KeyId, Zeroizing<Vec<u8>>)> {
        let (header, aad, ct) = SealedHeader::parse(&blob.0)?;
        if header.measurement != self.measurement {
            return Err(Error::SealedMeasurementMismatch {
                sealed: hex::encode(&header.measurement),
                current: hex::encode(&self.measurement),
            });
        }
        if header.svn > self.svn {
            return Err(Error::SealedSvnTooHigh {
                sealed: header.svn,
                current: self.svn,
            });
        }
        if header.source != self.root.source() {
            return Err(Error::SealedFormat(format!(
                "blob was sealed with {:?}, this sealer uses {:?}",
                header.source,
                self.root.source()
            )));
        }
        let root = self.root.recover(&header.wrapped_key)?;
        let key = derive_key(
            &root,
            &header.measurement,
            header.svn,
            &header.key_id,
            header.source,
        )?;
        let cipher = Aes256Gcm::new_from_slice(key.as_ref())
            .map_err(|_| Error::Seal("AES key length".into()))?;
        let pt = cipher
            .decrypt(Nonce::from_slice(&header.nonce), Payload { msg: ct, aad })
            .map_err(|_| Error::SealedTampered)?;
        Ok((header.key_id, Zeroizing::new(pt)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    const A: [u8; 48] = [0xA1; 48];
    const B: [u8; 48] = [0xB2; 48];

    fn sealer(measurement: &[u8], svn: u32) -> Sealer {
        Sealer::new(
            Box::new(PlatformSecret::new([0x5E; 32])),
            measurement.to_vec(),
            svn,
        )
        .unwrap()
    }

    fn sealed() -> SealedBlob {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        sealer(&A, 3)
            .seal(
                &KeyId::new("additive-share").unwrap(),
                b"secret bytes",
                &mut rng,
            )
            .unwrap()
    }

    #[test]
    fn round_trip() {
        let (id, pt) = sealer(&A, 3).unseal(&sealed()).unwrap();
        assert_eq!(id.as_str(), "additive-share");
        assert_eq!(pt.as_slice(), b"secret bytes");
    }

    #[test]
    fn newer_svn_unseals_older_blob() {
        let (_, pt) = sealer(&A, 4).unseal(&sealed()).unwrap();
        assert_eq!(pt.as_slice(), b"secret bytes");
    }

    #[test]
    fn other_measurement_fails() {
        let err = sealer(&B, 3).unseal(&sealed()).unwrap_err();
        assert!(
            matches!(err, Error::SealedMeasurementMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn lower_svn_fails() {
        let err = sealer(&A, 2).unseal(&sealed()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::SealedSvnTooHigh {
                    sealed: 3,
                    current: 2
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn other_platform_secret_fails() {
        let mut other =
            Sealer::new(Box::new(PlatformSecret::new([0x11; 32])), A.to_vec(), 3).unwrap();
        assert!(matches!(
            other.unseal(&sealed()).unwrap_err(),
            Error::SealedTampered
        ));
    }

    #[test]
    fn every_tampered_byte_fails_clearly() {
        let blob = sealed();
        for i in 0..blob.0.len() {
            let mut bad = blob.clone();
            bad.0[i] ^= 0x01;
            let err = sealer(&A, 3).unseal(&bad).unwrap_err();
            // Metadata edits are refused by parsing or by the AEAD; ciphertext edits by the AEAD.
            assert!(
                matches!(
                    err,
                    Error::SealedTampered
                        | Error::SealedFormat(_)
                        | Error::SealedMeasurementMismatch { .. }
                        | Error::SealedSvnTooHigh { .. }
                ),
                "byte {i}: {err}"
            );
        }
        // Lowering the recorded SVN is not detected by parsing but by the AEAD.
        let mut bad = blob.clone();
        bad.0[15] = 2;
        assert!(matches!(
            sealer(&A, 3).unseal(&bad).unwrap_err(),
            Error::SealedTampered
        ));
        let truncated = SealedBlob(blob.0[..blob.0.len() - 1].to_vec());
        assert!(matches!(
            sealer(&A, 3).unseal(&truncated).unwrap_err(),
            Error::SealedTampered
        ));
    }

    /// Pins the header layout: a change here is a format change and needs a new version.
    #[test]
    fn header_format_snapshot() {
        let blob = sealed();
        let (header, aad, ct) = SealedHeader::parse(&blob.0).unwrap();
        assert_eq!(ct.len(), b"secret bytes".len() + TAG_LEN);
        let expected = concat!(
            "53594e445345414c", // "SYNDSEAL"
            "0001",             // format version
            "01",               // HKDF-SHA256 -> AES-256-GCM
            "01",               // platform secret
            "00000003",         // SVN
            "30",               // measurement length 48
            "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
            "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
            "000e",                          // key id length
            "6164646974697665 2d7368617265", // "additive-share"
            "0000",                          // no wrapped key
        )
        .replace(' ', "");
        let aad_hex = hex::encode(aad);
        assert_eq!(&aad_hex[..aad_hex.len() - 2 * NONCE_LEN], expected);
        assert_eq!(&aad[aad.len() - NONCE_LEN..], &header.nonce);
    }
}
